//go:build unix

package doctor

import "syscall"

// OSStatfs is the space available to this user on dir's filesystem, and its size.
func OSStatfs(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}
