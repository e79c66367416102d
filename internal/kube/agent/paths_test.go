package agent

import "testing"

func TestPaths(t *testing.T) {
	a := New(Options{HostPrefix: "/tmp/node-a/"})
	if got := a.host("/raid/models/hub"); got != "/tmp/node-a/raid/models/hub" {
		t.Errorf("host: %s", got)
	}
	for in, want := range map[string]string{
		"/tmp/node-a/raid/models/hub":                  "/raid/models/hub",
		"at /tmp/node-a/raid/models/x; storage.path y": "at /raid/models/x; storage.path y",
		"/tmp/node-ab/raid":                            "/tmp/node-ab/raid", // another directory
		"":                                             "",
	} {
		if got := a.unprefix(in); got != want {
			t.Errorf("unprefix(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		path string
		in   bool
	}{{"/raid/models", true}, {"/raid/models/org/m", true}, {"/raid/models-old/m", false}, {"/raid", false}, {"/raid/models/../x", false}} {
		if got := within("/raid/models", c.path); got != c.in {
			t.Errorf("within(/raid/models, %s) = %v", c.path, got)
		}
	}
	if !sameLabels(map[string]string{"gpu": "a", "models.ome.io/clusterbasemodel.m": "Ready"}, map[string]string{"gpu": "a"}) {
		t.Error("a model label counted as a change of the node's labels")
	}
	if sameLabels(map[string]string{"gpu": "a"}, map[string]string{"gpu": "b"}) || sameLabels(map[string]string{"gpu": "a"}, map[string]string{"gpu": "a", "zone": "1"}) {
		t.Error("a change of the node's labels not seen")
	}
}
