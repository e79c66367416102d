package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/client"
)

// lookIn finds only the programs given, at /bin/NAME.
func lookIn(progs ...string) LookPath {
	return func(name string) (string, error) {
		for _, p := range progs {
			if p == name {
				return "/bin/" + name, nil
			}
		}
		return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
}

// reply answers each command line ("/bin/vllm --version") from a table; a missing line fails.
type reply struct {
	out string
	err error
}

func runFrom(t map[string]reply) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		line := strings.Join(append([]string{name}, args...), " ")
		for k, r := range t {
			if strings.HasPrefix(line, k) {
				if r.err == context.DeadlineExceeded {
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return []byte(r.out), r.err
			}
		}
		return nil, fmt.Errorf("unexpected command %q", line)
	}
}

func want(t *testing.T, c Check, status Status, finding ...string) {
	t.Helper()
	if c.Status != status {
		t.Errorf("%s: status %s, want %s (%s)", c.Name, c.Status, status, c.Finding)
	}
	for _, f := range finding {
		if !strings.Contains(c.Finding+" | "+c.Fix, f) {
			t.Errorf("%s: %q lacks %q", c.Name, c.Finding+" | "+c.Fix, f)
		}
	}
	if c.Status != OK && c.Fix == "" && c.Status == Fail {
		t.Errorf("%s: failed with no fix", c.Name)
	}
}

func TestGPU(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Absent: a warning that says what it means and how to simulate.
	c := GPU(ctx, lookIn(), runFrom(nil), time.Second)
	want(t, c, Warn, "not on PATH", "only CPU engines", "--simulate-engines", "--gpus 2xrtx-4070-ti-super")

	two := "0, GPU-a, NVIDIA GeForce RTX 4070 Ti SUPER, 16376, 300, [N/A]\n1, GPU-b, NVIDIA GeForce RTX 4070 Ti SUPER, 16376, 0, [N/A]\n"
	c = GPU(ctx, lookIn("nvidia-smi"), runFrom(map[string]reply{
		"/bin/nvidia-smi --query-gpu=index":          {out: two},
		"/bin/nvidia-smi --query-gpu=driver_version": {out: "550.54.14\n550.54.14\n"},
	}), time.Second)
	want(t, c, OK, "2 GPU(s)", "0: NVIDIA GeForce RTX 4070 Ti SUPER, 16.0 GiB", "driver 550.54.14")

	c = GPU(ctx, lookIn("nvidia-smi"), runFrom(map[string]reply{
		"/bin/nvidia-smi": {out: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", err: errors.New("exit status 9")},
	}), time.Second)
	want(t, c, Fail, "exit status 9", "couldn't communicate", "--gpus none")

	c = GPU(ctx, lookIn("nvidia-smi"), runFrom(map[string]reply{"/bin/nvidia-smi": {err: context.DeadlineExceeded}}), 20*time.Millisecond)
	want(t, c, Fail, "did not answer within 20ms")

	mig := "0, GPU-a, NVIDIA A100-SXM4-80GB, 81920, 0, Enabled\n"
	c = GPU(ctx, lookIn("nvidia-smi"), runFrom(map[string]reply{"/bin/nvidia-smi": {out: mig}}), time.Second)
	want(t, c, Warn, "not usable", "MIG")
}

func TestEngines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// None installed, python3 without sglang.
	cs := EngineChecks(ctx, Engines, lookIn("python3"), runFrom(map[string]reply{
		"/bin/python3 -c": {out: "importlib.metadata.PackageNotFoundError: No package metadata was found for sglang\n", err: errors.New("exit status 1")},
	}), time.Second)
	if len(cs) != 4 {
		t.Fatalf("%d checks", len(cs))
	}
	want(t, cs[0], Warn, "vllm is not on PATH", "pip install vllm")
	want(t, cs[1], Warn, "/bin/python3 has no sglang package", "pip install sglang")
	want(t, cs[2], Warn, "llama-server is not on PATH", "llama.cpp")
	want(t, cs[3], Warn, "ollama is not on PATH", "ollama.com")
	for _, c := range cs {
		if !strings.Contains(c.Finding, "--simulate-engines") {
			t.Errorf("%s: does not say simulation needs no engine: %s", c.Name, c.Finding)
		}
	}

	// All installed, with their real version outputs.
	cs = EngineChecks(ctx, Engines, lookIn("vllm", "python3", "llama-server", "ollama"), runFrom(map[string]reply{
		"/bin/vllm --version":         {out: "INFO 05-01 12:00:00 [__init__.py:239] Automatically detected platform cuda.\n0.8.5\n"},
		"/bin/python3 -c":             {out: "0.4.6.post1\n"},
		"/bin/llama-server --version": {out: "ggml_cuda_init: found 1 CUDA devices\nversion: 5112 (a4e46e28)\nbuilt with cc (Ubuntu 13.3.0) for x86_64-linux-gnu\n"},
		"/bin/ollama --version":       {out: "Warning: could not connect to a running Ollama instance\nWarning: client version is 0.6.5\n"},
	}), time.Second)
	want(t, cs[0], OK, "version 0.8.5 at /bin/vllm")
	want(t, cs[1], OK, "sglang version 0.4.6.post1, importable by /bin/python3")
	want(t, cs[2], OK, "version: 5112 (a4e46e28) at /bin/llama-server")
	want(t, cs[3], OK, "client version is 0.6.5")

	// A broken or hanging engine is a warning with the reason; sglang's own CLI counts.
	cs = EngineChecks(ctx, Engines, lookIn("vllm", "python3", "sglang", "ollama"), runFrom(map[string]reply{
		"/bin/vllm --version":   {err: context.DeadlineExceeded},
		"/bin/python3 -c":       {err: errors.New("exit status 1")},
		"/bin/ollama --version": {out: "ollama: error while loading shared libraries\n", err: errors.New("exit status 127")},
	}), 30*time.Millisecond)
	want(t, cs[0], Warn, "did not answer within 30ms")
	want(t, cs[1], OK, "sglang found at /bin/sglang")
	want(t, cs[3], Warn, "exit status 127: ollama: error while loading shared libraries", "reinstall")
}

