package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/daemon"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/version"
)

// startServerWithGateway runs citadel serve in-process with its gateway, both on free
// loopback ports.
func startServerWithGateway(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			DataDir: t.TempDir(), AdminListener: ln, GatewayListener: gln, Gateway: &gateway.Options{},
			Version: version.Info(), Logger: slog.New(slog.DiscardHandler), Ready: func(string) { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestRouteExplainAndEval applies the seed-001 route as a user would and asks the server how
// it routes what users send, then evaluates a labelled file of the user's own.
func TestRouteExplainAndEval(t *testing.T) {
	addr := startServerWithGateway(t)
	mustRun(t, addr, "apply", "-f", "../../examples/seed-001")

	eventually(t, func() string { // the gateway reads the route from the store as it changes
		if r := citadel(t, addr, "", "route", "explain", "hi"); r.code != 0 {
			return r.stderr
		}
		return ""
	})
	out := mustRun(t, addr, "route", "explain", "how do I undo my last git commit but keep the changes?")
	for _, want := range []string{"auto → auto (task code)", "target    default/deepcoder-14b", "rule      auto: tasks[1] (code)", "reason    classifier code=", "scores    code 0.", "the server's gateway"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, addr, "route", "explain", "--system", "Always answer with fenced code blocks.", "what should I pack for a weekend in Lisbon?")
	if !strings.Contains(out, "(task general)") || !strings.Contains(out, `read      "what should I pack`) {
		t.Errorf("a system prompt decided, or was read as the ask:\n%s", out)
	}
	out = mustRun(t, addr, "route", "explain", "--image", "-o", "json", "fix this stack trace")
	var x v1.RouteExplanation
	if err := json.Unmarshal([]byte(out), &x); err != nil || x.Task != "vision" || x.Reason != "image_url" || x.Target != "default/mimo-vl-7b-rl" {
		t.Errorf("explain --image -o json: %v %+v\n%s", err, x, out)
	}
	// a request body from a file, Ollama's shape, tagged model name
	dir := t.TempDir()
	req := filepath.Join(dir, "req.json")
	os.WriteFile(req, []byte(`{"model":"auto:latest","messages":[{"role":"user","content":"Ein Zug fährt um 9 Uhr mit 80 km/h los, ein zweiter um 10 Uhr mit 120 km/h. Wann holt er ihn ein?"}]}`), 0o644)
	out = mustRun(t, addr, "route", "explain", "-f", req, "--api", "ollama")
	if !strings.Contains(out, "(task reasoning)") || !strings.Contains(out, "deepseek-r1-32b") {
		t.Errorf("explain -f (ollama body):\n%s", out)
	}
	if r := citadel(t, addr, "", "route", "explain", "--model", "gpt-5", "hi"); r.code != 1 || !strings.Contains(r.stderr, "gpt-5") || !strings.Contains(r.stderr, "auto") {
		t.Errorf("explain of an unknown model: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// the user's own labelled traffic, with a line of each kind they would write
	lines := []string{
		`{"task":"code","messages":[{"role":"user","content":"kubectl get pods shows ImagePullBackOff, what now?"}]}`,
		`{"task":"code","messages":[{"role":"system","content":"You are Cline."},{"role":"user","content":"run the tests"},{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"execute_command","arguments":"{\"command\":\"pytest -q\"}"}}]},{"role":"tool","tool_call_id":"1","content":"E   ModuleNotFoundError: No module named 'app.settings'"}]}`,
		`{"task":"reasoning","messages":[{"role":"user","content":"If 3 painters paint 3 rooms in 3 hours, how long do 6 painters need for 12 rooms?"}]}`,
		`{"task":"general","messages":[{"role":"user","content":"proof-read: Their going to the offsite next week, weather or not it rains."}]}`,
		`{"task":"vision","messages":[{"role":"user","content":[{"type":"text","text":"what does this chart say?"},{"type":"image_url","image_url":{"url":"https://example.com/q3.png"}}]}]}`,
		`{"task":"general","messages":[{"role":"user","content":"write a haiku about a python sleeping in the sun"}]}`,
	}
	labelled := filepath.Join(dir, "labelled.jsonl")
	os.WriteFile(labelled, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out = mustRun(t, addr, "route", "eval", "-f", labelled, "--route", "seed-001")
	for _, want := range []string{"model auto, 6 labelled requests", "accuracy  100.0 %  (6 of 6)", "confusion (rows: label, columns: routed to)", "decision time  p50"} {
		if !strings.Contains(out, want) {
			t.Errorf("eval lacks %q:\n%s", want, out)
		}
	}
	// a label the gateway cannot reach is a misroute, and --fail-under makes it an exit code
	os.WriteFile(labelled, []byte(`{"task":"reasoning","messages":[{"role":"user","content":"write a cover letter for a barista job"}]}`+"\n"), 0o644)
	r := citadel(t, addr, "", "route", "eval", "-f", labelled, "--route", "seed-001", "--fail-under", "0.9")
	if r.code != 1 || !strings.Contains(r.stdout, "reasoning → general") || !strings.Contains(r.stderr, "accuracy 0.0 % is under --fail-under 90.0 %") {
		t.Errorf("eval --fail-under: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// bad input names the file and line and evaluates nothing
	os.WriteFile(labelled, []byte(lines[0]+"\n"+`{"task":"poem","messages":[{"role":"user","content":"hi"}]}`+"\n"), 0o644)
	if r := citadel(t, addr, "", "route", "eval", "-f", labelled); r.code != 2 || !strings.Contains(r.stderr, "labelled.jsonl:2: task \"poem\" is not a task class") {
		t.Errorf("eval of a bad line: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := citadel(t, addr, "", "route", "eval", "-f", labelled, "--route", "nope"); r.code == 0 {
		t.Errorf("eval --route nope: exit 0\n%s", r.stdout)
	}
}

// TestRouteOffline needs no server: the built-in classifier runs in the CLI, with a route
// file's rules when given.
func TestRouteOffline(t *testing.T) {
	nowhere := "127.0.0.1:1"
	out := mustRun(t, nowhere, "route", "explain", "--offline", "If I roll two dice, what are the odds of a double?")
	if !strings.Contains(out, "(task reasoning)") || !strings.Contains(out, "here (offline)") {
		t.Errorf("offline explain:\n%s", out)
	}
	out = mustRun(t, nowhere, "route", "explain", "--offline", "--route-file", "../../examples/seed-001/route.yaml", "how do I squash commits?")
	if !strings.Contains(out, "auto: tasks[1] (code)") {
		t.Errorf("offline explain with the seed route:\n%s", out)
	}
	held := "../taskclass/corpus/heldout"
	out = mustRun(t, nowhere, "route", "eval", "--offline", "-f", held, "--worst", "3")
	if !strings.Contains(out, "accuracy") || !strings.Contains(out, "worst misroutes") {
		t.Errorf("offline eval of the held-out split:\n%s", out)
	}
}
