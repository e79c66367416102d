package engine

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// renderLaunch prints a launch for golden files: argv one per line, then env.
func renderLaunch(l Launch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "engine: %s\n", l.Engine)
	b.WriteString("argv:\n")
	for _, a := range l.Argv {
		fmt.Fprintf(&b, "  %s\n", a)
	}
	b.WriteString("env:\n")
	for _, e := range l.Env {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	fmt.Fprintf(&b, "host: %s\nport: %d\nserved: %s\nsimulated: %t\n", l.Host, l.Port, strings.Join(l.Served, ", "), l.Simulated)
	fmt.Fprintf(&b, "startup: %s\nreadiness: %s\nliveness: %s\n", l.Startup, l.Readiness, l.Liveness)
	fmt.Fprintf(&b, "metrics: path=%q running=%q waiting=%q kv=%q\n", l.MetricsPath, l.Metrics.Running, l.Metrics.Waiting, l.Metrics.KVUsage)
	b.WriteString("notes:\n")
	for _, n := range l.Notes {
		fmt.Fprintf(&b, "  - %s\n", n)
	}
	return b.String()
}

func golden(t *testing.T, name string, l Launch) {
	t.Helper()
	got := renderLaunch(l)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/engine/ -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// Specs of the golden files.
var (
	vllmSpec = Spec{
		Engine:    "vllm",
		ModelPath: "/var/lib/citadel/hub/models--XiaomiMiMo--MiMo-VL-7B-RL/snapshots/3f1a9c0d",
		ModelName: "mimo-vl-7b-rl", ServedNames: []string{"XiaomiMiMo/MiMo-VL-7B-RL", "mimo-vl-7b-rl"},
		Vision: true, ImagesPerPrompt: 4,
		MaxModelLen: 32768, TP: 2, GPUMemoryUtilization: 0.9, GPUs: []int{0, 1},
		Port: 31000, CacheDir: "/var/lib/citadel/hub", TrustRemoteCode: true,
		// The runtime's engine args: placement's TP wins, the runtime's context length wins.
		ExtraArgs: []string{"--tensor-parallel-size", "1", "--max-model-len", "16384", "--enable-prefix-caching"},
		Env:       []string{"VLLM_LOGGING_LEVEL=DEBUG"},
	}
	sglangSpec = Spec{
		Engine:    "sglang",
		ModelPath: "/var/lib/citadel/hub/models--Qwen--Qwen2.5-7B-Instruct/snapshots/a09a3545",
		ModelName: "qwen2-5-7b-instruct", ServedNames: []string{"Qwen/Qwen2.5-7B-Instruct"},
		MaxModelLen: 32768, TP: 1, GPUMemoryUtilization: 0.85, GPUs: []int{3},
		Host: "0.0.0.0", Port: 31001, CacheDir: "/var/lib/citadel/hub",
		ExtraArgs: []string{"--tp", "4", "--chunked-prefill-size", "4096"},
	}
	llamacppSpec = Spec{
		Engine:    "llamacpp",
		ModelPath: "/var/lib/citadel/gguf/qwen2.5-7b-instruct-q4_k_m.gguf",
		ModelName: "qwen2.5-7b-instruct", MaxModelLen: 8192, Parallel: 4, GPUs: []int{0},
		Port: 31002, ExtraArgs: []string{"--jinja", "-fa", "on"},
	}
	ollamaSpec = Spec{
		Engine: "ollama", ModelName: "qwen2.5:7b", MaxModelLen: 8192, Parallel: 2, GPUs: []int{1},
		Port: 31003, OllamaModels: "/var/lib/citadel/ollama/models", KeepAlive: "10m",
		Env: []string{"OLLAMA_HOST=0.0.0.0:11434", "OLLAMA_FLASH_ATTENTION=1"},
	}
)

// goldenSpecs are the specs of the golden files testdata/ENGINE.golden. An engine without
// one here is built from genericSpec.
var goldenSpecs = map[string]Spec{"vllm": vllmSpec, "sglang": sglangSpec, "llamacpp": llamacppSpec, "ollama": ollamaSpec}

// genericSpec is a Hugging Face snapshot on two GPUs with tensor parallelism 2, a context
// length and memory fraction set, and a runtime variable placement overrides.
var genericSpec = Spec{
	ModelPath: "/var/lib/citadel/hub/models--Qwen--Qwen2.5-7B-Instruct/snapshots/a09a3545",
	ModelName: "qwen2-5-7b-instruct", ServedNames: []string{"Qwen/Qwen2.5-7B-Instruct"},
	MaxModelLen: 32768, TP: 2, GPUMemoryUtilization: 0.9, GPUs: []int{0, 1},
	Port: 31004, CacheDir: "/var/lib/citadel/hub", TrustRemoteCode: true,
	Env: []string{"CUDA_VISIBLE_DEVICES=3"},
}

func TestBuildGolden(t *testing.T) {
	for _, name := range Engines {
		s, ok := goldenSpecs[name]
		if !ok {
			s = genericSpec
			s.Engine = name
		}
		t.Run(name, func(t *testing.T) {
			l, err := Build(s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSorted(l.Env) {
				t.Errorf("env not sorted: %q", l.Env)
			}
			golden(t, name, l)
		})
	}
}

func TestBuildVLLM(t *testing.T) {
	l, err := Build(vllmSpec)
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Join(l.Argv, " ")
	for _, want := range []string{
		"vllm serve " + vllmSpec.ModelPath + " --served-model-name XiaomiMiMo/MiMo-VL-7B-RL mimo-vl-7b-rl --host 127.0.0.1 --port 31000 --tensor-parallel-size 2",
		`--limit-mm-per-prompt {"image": 4}`, "--trust-remote-code", "--download-dir /var/lib/citadel/hub",
		"--max-model-len 16384 --enable-prefix-caching",
	} {
		if !strings.Contains(argv, want) {
			t.Errorf("argv lacks %q:\n%s", want, argv)
		}
	}
	if strings.Contains(argv, "32768") || strings.Count(argv, "--tensor-parallel-size") != 1 {
		t.Errorf("runtime args should replace --max-model-len and lose to placement's TP:\n%s", argv)
	}
	for _, want := range []string{
		"runtime args --tensor-parallel-size 1 overridden to 2 by placement",
		"runtime args --max-model-len 16384 replace the computed --max-model-len 32768",
	} {
		if !slices.Contains(l.Notes, want) {
			t.Errorf("notes lack %q: %q", want, l.Notes)
		}
	}
	for _, want := range []string{"CUDA_VISIBLE_DEVICES=0,1", "HF_HUB_CACHE=/var/lib/citadel/hub", "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "VLLM_LOGGING_LEVEL=DEBUG"} {
		if !slices.Contains(l.Env, want) {
			t.Errorf("env lacks %s: %q", want, l.Env)
		}
	}
	if l.Startup.Path != "/health" || l.Startup.Period.Seconds() != 5 || l.Startup.FailureThreshold != 360 {
		t.Errorf("startup probe %s, want /health every 5s, 360 failures", l.Startup)
	}
	if l.Metrics.Running != "vllm:num_requests_running" || l.MetricsPath != "/metrics" {
		t.Errorf("metrics %q %+v", l.MetricsPath, l.Metrics)
	}
}

func TestBuildLlamaCPPContext(t *testing.T) {
	l, err := Build(llamacppSpec)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := flagValue(l.Argv[1:], "-c"); !slices.Equal(v, []string{"32768"}) {
		t.Errorf("-c %q, want 8192 × 4 slots = 32768", v)
	}
	if l.Metrics.KVUsage != "" || l.Metrics.Running != "llamacpp:requests_processing" {
		t.Errorf("metrics %+v", l.Metrics)
	}
}

func TestBuildOllama(t *testing.T) {
	l, err := Build(ollamaSpec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Argv, []string{"ollama", "serve"}) {
		t.Errorf("argv %q", l.Argv)
	}
	for _, want := range []string{"OLLAMA_HOST=127.0.0.1:31003", "OLLAMA_MODELS=/var/lib/citadel/ollama/models", "OLLAMA_KEEP_ALIVE=10m",
		"OLLAMA_NUM_PARALLEL=2", "OLLAMA_CONTEXT_LENGTH=8192", "CUDA_VISIBLE_DEVICES=1", "OLLAMA_FLASH_ATTENTION=1"} {
		if !slices.Contains(l.Env, want) {
			t.Errorf("env lacks %s: %q", want, l.Env)
		}
	}
	if l.MetricsPath != "" || l.Metrics != (LoadMetrics{}) {
		t.Errorf("ollama has no metrics, got %q %+v", l.MetricsPath, l.Metrics)
	}
	if l.Startup.Path != "/" {
		t.Errorf("startup probe %s", l.Startup)
	}
}

func TestBuildErrors(t *testing.T) {
	base := Spec{Engine: "vllm", ModelPath: "/m", ModelName: "m", Port: 8000}
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"unknown engine", func(s *Spec) { s.Engine = "tgi" }, `engine "tgi": unknown; choose one of vllm, sglang, llamacpp, ollama`},
		{"sim", func(s *Spec) { s.Engine = "sim" }, "pass it to Simulate"},
		{"no port", func(s *Spec) { s.Port = 0 }, "port 0: want 1-65535"},
		{"no name", func(s *Spec) { s.ModelName = "" }, "no model name"},
		{"no path", func(s *Spec) { s.ModelPath = "" }, "no model path"},
		{"tp > gpus", func(s *Spec) { s.TP, s.GPUs = 2, []int{0} }, "tensor parallelism 2 needs 2 GPUs, got [0]"},
		{"duplicate gpu", func(s *Spec) { s.GPUs = []int{0, 0} }, "distinct device indices"},
		{"utilization", func(s *Spec) { s.GPUMemoryUtilization = 90 }, "GPU memory utilization 90"},
		{"bad env", func(s *Spec) { s.Env = []string{"NOVALUE"} }, `runtime env "NOVALUE": want KEY=VALUE`},
		{"llamacpp dir", func(s *Spec) { s.Engine = "llamacpp" }, `model path "/m" is not a GGUF file`},
		{"ollama args", func(s *Spec) { s.Engine, s.ExtraArgs = "ollama", []string{"--verbose"} }, "ollama serve takes no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.edit(&s)
			_, err := Build(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildPlacementEnvWins(t *testing.T) {
	s := Spec{Engine: "sglang", ModelPath: "/m", ModelName: "m", Port: 9000, GPUs: []int{2, 3},
		Env: []string{"CUDA_VISIBLE_DEVICES=0", "HF_HUB_OFFLINE=0"}}
	l, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(l.Env, "CUDA_VISIBLE_DEVICES=2,3") || !slices.Contains(l.Env, "HF_HUB_OFFLINE=0") {
		t.Errorf("env %q: placement's GPUs and the runtime's HF_HUB_OFFLINE should win", l.Env)
	}
	for _, want := range []string{"env CUDA_VISIBLE_DEVICES=0 overridden to 2,3 by placement", "runtime env HF_HUB_OFFLINE=0 replaces 1"} {
		if !slices.Contains(l.Notes, want) {
			t.Errorf("notes lack %q: %q", want, l.Notes)
		}
	}
}

func TestMergeArgs(t *testing.T) {
	var notes []string
	got := mergeArgs(
		[]string{"--host", "127.0.0.1", "--port", "9000", "--tp-size", "2", "--context-length", "8192", "--enable-metrics"},
		[]string{"--port=8080", "--tp", "1", "--context-length", "4096", "--enable-metrics", "--log-level", "debug"},
		&notes)
	want := []string{"--host", "127.0.0.1", "--port", "9000", "--tp-size", "2", "--context-length", "4096", "--enable-metrics", "--log-level", "debug"}
	if !slices.Equal(got, want) {
		t.Errorf("merged\n%q\nwant\n%q", got, want)
	}
	wantNotes := []string{
		"runtime args --port 8080 overridden to 9000 by placement",
		"runtime args --tp 1 overridden to 2 by placement",
		"runtime args --context-length 4096 replace the computed --context-length 8192",
	}
	if !slices.Equal(notes, wantNotes) {
		t.Errorf("notes\n%q\nwant\n%q", notes, wantNotes)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		argv   []string
		engine string
		prefix int
		model  string
	}{
		{[]string{"vllm", "serve", "/m", "--port", "1"}, VLLM, 3, "/m"},
		{[]string{"/usr/local/bin/vllm", "serve", "--model", "/m"}, VLLM, 2, ""},
		{[]string{"python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m"}, VLLM, 3, ""},
		{[]string{"python3.11", "-u", "-m", "sglang.launch_server", "--model-path", "/m"}, SGLang, 4, ""},
		{[]string{"python3", "-m", "sglang.launch_server"}, SGLang, 3, ""},
		{[]string{"sglang", "serve", "--model-path", "/m"}, SGLang, 2, ""},
		{[]string{"llama-server", "-m", "/m.gguf"}, LlamaCPP, 1, ""},
		{[]string{"ollama", "serve"}, Ollama, 2, ""},
		{[]string{"python3", "-m", "sglang_router.launch_router"}, "", 0, ""},
		{[]string{"python3", "-c", "print(1)", "-m", "vllm"}, "", 0, ""},
		{[]string{"ollama", "run", "x"}, "", 0, ""},
	} {
		a, p, m := detect(tc.argv)
		e := ""
		if a != nil {
			e = a.Name
		}
		if e != tc.engine || p != tc.prefix || m != tc.model {
			t.Errorf("detect(%q) = %q %d %q, want %q %d %q", tc.argv, e, p, m, tc.engine, tc.prefix, tc.model)
		}
	}
}

func TestDetectExported(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"/bin/bash", "-lc", "--", "python3 -m sglang.launch_server \\\n --model-path=\"$MODEL_PATH\""}, SGLang},
		{[]string{"sh", "-c", "set -e; exec vllm serve $(MODEL_PATH)"}, VLLM},
		{[]string{"llama-server", "-m", "x.gguf"}, LlamaCPP},
		{[]string{"sh", "-c", "python3 -m sglang_router.launch_router --port 8080"}, ""},
		{[]string{"text-generation-launcher"}, ""},
	} {
		if got := Detect(tc.argv); got != tc.want {
			t.Errorf("Detect(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	l, err := Build(Spec{Engine: "vllm", ModelPath: "/m", ModelName: "m", Port: 8000})
	if err != nil {
		t.Fatal(err)
	}
	err = LookPath(l)
	want := `engine vllm not found: install vllm or set runtime command (looked for "vllm" on PATH)`
	if err == nil || err.Error() != want {
		t.Errorf("LookPath: %v\nwant %s", err, want)
	}
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.Engine != "vllm" || nf.Program != "vllm" {
		t.Errorf("LookPath error %#v, want a *NotFoundError for vllm", err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("vllm", "exit 0")
	if err := LookPath(l); err != nil {
		t.Errorf("LookPath with vllm on PATH: %v", err)
	}

	// python3 -m sglang.launch_server: python3 is there, the package is not.
	s, err := Build(Spec{Engine: "sglang", ModelPath: "/m", ModelName: "m", Port: 8000})
	if err != nil {
		t.Fatal(err)
	}
	err = LookPath(s)
	if want := `engine sglang not found: install sglang or set runtime command (looked for "python3" on PATH)`; err == nil || err.Error() != want {
		t.Errorf("LookPath: %v\nwant %s", err, want)
	}
	write("python3", "exit 1")
	err = LookPath(s)
	if want := `engine sglang not found: install sglang or set runtime command (python3 has no module "sglang")`; err == nil || err.Error() != want {
		t.Errorf("LookPath: %v\nwant %s", err, want)
	}
	write("python3", `[ "$3" = sglang ] || exit 1`)
	if err := LookPath(s); err != nil {
		t.Errorf("LookPath with sglang importable: %v", err)
	}

	sim, err := Simulate(l, filepath.Join(dir, "citadel"), "h100-sxm", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := LookPath(sim); err == nil || !strings.Contains(err.Error(), "citadel binary not found") {
		t.Errorf("LookPath of a simulated launch without the binary: %v", err)
	}
	if err := LookPath(Launch{}); err == nil {
		t.Error("LookPath of an empty launch: no error")
	}
}
