package engine

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
)

const mimoFixture = "../config/testdata/good/ome/runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml"

// mimoRunner decodes the MiMo-VL runtime with Citadel's config package and returns its engine runner.
func mimoRunner(t *testing.T) v1.Container {
	t.Helper()
	f, err := os.Open(mimoFixture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	items, errs := config.Decode(f, mimoFixture)
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("%d items in %s", len(items), mimoFixture)
	}
	rt, ok := items[0].Object.(*v1.ClusterServingRuntime)
	if !ok || rt.Spec.EngineConfig == nil || rt.Spec.EngineConfig.Runner == nil {
		t.Fatalf("%s: not a ClusterServingRuntime with an engine runner: %T", mimoFixture, items[0].Object)
	}
	return *rt.Spec.EngineConfig.Runner
}

const mimoPath = "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL"

var mimoSpec = Spec{ModelPath: mimoPath, ModelName: "mimo-vl-7b-rl", TP: 2, GPUs: []int{0, 1}, Host: "127.0.0.1", Port: 31000, CacheDir: "/var/lib/citadel/hub"}

func TestFromRunnerMiMo(t *testing.T) {
	l, err := FromRunner(mimoRunner(t), mimoSpec)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"python3", "-m", "sglang.launch_server",
		"--host", "127.0.0.1", "--port", "31000", "--enable-metrics", "--log-requests",
		"--model-path", mimoPath, "--tp-size", "2", "--mem-frac", "0.9",
		"--served-model-name", "XiaomiMiMo/MiMo-VL-7B-RL", "--trust-remote-code",
	}
	if diff := cmp.Diff(want, l.Argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	if l.Engine != SGLang || l.Port != 31000 || l.Host != "127.0.0.1" {
		t.Errorf("engine %q host %q port %d", l.Engine, l.Host, l.Port)
	}
	if !slices.Equal(l.Served, []string{"XiaomiMiMo/MiMo-VL-7B-RL"}) {
		t.Errorf("served names %q", l.Served)
	}
	wantProbes := map[string]*Probe{
		"startup":   {Path: "/health_generate", InitialDelay: 60 * time.Second, Period: 6 * time.Second, Timeout: 30 * time.Second, SuccessThreshold: 1, FailureThreshold: 150},
		"readiness": {Path: "/health_generate", Period: 60 * time.Second, Timeout: 200 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
		"liveness":  {Path: "/health", Period: 60 * time.Second, Timeout: 60 * time.Second, SuccessThreshold: 1, FailureThreshold: 5},
	}
	gotProbes := map[string]*Probe{"startup": l.Startup, "readiness": l.Readiness, "liveness": l.Liveness}
	if diff := cmp.Diff(wantProbes, gotProbes); diff != "" {
		t.Errorf("probes (-want +got):\n%s", diff)
	}
	for _, n := range []string{
		"runner --port 8080 replaced by 31000 (ports are allocated per host)",
		"runner --tp-size 1 overridden to 2 by placement",
		"image docker.io/lmsysorg/sglang:v0.5.5.post3-cu129-amd64 recorded, not used: no container runtime configured",
		"runner --host 0.0.0.0 replaced by 127.0.0.1",
	} {
		if !slices.Contains(l.Notes, n) {
			t.Errorf("notes lack %q:\n%s", n, strings.Join(l.Notes, "\n"))
		}
	}
	for _, e := range []string{"MODEL_PATH=" + mimoPath, "PORT=31000", "CUDA_VISIBLE_DEVICES=0,1", "HF_HUB_OFFLINE=1", "HF_HUB_CACHE=/var/lib/citadel/hub"} {
		if !slices.Contains(l.Env, e) {
			t.Errorf("env lacks %s: %q", e, l.Env)
		}
	}
	if l.MetricsPath != "/metrics" || l.Metrics.Running != "sglang:num_running_reqs" {
		t.Errorf("metrics %q %+v (the runner has --enable-metrics)", l.MetricsPath, l.Metrics)
	}
	golden(t, "runner_mimo", l)
}

func TestFromRunnerErrors(t *testing.T) {
	httpProbe := &v1.Probe{HTTPGet: &v1.HTTPGetAction{Path: "/health", Port: v1.IntOrString{Int: 8000}}}
	for _, tc := range []struct {
		name  string
		c     v1.Container
		s     Spec
		paths []string
	}{
		{"no command", v1.Container{}, Spec{}, []string{"command"}},
		{"args only", v1.Container{Args: []string{"--port", "8000"}}, Spec{}, []string{"command"}},
		{"exec probe", v1.Container{
			Command:        []string{"vllm", "serve", "$(MODEL_PATH)"},
			LivenessProbe:  &v1.Probe{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/ok"}}},
			ReadinessProbe: &v1.Probe{GRPC: []byte(`{"port": 9000}`)},
			StartupProbe:   httpProbe,
		}, Spec{}, []string{"livenessProbe.exec", "readinessProbe.grpc"}},
		{"https probe", v1.Container{
			Command:      []string{"vllm", "serve", "$(MODEL_PATH)"},
			StartupProbe: &v1.Probe{HTTPGet: &v1.HTTPGetAction{Path: "/health", Scheme: "HTTPS", Port: v1.IntOrString{Int: 8000}}},
		}, Spec{}, []string{"startupProbe.httpGet.scheme"}},
		{"unresolved valueFrom", v1.Container{
			Command: []string{"vllm", "serve", "$(MODEL_PATH)"},
			Env: []v1.EnvVar{{Name: "A", Value: "1"}, {Name: "HF_TOKEN", ValueFrom: &v1.EnvVarSource{
				SecretKeyRef: &v1.KeySelector{Name: "hf-token", Key: "token"}}}},
		}, Spec{}, []string{"env[1].valueFrom"}},
		{"script without port", v1.Container{
			Command: []string{"sh", "-c", "set -e; exec vllm serve $MODEL_PATH"},
		}, Spec{}, []string{"command"}},
		{"ollama with runtime args", v1.Container{Command: []string{"ollama", "serve"}}, Spec{ExtraArgs: []string{"-v"}}, []string{"command"}},
		{"script with runtime args", v1.Container{
			Command: []string{"sh", "-c", "nvidia-smi && vllm serve $MODEL_PATH --port 8000"},
		}, Spec{ExtraArgs: []string{"--enforce-eager"}}, []string{"command"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.ModelPath, s.ModelName, s.Port = "/m", "m", 9000
			_, err := FromRunner(tc.c, s)
			var fe v1.FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("FromRunner: %v, want FieldErrors", err)
			}
			var paths []string
			for _, e := range fe {
				paths = append(paths, e.Path)
			}
			if !slices.Equal(paths, tc.paths) {
				t.Errorf("error paths %q, want %q (%v)", paths, tc.paths, err)
			}
		})
	}
	if _, err := FromRunner(v1.Container{Command: []string{"vllm", "serve"}}, Spec{}); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("FromRunner without a port: %v", err)
	}
}

