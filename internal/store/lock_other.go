//go:build !unix

package store

// dirLock does nothing on platforms without flock; citadel serve is only supported on unix.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) unlock() error { return nil }
