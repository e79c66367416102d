package mirror

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the mirror starts (hashing, stalled bodies, Serve) ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
