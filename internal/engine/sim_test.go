package engine

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSimulateGolden(t *testing.T) {
	for name, s := range map[string]Spec{"vllm": vllmSpec, "ollama": ollamaSpec} {
		t.Run(name, func(t *testing.T) {
			l, err := Build(s)
			if err != nil {
				t.Fatal(err)
			}
			sim, err := Simulate(l, "/usr/local/bin/citadel", "h100-sxm", 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sim.Env, l.Env) {
				t.Errorf("env changed:\n%q\n%q", l.Env, sim.Env)
			}
			golden(t, "sim_"+name, sim)
		})
	}
}

func TestSimulateVLLM(t *testing.T) {
	l, err := Build(Spec{Engine: "vllm", ModelPath: "/models/Qwen2.5-7B-Instruct", ModelName: "qwen", Port: 8001, TP: 2})
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Simulate(l, "citadel", "a100-80g", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"citadel", "sim", "--engine", "vllm", "--gpu", "a100-80g", "--time-scale", "0.5",
		"--model", "/models/Qwen2.5-7B-Instruct", "--served-model-name", "qwen", "--host", "127.0.0.1", "--port", "8001",
		"--tensor-parallel-size", "2"}
	if diff := cmp.Diff(want, sim.Argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	scaled := *l.Startup
	scaled.Period /= 2 // the probes wait in simulated time: time scale 0.5
	if !sim.Simulated || sim.Engine != VLLM || sim.Port != 8001 || *sim.Startup != scaled || sim.Metrics != l.Metrics {
		t.Errorf("simulated launch lost its engine, port, scaled probes or metrics: %+v", sim)
	}
	if l.Simulated || l.Argv[0] != "vllm" {
		t.Error("Simulate modified its argument")
	}
}

func TestSimulateOllama(t *testing.T) {
	l, err := Build(ollamaSpec)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Simulate(l, "/bin/citadel", "rtx-4090", 1)
	if err != nil {
		t.Fatal(err)
	}
	// With a store, the simulator serves every model in it, as ollama serve does.
	want := []string{"/bin/citadel", "sim", "--engine", "ollama", "--gpu", "rtx-4090", "--time-scale", "1",
		"--host", "127.0.0.1", "--port", "31003"}
	if diff := cmp.Diff(want, sim.Argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	// Without one, the model the launch names.
	noStore := ollamaSpec
	noStore.OllamaModels = ""
	l, err = Build(noStore)
	if err != nil {
		t.Fatal(err)
	}
	if sim, err = Simulate(l, "/bin/citadel", "rtx-4090", 1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(want, "--model", "qwen2.5:7b"), sim.Argv); diff != "" {
		t.Errorf("argv without a store (-want +got):\n%s", diff)
	}
	if !slices.Contains(sim.Env, "OLLAMA_NUM_PARALLEL=2") {
		t.Errorf("env %q: the simulator reads OLLAMA_NUM_PARALLEL", sim.Env)
	}
}

func TestSimulateMiMoRunner(t *testing.T) {
	l, err := FromRunner(mimoRunner(t), mimoSpec)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Simulate(l, "citadel", "h100-sxm", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"citadel", "sim", "--engine", "sglang", "--gpu", "h100-sxm", "--time-scale", "0",
		"--host", "127.0.0.1", "--port", "31000", "--enable-metrics",
		"--model-path", mimoPath, "--tp-size", "2", "--mem-fraction-static", "0.9",
		"--served-model-name", "XiaomiMiMo/MiMo-VL-7B-RL", "--trust-remote-code"}
	if diff := cmp.Diff(want, sim.Argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	for _, n := range []string{"sim: --mem-frac passed as --mem-fraction-static", "sim: dropped --log-requests (no effect on the simulation)"} {
		if !slices.Contains(sim.Notes, n) {
			t.Errorf("notes lack %q:\n%s", n, strings.Join(sim.Notes, "\n"))
		}
	}
}

func TestSimulateLlamaCPP(t *testing.T) {
	l, err := Build(llamacppSpec)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Simulate(l, "citadel", "rtx-4090", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sim.Argv, " "); !strings.HasPrefix(got, "citadel sim --engine llamacpp --gpu rtx-4090 --time-scale 0 -m "+llamacppSpec.ModelPath+" --host") {
		t.Errorf("argv %s", got)
	}
}

func TestSimulateErrors(t *testing.T) {
	l, err := Build(vllmSpec)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Simulate(l, "citadel", "h100-sxm", 0)
	if err != nil {
		t.Fatal(err)
	}
	script := Launch{Engine: SGLang, Argv: []string{"sh", "-c", "python3 -m sglang.launch_server --port 1; true"}}
	for _, tc := range []struct {
		name     string
		l        Launch
		citadel  string
		gpu      string
		scale    float64
		contains string
	}{
		{"twice", sim, "citadel", "h100-sxm", 0, "already runs citadel sim"},
		{"no binary", l, "", "h100-sxm", 0, "no path to the citadel binary"},
		{"no gpu", l, "citadel", "", 0, "no GPU profile"},
		{"negative scale", l, "citadel", "h100-sxm", -1, "time scale -1"},
		{"script", script, "citadel", "h100-sxm", 0, "is not the command line of a known engine"},
		{"unknown", Launch{Argv: []string{"tgi"}}, "citadel", "h100-sxm", 0, "is not the command line of a known engine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Simulate(tc.l, tc.citadel, tc.gpu, tc.scale)
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("Simulate: %v, want an error containing %q", err, tc.contains)
			}
		})
	}
}
