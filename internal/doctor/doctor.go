// Package doctor holds the checks of citadel doctor: is this host ready to run Citadel? Each
// check is a function of its inputs (a PATH lookup, a command runner, an HTTP client, a
// filesystem) so that tests can fake them, and returns Checks: one line each, with a status,
// what was checked, what was found and, when it is not ok, the fix. The command line
// (internal/cli/doctor.go) resolves the paths and addresses, runs the checks and prints them.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Status is a check's outcome. Only Fail makes citadel doctor exit 1.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one line of the report.
type Check struct {
	Name    string `json:"name"`          // short id: gpu, engine/vllm, disk/data-dir, hub, port/admin, server
	Status  Status `json:"status"`        // ok, warn or fail
	Checked string `json:"checked"`       // what was looked at: "nvidia-smi", "/root/.local/state/citadel"
	Finding string `json:"finding"`       // what was found
	Fix     string `json:"fix,omitempty"` // what to do, when not ok
}

// Failed reports whether any check failed.
func Failed(cs []Check) bool {
	for _, c := range cs {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// LookPath finds a program on PATH, as exec.LookPath.
type LookPath func(name string) (string, error)

// Runner runs a program and returns its combined output. It must stop when ctx ends.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRunner runs programs for real.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second // a child that keeps the pipes open does not hold the check
	return cmd.CombinedOutput()
}

// runErr says why a command failed: the timeout, or its exit and first output line.
func runErr(ctx context.Context, timeout time.Duration, err error, out []byte) string {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("did not answer within %s", timeout)
	}
	msg := err.Error()
	if l := firstLine(string(out)); l != "" {
		msg += ": " + l
	}
	return msg
}

// firstLine is the first non-empty line of s, trimmed and bounded.
func firstLine(s string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 200 {
				l = strings.ToValidUTF8(l[:200], "") + "…"
			}
			return l
		}
	}
	return ""
}
