#!/usr/bin/env bash
# Pull throughput and CPU against curl: the same bytes from the same local
# nginx, in the same run. A benchmark run by hand, not in CI.
#
#   bash bench/pull-vs-curl.sh [SIZE_MIB=1024] [ROUNDS=3]
#   BASE=/path/to/another/citadel bash bench/pull-vs-curl.sh …   # and that build, in the same rounds
#   CITADEL=/path/to/citadel bash bench/pull-vs-curl.sh …       # that build instead of this tree's
#
# Builds citadel and writes a repository with one SIZE_MIB safetensors file
# of random bytes (nothing compresses). `citadel mirror serve` answers the
# Hub API on loopback and redirects LFS downloads (--redirect-host) to
# Debian's nginx, which serves the repository's files with sendfile: the
# bytes of both tools come from nginx. Then, after one untimed warm-up pair,
# ROUNDS rounds, each starting one later in the list (pull, curl, pull, …):
#   curl - GET of the resolve URL, following the redirect to nginx, into a
#          file; no verification;
#   pull - `citadel pull` of the repository into a fresh HF cache: ranged
#          requests, sha256 verified, placed in the cache layout.
# Wall time and CPU seconds (user+sys) of the client come from GNU time; each
# round prints its own ratios (the two tools ran a few seconds apart, under
# the same load), and the end the medians of the rounds and how many rounds
# met each goal (throughput >= 1.0x curl, CPU <= 1.5x curl).
#
# Before each run the previous file is synced and deleted, then the run waits
# SETTLE seconds (default 3). On a VM whose balloon reports free memory to
# its host (virtio-balloon free page reporting, about 2 s after the memory is
# freed), the page cache of a fresh file can land in memory the host must
# fault in again: writes of 256 KiB or more (which the page cache takes in
# folios as large) cost 1-2 s of system CPU per GiB there, against 0.2 s
# when the run starts right after the deletion. Without the wait, which a
# run gets depends on how long the runs before it took; with it, every run
# starts from the same state (SETTLE=0 for the old behaviour). Needs root or
# an installed nginx (apt-get install nginx-light).
set -euo pipefail
SIZE_MIB=${1:-1024}
ROUNDS=${2:-3}
SETTLE=${SETTLE:-3}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
	apt-get install -y nginx-light >/dev/null || { apt-get update >/dev/null && apt-get install -y nginx-light >/dev/null; }
fi
ROOT=$(mktemp -d /tmp/citadel-bench.XXXXXX)
chmod 755 "$ROOT" # nginx workers read the files
cleanup() {
	[ -n "${MIRROR_PID:-}" ] && kill "$MIRROR_PID" 2>/dev/null || true
	[ -f "$ROOT/nginx.pid" ] && kill "$(cat "$ROOT/nginx.pid")" 2>/dev/null || true
	rm -rf "$ROOT"
}
trap cleanup EXIT
cd "$(dirname "$0")/.."
if [ -n "${CITADEL:-}" ]; then cp "$CITADEL" "$ROOT/citadel"; else go build -o "$ROOT/citadel" ./cmd/citadel; fi
REPO="$ROOT/mirror/hf/bench/model"
mkdir -p "$REPO"
echo '{"architectures":["LlamaForCausalLM"],"model_type":"llama"}' > "$REPO/config.json"
FILE=model-00001-of-00001.safetensors
# A valid safetensors file (pull checks the header): one U8 tensor of random bytes.
python3 - "$REPO/$FILE" "$((SIZE_MIB * 1024 * 1024))" <<'PY'
import json, struct, sys
path, total = sys.argv[1], int(sys.argv[2])
hdr = b""
for _ in range(2):  # the header's length depends on the tensor's, and back
    n = total - 8 - len(hdr)
    hdr = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    hdr += b" " * (-len(hdr) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(hdr)) + hdr)
PY
head -c "$((SIZE_MIB * 1024 * 1024 - $(stat -c %s "$REPO/$FILE")))" /dev/urandom >> "$REPO/$FILE"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NPORT=$(free_port)
MPORT=$(free_port)
mkdir -p "$ROOT/nginx"
cat > "$ROOT/nginx.conf" <<EOF
daemon on;
pid $ROOT/nginx.pid;
error_log $ROOT/nginx/error.log;
worker_processes 1;
events { worker_connections 256; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	client_body_temp_path $ROOT/nginx;
	proxy_temp_path $ROOT/nginx;
	fastcgi_temp_path $ROOT/nginx;
	uwsgi_temp_path $ROOT/nginx;
	scgi_temp_path $ROOT/nginx;
	server {
		listen 127.0.0.1:$NPORT;
		# The mirror's signed LFS URLs: /__lfs/ORG/NAME/COMMIT/PATH?signature
		location ~ ^/__lfs/bench/model/[0-9a-f]+/(.+)\$ {
			alias $REPO/\$1;
			default_type application/octet-stream;
		}
	}
}
EOF
"$NGINX" -c "$ROOT/nginx.conf" -e "$ROOT/nginx/error.log"
"$ROOT/citadel" mirror serve --dir "$ROOT/mirror" --addr "127.0.0.1:$MPORT" --redirect-host "127.0.0.1:$NPORT" 2>"$ROOT/mirror.log" &
MIRROR_PID=$!
export HF_ENDPOINT="http://127.0.0.1:$MPORT"
for _ in $(seq 1 100); do curl -fs "$HF_ENDPOINT/api/models/bench/model" >/dev/null && break; sleep 0.1; done
# The mirror hashes the file once (its ETag); do it before any timing.
curl -fsI "$HF_ENDPOINT/bench/model/resolve/main/$FILE" >/dev/null
URL="$HF_ENDPOINT/bench/model/resolve/main/$FILE"
# The redirect must land on nginx, or this compares nothing.
curl -fsI "$URL" | grep -qi "^location: http://127.0.0.1:$NPORT/__lfs/" || { echo "the LFS redirect does not point at nginx" >&2; exit 1; }
curl -fs -r 0-0 -L -o /dev/null -w '%{http_code}' "$URL" | grep -q 206 || { echo "nginx does not answer Range" >&2; exit 1; }
total=$(stat -c %s "$REPO/$FILE")

