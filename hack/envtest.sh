#!/usr/bin/env bash
# envtest.sh builds etcd, kube-apiserver and kubectl from Go module sources
# (the only downloads are Go modules) for tests that need a real Kubernetes
# API server, caches the binaries, and prints their directory: use it as
# KUBEBUILDER_ASSETS, as controller-runtime's envtest expects.
#
#	export KUBEBUILDER_ASSETS="$(hack/envtest.sh)"
#
# A cold build takes 6 to 10 minutes on 2 cores, ~2.5 GB of build cache and
# ~0.8 GB of module cache; later runs find the binaries and return at once.
# Each binary is built in a temporary directory beside the cache and renamed
# into place when it is complete, so an interrupted run leaves nothing
# half-built behind and the next run builds only what is missing.
#
# Environment:
#	CITADEL_ENVTEST_CACHE  where binaries are cached ($HOME/.cache/citadel/envtest)
#	CITADEL_ENVTEST_K8S    Kubernetes version (1.36.3; the module proxy also
#	                       serves 1.32.13, 1.33.13, 1.34.4 and 1.35.4)
#	CITADEL_ENVTEST_ETCD   etcd version (3.6.16)
set -euo pipefail

k8s="${CITADEL_ENVTEST_K8S:-1.36.3}"
etcd="${CITADEL_ENVTEST_ETCD:-3.6.16}"
cache="${CITADEL_ENVTEST_CACHE:-$HOME/.cache/citadel/envtest}"
dir="$cache/k8s-$k8s-etcd-$etcd"

missing() { [ ! -x "$dir/$1" ]; }
if ! missing etcd && ! missing kube-apiserver && ! missing kubectl; then
	echo "$dir"
	exit 0
fi

log() { printf 'envtest: %s\n' "$*" >&2; }

mkdir -p "$dir"
work="$(mktemp -d "$cache/.build-k8s-$k8s-etcd-$etcd.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The scratch modules stand alone: no workspace, no flags from the caller.
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
start=$SECONDS

# quiet runs a command and shows its output only when it fails.
quiet() {
	local out
	if ! out="$("$@" 2>&1)"; then
		printf '%s\n' "$out" >&2
		return 1
	fi
}

# install moves a built binary into the cache in one rename.
install() { chmod +x "$work/$1" && mv -f "$work/$1" "$dir/$1"; }

# etcd: `go install` refuses its module (replace directives); a scratch
# module that requires it builds. The server module's root is package main.
if missing etcd; then
	log "building etcd v$etcd (about 2 minutes cold)"
	mkdir "$work/etcd-mod"
	(
		cd "$work/etcd-mod"
		go mod init citadel.dev/envtest/etcd >/dev/null 2>&1
		quiet go get "go.etcd.io/etcd/server/v3@v$etcd"
		go build -trimpath -o "$work/etcd" go.etcd.io/etcd/server/v3
	)
	install etcd
fi

# kube-apiserver and kubectl: k8s.io/kubernetes replaces its staging modules
# with local directories, which a dependency cannot; the scratch module
# replaces each with the published module of the matching version (v1.X.Y ->
# v0.X.Y). `go get`, never `go mod tidy`: the proxy refuses some test-only
# module zips.
if missing kube-apiserver || missing kubectl; then
	mkdir "$work/k8s-mod"
	cd "$work/k8s-mod"
	go mod init citadel.dev/envtest/k8s >/dev/null 2>&1
	gomod="$(go mod download -json "k8s.io/kubernetes@v$k8s" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
	if [ -z "$gomod" ] || [ ! -f "$gomod" ]; then
		log "could not download k8s.io/kubernetes@v$k8s from the module proxy: set CITADEL_ENVTEST_K8S to a version it serves"
		exit 1
	fi
	staging="v0.${k8s#*.}"
	sed -n 's|^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*$|\1|p' "$gomod" | while read -r m; do
		go mod edit -replace "$m=$m@$staging"
	done
	go mod edit -require "k8s.io/kubernetes@v$k8s"
	IFS=. read -r major minor _ <<<"$k8s"
	ldflags="-s -w"
	for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags="$ldflags -X $v.gitVersion=v$k8s -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
	done
	for b in kube-apiserver kubectl; do
		missing "$b" || continue
		log "building $b v$k8s (about 5 minutes cold for the first)"
		quiet go get "k8s.io/kubernetes/cmd/$b@v$k8s"
		go build -trimpath -ldflags "$ldflags" -o "$work/$b" "k8s.io/kubernetes/cmd/$b"
		install "$b"
	done
fi

log "built in $((SECONDS - start))s: $dir"
echo "$dir"
