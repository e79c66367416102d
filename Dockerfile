# syntax=docker/dockerfile:1
# The citadel image: one static binary that runs every process of the Helm chart
# (charts/citadel: citadel controller, agent, gateway, mirror serve).
#
#	docker build --build-arg VERSION=v0.1.0 -t ghcr.io/citadel-dev/citadel:0.1.0 .
#
# The Go version is go.mod's (test/k8s/chart checks that they agree).
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (no cgo: modernc.org/sqlite is pure Go), reproducible paths, and the
# version `citadel version` prints.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags "-s -w -X citadel.dev/citadel/internal/version.Version=${VERSION}" \
	-o /out/citadel ./cmd/citadel

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), tzdata; no shell.
# The chart runs the agent as root (it writes the models' hostPath) and the rest as 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/citadel /usr/local/bin/citadel
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/citadel"]
