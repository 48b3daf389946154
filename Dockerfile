# syntax=docker/dockerfile:1.7
#
# The evp image. One image runs every role, chosen by its command:
#
#   docker build -t evp --build-arg VERSION="$(git describe --tags --always --dirty)" .
#   docker run -p 3001:3001 -v evp-data:/data evp            # API and workers, embedded backends
#   docker run evp api | worker | migrate | apikey create --name NAME | version
#
# Stage 1 builds the dashboard when web/package.json exists (and nothing otherwise); stage 2
# builds a static evp with cgo (the SQLite driver needs it); stage 3 is distroless: no shell,
# no package manager, user 65532 (nonroot). Set the port with PORT, not --port: the
# HEALTHCHECK's `evp healthcheck` reads the same environment as the server.

ARG GO_VERSION=1.26
ARG NODE_VERSION=20

# --- 1. dashboard -----------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src
# The build context is mounted rather than copied so that a tree without web/ is no error.
# The dashboard's build writes ../internal/dashboard/dist/app (where internal/dashboard embeds
# it from); its files end up in /out/dist.
RUN --mount=type=bind,target=/ctx \
    --mount=type=cache,target=/root/.npm \
    mkdir -p /out/dist \
 && if [ -f /ctx/web/package.json ]; then \
      cp -a /ctx/web /src/web \
      && cd /src/web \
      && npm ci --no-audit --no-fund \
      && npm run build \
      && cp -a /src/internal/dashboard/dist/app/. /out/dist/ ; \
    else \
      echo "no web/package.json: building evp without the dashboard" ; \
    fi

# --- 2. evp -----------------------------------------------------------------------------------
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The dashboard's built files, where internal/dashboard embeds them from (empty without a
# dashboard: evp then serves a page that says how to build it).
COPY --from=web /out/dist ./internal/dashboard/dist/app
ARG VERSION=dev
# sqlite_omit_load_extension: no dlopen in a static binary; netgo, osusergo: pure-Go DNS and
# user lookups instead of glibc's, which cannot be linked statically.
ARG GO_TAGS="sqlite_omit_load_extension netgo osusergo"
ENV CGO_ENABLED=1
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -tags "${GO_TAGS}" \
      -ldflags "-s -w -X main.version=${VERSION} -linkmode external -extldflags '-static'" \
      -o /out/evp ./cmd/evp \
 && /out/evp version \
 && mkdir -p /out/data

# --- 3. runtime -------------------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="evp" \
      org.opencontainers.image.description="evp event pipeline: API, workers and operator commands in one binary" \
      org.opencontainers.image.source="https://github.com/evp-dev/evp" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/evp /usr/local/bin/evp
# /data belongs to the runtime user, so a fresh named volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
ENV EVP_DATA_DIR=/data \
    EVP_LOG_FORMAT=json
USER 65532:65532
VOLUME ["/data"]
EXPOSE 3001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/evp", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/evp"]
CMD ["run"]