func TestFromRunnerShapes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		c         v1.Container
		s         Spec
		engine    string
		argv      []string
		env       []string // must be present
		notes     []string // must be present
		served    []string
		startup   string
		readiness string
	}{
		{
			name: "vllm direct with k8s references",
			c: v1.Container{
				Command: []string{"vllm", "serve", "$(MODEL_PATH)"},
				Args:    []string{"--served-model-name", "$(NAME)", "--port", "8000", "-tp", "1", "--chat-template", "$$(literal)", "--x", "$(UNDEFINED)"},
				Env:     []v1.EnvVar{{Name: "ORG", Value: "Qwen"}, {Name: "NAME", Value: "$(ORG)/Qwen2.5-7B"}},
			},
			s:      Spec{TP: 2},
			engine: VLLM,
			argv: []string{"vllm", "serve", "/m", "--served-model-name", "Qwen/Qwen2.5-7B", "--port", "9000", "-tp", "2",
				"--chat-template", "$(literal)", "--x", "$(UNDEFINED)"},
			env:       []string{"NAME=Qwen/Qwen2.5-7B", "ORG=Qwen", "VLLM_NO_USAGE_STATS=1"},
			notes:     []string{"runner --port 8000 replaced by 9000 (ports are allocated per host)", "runner -tp 1 overridden to 2 by placement"},
			served:    []string{"Qwen/Qwen2.5-7B"},
			startup:   "GET /health delay=0s period=5s timeout=5s success=1 failure=360",
			readiness: "GET /health delay=0s period=10s timeout=5s success=1 failure=3",
		},
		{
			name: "python vllm api server, inline flags, no port, TP added",
			c: v1.Container{
				Command: []string{"python3", "-m", "vllm.entrypoints.openai.api_server"},
				Args:    []string{"--model=$(MODEL_PATH)", "--max-model-len=8192"},
			},
			s:      Spec{TP: 2, ExtraArgs: []string{"--enforce-eager"}},
			engine: VLLM,
			argv: []string{"python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m", "--max-model-len", "8192",
				"--enforce-eager", "--port", "9000", "--tensor-parallel-size", "2"},
			notes:  []string{"added --port 9000: the runner sets none, and ports are allocated per host", "added --tensor-parallel-size 2: placement gives the engine 2 GPUs"},
			served: []string{"/m"},
		},
		{
			name: "shell script kept, flags rewritten in the text",
			c: v1.Container{
				Command: []string{"/bin/sh", "-c"},
				Args:    []string{"set -e\nexec python3 -m sglang.launch_server --model-path \"$MODEL_PATH\" --port=8080 --tp 1 --host 0.0.0.0"},
				StartupProbe: &v1.Probe{TCPSocket: &v1.TCPSocketAction{Port: v1.IntOrString{Int: 8080}},
					PeriodSeconds: 2, FailureThreshold: 100},
			},
			s:      Spec{TP: 4, Host: "127.0.0.1"},
			engine: SGLang,
			argv: []string{"/bin/sh", "-c",
				"set -e\nexec python3 -m sglang.launch_server --model-path \"$MODEL_PATH\" --port 9000 --tp 4 --host 127.0.0.1"},
			env: []string{"MODEL_PATH=/m", "PORT=9000"},
			notes: []string{
				"the runner's script is run by /bin/sh as written (it has more than one command); MODEL_PATH and PORT are in its environment",
				"runner --port 8080 replaced by 9000 in the script (ports are allocated per host)",
				"runner tensor parallelism 1 overridden to 4 by placement in the script",
				"runner --host 0.0.0.0 replaced by 127.0.0.1 in the script",
			},
			served:  []string{"/m"},
			startup: "TCP connect delay=0s period=2s timeout=1s success=1 failure=100",
		},
		{
			name: "script using $PORT is left alone",
			c: v1.Container{
				Command: []string{"bash", "-c", "cd /tmp && exec vllm serve ${MODEL_PATH} --port ${PORT}"},
			},
			engine: VLLM,
			argv:   []string{"bash", "-c", "cd /tmp && exec vllm serve ${MODEL_PATH} --port ${PORT}"},
			env:    []string{"PORT=9000"},
			served: []string{"/m"},
		},
		{
			name: "simple script with env assignment, exec and comments",
			c: v1.Container{
				Command: []string{"sh", "-ec"},
				Args:    []string{"# start the engine\nexec env_unused=1 llama-server \\\n  -m \"${MODEL_PATH}\" \\\n  --port '8080' -a 'my model' -c 8192 --metrics\n"},
			},
			s:      Spec{ModelPath: "/models/x.gguf"},
			engine: LlamaCPP,
			argv:   []string{"llama-server", "-m", "/models/x.gguf", "--port", "9000", "-a", "my model", "-c", "8192", "--metrics"},
			env:    []string{"env_unused=1"},
			notes:  []string{"unwrapped the runner's sh -ec script into a direct command"},
			served: []string{"my model"},
		},
		{
			name: "ollama: OLLAMA_HOST forced",
			c: v1.Container{
				Command: []string{"ollama", "serve"},
				Env:     []v1.EnvVar{{Name: "OLLAMA_HOST", Value: "0.0.0.0:11434"}, {Name: "OLLAMA_KEEP_ALIVE", Value: "-1"}},
			},
			s:      Spec{ModelName: "qwen2.5:7b", ServedNames: nil},
			engine: Ollama,
			argv:   []string{"ollama", "serve"},
			env:    []string{"OLLAMA_HOST=0.0.0.0:9000", "OLLAMA_KEEP_ALIVE=-1"},
			notes:  []string{"env OLLAMA_HOST=0.0.0.0:11434 overridden to 0.0.0.0:9000 by placement (ports are allocated per host)"},
			served: []string{"qwen2.5:7b"},
		},
		{
			name: "valueFrom resolved from the runtime env",
			c: v1.Container{
				Command: []string{"sglang", "serve", "--model-path", "$(MODEL_PATH)", "--port", "$(PORT)", "--api-key", "$(KEY)"},
				Env:     []v1.EnvVar{{Name: "KEY", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.KeySelector{Name: "s", Key: "k"}}}},
			},
			s:      Spec{Env: []string{"KEY=sekret"}},
			engine: SGLang,
			argv:   []string{"sglang", "serve", "--model-path", "/m", "--port", "9000", "--api-key", "sekret"},
			env:    []string{"KEY=sekret"},
			notes:  []string{"no --enable-metrics on the command line: sglang serves no /metrics, so its load is not scraped"},
		},
		{
			name:    "unknown program",
			c:       v1.Container{Command: []string{"/opt/tgi/text-generation-launcher", "--model-id", "$(MODEL_PATH)", "--port", "80"}},
			engine:  "",
			argv:    []string{"/opt/tgi/text-generation-launcher", "--model-id", "/m", "--port", "9000"},
			notes:   []string{`program "text-generation-launcher" is not a known engine: run as given, probed by TCP connect unless the runner has probes`},
			served:  []string{"m"},
			startup: "TCP connect delay=0s period=5s timeout=5s success=1 failure=360",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			if s.ModelPath == "" {
				s.ModelPath = "/m"
			}
			if s.ModelName == "" {
				s.ModelName = "m"
			}
			s.Port = 9000
			l, err := FromRunner(tc.c, s)
			if err != nil {
				t.Fatal(err)
			}
			if l.Engine != tc.engine {
				t.Errorf("engine %q, want %q", l.Engine, tc.engine)
			}
			if diff := cmp.Diff(tc.argv, l.Argv); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
			for _, e := range tc.env {
				if !slices.Contains(l.Env, e) {
					t.Errorf("env lacks %s: %q", e, l.Env)
				}
			}
			for _, n := range tc.notes {
				if !slices.Contains(l.Notes, n) {
					t.Errorf("notes lack %q:\n%s", n, strings.Join(l.Notes, "\n"))
				}
			}
			if tc.served != nil && !slices.Equal(l.Served, tc.served) {
				t.Errorf("served %q, want %q", l.Served, tc.served)
			}
			if tc.startup != "" && l.Startup.String() != tc.startup {
				t.Errorf("startup %s, want %s", l.Startup, tc.startup)
			}
			if tc.readiness != "" && l.Readiness.String() != tc.readiness {
				t.Errorf("readiness %s, want %s", l.Readiness, tc.readiness)
			}
			if !slices.IsSorted(l.Env) {
				t.Errorf("env not sorted")
			}
		})
	}
}

