package controller

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

// selection is the nodes a model is meant for: storage.nodeSelector and the
// required terms of storage.nodeAffinity, as the scheduler reads them.
type selection struct {
	labels map[string]string
	terms  []corev1.NodeSelectorTerm // nil: no required affinity
}

// nodeSelection reads a model's storage into a selection; the error says
// which field is wrong.
func nodeSelection(s *v1.StorageSpec) (selection, error) {
	if s == nil {
		return selection{}, nil
	}
	sel := selection{labels: s.NodeSelector}
	if len(s.NodeAffinity) == 0 || string(s.NodeAffinity) == "null" {
		return sel, nil
	}
	var na corev1.NodeAffinity
	if err := json.Unmarshal(s.NodeAffinity, &na); err != nil {
		return sel, fmt.Errorf("spec.storage.nodeAffinity: %w", err)
	}
	if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
		sel.terms = r.NodeSelectorTerms
		if sel.terms == nil {
			sel.terms = []corev1.NodeSelectorTerm{}
		}
	}
	return sel, nil
}

// matches says whether a node with this name and these labels is selected:
// every nodeSelector label, and one of the required affinity terms (each
// term's expressions and fields all hold; a term with none matches nothing,
// as in Kubernetes).
func (s selection) matches(name string, labels map[string]string) bool {
	for k, v := range s.labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	if s.terms == nil {
		return true
	}
	fields := map[string]string{"metadata.name": name}
	for _, t := range s.terms {
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
func (s selection) String() string {
	var parts []string
	if len(s.labels) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(s.labels)) {
			kv = append(kv, k+"="+s.labels[k])
		}
		parts = append(parts, "storage.nodeSelector "+strings.Join(kv, ","))
	}
	if s.terms != nil {
		var terms []string
		for _, t := range s.terms {
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
