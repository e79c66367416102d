package serving

import (
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// TestConditions: the gates a service passed are True, the one it is stuck at says why, the
// ones after it wait; Ready follows the phase.
func TestConditions(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		st   v1.InferenceServiceStatus
		want string // type=status/reason of each gate, then Ready
	}{
		{"model not ready", v1.InferenceServiceStatus{Status: v1.Status{Phase: v1.ServicePending, Reason: v1.ReasonModelNotReady, Message: "m"}},
			"ModelReady=False/ModelNotReady RuntimeSelected=Unknown/Waiting Scheduled=Unknown/Waiting EngineReady=Unknown/Waiting Ready=False/ModelNotReady"},
		{"runtime selection failed", v1.InferenceServiceStatus{Status: v1.Status{Phase: v1.ServiceFailed, Reason: v1.ReasonNoSupportingRuntime, Message: "m"}},
			"ModelReady=True/ModelReady RuntimeSelected=False/NoSupportingRuntime Scheduled=Unknown/Waiting EngineReady=Unknown/Waiting Ready=False/NoSupportingRuntime"},
		{"unschedulable", v1.InferenceServiceStatus{Status: v1.Status{Phase: v1.ServicePending, Reason: v1.ReasonUnschedulable, Message: "m"}, Runtime: "vllm"},
			"ModelReady=True/ModelReady RuntimeSelected=True/RuntimeSelected Scheduled=False/Unschedulable EngineReady=Unknown/Waiting Ready=False/Unschedulable"},
		{"starting", v1.InferenceServiceStatus{Status: v1.Status{Phase: v1.ServiceStarting, Reason: v1.ReasonStarted, Message: "m"}, Runtime: "vllm"},
			"ModelReady=True/ModelReady RuntimeSelected=True/RuntimeSelected Scheduled=True/Scheduled EngineReady=False/Started Ready=False/Started"},
		{"ready", v1.InferenceServiceStatus{Status: v1.Status{Phase: v1.ServiceReady, Reason: v1.ReasonEngineReady, Message: "m"}, Runtime: "vllm"},
			"ModelReady=True/ModelReady RuntimeSelected=True/RuntimeSelected Scheduled=True/Scheduled EngineReady=True/EngineReady Ready=True/EngineReady"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			conditions(&st, 2, now)
			var got []string
			for _, c := range st.Conditions {
				got = append(got, c.Type+"="+string(c.Status)+"/"+c.Reason)
				if c.ObservedGeneration != 2 {
					t.Errorf("%s: observedGeneration %d", c.Type, c.ObservedGeneration)
				}
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("conditions\n got %s\nwant %s", g, tt.want)
			}
		})
	}
}
