package kube

import (
	"encoding/json"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
)

func TestNodeSelection(t *testing.T) {
	a100 := map[string]string{"gpu": "a100", "zone": "1"}
	h100 := map[string]string{"gpu": "h100", "zone": "2", "spot": ""}
	for _, c := range []struct {
		name     string
		selector map[string]string
		affinity string
		a, h     bool
	}{
		{name: "nothing: every node", a: true, h: true},
		{name: "nodeSelector", selector: map[string]string{"gpu": "a100"}, a: true},
		{name: "In", affinity: `[{"matchExpressions":[{"key":"gpu","operator":"In","values":["h100","b200"]}]}]`, h: true},
		{name: "NotIn", affinity: `[{"matchExpressions":[{"key":"gpu","operator":"NotIn","values":["h100"]}]}]`, a: true},
		{name: "Exists", affinity: `[{"matchExpressions":[{"key":"spot","operator":"Exists"}]}]`, h: true},
		{name: "DoesNotExist", affinity: `[{"matchExpressions":[{"key":"spot","operator":"DoesNotExist"}]}]`, a: true},
		{name: "Gt", affinity: `[{"matchExpressions":[{"key":"zone","operator":"Gt","values":["1"]}]}]`, h: true},
		{name: "Lt", affinity: `[{"matchExpressions":[{"key":"zone","operator":"Lt","values":["2"]}]}]`, a: true},
		{name: "terms are ORed", affinity: `[{"matchExpressions":[{"key":"gpu","operator":"In","values":["a100"]}]},{"matchExpressions":[{"key":"zone","operator":"In","values":["2"]}]}]`, a: true, h: true},
		{name: "expressions are ANDed", affinity: `[{"matchExpressions":[{"key":"gpu","operator":"In","values":["a100"]},{"key":"zone","operator":"In","values":["2"]}]}]`},
		{name: "matchFields on the name", affinity: `[{"matchFields":[{"key":"metadata.name","operator":"In","values":["gpu-h"]}]}]`, h: true},
		{name: "an empty term matches nothing", affinity: `[{}]`},
		{name: "selector and affinity both hold", selector: map[string]string{"gpu": "a100"}, affinity: `[{"matchExpressions":[{"key":"zone","operator":"Gt","values":["1"]}]}]`},
	} {
		st := &v1.StorageSpec{NodeSelector: c.selector}
		if c.affinity != "" {
			st.NodeAffinity = json.RawMessage(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":` + c.affinity + `}}`)
		}
		sel, err := ModelNodeSelection(st)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := sel.Matches("gpu-a", a100); got != c.a {
			t.Errorf("%s (%s): gpu-a matches %v, want %v", c.name, sel, got, c.a)
		}
		if got := sel.Matches("gpu-h", h100); got != c.h {
			t.Errorf("%s (%s): gpu-h matches %v, want %v", c.name, sel, got, c.h)
		}
	}
	if _, err := ModelNodeSelection(&v1.StorageSpec{NodeAffinity: json.RawMessage(`{"requiredDuringSchedulingIgnoredDuringExecution":"no"}`)}); err == nil {
		t.Error("a malformed nodeAffinity was read")
	}
}
