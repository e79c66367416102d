package telemetry

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// UtilizationQuery is the nvidia-smi command NvidiaSMIUtilization runs.
const UtilizationQuery = "nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits"

// NvidiaSMIUtilization runs UtilizationQuery and returns each GPU's utilisation (0–1) by
// index. A GPU whose driver reports none ([N/A], [Not Supported]) is left out.
func NvidiaSMIUtilization(ctx context.Context) (map[int]float64, error) {
	name, args, _ := strings.Cut(UtilizationQuery, " ")
	out, err := exec.CommandContext(ctx, name, strings.Fields(args)...).Output()
	if err != nil {
		return nil, fmt.Errorf("running %s: %w", UtilizationQuery, err)
	}
	return ParseUtilization(out)
}

// ParseUtilization reads the output of UtilizationQuery: "index, percent" per line.
func ParseUtilization(out []byte) (map[int]float64, error) {
	util := map[int]float64{}
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		idx, pct, ok := strings.Cut(line, ",")
		if !ok {
			return nil, fmt.Errorf("%s, line %d: want \"index, utilization.gpu\", got %q", UtilizationQuery, i+1, line)
		}
		n, err := strconv.Atoi(strings.TrimSpace(idx))
		if err != nil {
			return nil, fmt.Errorf("%s, line %d: index %q is not a number", UtilizationQuery, i+1, strings.TrimSpace(idx))
		}
		pct = strings.TrimSpace(pct)
		if pct == "N/A" || strings.HasPrefix(pct, "[") {
			continue // not reported
		}
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p < 0 || p > 100 {
			return nil, fmt.Errorf("%s, line %d: utilization %q is not a percentage", UtilizationQuery, i+1, pct)
		}
		util[n] = p / 100
	}
	return util, nil
}