// fakeFS is a filesystem of directories and files with fixed free space.
type fakeFS struct {
	dirs, files map[string]bool
	readOnly    map[string]bool
	free, total uint64
}

type fi struct {
	name string
	dir  bool
}

func (f fi) Name() string { return f.name }
func (f fi) Size() int64  { return 0 }
func (f fi) Mode() fs.FileMode {
	return map[bool]fs.FileMode{true: fs.ModeDir | 0o755, false: 0o644}[f.dir]
}
func (f fi) ModTime() time.Time { return time.Time{} }
func (f fi) IsDir() bool        { return f.dir }
func (f fi) Sys() any           { return nil }

func (f fakeFS) FS() FS {
	return FS{
		Stat: func(p string) (fs.FileInfo, error) {
			switch {
			case f.dirs[p]:
				return fi{p, true}, nil
			case f.files[p]:
				return fi{p, false}, nil
			}
			return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
		},
		Statfs: func(string) (uint64, uint64, error) { return f.free, f.total, nil },
		Writable: func(d string) error {
			if f.readOnly[d] {
				return &fs.PathError{Op: "open", Path: d + "/.citadel-doctor-1", Err: fs.ErrPermission}
			}
			return nil
		},
	}
}

func TestDir(t *testing.T) {
	t.Parallel()
	base := fakeFS{dirs: map[string]bool{"/": true, "/data": true, "/ro": true}, files: map[string]bool{"/data/file": true},
		readOnly: map[string]bool{"/ro": true, "/": true}, free: 100 << 30, total: 200 << 30}
	c := Dir(base.FS(), "data-dir", "data dir", "/data", "--data-dir", "--data-dir")
	want(t, c, OK, "writable; 100.0 GiB free of 200.0 GiB")
	c = Dir(base.FS(), "data-dir", "data dir", "/data/new/state", "--data-dir", "--data-dir")
	want(t, c, OK, "does not exist yet", "under /data")

	// Unwritable, existing or to be created.
	c = Dir(base.FS(), "hf-cache", "Hugging Face cache", "/ro", "HF_HUB_CACHE", "HF_HUB_CACHE")
	want(t, c, Fail, "not writable", "permission denied", "set HF_HUB_CACHE")
	c = Dir(base.FS(), "ollama-models", "Ollama models", "/ro/models", "OLLAMA_MODELS", "OLLAMA_MODELS")
	want(t, c, Fail, "cannot be created: /ro is not writable")
	c = Dir(base.FS(), "data-dir", "data dir", "/data/file", "--data-dir", "--data-dir")
	want(t, c, Fail, "/data/file is not a directory")

	// A full disk fails; a small one warns.
	full := base
	full.free = 200 << 20
	want(t, Dir(full.FS(), "data-dir", "data dir", "/data", "x", "--data-dir"), Fail, "0.2 GiB free", "larger disk")
	small := base
	small.free = 10 << 30
	want(t, Dir(small.FS(), "data-dir", "data dir", "/data", "x", "--data-dir"), Warn, "10.0 GiB free", "15 GiB")

	// The real filesystem: a temporary directory is writable and has space.
	dir := t.TempDir()
	c = Dir(FS{Stat: os.Stat, Statfs: OSStatfs, Writable: OSWritable}, "data-dir", "data dir", dir, "x", "--data-dir")
	if c.Status == Fail {
		t.Errorf("temp dir: %+v", c)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the probe left %d files", len(ents))
	}
}

