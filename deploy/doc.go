// Package deploy is Citadel's operations kit: a Prometheus scrape configuration, SLO and
// server alerts with their promtool unit tests (prometheus/), a Grafana dashboard
// (grafana/citadel.json) and a systemd unit for citadel serve (systemd/). docs/operations.md
// explains them. The package embeds the files so that its tests can check every metric name
// they use against what citadel serve, its gateway and the simulated engines really expose.
package deploy

import "embed"

// Files are the kit's files, by their paths under deploy/.
//
//go:embed prometheus/prometheus.yml prometheus/rules.yml prometheus/rules_test.yml grafana/citadel.json systemd/citadel.service systemd/citadel.env
var Files embed.FS
