package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
)

// TestEngineNamesMatchAPI: api/v1 validates a runtime's engine.name against its own list
// (it cannot import this package), so the list must be the table's names, then sim.
func TestEngineNamesMatchAPI(t *testing.T) {
	want := append(slices.Clone(Engines), "sim")
	if !slices.Equal(v1.EngineNames, want) {
		t.Errorf("api/v1 EngineNames = %q, want the engine table's names then sim: %q (add the engine's name to api/v1/runtime.go)", v1.EngineNames, want)
	}
}

// TestAdaptersComplete checks what every adapter must say, so that a new engine cannot
// leave a field the rest of Citadel reads empty.
func TestAdaptersComplete(t *testing.T) {
	if len(Engines) == 0 {
		t.Fatal("no engines registered")
	}
	for _, name := range Engines {
		a, ok := Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q): not found", name)
		}
		t.Run(name, func(t *testing.T) {
			switch {
			case a.Name != name || a.Name != strings.ToLower(a.Name):
				t.Errorf("name %q: want %q, lower case", a.Name, name)
			case a.Title == "" || a.Install == "":
				t.Errorf("title %q, install %q: both are needed for messages", a.Title, a.Install)
			case a.build == nil:
				t.Error("no build: Build cannot write its command line")
			case len(a.Commands) == 0:
				t.Error("no commands: a runner running it is not recognised")
			case a.HostDefault == "":
				t.Error("no HostDefault")
			case a.HealthPath() == "":
				t.Error("no health path (Liveness.Path): the gateway would probe it by TCP")
			}
			for _, c := range a.Commands {
				argv := strings.Fields(c.String())
				if got := Detect(argv); got != name {
					t.Errorf("Detect(%q) = %q, want %q", argv, got, name)
				}
			}
			for _, p := range []Probe{a.Startup, a.Readiness, a.Liveness} {
				if p.Period <= 0 || p.Timeout <= 0 || p.SuccessThreshold < 1 || p.FailureThreshold < 1 {
					t.Errorf("probe %s: want a period, a timeout and thresholds", &p)
				}
			}
			if a.MetricsPath != "" && a.Metrics.Running == "" {
				t.Errorf("metrics on %s without a running-requests series", a.MetricsPath)
			}
			if a.TPFlag != "" && canon(a.TPFlag) != "--tensor-parallel-size" {
				t.Errorf("TPFlag %s is not a spelling of --tensor-parallel-size: placement would not find it", a.TPFlag)
			}
			if a.EnvConfig != "" && a.place == nil {
				t.Errorf("configured by %s* variables but no place: it would not get its port", a.EnvConfig)
			}
			if a.Runtime != "" {
				if _, err := os.Stat(filepath.Join("..", "..", "examples", "runtimes", a.Runtime+".yaml")); err != nil {
					t.Errorf("built-in runtime %s: %v", a.Runtime, err)
				}
			}
			if _, err := os.Stat(filepath.Join("testdata", name+".golden")); err != nil {
				t.Errorf("no golden command line: %v (run go test ./internal/engine/ -run TestBuildGolden -update)", err)
			}
			for _, f := range a.OutOfMemory {
				if f != strings.ToLower(f) {
					t.Errorf("out-of-memory fragment %q is not lower case", f)
				}
			}
		})
	}
}

func TestLookupUnknown(t *testing.T) {
	for _, n := range []string{"", "sim", "tgi", "VLLM"} {
		if _, ok := Lookup(n); ok {
			t.Errorf("Lookup(%q) found an adapter", n)
		}
	}
}

func TestCommandLines(t *testing.T) {
	got := CommandLines()
	if len(got) != len(Engines) {
		t.Fatalf("CommandLines() = %q: want one per engine %q", got, Engines)
	}
	want := []string{"vllm serve", "python3 -m sglang.launch_server", "llama-server", "ollama serve"}
	if !slices.Equal(got[:len(want)], want) {
		t.Errorf("CommandLines() = %q, want it to start with %q", got, want)
	}
}

func TestOutOfMemory(t *testing.T) {
	got := OutOfMemory()
	for _, want := range []string{"cuda out of memory", "cudamalloc failed", "no available memory for the cache blocks"} {
		if !slices.Contains(got, want) {
			t.Errorf("OutOfMemory() = %q, lacks %q", got, want)
		}
	}
	seen := map[string]bool{}
	for _, f := range got {
		if seen[f] {
			t.Errorf("OutOfMemory() repeats %q", f)
		}
		seen[f] = true
	}
}

func TestHealthPath(t *testing.T) {
	for name, want := range map[string]string{VLLM: "/health", SGLang: "/health", LlamaCPP: "/health", Ollama: "/"} {
		a, _ := Lookup(name)
		if got := a.HealthPath(); got != want {
			t.Errorf("%s HealthPath() = %q, want %q", name, got, want)
		}
	}
}
