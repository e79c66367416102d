package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	recordExt = ".json"
	// orphanGrace is how long CleanOrphans lets orphaned engines exit after
	// SIGTERM: nobody waits for their answers any more, so it is short.
	orphanGrace = 5 * time.Second
	// killTimeout is how long a process group may take to vanish after
	// SIGKILL (a GPU process can take seconds to release its memory) before
	// the supervisor reports it as surviving.
	killTimeout = 60 * time.Second
)

// record is what the state directory remembers of a process group that may
// be alive, so that a later daemon can stop it.
type record struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	PGID int    `json:"pgid"`
	// StartTime is field 22 of /proc/<pid>/stat (clock ticks after boot):
	// a pid is reused, a pid with its start time is not (within a boot).
	StartTime uint64    `json:"startTime"`
	BootID    string    `json:"bootID,omitempty"`
	Argv      []string  `json:"argv"`
	Started   time.Time `json:"started"`
}

func recordPath(stateDir, name string) string {
	return filepath.Join(stateDir, fileName(name)+recordExt)
}

// writeRecord writes rec to path atomically, readable by the owner only
// (argv can hold secrets).
func writeRecord(path string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing process record: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing process record %s: %w", path, err)
	}
	return nil
}

func readRecord(path string) (record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return record{}, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, fmt.Errorf("reading process record %s: %w", path, err)
	}
	if rec.PGID <= 1 {
		return record{}, fmt.Errorf("reading process record %s: invalid process group %d", path, rec.PGID)
	}
	return rec, nil
}

// alive reports whether the process group rec names still holds the
// processes it recorded. The leader (pid = pgid) proves it by its start time.
// A leader that is gone while its group lives on is what a daemon killed with
// SIGKILL leaves: the parent-death signal killed the leader, not its workers.
// The kernel does not reuse a pid while a group of that id exists, so such a
// group is the recorded one — unless the group died, the pid was reused for a
// new group leader and that leader died too; members started before the
// recorded leader rule out the rest.
func (rec record) alive(bootID string) bool {
	if rec.BootID != "" && bootID != "" && rec.BootID != bootID {
		return false // recorded before a reboot
	}
	if st, err := readProcStat(rec.PGID); err == nil {
		if st.StartTime != rec.StartTime {
			return false // the pid was reused
		}
		if !st.zombie() && st.PGID == rec.PGID {
			return true
		}
	}
	pids, err := groupMembers(rec.PGID)
	if err != nil || len(pids) == 0 {
		return false
	}
	for _, pid := range pids {
		if st, err := readProcStat(pid); err == nil && st.StartTime < rec.StartTime {
			return false
		}
	}
	return true
}

// CleanOrphans stops the engines a previous daemon started from stateDir and
// left behind (it was killed with SIGKILL, or crashed). A daemon calls it
// when it starts, before it starts engines of its own from the same state
// directory. For each record it sends SIGTERM to the recorded process group,
// waits up to 5 seconds, sends SIGKILL to what remains and waits for the
// group to be gone — but only when the group is provably the recorded one
// (the leader's start time in /proc/<pid>/stat matches the record; see
// record.alive): a record whose pid now belongs to another process is
// dropped without a signal. Records are removed once their group is gone.
// It returns the process groups it signalled; the error joins every record
// it could not read and every group that survived SIGKILL.
func CleanOrphans(ctx context.Context, stateDir string) ([]int, error) {
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleaning orphaned engines: %w", err)
	}
	bootID := readBootID()
	type target struct {
		rec  record
		path string
	}
	var (
		targets []target
		errs    []error
	)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), recordExt) {
			continue
		}
		path := filepath.Join(stateDir, e.Name())
		rec, err := readRecord(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			// It cannot be acted on, now or later: report it once.
			errs = append(errs, fmt.Errorf("%w (removed it)", err))
			os.Remove(path)
		case rec.alive(bootID):
			targets = append(targets, target{rec, path})
		default:
			os.Remove(path) // its processes are gone, or its pid was reused
		}
	}

	var killed []int
	for _, t := range targets {
		if err := signalGroup(t.rec.PGID, syscall.SIGTERM); err != nil {
			errs = append(errs, err)
		}
		killed = append(killed, t.rec.PGID)
	}
	deadline := time.Now().Add(orphanGrace)
	for _, t := range targets {
		if !waitGroupGone(ctx, t.rec.PGID, time.Until(deadline)) {
			if err := signalGroup(t.rec.PGID, syscall.SIGKILL); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, t := range targets {
		if !waitGroupGone(ctx, t.rec.PGID, killTimeout) {
			pids, _ := groupMembers(t.rec.PGID)
			why := errSurvived
			if ctx.Err() != nil {
				why = ctx.Err()
			}
			errs = append(errs, fmt.Errorf("orphaned engine %q (process group %d) survived SIGKILL: processes %v remain; its record %s is kept: %w",
				t.rec.Name, t.rec.PGID, pids, t.path, why))
			continue
		}
		os.Remove(t.path)
	}
	return killed, errors.Join(errs...)
}

// errSurvived explains a process group that outlived SIGKILL.
var errSurvived = errors.New("processes may be stuck in the kernel (state D): check them with ps, or reboot")
