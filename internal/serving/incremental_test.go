package serving_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// TestIncrementalPlacement: a second service is placed around a running one without touching
// it; editing a runtime restarts only the services that use it; a service that does not fit
// carries its own refusal, naming what holds the GPUs, and no other service shows it.
func TestIncrementalPlacement(t *testing.T) {
	cl := startServe(t, "2xrtx-4090")
	cl.apply(t, qwen(t, "qwen-a", "rt-a", "  engine: {name: vllm, args: [--max-model-len, \"8192\"]}"))
	cl.markReady(t, "qwen-a")
	a := waitPhase(cl, t, "qwen-a", 60*time.Second, v1.ServiceReady).Status.Endpoints[0]

	cl.apply(t, qwen(t, "qwen-b", "rt-b", "  engine: {name: vllm, args: [--max-model-len, \"8192\"]}"))
	cl.markReady(t, "qwen-b")
	b := waitPhase(cl, t, "qwen-b", 60*time.Second, v1.ServiceReady).Status.Endpoints[0]
	if got := cl.service(t, "default", "qwen-a").Status.Endpoints[0]; got.PID != a.PID || !slices.Equal(got.GPUs, a.GPUs) {
		t.Errorf("placing qwen-b moved qwen-a: PID %d → %d, GPUs %v → %v", a.PID, got.PID, a.GPUs, got.GPUs)
	}

	// A third service that does not fit: both GPUs are taken at 0.9 by the two engines.
	cl.apply(t, qwen(t, "qwen-c", "rt-c", "  engine: {name: vllm, args: [--max-model-len, \"8192\"]}"))
	cl.markReady(t, "qwen-c")
	c := cl.waitFor(t, "default", "qwen-c", 30*time.Second, "Unschedulable", func(s *v1.InferenceService) bool { return s.Status.Reason == "Unschedulable" })
	if !strings.Contains(c.Status.Message, "default/qwen-a") || !strings.Contains(c.Status.Message, "default/qwen-b") {
		t.Errorf("the refusal does not name what holds the GPUs:\n%s", c.Status.Message)
	}
	for _, n := range []string{"qwen-a", "qwen-b"} {
		if s := cl.service(t, "default", n); s.Status.Phase != v1.ServiceReady || strings.Contains(s.Status.Message, "qwen-c") {
			t.Errorf("%s: %s %q: a service carries another's refusal", n, s.Status.Phase, s.Status.Message)
		}
	}
	// citadel test model asks first: the same refusal, and nothing is applied.
	fit, err := cl.c.Fit(t.Context(), &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Name: "qwen-d"},
		Spec: v1.InferenceServiceSpec{Model: &v1.ModelRef{Name: "qwen-c"}, Runtime: &v1.ServingRuntimeRef{Name: "rt-c"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !fit.Checked || fit.Fits || fit.Reason != "Unschedulable" || !strings.Contains(fit.Message, "default/qwen-a") {
		t.Errorf("fit of one more service: %+v: want checked, not fitting, naming the holders", fit)
	}
	if _, err := cl.c.Get(t.Context(), v1.KindInferenceService, "default", "qwen-d"); err == nil {
		t.Error("the fit check applied the service")
	}
	if _, err := cl.c.Delete(t.Context(), v1.KindInferenceService, "default", "qwen-c", ""); err != nil {
		t.Fatal(err)
	}

	// Editing rt-a restarts qwen-a only.
	runtime := strings.Split(qwen(t, "qwen-a", "rt-a", "  engine: {name: vllm, args: [--max-model-len, \"4096\"]}"), "---\n")[1]
	cl.apply(t, runtime)
	cl.waitFor(t, "default", "qwen-a", 60*time.Second, "restarted with the new runtime", func(s *v1.InferenceService) bool {
		return s.Status.Phase == v1.ServiceReady && len(s.Status.Endpoints) == 1 && s.Status.Endpoints[0].PID != a.PID
	})
	if got := cl.service(t, "default", "qwen-b").Status.Endpoints[0]; got.PID != b.PID {
		t.Errorf("editing rt-a restarted qwen-b: PID %d → %d", b.PID, got.PID)
	}
}
