package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStat is what the supervisor reads from /proc/<pid>/stat.
type procStat struct {
	State     byte   // R, S, D, Z, …
	PGID      int    // field 5, pgrp
	StartTime uint64 // field 22, clock ticks after boot: with the pid, identifies a process
}

// zombie: dead, only waiting to be reaped (Z), or being reaped (X).
func (s procStat) zombie() bool { return s.State == 'Z' || s.State == 'X' }

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses the contents of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may contain spaces and parentheses, so the
// fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat: too few fields")
	}
	pgid, err := strconv.Atoi(f[5-3])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: pgrp: %w", err)
	}
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: starttime: %w", err)
	}
	return procStat{State: f[0][0], PGID: pgid, StartTime: start}, nil
}

// groupMembers lists the live (not zombie) processes of process group pgid,
// by their /proc/<pid>/stat.
func groupMembers(pgid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.PGID != pgid || st.zombie() {
			continue // gone meanwhile, or not ours
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// groupGone reports whether no live process is left in group pgid. kill(2)
// answers quickly when the group is empty; otherwise /proc tells the live
// from the zombies (dead, but waiting for a parent that may never reap them).
func groupGone(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	pids, err := groupMembers(pgid)
	return err == nil && len(pids) == 0
}

// signalGroup sends sig to every process in group pgid. A group already gone
// is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sending %v to process group %d: %w", sig, pgid, err)
	}
	return nil
}

// waitGroupGone polls until group pgid is gone, ctx ends or timeout passes,
// and reports whether it is gone.
func waitGroupGone(ctx context.Context, pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		if groupGone(pgid) {
			return true
		}
		if time.Now().After(deadline) || sleepCtx(ctx, delay) != nil {
			return groupGone(pgid)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// portInUse reports whether a process listens on TCP port, on the loopback
// address the probes use or on any address an engine may bind.
func portInUse(ctx context.Context, port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
		c.Close()
		return true
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	l.Close()
	return false
}
