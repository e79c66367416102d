package serving_test

import (
	"os"
	"testing"

	"citadel.dev/citadel/internal/sim/simtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	simtest.RemoveBuilt() // the citadel binary the tests that run engines as processes built
	os.Exit(code)
}
