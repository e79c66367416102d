package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/internal/sim/simtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	simtest.RemoveBuilt()
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSimulateEndToEnd runs simulated launches of each engine as the
// supervisor would: argv with the launch's env added, probed on its port.
func TestSimulateEndToEnd(t *testing.T) {
	bin := simtest.Citadel(t)
	type check struct {
		path, contains string
	}
	for _, tc := range []struct {
		name   string
		launch func(port int) (Launch, error)
		gpu    string
		checks []check
	}{
		{
			name: "vllm",
			launch: func(port int) (Launch, error) {
				return Build(Spec{Engine: "vllm", ModelPath: "/nonexistent/XiaomiMiMo/MiMo-VL-7B-RL", ModelName: "mimo-vl-7b-rl",
					ServedNames: []string{"XiaomiMiMo/MiMo-VL-7B-RL"}, Vision: true, ImagesPerPrompt: 2, MaxModelLen: 8192, TP: 1,
					GPUMemoryUtilization: 0.9, GPUs: []int{0}, Port: port, CacheDir: t.TempDir(), TrustRemoteCode: true})
			},
			gpu:    "h100-sxm",
			checks: []check{{"/v1/models", `"id":"XiaomiMiMo/MiMo-VL-7B-RL"`}, {"/metrics", "vllm:num_requests_running"}},
		},
		{
			name: "ollama",
			launch: func(port int) (Launch, error) {
				// No store: the simulator serves the model the launch names. (A store of
				// models: internal/serving TestSharedOllama.)
				return Build(Spec{Engine: "ollama", ModelName: "qwen2.5:7b", Parallel: 2, MaxModelLen: 4096, KeepAlive: "1m", Port: port})
			},
			gpu:    "rtx-4090",
			checks: []check{{"/", "Ollama is running"}, {"/api/tags", `"qwen2.5:7b"`}},
		},
		{
			name: "sglang MiMo runner",
			launch: func(port int) (Launch, error) {
				s := mimoSpec
				s.Port = port
				return FromRunner(mimoRunner(t), s)
			},
			gpu:    "h100-sxm",
			checks: []check{{"/v1/models", `"XiaomiMiMo/MiMo-VL-7B-RL"`}, {"/metrics", "sglang:num_running_reqs"}},
		},
		{
			name: "llamacpp",
			launch: func(port int) (Launch, error) {
				s := llamacppSpec
				s.Port, s.ExtraArgs = port, nil
				return Build(s)
			},
			gpu:    "rtx-4090",
			checks: []check{{"/v1/models", `"qwen2.5-7b-instruct"`}, {"/metrics", "llamacpp:requests_processing"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			l, err := tc.launch(port)
			if err != nil {
				t.Fatal(err)
			}
			sim, err := Simulate(l, bin, tc.gpu, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := LookPath(sim); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, sim.Argv[0], sim.Argv[1:]...)
			cmd.Env = append(os.Environ(), sim.Env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				cancel() // kills the process
				<-exited
				if t.Failed() {
					t.Logf("%s\noutput:\n%s", strings.Join(sim.Argv, " "), out.String())
				}
			}()

			base := "http://127.0.0.1:" + strconv.Itoa(sim.Port)
			client := &http.Client{Timeout: 5 * time.Second}
			get := func(path string) (int, string, error) {
				resp, err := client.Get(base + path)
				if err != nil {
					return 0, "", err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body), err
			}
			// The startup probe: poll until 2xx, as the supervisor would.
			deadline := time.Now().Add(60 * time.Second)
			for {
				code, _, err := get(sim.Startup.Path)
				if err == nil && code/100 == 2 {
					break
				}
				select {
				case err := <-exited:
					exited <- err
					t.Fatalf("citadel sim exited before answering %s: %v", sim.Startup.Path, err)
				case <-time.After(50 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s not healthy after 60s: last %d %v", sim.Startup.Path, code, err)
				}
			}
			for _, p := range []*Probe{sim.Readiness, sim.Liveness} {
				if code, body, err := get(p.Path); err != nil || code/100 != 2 {
					t.Errorf("probe %s: %d %v %s", p.Path, code, err, body)
				}
			}
			for _, c := range tc.checks {
				code, body, err := get(c.path)
				if err != nil || code != http.StatusOK || !strings.Contains(body, c.contains) {
					t.Errorf("GET %s: %d %v, want 200 containing %s; body:\n%.2000s", c.path, code, err, c.contains, body)
				}
			}
			if sim.Engine != Ollama {
				_, body, err := get("/v1/models")
				var models struct {
					Data []struct {
						ID string `json:"id"`
					} `json:"data"`
				}
				if err != nil || json.Unmarshal([]byte(body), &models) != nil || len(models.Data) == 0 {
					t.Fatalf("/v1/models: %v %s", err, body)
				}
				if !slices.Contains(sim.Served, models.Data[0].ID) {
					t.Errorf("/v1/models names %q, the launch's served names are %q", models.Data[0].ID, sim.Served)
				}
			}
		})
	}
}
