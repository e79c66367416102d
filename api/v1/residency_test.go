package v1

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestResidencyValidate: each residency field is checked, with its path.
func TestResidencyValidate(t *testing.T) {
	tests := []struct {
		spec string // JSON of spec, beside model
		want string // "" for valid; else a substring of the errors
	}{
		{`{"residency":{}}`, ""},
		{`{"residency":{"idleTimeout":"10m","priority":5,"sleepLevel":1,"maxQueue":8,"maxWait":"30s"}}`, ""},
		{`{"residency":{"sleepLevel":"auto"}}`, ""},
		{`{"residency":{"sleepLevel":2},"engine":{"minReplicas":0}}`, ""},
		{`{"residency":{"idleTimeout":"10"}}`, `spec.residency.idleTimeout: invalid duration "10": add a unit, e.g. 10s`},
		{`{"residency":{"sleepLevel":3}}`, `spec.residency.sleepLevel: "3" is not a sleep level`},
		{`{"residency":{"sleepLevel":"deep"}}`, `spec.residency.sleepLevel: "deep" is not a sleep level`},
		{`{"residency":{"maxQueue":0}}`, `spec.residency.maxQueue: must be at least 1, got 0`},
		{`{"residency":{"maxWait":"0s"}}`, `spec.residency.maxWait: is 0`},
		{`{"residency":{},"engine":{"minReplicas":2}}`, `spec.engine.minReplicas: 2 with residency: an on-demand service runs one engine instance`},
	}
	for _, tt := range tests {
		var s InferenceService
		s.Name = "qwen"
		if err := json.Unmarshal([]byte(tt.spec), &s.Spec); err != nil {
			t.Fatalf("%s: %v", tt.spec, err)
		}
		s.Spec.Model = &ModelRef{Name: "qwen"}
		s.Default()
		errs := s.Validate()
		switch {
		case tt.want == "" && len(errs) > 0:
			t.Errorf("%s: %v, want valid", tt.spec, errs)
		case tt.want != "" && !strings.Contains(errs.Error(), tt.want):
			t.Errorf("%s: %v, want %q", tt.spec, errs, tt.want)
		}
	}
}

// TestOnDemand: spec.residency, or OME's servingMode On-demand on the model, makes a service
// on-demand; Dedicated beside it, or nothing, keeps it dedicated.
func TestOnDemand(t *testing.T) {
	s := &InferenceService{}
	for _, tt := range []struct {
		modes []string
		want  bool
	}{{nil, false}, {[]string{"On-demand"}, true}, {[]string{"Dedicated"}, false}, {[]string{"On-demand", "Dedicated"}, false}} {
		if got := s.OnDemand(&BaseModelSpec{ServingMode: tt.modes}); got != tt.want {
			t.Errorf("servingMode %v: OnDemand %v, want %v", tt.modes, got, tt.want)
		}
	}
	s.Spec.Residency = &ResidencySpec{}
	if !s.OnDemand(nil) {
		t.Error("spec.residency set: not on-demand")
	}
}
