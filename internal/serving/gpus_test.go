package serving

import (
	"strings"
	"testing"

	"citadel.dev/citadel/internal/placement"
)

// TestGPUsSayWhatTheInventorySays: get gpus shows the inventory's own reasons (MIG, unified
// memory, missing values), and the shared Ollama is given only GPUs the planner may use.
func TestGPUsSayWhatTheInventorySays(t *testing.T) {
	inv, err := placement.ParseNvidiaSMI([]byte(
		"0, GPU-a, NVIDIA GeForce RTX 4090, 24564, 0, [N/A]\n" +
			"1, GPU-b, NVIDIA A100-SXM4-80GB, 81920, 0, Enabled\n" +
			"2, GPU-c, NVIDIA GB10, [N/A], [N/A], [N/A]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{Inventory: inv, InventorySource: "nvidia-smi"})
	l := c.GPUs()
	if len(l.Items) != 3 || l.Source != "nvidia-smi" {
		t.Fatalf("GPUs = %+v", l)
	}
	if g := l.Items[1]; g.MIG != "Enabled" || !strings.Contains(g.Note, "MIG mode is on") {
		t.Errorf("MIG GPU: MIG %q, note %q", g.MIG, g.Note)
	}
	if g := l.Items[2]; !strings.Contains(g.Note, "unified memory") {
		t.Errorf("GB10: note %q", g.Note)
	}
	var usableGPUs []int
	for _, g := range inv {
		if usable(g) {
			usableGPUs = append(usableGPUs, g.Index)
		}
	}
	if len(usableGPUs) != 1 || usableGPUs[0] != 0 {
		t.Errorf("usable GPUs %v, want [0]: a MIG GPU and one of unknown memory take no engine", usableGPUs)
	}
}
