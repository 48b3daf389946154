# evp: the two commands a new user needs are `make run` and `make test` (see README.md).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/evp
# A count, not a duration: a duration-based -fuzztime can fail with "context deadline
# exceeded" at its end on Go 1.26 (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 150000x

# golangci-lint at a pinned version, built from source with this Go into bin/tools (git-ignored)
# once; `make lint` reuses it while the version stays the same.
GOLANGCI_LINT_VERSION := v2.15.0
TOOLS                 := bin/tools
GOLANGCI_LINT         := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# The dashboard (web/): its build goes into internal/dashboard/dist/app, embedded by go:embed.
WEB_INDEX := internal/dashboard/dist/app/index.html
WEB_DEPS  := web/node_modules/.package-lock.json

.PHONY: run build test lint test-short bench bench-micro bench-analytics clean web web-if-stale web-dev web-types web-check

## run: build the dashboard when missing or older than web/, build evp and run it with
## embedded backends on http://localhost:3001 (data in ./data)
run: web-if-stale build
	./$(BIN)

## build: compile bin/evp
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/evp

## web: build the dashboard (npm ci first when web/node_modules is missing)
web: $(WEB_DEPS)
	cd web && npm run build

# Files under web/ newer than the dashboard's build: its sources, index.html, package and
# config files (not its dependencies or test output).
WEB_NEWER = find web \( -path web/node_modules -o -path web/dist -o -path web/test-results \) -prune \
	-o -type f -newer $(WEB_INDEX) -print

# The dashboard is built when its output is missing or older than a file under web/ (a git
# pull that changed it); without Node.js evp still builds, with the older build or with a page
# that says how to build the dashboard.
web-if-stale:
	@if [ -f $(WEB_INDEX) ] && [ -z "$$($(WEB_NEWER))" ]; then :; \
	elif command -v npm >/dev/null 2>&1; then $(MAKE) web; \
	elif [ -f $(WEB_INDEX) ]; then echo "make: npm not found: web/ changed, but evp keeps the dashboard built before (install Node.js 20+, then make web)"; \
	else echo "make: npm not found: building evp without the dashboard (install Node.js 20+, then make web)"; fi

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund

## web-dev: the dashboard's Vite dev server with hot reload on http://localhost:5173, proxying
## /api, /openapi.json, /metrics and /docs to a running evp (EVP_URL, default http://localhost:3001)
web-dev: $(WEB_DEPS)
	cd web && npm run dev

## web-types: regenerate web/src/api/schema.d.ts from internal/openapi/openapi.json
web-types: $(WEB_DEPS)
	cd web && npm run gen:api

## web-check: API types up to date, typecheck, lint (ESLint), unit and component tests (Vitest)
web-check: $(WEB_DEPS)
	cd web && npm run check:api && npm run typecheck && npm run lint && npm test

## test: the full test suite (what CI runs): the Go linters, the dashboard's checks and build,
## the Go tests (browser tests included), then bounded fuzz runs of the event decoder, of
## its fast path and JSON validator, of the Segment and PostHog decoders, of jsonobj and
## of the analytics blocks' decoder
test: lint web-check web
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/event
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeOneFast$$' -fuzztime $(FUZZTIME) ./internal/event
	$(GO) test -run '^$$' -fuzz '^FuzzValid$$' -fuzztime $(FUZZTIME) ./internal/event
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/segment
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/posthog
	$(GO) test -run '^$$' -fuzz '^FuzzMembers$$' -fuzztime $(FUZZTIME) ./internal/jsonobj
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/blocks

## lint: go.mod tidy, then golangci-lint (.golangci.yml): gofmt, go vet, staticcheck, unused,
## errcheck, ineffassign, misspell; the first run builds golangci-lint (a few minutes)
lint: $(GOLANGCI_LINT)
	$(GO) mod tidy -diff
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	mkdir -p $(TOOLS)
	GOBIN=$(abspath $(TOOLS)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS)/golangci-lint $@

## test-short: unit tests only, no processes or services
test-short:
	$(GO) test -short ./...

## bench: the load scenarios of BENCHMARKS.md against fresh evp processes (about 10 minutes)
bench: build
	$(GO) run ./tools/bench $(BENCH_FLAGS)

## bench-micro: hot-path micro-benchmarks (decode, validate, buffer append, store insert)
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/event ./internal/queue/logqueue ./internal/httpapi ./internal/store/sqlitestore

## bench-analytics: analytics latency (p50, p95) over 10 million stored events for every
## range and filter, the events spread over 7 days (ANALYTICS_SPAN_HOURS=24: over a day);
## about 3 minutes (BENCHMARKS.md, "The embedded store on the blocks engine")
ANALYTICS_SPAN_HOURS ?= 168
bench-analytics:
	EVP_BENCH_EVENTS=10000000 EVP_BENCH_SPAN_HOURS=$(ANALYTICS_SPAN_HOURS) $(GO) test -v -timeout 60m -run '^$$' \
		-bench 'BenchmarkAnalytics/(reopen|15m|1h|24h|7d)' -benchtime 10x ./internal/store/sqlitestore

clean:
	rm -rf bin internal/dashboard/dist/app
