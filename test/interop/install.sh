#!/usr/bin/env bash
# Installs what the interop tests (go test ./test/interop) use: Debian's chromium, when it is
# missing (apt-get, as root or through sudo), and the npm clients pinned by package-lock.json
# (npm ci). playwright-core drives that chromium; no browser is downloaded by npm.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
chromium --version
npm ci --no-audit --no-fund