func TestHub(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/whoami-v2" {
			return
		}
		switch r.Header.Get("Authorization") {
		case "Bearer hf_good":
			fmt.Fprint(w, `{"type":"user","name":"alice"}`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"Invalid credentials in Authorization header"}`)
		}
	}))
	defer hub.Close()
	hc := hub.Client()

	cs := HubChecks(ctx, hc, Hub{Endpoint: hub.URL}, time.Second)
	want(t, cs[0], OK, "reachable (HTTP 200")
	want(t, cs[1], OK, "no token set")

	cs = HubChecks(ctx, hc, Hub{Endpoint: hub.URL, Token: "hf_good", TokenSource: "HF_TOKEN"}, time.Second)
	want(t, cs[1], OK, "valid, for user alice")
	if cs[1].Checked != "token from HF_TOKEN" {
		t.Errorf("checked %q", cs[1].Checked)
	}

	cs = HubChecks(ctx, hc, Hub{Endpoint: hub.URL, Token: "hf_secret_bad", TokenSource: "HF_TOKEN"}, time.Second)
	want(t, cs[1], Fail, "rejected by the hub (HTTP 401)", "Invalid credentials", "settings/tokens")
	for _, c := range cs {
		if strings.Contains(fmt.Sprint(c), "hf_secret_bad") {
			t.Errorf("the token is printed: %+v", c)
		}
	}

	// Refused: a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	cs = HubChecks(ctx, hc, Hub{Endpoint: "http://" + addr, Token: "hf_good"}, time.Second)
	want(t, cs[0], Warn, "unreachable: connection refused", "HF_ENDPOINT at a mirror")
	want(t, cs[1], Warn, "not checked")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}

	// A hub that does not answer in time.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	cs = HubChecks(ctx, slow.Client(), Hub{Endpoint: slow.URL}, 50*time.Millisecond)
	want(t, cs[0], Warn, "no answer within 50ms")

	cs = HubChecks(ctx, hc, Hub{Endpoint: "huggingface.co"}, time.Second)
	want(t, cs[0], Fail, "not a URL", "https://huggingface.co")

	cs = HubChecks(ctx, hc, Hub{Endpoint: hub.URL, Offline: true}, time.Second)
	want(t, cs[0], Warn, "HF_HUB_OFFLINE")
}

func TestPort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hc := &http.Client{}
	// Free.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	want(t, Port(ctx, net.Listen, hc, "admin", "--admin-addr", free, time.Second), OK, "free")

	// Held by something else.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	defer other.Close()
	oaddr := other.Listener.Addr().String()
	c := Port(ctx, net.Listen, hc, "gateway", "--gateway-addr", oaddr, time.Second)
	want(t, c, Fail, "another program", "--gateway-addr", "ss -ltnp")

	// Held by citadel serve's admin API, with and without a token, and by its gateway.
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"version":"v0.9.0","goVersion":"go1.26"}`)
	}))
	defer admin.Close()
	c = Port(ctx, net.Listen, hc, "admin", "--admin-addr", admin.Listener.Addr().String(), time.Second)
	want(t, c, OK, "citadel serve's admin API (version v0.9.0)")
	locked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"code":401,"reason":"Unauthorized","message":"missing or wrong admin token"}`)
	}))
	defer locked.Close()
	want(t, Port(ctx, net.Listen, hc, "admin", "--admin-addr", locked.Listener.Addr().String(), time.Second), OK, "needs the admin token")
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			fmt.Fprint(w, "ok\n")
		case "/api/version":
			fmt.Fprint(w, `{"version":"v0.9.0"}`)
		default:
			w.WriteHeader(404)
		}
	}))
	defer gw.Close()
	want(t, Port(ctx, net.Listen, hc, "gateway", "--gateway-addr", gw.Listener.Addr().String(), time.Second), OK, "citadel serve's gateway (version v0.9.0)")

	// Not an address at all.
	want(t, Port(ctx, net.Listen, hc, "admin", "--admin-addr", "nonsense", time.Second), Fail, "cannot listen")
	if got := dialAddr(":8080"); got != "127.0.0.1:8080" {
		t.Errorf("dialAddr(:8080) = %s", got)
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			fmt.Fprint(w, `{"status":"ok"}`)
		case r.Header.Get("Authorization") != "Bearer right":
			w.WriteHeader(401)
			fmt.Fprint(w, `{"code":401,"reason":"Unauthorized","message":"missing or wrong admin token"}`)
		default:
			fmt.Fprint(w, `{"version":"v0.9.0","goVersion":"go1.26"}`)
		}
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, client.WithToken("right"))
	want(t, Server(ctx, c, time.Second), OK, "healthy, version v0.9.0")
	c, _ = client.New(srv.URL, client.WithToken("wrong"))
	want(t, Server(ctx, c, time.Second), Fail, "refuses this admin token", "CITADEL_TOKEN")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ = client.New(addr)
	want(t, Server(ctx, c, time.Second), Warn, "no citadel serve answers: connection refused", "start citadel serve")
}

func TestFailed(t *testing.T) {
	t.Parallel()
	if Failed([]Check{{Status: OK}, {Status: Warn}}) {
		t.Error("warnings failed")
	}
	if !Failed([]Check{{Status: OK}, {Status: Fail}}) {
		t.Error("a failure did not fail")
	}
}
