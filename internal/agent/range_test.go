package agent

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/store"
)

// A mirror that ignores Range still serves the model: it reaches Ready,
// with one RangeIgnored warning event per file it served so.
func TestServerIgnoringRangeIsOneWarning(t *testing.T) {
	e := start(t, 5*time.Second)
	e.mirror.SetFaults("XiaomiMiMo/MiMo-VL-7B-RL", mirror.Fault{Kind: mirror.FaultIgnoreRange, Files: "model.safetensors"})
	e.apply(t, secret+"---\n"+fixtureYAML(t, filepath.Join(e.dir, "m")))
	m := e.waitPhase(t, "mimo-vl-7b-rl", 30*time.Second, v1.ModelReady, v1.ModelFailed)
	if m.Status.Phase != v1.ModelReady {
		t.Fatalf("phase %s reason %s: %s", m.Status.Phase, m.Status.Reason, m.Status.Message)
	}
	evs, err := e.st.Events(t.Context(), store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.Reason == pull.ReasonRangeIgnored {
			got = append(got, ev.Type+": "+ev.Message)
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], v1.EventWarning+": ") || !strings.Contains(got[0], "model.safetensors") || !strings.Contains(got[0], "ignores Range") {
		t.Fatalf("RangeIgnored events: %q, want one warning naming model.safetensors", got)
	}
}
