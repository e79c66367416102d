package examples

import (
	"os"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
)

// TestSeed001OnDemandLoads: the on-demand variant applies cleanly, and every service in it is
// on-demand.
func TestSeed001OnDemandLoads(t *testing.T) {
	items := load(t, os.DirFS("seed-001-on-demand"))
	if errs := config.Check(items, nil); errs.Err() != nil {
		t.Errorf("Check: %v", errs)
	}
	models := map[string]*v1.BaseModelSpec{}
	for _, it := range items {
		if m, ok := it.Object.(*v1.ClusterBaseModel); ok {
			models[m.Name] = &m.Spec
		}
	}
	n := 0
	for _, it := range items {
		if s, ok := it.Object.(*v1.InferenceService); ok {
			n++
			if !s.OnDemand(models[s.Spec.Model.Name]) {
				t.Errorf("service %s is not on-demand", s.Name)
			}
		}
	}
	if n != 4 {
		t.Errorf("%d services, want the four of seed-001", n)
	}
}
