#!/usr/bin/env bash
# helm.sh builds the helm CLI from its Go module (the only downloads are Go
# modules), caches it, and prints the directory that holds it:
#
#	PATH="$(hack/helm.sh):$PATH"
#
# test/k8s/chart renders charts/citadel with it (CITADEL_REQUIRE_HELM=1 makes
# that test fail instead of skip without helm). With empty module and build
# caches the build takes 6.3 minutes of CPU (3 to 4 minutes on an idle 2-core
# machine), 413 MB of modules and 716 MB of build cache; later runs return at
# once. The binary is built in a temporary directory beside the cache and
# renamed into place, so an interrupted run leaves nothing half-built behind.
#
# Environment:
#	CITADEL_HELM_CACHE    where binaries are cached ($HOME/.cache/citadel/helm)
#	CITADEL_HELM_VERSION  helm version (3.22.1)
set -euo pipefail

version="${CITADEL_HELM_VERSION:-3.22.1}"
cache="${CITADEL_HELM_CACHE:-$HOME/.cache/citadel/helm}"
dir="$cache/helm-$version"

if [ -x "$dir/helm" ]; then
	echo "$dir"
	exit 0
fi

log() { printf 'helm: %s\n' "$*" >&2; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/.build-helm-$version.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$work"
start=$SECONDS

major="${version%%.*}"
log "building helm v$version (about 4 minutes cold)"
# helm's version package is internal: -X sets what `helm version` prints, as
# helm's Makefile does. `go install pkg@version` builds outside any module.
out="$(cd "$work" && go install -trimpath \
	-ldflags "-s -w -X helm.sh/helm/v$major/internal/version.version=v$version -X helm.sh/helm/v$major/internal/version.gitTreeState=clean" \
	"helm.sh/helm/v$major/cmd/helm@v$version" 2>&1)" || {
	printf '%s\n' "$out" >&2
	log "could not build helm v$version from the module proxy: set CITADEL_HELM_VERSION to a version it serves (go list -m -versions helm.sh/helm/v$major)"
	exit 1
}
mkdir -p "$dir"
mv -f "$work/helm" "$dir/helm"
"$dir/helm" version --short >&2
log "built in $((SECONDS - start))s: $dir"
echo "$dir"
