package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/daemon"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/serving"
)

const gib = 1 << 30

func TestPrintGPUs(t *testing.T) {
	t.Parallel()
	l := v1.GPUList{Source: "nvidia-smi", Items: []v1.GPU{
		{Index: 0, Name: "NVIDIA GeForce RTX 4070 Ti SUPER", Profile: "rtx-4070-ti-super", UUID: "GPU-a", MemoryTotal: 16 * gib, MemoryUsed: gib / 2,
			Planned: 12 * gib, Holders: []v1.GPUHolder{
				{Service: "default/mimo-vl", Replica: 0, Engine: "vllm", PID: 4242, Bytes: 12 * gib},
				{Service: "default/coder", Replica: 0, Engine: "ollama", PID: 77, Bytes: 3 * gib, Shared: true},
			}},
		{Index: 1, Name: "NVIDIA GB10", UUID: "GPU-b", Note: "the driver reports no memory size; not used for placement"},
		{Index: 2, Name: "NVIDIA A100-SXM4-80GB", MemoryTotal: 80 * gib, MIG: "Enabled",
			Holders: []v1.GPUHolder{{Service: "lab/llm", Replica: 1, Engine: "sglang"}}},
	}}
	tests := []struct {
		name string
		wide bool
		want string
	}{
		{"table", false, `INDEX   NAME                               MEMORY      USED       PLANNED     FREE        HELD BY                                                                        MIG       NOTE
0       NVIDIA GeForce RTX 4070 Ti SUPER   16.00 GiB   0.50 GiB   12.00 GiB   3.50 GiB    default/mimo-vl#0 (vllm, pid 4242), default/coder#0 (ollama, shared, pid 77)   -         -
1       NVIDIA GB10                        -           0.00 GiB   0.00 GiB    -           -                                                                              -         the driver reports no memory size; not used for placement
2       NVIDIA A100-SXM4-80GB              80.00 GiB   0.00 GiB   0.00 GiB    80.00 GiB   lab/llm#1 (sglang, not running)                                                Enabled   -
inventory: nvidia-smi
`},
		{"wide", true, `INDEX   NAME                               MEMORY      USED       PLANNED     FREE        HELD BY                                                                                             MIG       NOTE                                                        PROFILE             UUID
0       NVIDIA GeForce RTX 4070 Ti SUPER   16.00 GiB   0.50 GiB   12.00 GiB   3.50 GiB    default/mimo-vl#0 (vllm, pid 4242, 12.00 GiB), default/coder#0 (ollama, shared, pid 77, 3.00 GiB)   -         -                                                           rtx-4070-ti-super   GPU-a
1       NVIDIA GB10                        -           0.00 GiB   0.00 GiB    -           -                                                                                                   -         the driver reports no memory size; not used for placement   -                   GPU-b
2       NVIDIA A100-SXM4-80GB              80.00 GiB   0.00 GiB   0.00 GiB    80.00 GiB   lab/llm#1 (sglang, not running)                                                                     Enabled   -                                                           -                   -
inventory: nvidia-smi
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errw bytes.Buffer
			if err := printGPUs(&out, &errw, l, tt.wide); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, out.String()); d != "" {
				t.Errorf("get gpus (-want +got):\n%s", d)
			}
			if errw.Len() != 0 {
				t.Errorf("stderr: %q", errw.String())
			}
		})
	}
	var out, errw bytes.Buffer
	if err := printGPUs(&out, &errw, v1.GPUList{Source: "none (--gpus none)", Error: "nvidia-smi: exit status 9"}, false); err != nil {
		t.Fatal(err)
	}
	if want := "warning: the last inventory read failed: nvidia-smi: exit status 9\n" +
		"No GPUs found (inventory: none (--gpus none)): engines run on the CPU only (llama.cpp, Ollama). Start serve with --gpus PROFILES to simulate some.\n"; errw.String() != want || out.Len() != 0 {
		t.Errorf("no GPUs: stdout %q, stderr %q, want stderr %q", out.String(), errw.String(), want)
	}
}

// TestGetGPUs runs get gpus against a server with a serving controller and one without.
func TestGetGPUs(t *testing.T) {
	srv := startServer(t, t.TempDir(), "") // no serving controller
	r := citadel(t, srv.addr, "", "get", "gpus")
	if want := "no GPU view at " + srv.addr + ": this server runs no serving controller (citadel serve --engines=false)"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("without engines: exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}

	inv, err := placement.FakeInventory("2xrtx-4070-ti-super")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{DataDir: t.TempDir(), AdminListener: ln, Ready: func(string) { close(ready) },
			Serving: &serving.Options{Inventory: inv, InventorySource: inventorySource("2xrtx-4070-ti-super", inv)}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	addr := ln.Addr().String()
	out := mustRun(t, addr, "get", "gpus")
	want := `INDEX   NAME                MEMORY      USED       PLANNED    FREE        HELD BY   MIG   NOTE
0       rtx-4070-ti-super   15.99 GiB   0.00 GiB   0.00 GiB   15.99 GiB   -         -     -
1       rtx-4070-ti-super   15.99 GiB   0.00 GiB   0.00 GiB   15.99 GiB   -         -     -
inventory: 2xrtx-4070-ti-super (simulated profiles, --gpus)
`
	if d := cmp.Diff(want, out); d != "" {
		t.Errorf("get gpus (-want +got):\n%s", d)
	}
	if out := mustRun(t, addr, "get", "gpus", "-o", "json"); !strings.Contains(out, `"memoryTotal": 17171480576`) {
		t.Errorf("-o json: %s", out)
	}
	for _, args := range [][]string{{"get", "gpus", "-o", "name"}, {"get", "gpus", "0"}, {"get", "gpus", "-w"}} {
		if r := citadel(t, addr, "", args...); r.code != ExitUsage {
			t.Errorf("citadel %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, ExitUsage, r.stderr)
		}
	}
}

func TestServeStartupLines(t *testing.T) {
	t.Parallel()
	inv, err := placement.FakeInventory("2xrtx-4070-ti-super")
	if err != nil {
		t.Fatal(err)
	}
	smi := []placement.GPU{{Index: 0, Name: "NVIDIA GeForce RTX 4090", MemoryTotal: 24 * gib, MemoryUsed: gib}, {Index: 1, Name: "NVIDIA GB10"}}
	lines := []struct {
		name string
		spec string
		inv  []placement.GPU
		want []string
	}{
		{"simulated", "2xrtx-4070-ti-super", inv, []string{
			"GPU 0: rtx-4070-ti-super, 15.99 GiB, from 2xrtx-4070-ti-super (simulated profiles, --gpus)",
			"GPU 1: rtx-4070-ti-super, 15.99 GiB, from 2xrtx-4070-ti-super (simulated profiles, --gpus)"}},
		{"nvidia-smi", "auto", smi, []string{
			"GPU 0: NVIDIA GeForce RTX 4090, 24.00 GiB (1.00 GiB used by other processes), from nvidia-smi",
			"GPU 1: NVIDIA GB10, memory unknown, from nvidia-smi"}},
		{"no driver", "auto", nil, []string{"no GPUs, from nvidia-smi (not found: no NVIDIA driver): only CPU engines (llama.cpp, Ollama) can run"}},
		{"none", "none", nil, []string{"no GPUs, from none (--gpus none): only CPU engines (llama.cpp, Ollama) can run"}},
	}
	for _, tt := range lines {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, inventoryLines(tt.inv, inventorySource(tt.spec, tt.inv))); d != "" {
				t.Errorf("start-up lines (-want +got):\n%s", d)
			}
		})
	}

	next := []struct {
		engines, simulate, gpus, mirror, examples bool
		want                                      string
	}{
		{true, false, false, false, true, "no GPU here: to see examples/seed-001 run on simulated GPUs and stand-in models, stop this server and follow examples/seed-001/README.md (citadel mirror seed …, then citadel serve --gpus 2xrtx-4070-ti-super --simulate-engines …)"},
		{true, true, true, false, true, "citadel get gpus; to run examples/seed-001 on stand-in models (no download): citadel mirror seed /tmp/citadel-mirror --example seed-001 (steps in examples/seed-001/README.md)"},
		{true, true, true, true, true, "citadel apply -f examples/seed-001/, then citadel get gpus"},
		{true, false, true, false, true, "citadel apply -f examples/seed-001/, then citadel get gpus"},
		{true, true, true, true, false, "citadel get gpus, then citadel apply -f FILE with your models"},
		{false, false, false, false, true, "citadel apply -f FILE (models download; nothing is served with --engines=false)"},
	}
	for _, tt := range next {
		if got := nextStep(tt.engines, tt.simulate, tt.gpus, tt.mirror, tt.examples); got != tt.want {
			t.Errorf("nextStep(engines %v, simulate %v, gpus %v, mirror %v, examples %v) = %q, want %q", tt.engines, tt.simulate, tt.gpus, tt.mirror, tt.examples, got, tt.want)
		}
	}
}
