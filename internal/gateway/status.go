package gateway

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Route phases the gateway writes: it is the one component that knows whether a route is
// served, and by what. Its reasons are api/v1's (ReasonServing, ReasonServiceNotFound,
// ReasonRouteProblems, ReasonNoReadyTargets).
const (
	RoutePhaseReady    = "Ready"
	RoutePhaseDegraded = "Degraded"
)

// RouteStatus is the status of route r as served from t, the table built from it: which
// public names the gateway serves for it (at addr, when known), how many of its targets have
// ready replicas, and the problems Build reported for it (errs; other routes' are skipped).
// services are the InferenceServices t was built from, by "namespace/name". It is pure;
// conditions keep their transition time from r.Status while their status holds.
func RouteStatus(r *v1.Route, t *Table, services map[string]*v1.InferenceService, errs []error, addr string, now time.Time) v1.Status {
	rkey := routeKey(r)
	st := r.Status

	// The names this route won, in the table's order (sorted).
	var names []string
	for _, m := range t.Models() {
		if m.Route != rkey {
			continue
		}
		if m.AliasOf != "" {
			names = append(names, fmt.Sprintf("%s (alias of %s)", m.ID, m.AliasOf))
		} else {
			names = append(names, m.ID)
		}
	}

	// Its targets, once each: the destinations of its models and of their task rules.
	type tgt struct {
		name  string
		ready bool
	}
	var targets []tgt
	seen := map[string]int{}
	addDest := func(d *Destination) {
		if d == nil {
			return
		}
		for _, tg := range append(slices.Clone(d.Targets), d.Fallback...) {
			if i, ok := seen[tg.Name]; ok {
				targets[i].ready = targets[i].ready || len(tg.Replicas) > 0
				continue
			}
			seen[tg.Name] = len(targets)
			targets = append(targets, tgt{name: tg.Name, ready: len(tg.Replicas) > 0})
		}
	}
	if t != nil {
		locals := make([]string, 0, len(t.local))
		for k := range t.local {
			if strings.HasPrefix(k, rkey+"\x00") {
				locals = append(locals, k)
			}
		}
		slices.Sort(locals)
		for _, k := range locals {
			e := t.local[k]
			addDest(e.Dest)
			for i := range e.Tasks {
				addDest(e.Tasks[i].Dest)
			}
		}
	}
	ready := 0
	var waiting []string
	for _, tg := range targets {
		if tg.ready {
			ready++
			continue
		}
		w := tg.name
		if s := services[tg.name]; s != nil {
			w += " (" + cmp.Or(s.Status.Phase, "not yet reconciled") + ")"
		}
		waiting = append(waiting, w)
	}

	var missing []string
	for _, ref := range r.References() {
		k := cmp.Or(ref.Namespace, v1.DefaultNamespace) + "/" + ref.Name
		if services[k] == nil && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	var problems []string
	prefix := "route " + rkey + ": "
	for _, err := range errs {
		if p, ok := strings.CutPrefix(err.Error(), prefix); ok {
			problems = append(problems, p)
		}
	}

	var msg strings.Builder
	if len(names) == 0 {
		msg.WriteString("serves no name")
	} else {
		msg.WriteString("serves " + strings.Join(names, ", "))
	}
	if addr != "" {
		msg.WriteString(" on http://" + addr)
	}
	fmt.Fprintf(&msg, "; %d of %d targets have ready replicas", ready, len(targets))
	if len(waiting) > 0 {
		msg.WriteString(" (none ready: " + strings.Join(waiting, ", ") + ")")
	}
	if len(problems) > 0 {
		fmt.Fprintf(&msg, "; problems: %s", strings.Join(problems, "; "))
	}

	phase, reason := RoutePhaseReady, v1.ReasonServing
	switch {
	case len(missing) > 0:
		phase, reason = RoutePhaseDegraded, v1.ReasonServiceNotFound
	case len(problems) > 0 || len(names) == 0:
		phase, reason = RoutePhaseDegraded, v1.ReasonRouteProblems
	case len(waiting) > 0:
		phase, reason = RoutePhaseDegraded, v1.ReasonNoReadyTargets
	}
	targetsOK := v1.ConditionTrue
	if len(waiting) > 0 || len(missing) > 0 {
		targetsOK = v1.ConditionFalse
	}
	readyOK := v1.ConditionTrue
	if phase != RoutePhaseReady {
		readyOK = v1.ConditionFalse
	}
	tmsg := fmt.Sprintf("%d of %d targets have ready replicas", ready, len(targets))
	if len(missing) > 0 {
		tmsg += "; services not found: " + strings.Join(missing, ", ")
	}
	st.Conditions = slices.Clone(st.Conditions)
	v1.SetCondition(&st.Conditions, v1.Condition{Type: v1.CondTargetsReady, Status: targetsOK, Reason: reason, Message: tmsg, ObservedGeneration: r.Generation}, now)
	v1.SetCondition(&st.Conditions, v1.Condition{Type: v1.CondReady, Status: readyOK, Reason: reason, Message: msg.String(), ObservedGeneration: r.Generation}, now)
	st.Phase, st.Reason, st.Message, st.ObservedGeneration = phase, reason, msg.String(), r.Generation
	return st
}
