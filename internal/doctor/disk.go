package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is what the disk checks read of the filesystem.
type FS struct {
	Stat     func(path string) (fs.FileInfo, error)
	Statfs   func(dir string) (free, total uint64, err error) // bytes available to this user, and the size
	Writable func(dir string) error                           // nil when a file can be created in dir
}

// Disk thresholds: below FailFree nothing useful downloads; below WarnFree a 7B model in
// bf16 (about 15 GiB) may not fit.
const (
	FailFree = 1 << 30
	WarnFree = 20 << 30
)

// OSWritable creates and removes a temporary file in dir: the one test of permission that
// sees ACLs, read-only mounts and root alike.
func OSWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".citadel-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Dir checks one directory Citadel writes to: that it is a directory (or can be created,
// its nearest existing parent being writable), that this user can write there, and the
// space free on its filesystem. what names it ("data dir", "Hugging Face cache"), from says
// where the path comes from ("HF_HUB_CACHE", "default of citadel serve") and setting what to
// change to move it ("--data-dir or CITADEL_DATA_DIR").
func Dir(fsys FS, name, what, path, from, setting string) Check {
	c := Check{Name: "disk/" + name, Checked: fmt.Sprintf("%s %s (%s)", what, path, from)}
	if path == "" {
		c.Status, c.Finding, c.Fix = Warn, "no path: HOME is not set", "set "+setting
		return c
	}
	dir, created := path, false
	for {
		fi, err := fsys.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				c.Status = Fail
				c.Finding = dir + " is not a directory"
				c.Fix = "remove or move " + dir + ", or set " + setting + " to another directory"
				return c
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			c.Status, c.Finding = Fail, err.Error()
			c.Fix = "check the permissions of the directories above " + path + ", or set " + setting + " to another directory"
			return c
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir, created = parent, true
	}
	if err := fsys.Writable(dir); err != nil {
		c.Status = Fail
		c.Finding = "not writable by this user: " + err.Error()
		if created {
			c.Finding = fmt.Sprintf("does not exist and cannot be created: %s is not writable by this user: %v", dir, err)
		}
		c.Fix = "chown or chmod " + dir + " for the user that runs citadel, or set " + setting + " to a writable directory"
		return c
	}
	free, total, err := fsys.Statfs(dir)
	state := "writable"
	if created {
		state = "does not exist yet (created on first use under " + dir + ", which is writable)"
	}
	if err != nil {
		c.Status, c.Finding = Warn, state+"; free space unknown: "+err.Error()
		c.Fix = "check the filesystem with df " + dir
		return c
	}
	c.Finding = fmt.Sprintf("%s; %s free of %s", state, gib(free), gib(total))
	switch {
	case free < FailFree:
		c.Status = Fail
		c.Fix = "free space on " + dir + ", or set " + setting + " to a larger disk"
	case free < WarnFree:
		c.Status = Warn
		c.Fix = "a 7B model in bf16 takes about 15 GiB: free space on " + dir + ", or set " + setting + " to a larger disk"
	default:
		c.Status = OK
	}
	return c
}

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
