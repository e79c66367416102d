// Package interop runs what users bring to Citadel against one live `citadel up`: the official
// openai and ollama npm clients against the gateway, @huggingface/hub against the mirror up serves,
// and a browser (Debian's chromium, driven by playwright-core) on the admin dashboard.
//
// The npm packages are pinned by package-lock.json here: npm ci --prefix test/interop. Without
// them the tests skip (CITADEL_REQUIRE_NPM=1 makes them fail); without chromium the browser test
// skips (CITADEL_REQUIRE_BROWSER=1 makes it fail). CITADEL_SCREENSHOT_DIR, when set, receives the
// dashboard's screenshot.
package interop

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/npmtest"
	"citadel.dev/citadel/internal/sim/simtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	simtest.RemoveBuilt()
	os.Exit(code)
}

// upToken is the admin token TestUp's citadel up runs with (--admin-token).
const upToken = "interop-admin-token"

// TestUp starts one `citadel up` and runs every client against it, as a user would after
// reading its output.
func TestUp(t *testing.T) {
	dir := npmtest.Dir(t, "openai", "ollama", "@huggingface/hub")
	sb := newSandbox(t)
	up := startUp(t, sb, upToken)
	node := npmtest.Options{Env: sb.env}
	seed := readSeed(t, up.admin, up.token)

	t.Run("openai", func(t *testing.T) {
		got := npmtest.RunWith[struct {
			Models []string
			Chat   struct {
				Status                int
				Route, Model, Content string
				FinishReason          string `json:"finish_reason"`
				Usage                 struct {
					CompletionTokens int `json:"completion_tokens"`
				}
			}
			Stream struct {
				Status         int
				Route, Content string
				Chunks         int
				FinishReason   string `json:"finish_reason"`
				Usage          *struct {
					CompletionTokens int `json:"completion_tokens"`
				}
			}
			Vision struct {
				Status         int
				Route, Content string
			}
			NotFound struct {
				NotFoundError              bool `json:"not_found_error"`
				Status                     int
				Code, Type, Param, Message string
			} `json:"not_found"`
		}](t, dir, node, "up-openai.mjs", "http://"+up.gateway+"/v1")
		for _, want := range append([]string{"auto"}, seed.services...) {
			if !slices.Contains(got.Models, want) {
				t.Errorf("models.list() = %v, lacks %q", got.Models, want)
			}
		}
		c := got.Chat
		if c.Status != 200 || task(c.Route) != "code" || c.Content == "" || c.FinishReason == "" || c.Usage.CompletionTokens < 1 || c.Usage.CompletionTokens > 16 {
			t.Errorf("a code question through auto: %+v, want 200, x-citadel-route task=code, an answer of 1 to 16 tokens", c)
		}
		s := got.Stream
		if s.Status != 200 || task(s.Route) != "code" || s.Content == "" || s.Chunks < 2 || s.FinishReason == "" || s.Usage == nil || s.Usage.CompletionTokens < 1 {
			t.Errorf("the same question streamed: %+v, want 200, task=code, content in several chunks, a finish reason and usage", s)
		}
		v := got.Vision
		if v.Status != 200 || task(v.Route) != "vision" || !strings.Contains(v.Route, "service=default/"+seed.vision+" ") || v.Content == "" {
			t.Errorf("an image through auto: %+v, want 200, task=vision, answered by %s", v, seed.vision)
		}
		n := got.NotFound
		if !n.NotFoundError || n.Status != 404 || n.Code != "model_not_found" || n.Type != "invalid_request_error" || n.Param != "model" ||
			!strings.Contains(n.Message, "no-such-model") || !strings.Contains(n.Message, "auto") {
			t.Errorf("an unknown model: %+v, want OpenAI.NotFoundError 404 model_not_found naming the model and the ones there are", n)
		}
	})

	t.Run("ollama", func(t *testing.T) {
		const model = "qwen2.5:7b" // examples/seed-001's general model, by its Ollama name
		got := npmtest.RunWith[struct {
			List, PS []string
			Show     struct {
				Capabilities []string
				Modelfile    string
			}
			Chat struct {
				Model, Role, Content string
				Done                 bool
				DoneReason           string `json:"done_reason"`
				EvalCount            int    `json:"eval_count"`
			}
			Generate struct {
				Response   string
				Parts      int
				Done       bool
				DoneReason string `json:"done_reason"`
				EvalCount  int    `json:"eval_count"`
			}
			NotFound struct {
				Status  int
				Message string
			} `json:"not_found"`
		}](t, dir, node, "up-ollama.mjs", "http://"+up.gateway, model)
		for _, want := range []string{"auto:latest", model} {
			if !slices.Contains(got.List, want) {
				t.Errorf("list() = %v, lacks %q", got.List, want)
			}
		}
		if !slices.Contains(got.PS, model) {
			t.Errorf("ps() = %v, lacks the running %q", got.PS, model)
		}
		if !strings.Contains(got.Show.Modelfile, "FROM "+model) || !slices.Contains(got.Show.Capabilities, "completion") {
			t.Errorf("show(%s) = %+v", model, got.Show)
		}
		if c := got.Chat; !c.Done || c.Role != "assistant" || c.Content == "" || c.Model == "" || c.EvalCount < 1 || c.EvalCount > 8 {
			t.Errorf("chat through auto: %+v, want a done assistant answer of 1 to 8 tokens", c)
		}
		if g := got.Generate; !g.Done || g.Parts < 2 || g.Response == "" || g.DoneReason == "" || g.EvalCount < 1 || g.EvalCount > 8 {
			t.Errorf("generate streamed: %+v, want several parts, then done with a reason and 1 to 8 tokens", g)
		}
		if n := got.NotFound; n.Status != 404 || !strings.Contains(n.Message, "no-such-model") {
			t.Errorf("an unknown model: %+v, want a 404 ResponseError naming it", n)
		}
	})

	t.Run("huggingface-hub", func(t *testing.T) {
		// what the mirror lists
		var tree []struct {
			Type, Path string
			Size       int64
			LFS        *struct{ Oid string }
		}
		getJSON(t, up.mirror+"/api/models/"+seed.hfRepo+"/tree/main?recursive=true", &tree)
		env := append(slices.Clone(sb.env), "HF_ENDPOINT="+up.mirror)
		got := npmtest.RunWith[map[string]string](t, dir, npmtest.Options{Env: env}, "hub-download.mjs", seed.hfRepo)
		files, lfs := 0, 0
		for _, e := range tree {
			if e.Type != "file" {
				continue
			}
			files++
			sum, ok := got[e.Path]
			switch {
			case !ok:
				t.Errorf("%s: listed by the mirror, not downloaded by listFiles/downloadFile (got %v)", e.Path, got)
				continue
			case e.LFS != nil && sum != e.LFS.Oid:
				t.Errorf("%s: sha256 %s downloaded, the mirror lists lfs.oid %s", e.Path, sum, e.LFS.Oid)
			}
			if e.LFS != nil {
				lfs++
			}
			// the same bytes citadel up pulled for its engine
			b, err := os.ReadFile(filepath.Join(seed.hfPath, e.Path))
			if err != nil {
				t.Errorf("%s: not in citadel's copy of the model: %v", e.Path, err)
			} else if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
				t.Errorf("%s: sha256 %s downloaded by @huggingface/hub, %x pulled by citadel into %s", e.Path, sum, s, seed.hfPath)
			}
		}
		if lfs == 0 || len(got) != files {
			t.Errorf("the mirror lists %d files (%d LFS), @huggingface/hub downloaded %d: %v", files, lfs, len(got), got)
		}
	})

	t.Run("admin-token", func(t *testing.T) { testAdminToken(t, sb, up) })

	l := &live{dir: dir, sb: sb, up: up, seed: seed}
	for _, u := range upTests {
		t.Run(u.name, func(t *testing.T) { u.run(t, l) })
	}
}

