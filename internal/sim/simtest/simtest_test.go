package simtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A directory a test process left behind is deleted once that process has exited, not before.
func TestRemoveLeftBuilds(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	gone := exec.Command(os.Args[0], "-test.run=^$")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dir := func(pid int) string { return filepath.Join(tmp, fmt.Sprintf("%s%d-123", builtPrefix, pid)) }
	keep := []string{dir(os.Getpid()), dir(os.Getppid()), filepath.Join(tmp, "citadel-test-456"), filepath.Join(tmp, builtPrefix+"x-1")}
	left := dir(gone.Process.Pid)
	for _, d := range append(keep, left) {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeLeftBuilds()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("%s, of a process that has exited: %v, want it deleted", left, err)
	}
	for _, d := range keep {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v, want it kept (a live process's, or not Citadel's)", d, err)
		}
	}
}
