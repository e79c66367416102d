package kube

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	v1 "citadel.dev/citadel/api/v1"
)

// NodeSelection is the nodes a model is meant for: storage.nodeSelector and
// the required terms of storage.nodeAffinity, as the scheduler reads them.
// The agents (which nodes pull it) and the controller (which nodes should
// report it) read it the same way.
type NodeSelection struct {
	Labels map[string]string
	Terms  []corev1.NodeSelectorTerm // nil: no required affinity
}

// ModelNodeSelection reads a model's storage into a NodeSelection; the error
// says which field is wrong.
func ModelNodeSelection(s *v1.StorageSpec) (NodeSelection, error) {
	if s == nil {
		return NodeSelection{}, nil
	}
	sel := NodeSelection{Labels: s.NodeSelector}
	if len(s.NodeAffinity) == 0 || string(s.NodeAffinity) == "null" {
		return sel, nil
	}
	var na corev1.NodeAffinity
	if err := json.Unmarshal(s.NodeAffinity, &na); err != nil {
		return sel, fmt.Errorf("spec.storage.nodeAffinity: %w", err)
	}
	if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
		sel.Terms = r.NodeSelectorTerms
		if sel.Terms == nil {
			sel.Terms = []corev1.NodeSelectorTerm{}
		}
	}
	return sel, nil
}

// Matches says whether a node with this name and these labels is selected:
// every nodeSelector label, and one of the required affinity terms (each
// term's expressions and fields all hold; a term with none matches nothing,
// as in Kubernetes).
func (s NodeSelection) Matches(name string, labels map[string]string) bool {
	for k, v := range s.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	if s.Terms == nil {
		return true
	}
	fields := map[string]string{"metadata.name": name}
	for _, t := range s.Terms {
		if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
			continue
		}
		if allMatch(t.MatchExpressions, labels) && allMatch(t.MatchFields, fields) {
			return true
		}
	}
	return false
}

func allMatch(reqs []corev1.NodeSelectorRequirement, set map[string]string) bool {
	for _, r := range reqs {
		v, ok := set[r.Key]
		switch r.Operator {
		case corev1.NodeSelectorOpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpExists:
			if !ok {
				return false
			}
		case corev1.NodeSelectorOpDoesNotExist:
			if ok {
				return false
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			if !ok || len(r.Values) != 1 {
				return false
			}
			have, err1 := strconv.ParseInt(v, 10, 64)
			want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
			if err1 != nil || err2 != nil {
				return false
			}
			if r.Operator == corev1.NodeSelectorOpGt && have <= want || r.Operator == corev1.NodeSelectorOpLt && have >= want {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// String says the selection in words, for messages.
func (s NodeSelection) String() string {
	var parts []string
	if len(s.Labels) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			kv = append(kv, k+"="+s.Labels[k])
		}
		parts = append(parts, "storage.nodeSelector "+strings.Join(kv, ","))
	}
	if s.Terms != nil {
		var terms []string
		for _, t := range s.Terms {
			var reqs []string
			for _, r := range t.MatchExpressions {
				reqs = append(reqs, requirement(r))
			}
			for _, r := range t.MatchFields {
				reqs = append(reqs, requirement(r))
			}
			terms = append(terms, "("+strings.Join(reqs, " and ")+")")
		}
		parts = append(parts, "storage.nodeAffinity "+strings.Join(terms, " or "))
	}
	if len(parts) == 0 {
		return "every node (no storage.nodeSelector or nodeAffinity)"
	}
	return strings.Join(parts, " and ")
}

func requirement(r corev1.NodeSelectorRequirement) string {
	switch r.Operator {
	case corev1.NodeSelectorOpExists:
		return r.Key
	case corev1.NodeSelectorOpDoesNotExist:
		return "!" + r.Key
	}
	return fmt.Sprintf("%s %s [%s]", r.Key, r.Operator, strings.Join(r.Values, ","))
}
