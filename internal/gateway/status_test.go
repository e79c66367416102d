package gateway

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
)

// TestRouteStatus: the status a route gets from the table the gateway serves it with.
func TestRouteStatus(t *testing.T) {
	t.Parallel()
	vllm := rtSvc("default", "vl", rtEP(0, "127.0.0.1:9001", "vllm", true, "mimo-vl"))
	vllm.Status.Phase = v1.ServiceReady
	ollama := rtSvc("default", "ol", rtEP(0, "127.0.0.1:9002", "ollama", false, "deepcoder:14b"))
	ollama.Status.Phase = "Starting"
	idle := rtSvc("default", "idle") // never started: no endpoints
	idle.Status.Phase = "Unschedulable"
	taken := rtRoute("default", "a-first", v1.RouteModel{Name: "shared", Targets: rtTo("vl")})

	tests := []struct {
		name                  string
		route                 *v1.Route
		services              []*v1.InferenceService
		wantPhase, wantReason string
		wantMessage           string
	}{
		{
			name: "every target ready",
			route: rtRoute("default", "r", v1.RouteModel{Name: "chat", Aliases: []string{"c"}, Targets: rtTo("vl")},
				v1.RouteModel{Name: "ext", Targets: []v1.RouteTarget{{URL: "http://10.0.0.9:8000/v1"}}}),
			services:  []*v1.InferenceService{vllm},
			wantPhase: RoutePhaseReady, wantReason: v1.ReasonServing,
			wantMessage: "serves c (alias of chat), chat, ext on http://127.0.0.1:8080; 2 of 2 targets have ready replicas",
		},
		{
			name: "fallback not ready",
			route: rtRoute("default", "r", v1.RouteModel{Name: "auto", Tasks: []v1.TaskRule{
				{Task: v1.TaskVision, Targets: rtTo("vl"), Fallback: rtTo("ol")},
				{Task: v1.TaskCode, Targets: rtTo("ol", "idle")},
			}}),
			services:  []*v1.InferenceService{vllm, ollama, idle},
			wantPhase: RoutePhaseDegraded, wantReason: v1.ReasonNoReadyTargets,
			wantMessage: "serves auto on http://127.0.0.1:8080; 1 of 3 targets have ready replicas (none ready: default/ol (Starting), default/idle (Unschedulable))",
		},
		{
			name:      "missing service",
			route:     rtRoute("default", "r", v1.RouteModel{Name: "chat", Targets: rtTo("vl", "nope")}),
			services:  []*v1.InferenceService{vllm},
			wantPhase: RoutePhaseDegraded, wantReason: v1.ReasonServiceNotFound,
			wantMessage: "serves chat on http://127.0.0.1:8080; 1 of 2 targets have ready replicas (none ready: default/nope); " +
				"problems: models[0].targets[1].service: InferenceService default/nope does not exist; the target has no replicas until it does",
		},
		{
			name:      "name taken by another route",
			route:     rtRoute("default", "r", v1.RouteModel{Name: "shared", Targets: rtTo("vl")}),
			services:  []*v1.InferenceService{vllm},
			wantPhase: RoutePhaseDegraded, wantReason: v1.ReasonRouteProblems,
			wantMessage: "serves no name on http://127.0.0.1:8080; 1 of 1 targets have ready replicas; " +
				`problems: name "shared" is already used by route default/a-first; ignored here`,
		},
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.route.Generation = 3
			in := BuildInput{Routes: []*v1.Route{tt.route, taken}, Services: tt.services}
			tab, errs := Build(in)
			svcs := map[string]*v1.InferenceService{}
			for _, s := range tt.services {
				svcs[s.Namespace+"/"+s.Name] = s
			}
			st := RouteStatus(tt.route, tab, svcs, errs, "127.0.0.1:8080", now)
			if d := cmp.Diff(tt.wantPhase+" "+tt.wantReason+": "+tt.wantMessage, st.Phase+" "+st.Reason+": "+st.Message); d != "" {
				t.Errorf("status (-want +got):\n%s", d)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d, want 3", st.ObservedGeneration)
			}
			ready := v1.FindCondition(st.Conditions, "Ready")
			if ready == nil || (ready.Status == v1.ConditionTrue) != (tt.wantPhase == RoutePhaseReady) {
				t.Errorf("Ready condition %+v for phase %s", ready, st.Phase)
			}
			// The same table again is the same status: no write, no loop.
			tt.route.Status = st
			again := RouteStatus(tt.route, tab, svcs, errs, "127.0.0.1:8080", now.Add(time.Minute))
			if d := cmp.Diff(st, again); d != "" {
				t.Errorf("an unchanged table changed the status (-first +second):\n%s", d)
			}
		})
	}
}
