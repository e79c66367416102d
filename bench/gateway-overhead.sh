#!/usr/bin/env bash
# What the gateway adds to a request, against nginx, in the same run. A benchmark run by
# hand, not in CI.
#
#   bash bench/gateway-overhead.sh [N=20000] [RATES=250,500,1000,1500,2000,3000,4000,6000]
#
# RATES "" skips the sweep. The machine's load average is printed before and after: on a
# small shared machine the figures are worth as much as the load was low.
#
# Starts, on loopback: a `citadel sim` vLLM engine at time scale 0 (it answers at once), a
# Debian nginx with proxy_pass to it over keepalive connections (its own config in a temp
# dir), and `citadel gateway` routing model qwen to it twice: on its own HTTP/1.1 server
# (gateway) and on net/http's (gw-stdlib, --stdlib-http). bench/gwoverhead then sends the same
# one-token chat request direct, through nginx and through each gateway, interleaved request
# by request (N each, after an untimed warm-up), and prints p50/p90/p99 and what each proxy
# adds over direct; then an open-loop sweep at each rate (the paths in turn, DUR each)
# gives the highest rate each sustains at p99 <= 1 ms. Goal: the gateway's added p50 at most
# 1.5x nginx's. Needs root or an installed nginx.
set -euo pipefail
N=${1:-20000}
RATES=${2-250,500,1000,1500,2000,3000,4000,6000}
DUR=${DUR:-3s}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
	apt-get install -y nginx >/dev/null || { apt-get update >/dev/null && apt-get install -y nginx >/dev/null; }
fi
ROOT=$(mktemp -d /tmp/citadel-gwbench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -f "$ROOT/nginx.pid" ] && kill "$(cat "$ROOT/nginx.pid")" 2>/dev/null || true
	rm -rf "$ROOT"
}
trap cleanup EXIT
cd "$(dirname "$0")/.."
go build -o "$ROOT/citadel" ./cmd/citadel
go build -o "$ROOT/gwoverhead" ./bench/gwoverhead

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "no answer at $1" >&2; exit 1; }
SPORT=$(free_port)
NPORT=$(free_port)
GPORT=$(free_port)
G2PORT=$(free_port)

"$ROOT/citadel" sim --engine vllm --gpu h100-sxm --model qwen2.5-7b --served-model-name qwen \
	--host 127.0.0.1 --port "$SPORT" --time-scale 0 --max-model-len 8192 >"$ROOT/sim.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$SPORT/health"

mkdir -p "$ROOT/nginx"
cat > "$ROOT/nginx.conf" <<EOF
daemon on;
pid $ROOT/nginx.pid;
error_log $ROOT/nginx/error.log;
worker_processes auto;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $ROOT/nginx;
	proxy_temp_path $ROOT/nginx;
	fastcgi_temp_path $ROOT/nginx;
	uwsgi_temp_path $ROOT/nginx;
	scgi_temp_path $ROOT/nginx;
	keepalive_requests 100000;
	upstream engine {
		server 127.0.0.1:$SPORT;
		keepalive 256;
		keepalive_requests 100000;
	}
	server {
		listen 127.0.0.1:$NPORT;
		location / {
			proxy_pass http://engine;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
"$NGINX" -c "$ROOT/nginx.conf" -e "$ROOT/nginx/error.log"

cat > "$ROOT/routes.yaml" <<EOF
apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: bench}
spec:
  models:
  - name: qwen
    targets: [{url: "http://127.0.0.1:$SPORT"}]
EOF
"$ROOT/citadel" gateway -f "$ROOT/routes.yaml" --addr "127.0.0.1:$GPORT" >"$ROOT/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
"$ROOT/citadel" gateway -f "$ROOT/routes.yaml" --addr "127.0.0.1:$G2PORT" --stdlib-http >"$ROOT/gateway-std.log" 2>&1 &
GWS_PID=$!
PIDS+=($GWS_PID)
wait_up "http://127.0.0.1:$GPORT/healthz"
wait_up "http://127.0.0.1:$G2PORT/healthz"

echo "citadel $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'), $("$NGINX" -v 2>&1), $(nproc) CPUs, $(go version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$ROOT/gwoverhead" -n "$N" -rates "$RATES" -dur "$DUR" \
	-path "direct=http://127.0.0.1:$SPORT/v1/chat/completions" \
	-path "nginx=http://127.0.0.1:$NPORT/v1/chat/completions" \
	-path "gateway=http://127.0.0.1:$GPORT/v1/chat/completions" \
	-path "gw-stdlib=http://127.0.0.1:$G2PORT/v1/chat/completions"
echo "gateway RSS after the run: $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$GW_PID/status) (gw-stdlib $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$GWS_PID/status)); load average $(cut -d' ' -f1-3 /proc/loadavg)"