run() { # name, command...
	local name=$1; shift
	sync # writeback of the previous run must not slow this one
	rm -rf "$ROOT/out"
	mkdir -p "$ROOT/out"
	sleep "$SETTLE" # see the header
	/usr/bin/time -f "%e %U %S %M" -o "$ROOT/$name.time" "$@" >/dev/null 2>"$ROOT/$name.err" || { cat "$ROOT/$name.err" >&2; exit 1; }
	read -r wall user sys rss < "$ROOT/$name.time"
	cpu=$(echo "$user + $sys" | bc)
	printf '%-5s %6.2f s wall %6.2f s cpu (user %5.2f sys %5.2f) %7d KiB RSS %7.1f MB/s\n' "$name" "$wall" "$cpu" "$user" "$sys" "$rss" "$(echo "scale=1; $total / 1000000 / $wall" | bc)"
	echo "$wall $cpu" >> "$ROOT/$name.all"
}
curl_one() { curl -fsSL -o "$ROOT/out/$FILE" "$URL"; }
pull_one() { "$ROOT/citadel" pull hf://bench/model --include "$FILE" --data-dir "$ROOT/out" ${PULL_ARGS:-}; }
base_one() { "$ROOT/base" pull hf://bench/model --include "$FILE" --data-dir "$ROOT/out" ${PULL_ARGS:-}; }
export -f curl_one pull_one base_one; export ROOT FILE URL
NAMES="pull curl"
if [ -n "${BASE:-}" ]; then # another build of citadel, in the same rounds
	cp "$BASE" "$ROOT/base"
	NAMES="pull base curl"
fi

echo "one file of $total bytes from nginx on 127.0.0.1:$NPORT (API: citadel mirror on $MPORT); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run warm-curl bash -c curl_one >/dev/null
run warm-pull bash -c pull_one >/dev/null
[ -n "${BASE:-}" ] && run warm-base bash -c base_one >/dev/null
rm -f "$ROOT"/*.all
for r in $(seq 1 "$ROUNDS"); do
	# Each round starts one later in the list: what runs right after what (a file just
	# synced and deleted) weighs on the next writer, so every tool takes every place.
	set -- $NAMES
	k=$(( (r - 1) % $# ))
	for name in "${@:k+1}" "${@:1:k}"; do
		run "$name" bash -c "${name}_one"
	done
	read -r pw pc < <(tail -n1 "$ROOT/pull.all")
	read -r cw cc < <(tail -n1 "$ROOT/curl.all")
	tr=$(echo "scale=2; $cw / $pw" | bc); cr=$(echo "scale=2; $pc / $cc" | bc)
	echo "round $r: throughput pull/curl ${tr}x, cpu pull/curl ${cr}x; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "$tr $cr" >> "$ROOT/rounds"
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
cw=$(cut -d' ' -f1 "$ROOT/curl.all" | median); cc=$(cut -d' ' -f2 "$ROOT/curl.all" | median)
pw=$(cut -d' ' -f1 "$ROOT/pull.all" | median); pc=$(cut -d' ' -f2 "$ROOT/pull.all" | median)
echo "median of $ROUNDS: curl $cw s wall, $cc s cpu; pull $pw s wall, $pc s cpu; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "throughput pull/curl: $(echo "scale=2; $cw / $pw" | bc)x (goal >= 1.0)   cpu pull/curl: $(echo "scale=2; $pc / $cc" | bc)x (goal <= 1.5)"
echo "rounds meeting the goal: throughput $(awk '$1 >= 1.0' "$ROOT/rounds" | wc -l)/$ROUNDS, cpu $(awk '$2 <= 1.5' "$ROOT/rounds" | wc -l)/$ROUNDS, both $(awk '$1 >= 1.0 && $2 <= 1.5' "$ROOT/rounds" | wc -l)/$ROUNDS"
if [ -n "${BASE:-}" ]; then
	bw=$(cut -d' ' -f1 "$ROOT/base.all" | median); bc_=$(cut -d' ' -f2 "$ROOT/base.all" | median)
	echo "base (\$BASE): $bw s wall, $bc_ s cpu: throughput base/curl $(echo "scale=2; $cw / $bw" | bc)x, cpu base/curl $(echo "scale=2; $bc_ / $cc" | bc)x"
fi
