package agent

import (
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/mirror"
)

// A 429 whose Retry-After is longer than the pull waits in place (its stall timeout, 2 s here) ends the
// pull as RateLimited; the agent comes back when the server said, not on its ladder (an hour in these
// tests): two 429s with Retry-After: 3 reach Ready in about 6 s.
func TestRateLimitedRetriesAtRetryAfter(t *testing.T) {
	e := start(t, 2*time.Second)
	e.mirror.SetFaults("XiaomiMiMo/MiMo-VL-7B-RL", mirror.Fault{Kind: mirror.FaultRateLimit, On: mirror.OnAPI, RetryAfter: 3, Count: 2})
	e.apply(t, secret+"---\n"+fixtureYAML(t, t.TempDir()+"/m"))
	var sawRetryAfter bool
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := e.model(t, "mimo-vl-7b-rl")
		if m.Status.Phase == v1.ModelFailed && strings.Contains(m.Status.Message, "retrying in 3s (the server's Retry-After)") {
			sawRetryAfter = true
		}
		if m.Status.Phase == v1.ModelReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Ready after 30 s: %s %s: %s", m.Status.Phase, m.Status.Reason, m.Status.Message)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawRetryAfter {
		t.Error("no status said it would retry at the server's Retry-After")
	}
}
