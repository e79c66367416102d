//go:build !unix

package doctor

import "errors"

// OSStatfs is not implemented off Unix.
func OSStatfs(string) (uint64, uint64, error) {
	return 0, 0, errors.New("free space is not measured on this system")
}
