package placement

import (
	"strings"
	"testing"

	"citadel.dev/citadel/internal/perfmodel"
	"github.com/google/go-cmp/cmp"
)

func TestParseNvidiaSMI(t *testing.T) {
	t.Parallel()
	const mi = 1 << 20
	tests := []struct {
		name string
		in   string
		want []GPU
	}{
		{
			name: "two 4070 Ti SUPER",
			in: "0, GPU-3b1d6f2e-0000-4000-8000-000000000001, NVIDIA GeForce RTX 4070 Ti SUPER, 16376, 1\n" +
				"1, GPU-3b1d6f2e-0000-4000-8000-000000000002, NVIDIA GeForce RTX 4070 Ti SUPER, 16376, 512\n",
			want: []GPU{
				{Index: 0, UUID: "GPU-3b1d6f2e-0000-4000-8000-000000000001", Name: "NVIDIA GeForce RTX 4070 Ti SUPER",
					MemoryTotal: 16376 * mi, MemoryUsed: 1 * mi, Profile: "rtx-4070-ti-super"},
				{Index: 1, UUID: "GPU-3b1d6f2e-0000-4000-8000-000000000002", Name: "NVIDIA GeForce RTX 4070 Ti SUPER",
					MemoryTotal: 16376 * mi, MemoryUsed: 512 * mi, Profile: "rtx-4070-ti-super"},
			},
		},
		{
			name: "mixed, out of order, CRLF and blank lines; unknown GPUs keep their name",
			in: "\r\n2, GPU-c, NVIDIA H100 80GB HBM3, 81559, 0\r\n" +
				"0, GPU-a, NVIDIA A100-SXM4-80GB, 81920, 4\r\n\r\n" +
				"1, GPU-b, Tesla T4, 15360, 0\r\n",
			want: []GPU{
				{Index: 0, UUID: "GPU-a", Name: "NVIDIA A100-SXM4-80GB", MemoryTotal: 81920 * mi, MemoryUsed: 4 * mi, Profile: "a100-80g"},
				{Index: 1, UUID: "GPU-b", Name: "Tesla T4", MemoryTotal: 15360 * mi},
				{Index: 2, UUID: "GPU-c", Name: "NVIDIA H100 80GB HBM3", MemoryTotal: 81559 * mi, Profile: "h100-sxm"},
			},
		},
		{
			name: "six fields: GB10 (unified memory), MIG on, MIG off, GeForce without MIG, used not reported",
			in: "0, GPU-a1b2c3d4-0000-4000-8000-00000000000a, NVIDIA GB10, [N/A], [N/A], [N/A]\n" +
				"1, GPU-a1b2c3d4-0000-4000-8000-00000000000b, NVIDIA A100-SXM4-80GB, 81920, 0, Enabled\n" +
				"2, GPU-a1b2c3d4-0000-4000-8000-00000000000c, NVIDIA H100 80GB HBM3, 81559, 1, Disabled\n" +
				"3, GPU-a1b2c3d4-0000-4000-8000-00000000000d, NVIDIA GeForce RTX 4090, 24564, 300, [N/A]\n" +
				"4, GPU-a1b2c3d4-0000-4000-8000-00000000000e, NVIDIA L4, 23034, [Not Supported], N/A\n",
			want: []GPU{
				{Index: 0, UUID: "GPU-a1b2c3d4-0000-4000-8000-00000000000a", Name: "NVIDIA GB10", Note: "memory.total is [N/A]",
					Unusable: "the driver reports no dedicated memory (memory.total [N/A]: unified memory, as on DGX Spark/GB10): placement needs a memory size; " +
						"pass --gpus with a GPU profile of the memory the engines may use (e.g. --gpus a100-80g plans it as one 80 GiB GPU)"},
				{Index: 1, UUID: "GPU-a1b2c3d4-0000-4000-8000-00000000000b", Name: "NVIDIA A100-SXM4-80GB", MemoryTotal: 81920 * mi, Profile: "a100-80g",
					MIG: "Enabled", Unusable: "MIG mode is on: Citadel places whole GPUs; disable MIG (sudo nvidia-smi -i 1 -mig 0, then reset the GPU) " +
						"or leave this GPU out by passing --gpus with profiles of the others"},
				{Index: 2, UUID: "GPU-a1b2c3d4-0000-4000-8000-00000000000c", Name: "NVIDIA H100 80GB HBM3", MemoryTotal: 81559 * mi, MemoryUsed: 1 * mi,
					Profile: "h100-sxm", MIG: "Disabled"},
				{Index: 3, UUID: "GPU-a1b2c3d4-0000-4000-8000-00000000000d", Name: "NVIDIA GeForce RTX 4090", MemoryTotal: 24564 * mi, MemoryUsed: 300 * mi,
					Profile: "rtx-4090"},
				{Index: 4, UUID: "GPU-a1b2c3d4-0000-4000-8000-00000000000e", Name: "NVIDIA L4", MemoryTotal: 23034 * mi, Profile: "l4",
					Note: "memory.used is [Not Supported]: counted as 0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseNvidiaSMI([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseNvidiaSMI (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseNvidiaSMIErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string // every one must appear in the error
	}{
		{"N/A index", "[N/A], GPU-a, NVIDIA L4, 23034, 0, [N/A]\n", []string{`line 1: index "[N/A]"`}},
		{"unknown MIG mode", "0, GPU-a, NVIDIA A100-SXM4-80GB, 81920, 0, Pending\n", []string{`line 1: mig.mode.current "Pending": want Enabled, Disabled or [N/A]`}},
		{"every bad field of a line", "x, , , -5, 1.5\n", []string{`line 1: index "x"`, "line 1: uuid", `line 1: name "": want the GPU's name`,
			`line 1: memory.total "-5"`, `line 1: memory.used "1.5"`}},
		{"driver not loaded", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
			[]string{"line 1: want 6 comma-separated fields", "got 1", "NVIDIA-SMI has failed"}},
		{"header line (csv without noheader)", "index, uuid, name, memory.total [MiB], memory.used [MiB]\n0, GPU-a, NVIDIA L4, 23034, 0\n",
			[]string{`line 1: index "index"`, `line 1: memory.total "memory.total [MiB]"`}},
		{"used more than total", "0, GPU-a, NVIDIA L4, 1000, 2000\n", []string{"line 1: memory.used 2000 MiB is more than memory.total 1000 MiB"}},
		{"repeated index", "0, GPU-a, NVIDIA L4, 23034, 0\n0, GPU-b, NVIDIA L4, 23034, 0\n", []string{"line 2: index 0 repeats line 1"}},
		{"repeated uuid", "0, GPU-a, NVIDIA L4, 23034, 0\n1, GPU-a, NVIDIA L4, 23034, 0\n", []string{"line 2: uuid GPU-a repeats line 1"}},
		{"empty", "\n\n", []string{"no GPUs listed", Query}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseNvidiaSMI([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseNvidiaSMI = %+v, want an error", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzParseNvidiaSMI(f *testing.F) {
	f.Add([]byte("0, GPU-a, NVIDIA GeForce RTX 4070 Ti SUPER, 16376, 1\n1, GPU-b, NVIDIA GeForce RTX 4070 Ti SUPER, 16376, 512\n"))
	f.Add([]byte("0, GPU-a, NVIDIA L4, N/A, 0\n"))
	f.Add([]byte("\r\n"))
	f.Add([]byte("0, GPU-a, NVIDIA GB10, [N/A], [N/A], [N/A]\n1, GPU-b, NVIDIA A100-SXM4-80GB, 81920, 0, Enabled\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		gpus, err := ParseNvidiaSMI(in)
		if err != nil {
			if gpus != nil {
				t.Errorf("GPUs %+v with error %v", gpus, err)
			}
			return
		}
		if len(gpus) == 0 {
			t.Fatal("no GPUs and no error")
		}
		for i, g := range gpus {
			if g.Unusable == "" && (g.MemoryTotal <= 0 || g.MemoryUsed < 0 || g.MemoryUsed > g.MemoryTotal) || g.UUID == "" || g.Name == "" {
				t.Errorf("invalid GPU %+v", g)
			}
			if i > 0 && gpus[i-1].Index >= g.Index {
				t.Errorf("indexes not strictly ascending: %d then %d", gpus[i-1].Index, g.Index)
			}
		}
		if _, errs := Plan([]Request{{Service: "x", Model: perfmodel.Model{Name: "x"}}}, gpus); errs[0] != nil && strings.Contains(errs[0].Error(), "GPU inventory") {
			t.Errorf("a parsed inventory is invalid for Plan: %v", errs)
		}
	})
}

func TestProfileFor(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"NVIDIA GeForce RTX 4070 Ti SUPER": "rtx-4070-ti-super",
		"NVIDIA GeForce RTX 4070 Ti":       "", // 12 GB: not the SUPER
		"NVIDIA GeForce RTX 4090":          "rtx-4090",
		"NVIDIA GeForce RTX 4090 D":        "",
		"NVIDIA L4":                        "l4",
		"NVIDIA A100-PCIE-40GB":            "a100-40g",
		"NVIDIA A100-SXM4-80GB":            "a100-80g",
		"NVIDIA A100 80GB PCIe":            "a100-80g",
		"NVIDIA H100 80GB HBM3":            "h100-sxm",
		"NVIDIA H100 PCIe":                 "",
		"NVIDIA H200":                      "h200",
		"rtx-4090":                         "rtx-4090",
		"Tesla T4":                         "",
	}
	for name, want := range tests {
		if got := ProfileFor(name); got != want {
			t.Errorf("ProfileFor(%q) = %q, want %q", name, got, want)
		}
	}
	for _, p := range smiNames {
		if _, err := perfmodel.LookupGPU(p); err != nil {
			t.Errorf("smiNames maps to %q: %v", p, err)
		}
	}
}

func TestFakeInventory(t *testing.T) {
	t.Parallel()
	tis, _ := perfmodel.LookupGPU("rtx-4070-ti-super")
	fake := func(i int, p perfmodel.GPU) GPU {
		return GPU{Index: i, UUID: "GPU-00000000-0000-0000-0000-00000000000" + string(rune('0'+i)), Name: p.Name,
			MemoryTotal: p.MemoryBytes, Profile: p.Name}
	}
	r4090, _ := perfmodel.LookupGPU("rtx-4090")
	a100, _ := perfmodel.LookupGPU("a100-80g")
	h100, _ := perfmodel.LookupGPU("h100-sxm")
	tests := []struct {
		spec string
		want []GPU
	}{
		{"2xrtx-4070-ti-super", []GPU{fake(0, tis), fake(1, tis)}},
		{"rtx-4090,a100-80g", []GPU{fake(0, r4090), fake(1, a100)}},
		{" 1 x H100-SXM , rtx-4090 ", []GPU{fake(0, h100), fake(1, r4090)}},
	}
	for _, tt := range tests {
		got, err := FakeInventory(tt.spec)
		if err != nil {
			t.Errorf("FakeInventory(%q): %v", tt.spec, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("FakeInventory(%q) (-want +got):\n%s", tt.spec, diff)
		}
	}
	for spec, want := range map[string]string{
		"2xrtx-5090":   `unknown GPU "rtx-5090": choose one of a100-40g, a100-80g, h100-sxm, h200, l4, rtx-4070-ti-super, rtx-4090`,
		"":             "empty entry",
		"l4,,l4":       "empty entry",
		"0xl4":         "want 1 to 64 GPUs",
		"100xa100-80g": "want 1 to 64 GPUs",
	} {
		_, err := FakeInventory(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FakeInventory(%q) error = %v, want it to contain %q", spec, err, want)
		}
	}
}
