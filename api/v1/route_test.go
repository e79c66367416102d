package v1

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouteObjectives(t *testing.T) {
	t.Parallel()
	route := func(spec string) *Route {
		t.Helper()
		var r Route
		if err := json.Unmarshal([]byte(`{"apiVersion":"citadel.dev/v1alpha1","kind":"Route","metadata":{"name":"r"},"spec":`+spec+`}`), &r); err != nil {
			t.Fatal(err)
		}
		r.Default()
		return &r
	}
	const target = `"targets":[{"service":"svc"}]`
	tests := []struct {
		name string
		spec string
		want FieldErrors
	}{
		{name: "route and model", spec: `{"objectives":{"availability":"99.9%","ttftP99":"2s"},"models":[{"name":"m",` + target + `,"objectives":{"ttftP50":"250ms"}}]}`},
		{name: "100 percent", spec: `{"objectives":{"availability":"100%"},"models":[{"name":"m",` + target + `}]}`},
		{name: "no percent sign", spec: `{"objectives":{"availability":"99.9"},"models":[{"name":"m",` + target + `}]}`,
			want: FieldErrors{{Path: "spec.objectives.availability", Message: `"99.9" is not a percentage`, Fix: `write the share of requests that must succeed as a percentage, e.g. "99.9%"`}}},
		{name: "above 100", spec: `{"objectives":{"availability":"101%"},"models":[{"name":"m",` + target + `}]}`,
			want: FieldErrors{{Path: "spec.objectives.availability", Message: `"101%" is not above 0% and at most 100%`, Fix: `write the share of requests that must succeed as a percentage, e.g. "99.9%"`}}},
		{name: "bad durations", spec: `{"models":[{"name":"m",` + target + `,"objectives":{"ttftP50":"2","ttftP99":"0s"}}]}`,
			want: FieldErrors{
				{Path: "spec.models[0].objectives.ttftP50", Message: `invalid duration "2": add a unit, e.g. 2s`},
				{Path: "spec.models[0].objectives.ttftP99", Message: "must be above zero", Fix: "write the time to first token to stay under, e.g. 2s"},
			}},
		{name: "empty", spec: `{"objectives":{},"models":[{"name":"m",` + target + `}]}`,
			want: FieldErrors{{Path: "spec.objectives", Message: "sets no objective", Fix: "set availability, ttftP50 or ttftP99, or remove objectives"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, route(tt.spec).Validate()); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAvailabilityRatio(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]float64{"99.9%": 0.999, " 99.5 % ": 0.995, "100%": 1, "": 0} {
		got, err := (&Objectives{Availability: in}).AvailabilityRatio()
		if err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("AvailabilityRatio(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
