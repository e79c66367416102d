// Package npmtest runs the official JavaScript clients in test/interop (npm ci --prefix
// test/interop) from Go tests.
package npmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Dir is this module's test/interop with the packages (paths below node_modules, e.g. "openai",
// "@huggingface/hub") installed and node on PATH. Otherwise the test is skipped, or fails
// when CITADEL_REQUIRE_NPM=1 (CI), with the command that installs them.
func Dir(t testing.TB, packages ...string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatalf("no go.mod above %s", wd)
		}
		root = parent
	}
	dir := filepath.Join(root, "test", "interop")
	missing := func(why string) {
		if os.Getenv("CITADEL_REQUIRE_NPM") == "1" {
			t.Fatalf("%s (CITADEL_REQUIRE_NPM=1); run: npm ci --prefix test/interop", why)
		}
		t.Skipf("%s; run npm ci --prefix test/interop to enable this test", why)
	}
	for _, pkg := range packages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(pkg), "package.json")); err != nil {
			missing("test/interop/node_modules/" + pkg + " is not installed")
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not on PATH")
	}
	return dir
}

// Run runs node with args in dir (a minute at most) and decodes the JSON it prints.
func Run[T any](t testing.TB, dir string, args ...string) T {
	t.Helper()
	return RunWith[T](t, dir, Options{}, args...)
}

// Options are RunWith's: the environment and the time limit of one node process.
type Options struct {
	// Env is node's whole environment. Default is nil: this process's environment.
	Env []string
	// Timeout ends node when it runs longer. Default is 0: a minute.
	Timeout time.Duration
}

// RunWith runs node with args in dir, as opts say, and decodes the JSON it prints.
func RunWith[T any](t testing.TB, dir string, opts Options, args ...string) T {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Env = opts.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: still running after %s", err, opts.Timeout)
		}
		t.Fatalf("node %v: %v\n%s", args, err, stderr.String())
	}
	var v T
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatalf("node %v printed no JSON: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.Bytes(), stderr.String())
	}
	return v
}