func TestSimpleCommand(t *testing.T) {
	vars := map[string]string{"MODEL_PATH": "/m p", "PORT": "9000"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, tc := range []struct {
		script string
		words  []string
		why    string
	}{
		{"vllm serve \"$MODEL_PATH\" --port $PORT\n", []string{"vllm", "serve", "/m p", "--port", "9000"}, ""},
		{"a \\\n  b 'c d' \"e\\\"f\" g\\ h", []string{"a", "b", "c d", `e"f`, "g h"}, ""},
		{"# comment\n\nx --y=\"${PORT}\" ''  # trailing\n", []string{"x", "--y=9000", ""}, ""},
		{`x "$"`, []string{"x", "$"}, ""},
		{"a; b", nil, "it uses the shell operator ';'"},
		{"a\nb", nil, "it has more than one command"},
		{"a $(date)", nil, "it uses command substitution $(…)"},
		{"a `date`", nil, "it uses the shell operator '`'"},
		{"a \"`date`\"", nil, "it uses command substitution `…`"},
		{"a $HOME", nil, "it uses $HOME, which the launch does not define"},
		{"a $MODEL_PATH", nil, "unquoted $MODEL_PATH would be split into words"},
		{"a ${PORT:-1}", nil, "it uses the expansion ${PORT:-1}"},
		{"a $1", nil, "it uses a special parameter"},
		{"a *.gguf", nil, "it uses the pattern character '*'"},
		{"a ~/x", nil, "it uses ~ expansion"},
		{"a 'b", nil, "it has an unterminated single quote"},
		{"   \n", nil, "it is empty"},
	} {
		words, why := simpleCommand(tc.script, lookup)
		if !slices.Equal(words, tc.words) || why != tc.why {
			t.Errorf("simpleCommand(%q) = %q, %q; want %q, %q", tc.script, words, why, tc.words, tc.why)
		}
	}
}

func TestShellScript(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		i    int
		ok   bool
	}{
		{[]string{"/bin/bash", "-lc", "--", "x"}, 3, true},
		{[]string{"sh", "-c", "x"}, 2, true},
		{[]string{"bash", "-e", "-o", "pipefail", "-c", "x", "arg0"}, 5, true},
		{[]string{"bash", "script.sh"}, 0, false},
		{[]string{"bash", "-c"}, 0, false},
		{[]string{"python3", "-c", "x"}, 0, false},
	} {
		i, ok := shellScript(tc.argv)
		if i != tc.i || ok != tc.ok {
			t.Errorf("shellScript(%q) = %d %t, want %d %t", tc.argv, i, ok, tc.i, tc.ok)
		}
	}
}

func TestExpandK8s(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "x y"}
	for in, want := range map[string]string{
		"$(A)":        "1",
		"-$(A)-$(B)-": "-1-x y-",
		"$$(A)":       "$(A)",
		"$(C)":        "$(C)",
		"$A ${A}":     "$A ${A}",
		"$(A":         "$(A",
		"cost $":      "cost $",
	} {
		if got := expandK8s(in, vars); got != want {
			t.Errorf("expandK8s(%q) = %q, want %q", in, got, want)
		}
	}
}
