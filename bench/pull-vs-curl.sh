#!/usr/bin/env bash
# Pull throughput against curl, same mirror, same files, same run.
#
#   bash bench/pull-vs-curl.sh [SIZE_MIB=1536] [FILES=3]
#
# Builds citadel, writes a repository of FILES safetensors-named files of
# SIZE_MIB/FILES MiB each (random bytes, so nothing compresses), serves it
# with `citadel mirror serve` on loopback, then measures:
#   curl   - fetches every file through the hub's resolve URL (following the
#            LFS redirect), sequentially, into a directory; no verification;
#   pull   - `citadel pull`, parallel ranged chunks, sha256 verified, placed
#            in the HF cache layout;
#   resume - `citadel pull` killed at ~50 % and run again: bytes fetched twice.
# Wall time, CPU seconds (user+sys) and peak RSS come from GNU time.
set -euo pipefail
SIZE_MIB=${1:-1536}
FILES=${2:-3}
ROOT=$(mktemp -d /tmp/citadel-bench.XXXXXX)
trap 'kill $MIRROR_PID 2>/dev/null || true; rm -rf "$ROOT"' EXIT
cd "$(dirname "$0")/.."
go build -o "$ROOT/citadel" ./cmd/citadel
REPO="$ROOT/mirror/hf/bench/model"
mkdir -p "$REPO"
echo '{"architectures":["LlamaForCausalLM"],"model_type":"llama"}' > "$REPO/config.json"
per=$((SIZE_MIB / FILES))
for i in $(seq 1 "$FILES"); do
	head -c "$((per * 1024 * 1024))" /dev/urandom > "$REPO/model-0000$i-of-0000$FILES.safetensors"
done
PORT=$((20000 + RANDOM % 20000))
"$ROOT/citadel" mirror serve --dir "$ROOT/mirror" --addr "127.0.0.1:$PORT" 2>"$ROOT/mirror.log" &
MIRROR_PID=$!
export HF_ENDPOINT="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -fs "$HF_ENDPOINT/api/models/bench/model" >/dev/null && break; sleep 0.1; done
# Warm the mirror's hash cache (both tools then see the same server).
curl -fsI "$HF_ENDPOINT/bench/model/resolve/main/model-00001-of-0000$FILES.safetensors" >/dev/null
"$ROOT/citadel" pull hf://bench/model --data-dir "$ROOT/warm" >/dev/null 2>&1
rm -rf "$ROOT/warm"
total=$(du -sb "$REPO" | cut -f1)

measure() { # name, command...
	local name=$1; shift
	sync # dirty pages of the previous run must not slow this one down
	rm -rf "$ROOT/curl" "$ROOT/pull"
	/usr/bin/time -f "%e %U %S %M" -o "$ROOT/$name.time" "$@" >/dev/null 2>"$ROOT/$name.err" || { cat "$ROOT/$name.err"; exit 1; }
	read -r wall user sys rss < "$ROOT/$name.time"
	cpu=$(echo "$user + $sys" | bc)
	mbs=$(echo "scale=1; $total / 1000000 / $wall" | bc)
	printf '%-8s %8.2f s wall %8.2f s cpu %8d KiB peak RSS %8.1f MB/s\n' "$name" "$wall" "$cpu" "$rss" "$mbs"
	echo "$wall" > "$ROOT/$name.wall"
}

curl_all() {
	mkdir -p "$ROOT/curl"
	for f in "$REPO"/*; do
		b=$(basename "$f")
		curl -fsSL -o "$ROOT/curl/$b" "$HF_ENDPOINT/bench/model/resolve/main/$b"
	done
}
export -f curl_all; export ROOT REPO HF_ENDPOINT

echo "repository: $FILES files, $total bytes, mirror at $HF_ENDPOINT"
# Alternate the two, twice, and keep each one's best run: the machine is shared
# and writeback of one run's files would otherwise bias the next.
best_curl=999; best_pull=999
for round in 1 2; do
	measure curl bash -c curl_all
	best_curl=$(echo "if ($(cat "$ROOT/curl.wall") < $best_curl) $(cat "$ROOT/curl.wall") else $best_curl" | bc)
	measure pull "$ROOT/citadel" pull hf://bench/model --data-dir "$ROOT/pull" ${PULL_ARGS:-}
	best_pull=$(echo "if ($(cat "$ROOT/pull.wall") < $best_pull) $(cat "$ROOT/pull.wall") else $best_pull" | bc)
done
echo "best of 2: curl $best_curl s, pull $best_pull s; ratio (curl wall / pull wall): $(echo "scale=2; $best_curl / $best_pull" | bc)x"

# Resume: kill at ~50 %, pull again, count bytes the mirror served twice.
sync
rm -rf "$ROOT/resume"
"$ROOT/citadel" pull hf://bench/model --data-dir "$ROOT/resume" --json > "$ROOT/resume.json" 2>/dev/null &
PID=$!
while kill -0 $PID 2>/dev/null; do
	done_bytes=$(tail -n 1 "$ROOT/resume.json" 2>/dev/null | grep -o '"bytesDone":[0-9]*' | head -1 | cut -d: -f2 || true)
	if [ -n "${done_bytes:-}" ] && [ "$done_bytes" -gt $((total / 2)) ]; then kill -9 $PID; break; fi
	sleep 0.05
done
wait $PID 2>/dev/null || true
partial=$(find "$ROOT/resume" -name '*.incomplete' -exec du -cb {} + 2>/dev/null | tail -1 | cut -f1)
"$ROOT/citadel" pull hf://bench/model --data-dir "$ROOT/resume" --json > "$ROOT/resume2.json" 2>/dev/null
fetched=$(tail -n 1 "$ROOT/resume2.json" | grep -o '"fetched":[0-9]*' | cut -d: -f2)
echo "resume: killed at ~${done_bytes:-?} of $total bytes; the second pull fetched $fetched bytes, so $(( ${done_bytes:-0} + fetched - total )) bytes were fetched twice"
