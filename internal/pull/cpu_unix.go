//go:build unix

package pull

import (
	"syscall"
	"time"
)

// cpuUsed is the CPU time (user and system) this process has used.
func cpuUsed() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
