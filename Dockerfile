# syntax=docker/dockerfile:1
# tailgate's image: a static binary on a distroless, non-root base.
#
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/tailgate-sre/tailgate:v0.1.0 .
#
# deploy/check's TestDockerfile parses this file and runs the build
# command below, checking the binary is static and tells its version.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tailgate ./cmd/tailgate
# The state directory, owned by the runtime user (distroless nonroot is
# 65532), since the runtime image has no shell to create it.
RUN mkdir -p /out/data && chown 65532:65532 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tailgate /usr/local/bin/tailgate
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
# OTLP gRPC, OTLP HTTP, the API (dashboard, /metrics, /healthz, /readyz).
EXPOSE 4317 4318 8080
ENTRYPOINT ["/usr/local/bin/tailgate"]
CMD ["serve", "--config", "/etc/tailgate/tailgate.yaml"]