// upTest is one more subtest of TestUp, on the same citadel up: dashboard_test.go adds its own.
type upTest struct {
	name string
	run  func(t *testing.T, l *live)
}

var upTests []upTest

// live is TestUp's citadel up and what its subtests need.
type live struct {
	dir  string // test/interop, its npm packages installed
	sb   sandbox
	up   *upServer
	seed seedState
}

// task is the task named by an x-citadel-route header ("task=code model=auto …").
func task(route string) string { return field(route, "task") }

func field(route, key string) string {
	for f := range strings.FieldsSeq(route) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// seedState is what the admin API says citadel up runs.
type seedState struct {
	models, services []string
	vision           string // the service that answers images
	hfRepo, hfPath   string // the Hugging Face model: its repo, and where citadel placed it
}

func readSeed(t *testing.T, admin, token string) seedState {
	t.Helper()
	c, err := client.New(admin, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	var s seedState
	models, err := c.List(t.Context(), v1.KindClusterBaseModel, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range models {
		m := o.(*v1.ClusterBaseModel)
		s.models = append(s.models, m.Name)
		if st := m.Spec.Storage; st != nil && st.StorageURI != nil && strings.HasPrefix(*st.StorageURI, "hf://") && len(m.Status.Nodes) > 0 {
			s.hfRepo, s.hfPath = strings.TrimPrefix(*st.StorageURI, "hf://"), m.Status.Nodes[0].Path
		}
	}
	svcs, err := c.List(t.Context(), v1.KindInferenceService, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range svcs {
		s.services = append(s.services, o.(*v1.InferenceService).Name)
	}
	s.vision = "mimo-vl-7b-rl" // examples/seed-001's vision model
	if len(s.models) != 4 || len(s.services) != 4 || s.hfRepo == "" || !slices.Contains(s.services, s.vision) {
		t.Fatalf("citadel up runs models %v (Hugging Face: %q at %q) and services %v; want seed-001's 4 and 4, %s among them", s.models, s.hfRepo, s.hfPath, s.services, s.vision)
	}
	return s
}

// sandbox is a home for the processes a test starts: HOME, the XDG directories and TMPDIR in
// a temporary directory, and no HF_, OLLAMA_ or CITADEL_ variable of the user's.
type sandbox struct {
	root string
	env  []string
}

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	root := t.TempDir()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, p := range []string{"HOME=", "TMPDIR=", "XDG_", "HF_", "HUGGING_FACE_", "OLLAMA_", "CITADEL_"} {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
	for _, v := range []string{"HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"} {
		d := filepath.Join(root, strings.ToLower(v))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, v+"="+d)
	}
	return sandbox{root: root, env: env}
}

// upServer is a running citadel up.
type upServer struct {
	admin, gateway string // host:port
	token          string // --admin-token
	dataDir        string // --data-dir
	mirror         string // its Hugging Face Hub and Ollama registry, http://host:port
	out            *syncBuffer
}

// startUp runs citadel up --admin-token token on free ports in the sandbox until it is ready,
// and stops it (Ctrl-C) when the test ends. A failing test shows the end of its output.
func startUp(t *testing.T, sb sandbox, token string) *upServer {
	t.Helper()
	bin := simtest.Citadel(t)
	up := &upServer{admin: freeAddr(t), gateway: freeAddr(t), token: token, dataDir: filepath.Join(sb.root, "up"), out: &syncBuffer{}}
	cmd := exec.Command(bin, "up", "--data-dir", up.dataDir, "--admin-addr", up.admin, "--gateway-addr", up.gateway, "--timeout", "2m", "--admin-token", token)
	cmd.Env = sb.env
	cmd.Stdout, cmd.Stderr = up.out, up.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("citadel up after Ctrl-C: %v\n%s", err, up.out.tail(30))
			}
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("citadel up did not stop within 30 s of Ctrl-C:\n%s", up.out.tail(30))
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("citadel up's output (last 60 lines):\n%s", up.out.tail(60))
		}
	})
	deadline := time.After(150 * time.Second)
	for !strings.Contains(up.out.String(), "citadel up: ready in") {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("citadel up exited before ready: %v\n%s", err, up.out.tail(60))
		case <-deadline:
			t.Fatalf("citadel up not ready within 150 s:\n%s", up.out.tail(60))
		case <-time.After(100 * time.Millisecond):
		}
	}
	m := regexp.MustCompile(`mirror of the stand-ins on (http://\S+):`).FindStringSubmatch(up.out.String())
	if m == nil {
		t.Fatalf("citadel up did not print its mirror's address:\n%s", up.out.tail(60))
	}
	up.mirror = m[1]
	return up
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
}

