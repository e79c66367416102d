//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirLock is an exclusive flock on dir/LOCK. flock locks belong to the open file description, so a second
// Open in the same process conflicts exactly like a second process would.
type dirLock struct{ f *os.File }

// lockDir takes the lock without waiting and records our pid in the file for the error message another
// process will print. Go opens files close-on-exec, so engine processes we start do not inherit the lock.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
				pid = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("data directory %s is in use by another citadel process (pid %s): "+
				"stop it or pass a different --data-dir", dir, pid)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// The pid only feeds another process's error message; failing to write it does not weaken the lock.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &dirLock{f: f}, nil
}

// unlock releases the lock. The file stays: removing it would race with a process that just opened it.
func (l *dirLock) unlock() error {
	return l.f.Close() // closing the last descriptor releases the flock
}
