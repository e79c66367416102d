// Package e2e runs Kubernetes mode end to end on a real API server: the CRDs, two fake GPU
// nodes (test/k8s/kubelet runs their pods as citadel sim processes), a stand-in Hub and
// Ollama registry (citadel mirror serve), and Citadel's own processes as a cluster runs
// them: citadel controller, one citadel agent per node, citadel gateway --kubeconfig. The
// files a user applies are the repository's own, unchanged, applied with kubectl; what is
// checked is what the user sees: kubectl get and describe, and chat requests through the
// gateway. The same files applied to citadel serve give the same phases and reasons.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadel.dev/citadel/internal/sim/simtest"
	"citadel.dev/citadel/test/k8s"
)

func TestMain(m *testing.M) {
	code := k8s.MainInNetNS(m) // the engines listen on pod addresses of their own
	simtest.RemoveBuilt()
	os.Exit(code)
}

// citadelNS is Citadel's own namespace: agent Leases, per-node ConfigMaps, and the token
// Secrets of ClusterBaseModels.
const citadelNS = "citadel"

// cluster is the API server, the fake nodes and Citadel's processes.
type cluster struct {
	t      *testing.T
	env    *k8s.Env
	bin    string
	root   string
	logDir string
	mirror string            // the stand-in Hub and Ollama registry, http://addr
	nodes  map[string]string // node → its filesystem
	procs  map[string]*exec.Cmd
	outs   []string // process output files, printed when the test fails
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

// start runs citadel in the background until the test ends (or stop), its output in a file
// of the log directory, printed when the test fails.
func (c *cluster) start(name string, env []string, args ...string) {
	c.t.Helper()
	out := filepath.Join(c.logDir, name+".log")
	f, err := os.Create(out)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(cleanEnv(c.logDir), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	f.Close()
	c.procs[name] = cmd
	c.outs = append(c.outs, out)
	c.t.Cleanup(func() { c.stop(name) })
}

// logFile is a file of the log directory, printed with the processes' output when the test
// fails; it is closed when the test ends.
func (c *cluster) logFile(name string) *os.File {
	c.t.Helper()
	out := filepath.Join(c.logDir, name+".log")
	f, err := os.Create(out)
	if err != nil {
		c.t.Fatal(err)
	}
	c.outs = append(c.outs, out)
	c.t.Cleanup(func() { f.Close() })
	return f
}

// stop ends a process: SIGTERM, then SIGKILL to its group after 10 s.
func (c *cluster) stop(name string) {
	cmd := c.procs[name]
	if cmd == nil {
		return
	}
	delete(c.procs, name)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// cleanEnv is this process's environment without what would point citadel elsewhere.
func cleanEnv(home string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, k := range []string{"HOME=", "XDG_STATE_HOME=", "HF_", "OLLAMA_", "CITADEL_", "KUBECONFIG=", "POD_NAMESPACE=", "NODE_NAME="} {
			if strings.HasPrefix(kv, k) {
				return true
			}
		}
		return false
	})
	return append(env, "HOME="+home)
}

// printLogs prints the tail of every process's output.
func (c *cluster) printLogs() {
	for _, out := range c.outs {
		b, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("--- %s (last %d lines)\n%s", filepath.Base(out), len(lines), strings.Join(lines, "\n"))
	}
}

// run runs citadel to completion.
func (c *cluster) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = cleanEnv(c.logDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("citadel %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *cluster) kubectl(stdin string, args ...string) string {
	c.t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := c.env.Kubectl(in, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// waitHTTP waits until url answers.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

// eventually polls f until it holds or the time is up.
func eventually(t *testing.T, what string, timeout time.Duration, f func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		var ok bool
		if ok, last = f(); ok {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v; last:\n%s", what, timeout, last)
	return 0
}

// object is what the test reads of a Citadel object.
type object struct {
	Metadata struct {
		Name, Namespace string
	}
	Status struct {
		Phase, Reason, Message string
		Nodes                  []struct {
			Node, Phase, Reason, Message, Path string
		}
		NodesReady []string
		Endpoints  []struct {
			Address string
			Ready   bool
		}
		Replicas, ReadyReplicas int
	}
}

// get reads one object with kubectl.
func (c *cluster) get(resource, ns, name string) (object, string) {
	args := []string{"get", resource, name, "-o", "json"}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	out, err := c.env.Kubectl(nil, args...)
	if err != nil {
		return object{}, err.Error()
	}
	var o object
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		c.t.Fatalf("%s %s/%s: %v", resource, ns, name, err)
	}
	b, _ := json.MarshalIndent(o.Status, "", "  ")
	return o, string(b)
}

// chat sends one request through the gateway and returns the status, the route header and
// the body.
func chat(ctx context.Context, url, body string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Citadel-Route"), string(b), err
}

func openAI(model, text string, image bool) string {
	content := any(text)
	if image {
		content = []any{map[string]any{"type": "text", "text": text},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}}}
	}
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 8, "messages": []any{map[string]any{"role": "user", "content": content}}})
	return string(b)
}

// columns reads a kubectl get table into rows of named columns.
func columns(table string) []map[string]string {
	sc := bufio.NewScanner(strings.NewReader(table))
	var head []string
	var starts []int
	var rows []map[string]string
	for sc.Scan() {
		line := sc.Text()
		if head == nil {
			for i := 0; i < len(line); {
				for i < len(line) && line[i] == ' ' {
					i++
				}
				j := i
				for j < len(line) && !(line[j] == ' ' && (j+1 >= len(line) || line[j+1] == ' ')) {
					j++
				}
				if i < len(line) {
					head, starts = append(head, line[i:j]), append(starts, i)
				}
				i = j
			}
			continue
		}
		row := map[string]string{}
		for k, h := range head {
			end := len(line)
			if k+1 < len(starts) && starts[k+1] < end {
				end = starts[k+1]
			}
			if starts[k] < len(line) {
				row[h] = strings.TrimSpace(line[starts[k]:end])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// indent prefixes each line, for logs.
func indent(s string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	return b.String()
}