// freeAddr is a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail is the last n lines written.
func (s *syncBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(s.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// testAdminToken checks what citadel up --admin-token prints and that it is what the admin API
// asks for: the dashboard's link with the token, printed once; the admin API refusing a call
// without it; and the printed admin curl and citadel command working as printed.
func testAdminToken(t *testing.T, sb sandbox, up *upServer) {
	out := up.out.String()
	link := "http://" + up.admin + "/?token=" + up.token
	if n := strings.Count(out, link); n != 1 || !strings.Contains(out, "Dashboard: "+link+" ") {
		t.Errorf("citadel up printed the dashboard's link %s %d times, want once after \"Dashboard: \":\n%s", link, n, out)
	}
	for _, c := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong-" + up.token, http.StatusUnauthorized}, {"Bearer " + up.token, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+up.admin+"/api/v1/gpus", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET /api/v1/gpus with Authorization %q: %d, want %d", c.auth, resp.StatusCode, c.want)
		}
	}

	// the admin curl and the citadel command, run as printed (citadel: the binary under test)
	env := append(slices.Clone(sb.env), "PATH="+filepath.Dir(simtest.Citadel(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, c := range []struct{ name, re, want string }{
		{"admin curl", `(?m)^  (curl -s -H 'authorization: Bearer ` + regexp.QuoteMeta(up.token) + `' http://\S+/api/v1/gpus)$`, `"holders"`},
		{"route explain", `(?m)^  (citadel route explain --server \S+ --token ` + regexp.QuoteMeta(up.token) + ` ".*")$`, "code"},
	} {
		m := regexp.MustCompile(c.re).FindStringSubmatch(out)
		if m == nil {
			t.Errorf("%s: no line matching %s in citadel up's output:\n%s", c.name, c.re, out)
			continue
		}
		if c.name == "admin curl" {
			if _, err := exec.LookPath("curl"); err != nil {
				t.Logf("%s: no curl on PATH to run %s", c.name, m[1])
				continue
			}
		}
		cmd := exec.Command("sh", "-c", m[1])
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %s: %v, want output with %q:\n%s", c.name, m[1], err, c.want, b)
		}
	}
}
