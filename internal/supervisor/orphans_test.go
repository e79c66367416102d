package supervisor

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCleanOrphans(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string // its first line of output is a pid that must end (or not)
		reaped bool   // the leader is gone already: the daemon's parent-death signal killed it
		skew   uint64 // added to the recorded start time: another process now has the pid
		killed bool
	}{{
		name:   "leader and grandchild alive",
		script: `sleep 1000 & echo $!; wait`,
		killed: true,
	}, {
		name:   "leader dead, grandchild alive",
		script: `sleep 1000 & echo $!`,
		reaped: true,
		killed: true,
	}, {
		name:   "pid reused",
		script: `echo $$; exec sleep 1000`,
		skew:   1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stateDir := t.TempDir()
			p, line := spawnOrphan(t, tt.script)
			target, err := strconv.Atoi(line)
			if err != nil {
				t.Fatalf("first line %q: %v", line, err)
			}
			st, err := readProcStat(p.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if tt.reaped {
				if _, err := p.Wait(); err != nil {
					t.Fatal(err)
				}
			}
			path := recordPath(stateDir, "default/orphan/0")
			rec := record{Name: "default/orphan/0", PID: p.Pid, PGID: p.Pid, StartTime: st.StartTime + tt.skew, BootID: readBootID(), Argv: []string{"sh"}}
			if err := writeRecord(path, rec); err != nil {
				t.Fatal(err)
			}

			killed, err := CleanOrphans(t.Context(), stateDir)
			if err != nil {
				t.Errorf("CleanOrphans: %v", err)
			}
			var want []int
			if tt.killed {
				want = []int{p.Pid}
			}
			if diff := cmp.Diff(want, killed); diff != "" {
				t.Errorf("killed groups (-want +got):\n%s", diff)
			}
			if alive(target) == tt.killed {
				t.Errorf("process %d alive = %v after CleanOrphans, want %v", target, alive(target), !tt.killed)
			}
			if tt.killed {
				if pids, _ := groupMembers(p.Pid); len(pids) > 0 {
					t.Errorf("process group %d still has %v", p.Pid, pids)
				}
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("record left behind: %v", err)
			}
		})
	}
}

func TestCleanOrphansRecords(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	// A group that is gone: its record is dropped without a signal.
	gone := record{Name: "gone", PID: 1 << 22, PGID: 1 << 22, StartTime: 1, Argv: []string{"x"}}
	if err := writeRecord(recordPath(stateDir, "gone"), gone); err != nil {
		t.Fatal(err)
	}
	// A record from before a reboot.
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	old := record{Name: "old", PID: os.Getpid(), PGID: os.Getpid(), StartTime: st.StartTime, BootID: "another-boot", Argv: []string{"x"}}
	if err := writeRecord(recordPath(stateDir, "old"), old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "corrupt.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "notes.txt"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	killed, err := CleanOrphans(t.Context(), stateDir)
	if len(killed) > 0 {
		t.Errorf("killed %v, want none", killed)
	}
	if err == nil || !strings.Contains(err.Error(), "corrupt.json") || !strings.Contains(err.Error(), "removed it") {
		t.Errorf("CleanOrphans error = %v, want one naming corrupt.json", err)
	}
	entries, _ := os.ReadDir(stateDir)
	if len(entries) != 1 || entries[0].Name() != "notes.txt" {
		t.Errorf("state directory holds %v, want only notes.txt", entries)
	}
	if took := time.Since(start); took > orphanGrace {
		t.Errorf("CleanOrphans took %v with nothing to kill", took)
	}

	if killed, err := CleanOrphans(t.Context(), filepath.Join(stateDir, "missing")); killed != nil || err != nil {
		t.Errorf("CleanOrphans of a missing directory = %v, %v; want nothing", killed, err)
	}
}
