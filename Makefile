# evp: the two commands a new user needs are `make run` and `make test` (see README.md).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/evp
# A count, not a duration: a duration-based -fuzztime can fail with "context deadline
# exceeded" at its end on Go 1.26 (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 150000x

.PHONY: run build test test-short bench bench-micro clean

## run: build evp and run it with embedded backends on http://localhost:3001 (data in ./data)
run: build
	./$(BIN)

## build: compile bin/evp
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/evp

## test: the full test suite (what CI runs), then a bounded fuzz run of the event decoder
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/event

## test-short: unit tests only, no processes or services
test-short:
	$(GO) test -short ./...

## bench: the load scenarios of BENCHMARKS.md against fresh evp processes (about 10 minutes)
bench: build
	$(GO) run ./tools/bench $(BENCH_FLAGS)

## bench-micro: hot-path micro-benchmarks (decode, validate, buffer append, store insert)
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/event ./internal/queue/sqlitequeue ./internal/httpapi ./internal/store/sqlitestore

clean:
	rm -rf bin
