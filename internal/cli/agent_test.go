package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// citadel agent refuses what it cannot run with, saying what to give it.
func TestAgentUsage(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{nil, []string{"agent"}, ExitUsage, "--node is required"},
		{nil, []string{"agent", "--node", "gpu-1", "--models-root", "models"}, ExitUsage, "absolute path"},
		{map[string]string{"NODE_NAME": "gpu-1"}, []string{"agent", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, ExitError, "pass --kubeconfig FILE"},
	} {
		r := citadelEnv(t, c.env, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("citadel %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.want)
		}
	}
}
