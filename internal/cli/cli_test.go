package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/daemon"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/version"
)

// fixtures is a byte-for-byte copy of shared/fixtures/ome/config (checked
// against the original by the config package's tests).
const fixtures = "../config/testdata/good/ome"

// syncBuffer is a bytes.Buffer safe for the daemon's logger goroutines.
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

type server struct {
	addr string
	logs *syncBuffer
	stop func()
}

// startServer runs citadel serve in-process on a loopback port.
func startServer(t *testing.T, dataDir, token string) *server {
	t.Helper()
	return startServerWith(t, dataDir, token, nil)
}

func startServerWith(t *testing.T, dataDir, token string, puller *pull.Puller) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			DataDir: dataDir, AdminListener: ln, AdminToken: token, Version: version.Info(), Puller: puller,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Ready:  func(string) { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	s := &server{addr: ln.Addr().String(), logs: logs}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

type result struct {
	code           int
	stdout, stderr string
}

// citadel runs the CLI against addr.
func citadel(t *testing.T, addr string, stdin string, args ...string) result {
	t.Helper()
	env := map[string]string{"CITADEL_SERVER": addr}
	return citadelEnv(t, env, stdin, args...)
}

func citadelEnv(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func mustRun(t *testing.T, addr string, args ...string) string {
	t.Helper()
	r := citadel(t, addr, "", args...)
	if r.code != 0 {
		t.Fatalf("citadel %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// eventually retries f until it returns "" or the deadline passes: the
// status reconciler works asynchronously.
func eventually(t *testing.T, f func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestApplyGetDescribeRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "")

	out := mustRun(t, srv.addr, "apply", "-f", fixtures, "-R")
	want := "clusterbasemodel.ome.io/mimo-vl-7b-rl created\nclusterservingruntime.ome.io/srt-mimo-vl-7b-rl created\ninferenceservice.ome.io/mimo-vl-7b-rl created\n"
	if out != want {
		t.Fatalf("apply output:\n%s\nwant:\n%s", out, want)
	}

	eventually(t, func() string {
		out := mustRun(t, srv.addr, "get", "models")
		if !regexp.MustCompile(`(?m)^NAME\s+PHASE\s+SIZE\s+PROGRESS\s+AGE\nmimo-vl-7b-rl\s+Pending\s+-\s+-\s+\d+s\n$`).MatchString(out) {
			return "get models:\n" + out
		}
		return ""
	})

	var desc string
	eventually(t, func() string {
		desc = mustRun(t, srv.addr, "describe", "model", "mimo-vl-7b-rl")
		for _, s := range []string{
			"Name:             mimo-vl-7b-rl",
			"storageUri: hf://XiaomiMiMo/MiMo-VL-7B-RL",
			"Phase:               Pending",
			"Reason:              AwaitingAgent",
			"CredentialsReady  False   SecretNotFound",
			"citadel secret create hf-token -n ome",
			"Normal  Created",
			"Normal  AwaitingAgent",
		} {
			if !strings.Contains(desc, s) {
				return "describe lacks " + s + ":\n" + desc
			}
		}
		return ""
	})

	// The service says what it waits for.
	eventually(t, func() string {
		out := mustRun(t, srv.addr, "get", "isvc", "-n", "mimo-vl-7b-rl", "-o", "wide")
		if !strings.Contains(out, "ModelNotReady") {
			return "get isvc -o wide:\n" + out
		}
		return ""
	})

	// Re-applying changes nothing: same generation, same resourceVersion.
	before := mustRun(t, srv.addr, "get", "model", "mimo-vl-7b-rl", "-o", "json")
	out = mustRun(t, srv.addr, "apply", "-f", fixtures, "-R")
	if strings.Count(out, " unchanged\n") != 3 {
		t.Fatalf("second apply:\n%s", out)
	}
	after := mustRun(t, srv.addr, "get", "model", "mimo-vl-7b-rl", "-o", "json")
	if before != after {
		t.Errorf("object changed by an identical apply:\nbefore %s\nafter %s", before, after)
	}

	// A restart keeps everything.
	srv.stop()
	srv2 := startServer(t, dir, "")
	out = mustRun(t, srv2.addr, "get", "models")
	if !strings.Contains(out, "mimo-vl-7b-rl   Pending") {
		t.Fatalf("after restart, get models:\n%s", out)
	}
	desc2 := mustRun(t, srv2.addr, "describe", "model", "mimo-vl-7b-rl")
	if !strings.Contains(desc2, "Normal  Created") || !strings.Contains(desc2, "Reason:              AwaitingAgent") {
		t.Fatalf("after restart, describe:\n%s", desc2)
	}
	out = mustRun(t, srv2.addr, "get", "isvc", "-A")
	if !strings.Contains(out, "mimo-vl-7b-rl") {
		t.Fatalf("after restart, get isvc -A:\n%s", out)
	}
}

func TestApplyChangeBumpsGeneration(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	model := `apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: qwen}
spec:
  storage: {storageUri: "hf://Qwen/Qwen2.5-7B-Instruct"}
`
	if r := citadel(t, srv.addr, model, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %+v", r)
	}
	changed := strings.Replace(model, "Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct@v1.1", 1)
	r := citadel(t, srv.addr, changed, "apply", "-f", "-")
	if r.code != 0 || r.stdout != "clusterbasemodel.ome.io/qwen configured\n" {
		t.Fatalf("apply changed: %+v", r)
	}
	out := mustRun(t, srv.addr, "get", "model", "qwen", "-o", "yaml")
	if !strings.Contains(out, "generation: 2") || !strings.Contains(out, "storageUri: hf://Qwen/Qwen2.5-7B-Instruct@v1.1") {
		t.Fatalf("get -o yaml:\n%s", out)
	}
	// Labels alone change the object, not its generation.
	labelled := strings.Replace(changed, "metadata: {name: qwen}", "metadata: {name: qwen, labels: {team: lab}}", 1)
	if r := citadel(t, srv.addr, labelled, "apply", "-f", "-"); r.stdout != "clusterbasemodel.ome.io/qwen configured\n" {
		t.Fatalf("label apply: %+v", r)
	}
	out = mustRun(t, srv.addr, "get", "models", "-l", "team=lab", "-o", "name")
	if out != "clusterbasemodel.ome.io/qwen\n" {
		t.Fatalf("get -l team=lab -o name: %q", out)
	}
	if out := mustRun(t, srv.addr, "get", "model", "qwen", "-o", "yaml"); !strings.Contains(out, "generation: 2") {
		t.Fatalf("label change bumped the generation:\n%s", out)
	}
}

func TestDryRunStoresNothing(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	r := citadel(t, srv.addr, "", "apply", "-f", fixtures, "-R", "--dry-run")
	if r.code != 0 || strings.Count(r.stdout, "created (dry run)") != 3 {
		t.Fatalf("dry run: %+v", r)
	}
	r = citadel(t, srv.addr, "", "get", "models")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No clusterbasemodels found") {
		t.Fatalf("after dry run, get models: %+v", r)
	}
	// A dry run still checks references against the server.
	isvc := filepath.Join(fixtures, "samples")
	r = citadel(t, srv.addr, "", "apply", "-f", isvc, "-R", "--dry-run")
	if r.code != 1 || !strings.Contains(r.stderr, `spec.model.name: model "mimo-vl-7b-rl" not found`) || !strings.Contains(r.stderr, "nothing was applied") {
		t.Fatalf("dry run of a dangling service: %+v", r)
	}
}

func TestStaleResourceVersionIsRejected(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	mustRun(t, srv.addr, "apply", "-f", filepath.Join(fixtures, "models"), "-R")
	// Read the object back as YAML, as a user editing it would.
	y := mustRun(t, srv.addr, "get", "model", "mimo-vl-7b-rl", "-o", "yaml")
	m := regexp.MustCompile(`resourceVersion: "(\d+)"`).FindStringSubmatch(y)
	if m == nil {
		t.Fatalf("no resourceVersion in:\n%s", y)
	}
	edited := strings.Replace(y, "displayName: XiaomiMiMo.mimo-vl-7b-rl", "displayName: MiMo-VL", 1)
	// Someone else changes it first (without a precondition, as a plain apply does).
	other := strings.Replace(y, "displayName: XiaomiMiMo.mimo-vl-7b-rl", "displayName: other", 1)
	other = strings.Replace(other, m[0], "", 1)
	if r := citadel(t, srv.addr, other, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("first writer: %+v", r)
	}
	r := citadel(t, srv.addr, edited, "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "resourceVersion "+m[1]+" is stale") {
		t.Fatalf("stale apply: %+v", r)
	}
	if out := mustRun(t, srv.addr, "get", "model", "mimo-vl-7b-rl", "-o", "yaml"); !strings.Contains(out, "displayName: other") {
		t.Fatalf("stale apply changed the object:\n%s", out)
	}
	// Delete with a stale resourceVersion is refused too.
	r = citadel(t, srv.addr, "", "delete", "model", "mimo-vl-7b-rl", "--resource-version", m[1])
	if r.code != 1 || !strings.Contains(r.stderr, "stale") {
		t.Fatalf("stale delete: %+v", r)
	}
}

func TestBadInputAppliesNothing(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	// One good document and one bad one: nothing is applied.
	in := `apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: good}
spec:
  storage: {storageUri: "hf://org/good"}
---
apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: bad}
spec:
  storage:
    storageUri: s4://bucket/model
    pth: /raid/models/bad
`
	r := citadel(t, srv.addr, in, "apply", "-f", "-")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: %+v", r.code, r)
	}
	for _, s := range []string{
		`-:12:17: document 2 (ClusterBaseModel "bad"): spec.storage.storageUri: unsupported scheme "s4"`,
		`-:13:5: document 2 (ClusterBaseModel "bad"): spec.storage.pth: unknown field "pth" (fix: did you mean "path"?)`,
		"2 problem(s) in the input; nothing was applied",
	} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if r := citadel(t, srv.addr, "", "get", "models"); r.stdout != "" {
		t.Fatalf("a failed apply stored something:\n%s", r.stdout)
	}
}

func TestSecretsAreNeverShown(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	const token = "hf_SuperSecretTokenValue123"
	b64 := base64.StdEncoding.EncodeToString([]byte(token))
	env := map[string]string{"CITADEL_SERVER": srv.addr, "HF_TOKEN": token}
	r := citadelEnv(t, env, "", "secret", "create", "hf-token", "-n", "ome", "--from-env", "token=HF_TOKEN")
	if r.code != 0 || r.stdout != "secret/hf-token created in namespace ome\n" {
		t.Fatalf("secret create: %+v", r)
	}
	// A file with the value in stringData and in data.
	file := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: other}\nstringData: {token: "+token+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, srv.addr, "apply", "-f", file)
	mustRun(t, srv.addr, "apply", "-f", filepath.Join(fixtures, "models"), "-R")

	var seen strings.Builder
	for _, args := range [][]string{
		{"get", "secrets", "-A"}, {"get", "secrets", "-A", "-o", "yaml"}, {"get", "secret", "hf-token", "-n", "ome", "-o", "json"},
		{"get", "secret", "other", "-o", "yaml"}, {"describe", "secret", "hf-token", "-n", "ome"}, {"events", "-A"},
		{"describe", "model", "mimo-vl-7b-rl"},
	} {
		out := mustRun(t, srv.addr, args...)
		seen.WriteString(out)
		if strings.Contains(strings.Join(args, " "), "yaml") && !strings.Contains(out, "token: <redacted>") {
			t.Errorf("citadel %s does not show the key as redacted:\n%s", strings.Join(args, " "), out)
		}
	}
	seen.WriteString(srv.logs.String())
	for _, v := range []string{token, b64} {
		if strings.Contains(seen.String(), v) {
			t.Fatalf("a secret value was shown or logged:\n%s", seen.String())
		}
	}
	// The model now finds its token.
	eventually(t, func() string {
		out := mustRun(t, srv.addr, "describe", "model", "mimo-vl-7b-rl")
		if !strings.Contains(out, "CredentialsReady  True    SecretFound") {
			return "describe model after secret create:\n" + out
		}
		return ""
	})
	// Applying a redacted copy back is refused rather than storing the placeholder.
	y := mustRun(t, srv.addr, "get", "secret", "other", "-o", "yaml")
	r = citadel(t, srv.addr, y, "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "data.token: is the redaction placeholder") {
		t.Fatalf("re-applying a redacted secret: %+v", r)
	}
}

func TestNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := citadel(t, addr, "", "get", "models")
	if r.code != 1 || !strings.Contains(r.stderr, "no citadel server at "+addr+": start it with `citadel serve`") {
		t.Fatalf("%+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"get"}, {"get", "gizmos"}, {"describe", "model"}, {"apply"}, {"frobnicate"}, {"get", "models", "--bogus"},
		{"get", "models", "-o", "xml"}, {"secret", "create", "x"},
	} {
		r := citadel(t, "127.0.0.1:1", "", args...)
		if r.code != ExitUsage {
			t.Errorf("citadel %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, ExitUsage, r.stderr)
		}
	}
}

func TestAdminToken(t *testing.T) {
	srv := startServer(t, t.TempDir(), "s3cret-admin")
	r := citadel(t, srv.addr, "", "get", "models")
	if r.code != 1 || !strings.Contains(r.stderr, "missing or wrong admin token") {
		t.Fatalf("without token: %+v", r)
	}
	r = citadelEnv(t, map[string]string{"CITADEL_SERVER": srv.addr, "CITADEL_TOKEN": "s3cret-admin"}, "", "get", "models")
	if r.code != 0 {
		t.Fatalf("with token: %+v", r)
	}
	if strings.Contains(srv.logs.String(), "s3cret-admin") {
		t.Fatal("the admin token was logged")
	}
}

func TestDeleteAndEvents(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	mustRun(t, srv.addr, "apply", "-f", fixtures, "-R")
	out := mustRun(t, srv.addr, "delete", "-f", filepath.Join(fixtures, "samples"), "-R")
	if out != "inferenceservice.ome.io/mimo-vl-7b-rl deleted\n" {
		t.Fatalf("delete -f: %q", out)
	}
	r := citadel(t, srv.addr, "", "delete", "isvc", "mimo-vl-7b-rl", "-n", "mimo-vl-7b-rl")
	if r.code != 1 || !strings.Contains(r.stderr, `InferenceService "mimo-vl-7b-rl" not found in namespace "mimo-vl-7b-rl"`) {
		t.Fatalf("second delete: %+v", r)
	}
	out = mustRun(t, srv.addr, "events", "--for", "isvc/mimo-vl-7b-rl", "-n", "mimo-vl-7b-rl")
	if !strings.Contains(out, "Created") || !strings.Contains(out, "Deleted") {
		t.Fatalf("events of the deleted service:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	out := mustRun(t, srv.addr, "version")
	if !regexp.MustCompile(`(?m)^Client: citadel \S+ \(go1\.\S+\)\nServer: citadel \S+ \(go1\.\S+\) at 127\.0\.0\.1:\d+\n$`).MatchString(out) {
		t.Fatalf("version:\n%s", out)
	}
}

func TestGetWatch(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	model := "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: m}\nspec:\n  storage: {storageUri: \"hf://org/m\"}\n"
	mustApply := func(in string) {
		if r := citadel(t, srv.addr, in, "apply", "-f", "-"); r.code != 0 {
			t.Fatalf("apply: %+v", r)
		}
	}
	mustApply(model)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"get", "model", "m", "-w"}, strings.NewReader(""), out, io.Discard, func(k string) string {
			return map[string]string{"CITADEL_SERVER": srv.addr}[k]
		})
	}()
	eventually(t, func() string {
		if !strings.Contains(out.String(), "NAME") || !strings.Contains(out.String(), "\nm ") {
			return "no first row:\n" + out.String()
		}
		return ""
	})
	if _, err := citadelDelete(t, srv.addr, "model", "m"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if !strings.Contains(out.String(), "(deleted)") {
			return "no deleted row:\n" + out.String()
		}
		return ""
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("get -w exited %d", code)
	}
	if n := strings.Count(out.String(), "NAME"); n != 1 {
		t.Errorf("header printed %d times:\n%s", n, out.String())
	}
}

func citadelDelete(t *testing.T, addr string, args ...string) (string, error) {
	r := citadel(t, addr, "", append([]string{"delete"}, args...)...)
	if r.code != 0 {
		return "", fmt.Errorf("delete: %+v", r)
	}
	return r.stdout, nil
}

func TestTestCouldNotRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"test", "model", "mimo-vl-7b-rl", "--server", "127.0.0.1:1"},
		strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != 2 || !strings.Contains(stdout.String(), "COULD NOT RUN") || !strings.Contains(stdout.String(), "no citadel server at 127.0.0.1:1") {
		t.Errorf("exit %d; stdout %s; stderr %s", code, stdout.String(), stderr.String())
	}
	code = run(context.Background(), []string{"test", "model"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != ExitUsage {
		t.Errorf("no model: exit %d, want %d", code, ExitUsage)
	}
}
