#!/bin/sh
# engines-sd.sh: write a Prometheus file_sd target file with every engine Citadel runs that
# serves Prometheus metrics (vLLM, SGLang, llama.cpp; Ollama has none), from the services'
# status. Needs citadel and jq on PATH. Run it every 30 s (cron or a systemd timer):
#   engines-sd.sh /var/lib/prometheus/citadel-engines.json
# CITADEL_SERVER (admin address, default 127.0.0.1:8081) and CITADEL_TOKEN reach another server.
set -eu
out=${1:-/var/lib/prometheus/citadel-engines.json}
tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
citadel get isvc -A -o json | jq '[
  .items[] as $s
  | ($s.status.endpoints // [])[]
  | select(.metrics != null and .metrics != "" and .engine != "ollama")
  | {targets: [.address],
     labels: {__metrics_path__: .metrics, engine: .engine, service: $s.metadata.name,
              namespace: ($s.metadata.namespace // "default"), replica: (.replica | tostring)}}
]' >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
