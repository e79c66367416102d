#!/usr/bin/env bash
# Prints a directory holding promtool, from Debian's prometheus package unpacked into a cache
# (not installed: installing it would also start a Prometheus service). deploy's tests check the
# shipped Prometheus config, alerts and their unit tests with it (CITADEL_REQUIRE_PROMTOOL=1).
set -euo pipefail
cache="${CITADEL_PROMTOOL_CACHE:-$HOME/.cache/citadel/promtool}"
if [ -x "$cache/usr/bin/promtool" ]; then
	echo "$cache/usr/bin"; exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
apt-get download prometheus >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download prometheus >/dev/null; }
dpkg-deb -x prometheus_*.deb x
mkdir -p "$(dirname "$cache")"
rm -rf "$cache.new" && mv x "$cache.new" && rm -rf "$cache" && mv "$cache.new" "$cache"
"$cache/usr/bin/promtool" --version >&2
echo "$cache/usr/bin"
