package controller

import (
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
)

// nodeFacts is what the controller knows of one Node that exists.
type nodeFacts struct {
	name   string
	labels map[string]string
	// lease: the node has an agent Lease; renewed and expires are its
	// renewTime and renewTime + leaseDurationSeconds.
	lease            bool
	renewed, expires time.Time
}

func (n nodeFacts) live(now time.Time) bool { return n.lease && now.Before(n.expires) }

// modelFacts is what the status of a model is computed from, besides the nodes.
type modelFacts struct {
	kind, namespace, name string
	generation            int64
	storage               *v1.StorageSpec
	old                   v1.ModelStatus
}

// world is the cluster as the controller sees it at now: the existing nodes
// sorted by name and their entries of the model (of its uid, or of none).
type world struct {
	now       time.Time
	namespace string // Citadel's, where the Leases are
	nodes     []nodeFacts
	entries   map[string]kube.NodeEntry // by node
}

// node states, for a node in the model's scope (matched, or holding an entry).
const (
	stReady    = iota // an entry Ready (whether or not the agent still reports)
	stWorking         // a live agent's entry Pending, Downloading or Verifying
	stFailed          // a live agent's entry Failed
	stAwaiting        // a live agent, no entry yet
	stStale           // an agent Lease that expired, or an entry and no Lease
	stNoAgent         // matched, no Lease and no entry
)

type scoped struct {
	n     nodeFacts
	state int
	entry *kube.NodeEntry
}

// aggregate computes a model's status from the nodes' entries and the agents'
// Leases (docs/design/0007-kubernetes.md) and says when to look again: at the
// next Lease expiry, and every resync while the model is not Ready.
func aggregate(m modelFacts, w world, resync time.Duration) (v1.ModelStatus, time.Duration) {
	now := w.now
	sel, selErr := kube.ModelNodeSelection(m.storage)
	var scope []scoped
	var agents []string // nodes with a live agent
	var nextExpiry time.Time
	for _, n := range w.nodes {
		live := n.live(now)
		if live {
			agents = append(agents, n.name)
		}
		e, has := w.entries[n.name]
		matched := selErr == nil && sel.Matches(n.name, n.labels)
		if !matched && !has {
			continue
		}
		s := scoped{n: n}
		if has {
			s.entry = &e
		}
		switch {
		case has && e.Citadel.Phase == v1.ModelReady:
			s.state = stReady
		case !live && (has || n.lease):
			s.state = stStale
		case !live:
			s.state = stNoAgent
		case !has:
			s.state = stAwaiting
		case e.Citadel.Phase == v1.ModelFailed:
			s.state = stFailed
		default:
			s.state = stWorking
		}
		if live && (nextExpiry.IsZero() || n.expires.Before(nextExpiry)) {
			nextExpiry = n.expires
		}
		scope = append(scope, s)
	}
	in := func(states ...int) []scoped {
		var out []scoped
		for _, s := range scope {
			if slices.Contains(states, s.state) {
				out = append(out, s)
			}
		}
		return out
	}
	ready, working, failed, awaiting, stale := in(stReady), in(stWorking), in(stFailed), in(stAwaiting), in(stStale)

	st := v1.ModelStatus{State: "In_Transit"}
	st.ObservedGeneration = m.generation
	for _, s := range scope {
		if s.entry == nil {
			continue
		}
		st.Nodes = append(st.Nodes, s.entry.Citadel)
		switch s.entry.Citadel.Phase {
		case v1.ModelReady:
			st.NodesReady = append(st.NodesReady, s.n.name)
		case v1.ModelFailed:
			st.NodesFailed = append(st.NodesFailed, s.n.name)
		}
	}
	// Bytes and files: the sums over the nodes still working.
	for _, s := range working {
		c := s.entry.Citadel
		st.BytesDone += c.BytesDone
		st.BytesTotal += c.BytesTotal
		st.BytesPerSecond += c.BytesPerSecond
		if p := s.entry.Progress; p != nil {
			st.FilesDone += p.CompletedFiles
			st.FilesTotal += p.TotalFiles
		}
		if c.LastProgressTime != nil && (st.LastProgressTime == nil || c.LastProgressTime.After(st.LastProgressTime.Time)) {
			st.LastProgressTime = c.LastProgressTime
		}
	}

	switch {
	case selErr != nil:
		st.Phase, st.State, st.Reason = v1.ModelFailed, "Failed", v1.ReasonNoAgentOnMatchingNodes
		st.Message = fmt.Sprintf("%v: fix the model's node selection and re-apply it", selErr)
	case len(ready) > 0:
		st.Phase, st.State, st.Reason = v1.ModelReady, "Ready", v1.ReasonReady
		if len(working) == 0 {
			c := ready[0].entry.Citadel
			st.BytesDone, st.BytesTotal = c.BytesTotal, c.BytesTotal
			if p := ready[0].entry.Progress; p != nil {
				st.FilesDone, st.FilesTotal = p.TotalFiles, p.TotalFiles
			}
		}
		if len(ready) == len(scope) {
			st.Message = "ready on " + list(names(ready)) + staleNote(ready, now)
		} else {
			st.Message = fmt.Sprintf("%d of %d %s ready; %s", len(ready), len(scope), plural(len(scope), "node"), details(scope, now))
		}
	case len(working) > 0:
		best := working[0]
		for _, s := range working[1:] {
			if rank(s.entry.Citadel.Phase) > rank(best.entry.Citadel.Phase) {
				best = s
			}
		}
		st.Phase, st.Reason = best.entry.Citadel.Phase, best.entry.Citadel.Reason
		st.Message = fmt.Sprintf("0 of %d %s ready; %s", len(scope), plural(len(scope), "node"), details(scope, now))
		if len(scope) == 1 { // the model's phase and reason are the node's
			st.Message = oneNode(best)
		}
	case len(failed)+len(awaiting) == 0 && len(stale) > 0:
		st.Phase, st.Reason = v1.ModelPending, v1.ReasonAgentNotReporting
		var parts []string
		for _, s := range stale {
			parts = append(parts, s.n.name+": "+detail(s, now))
		}
		st.Message = fmt.Sprintf("no agent reports from the nodes of this model; %s; no other node it is meant for has a live agent. %s",
			strings.Join(parts, "; "), agentHint(w.namespace, stale[0].n.name))
	case len(failed)+len(awaiting) == 0:
		st.Phase, st.Reason = v1.ModelPending, v1.ReasonNoAgentOnMatchingNodes
		st.Message = noAgentMessage(sel, w, scope, agents)
	case len(awaiting) > 0:
		st.Phase, st.Reason = v1.ModelPending, v1.ReasonAwaitingAgent
		st.Message = fmt.Sprintf("the agents on %s run but have not reported the model yet; they pick it up on their next pass", list(names(awaiting)))
		if len(awaiting) == 1 {
			st.Message = fmt.Sprintf("the agent on %s runs but has not reported the model yet; it picks it up on its next pass", awaiting[0].n.name)
		}
		if len(failed)+len(stale) > 0 {
			st.Message += "; " + details(append(failed, stale...), now)
		}
	default: // every node with a live agent failed
		first := failed[0].entry.Citadel
		st.Phase, st.State, st.Reason = v1.ModelFailed, "Failed", first.Reason
		if st.Reason == "" {
			st.Reason = v1.ModelFailed
		}
		st.Message = fmt.Sprintf("failed on %d of %d %s; %s", len(failed), len(scope), plural(len(scope), "node"), details(scope, now))
		if len(scope) == 1 {
			st.Message = oneNode(failed[0])
		}
		if lf := first.LastFailure; lf != nil && lf.Secret != nil {
			if ref := lf.Secret.Namespace + "/" + lf.Secret.Name; !strings.Contains(st.Message, ref) {
				st.Message += " (secret " + ref + ")"
			}
		}
	}
	if st.Phase != v1.ModelReady {
		for _, s := range append(failed, working...) {
			if lf := s.entry.Citadel.LastFailure; lf != nil {
				st.LastFailure = lf
				break
			}
		}
	}
	setConditions(&st, m, now)

	var after time.Duration
	if !nextExpiry.IsZero() {
		after = nextExpiry.Sub(now) + 100*time.Millisecond
	}
	if st.Phase != v1.ModelReady && (after == 0 || resync < after) {
		after = resync
	}
	return st, after
}

// setConditions sets Ready and Downloaded (and CredentialsReady on a missing
// secret), keeping the transition times of the conditions that did not change.
func setConditions(st *v1.ModelStatus, m modelFacts, now time.Time) {
	for _, c := range m.old.Conditions {
		if c.Type == v1.CondReady || c.Type == v1.CondDownloaded || (c.Type == v1.CondCredentialsReady && st.Reason == v1.ReasonSecretNotFound) {
			st.Conditions = append(st.Conditions, c)
		}
	}
	set := func(typ string, status v1.ConditionStatus, reason string) {
		v1.SetCondition(&st.Conditions, v1.Condition{Type: typ, Status: status, Reason: reason, Message: st.Message, ObservedGeneration: m.generation}, now)
	}
	if st.Phase == v1.ModelReady {
		set(v1.CondDownloaded, v1.ConditionTrue, v1.ReasonDownloaded)
		set(v1.CondReady, v1.ConditionTrue, v1.ReasonReady)
	} else {
		set(v1.CondDownloaded, v1.ConditionFalse, st.Reason)
		set(v1.CondReady, v1.ConditionFalse, st.Reason)
	}
	if st.Reason == v1.ReasonSecretNotFound {
		set(v1.CondCredentialsReady, v1.ConditionFalse, st.Reason)
	}
	slices.SortStableFunc(st.Conditions, func(a, b v1.Condition) int { return condOrder(a.Type) - condOrder(b.Type) })
}

func condOrder(t string) int {
	return slices.Index([]string{v1.CondCredentialsReady, v1.CondDownloaded, v1.CondReady}, t)
}

func rank(phase string) int {
	return slices.Index([]string{v1.ModelPending, v1.ModelDownloading, v1.ModelVerifying}, phase)
}

// noAgentMessage says which nodes the model is meant for, which run agents,
// and what decides where agents run.
func noAgentMessage(sel kube.NodeSelection, w world, scope []scoped, agents []string) string {
	var b strings.Builder
	if len(scope) == 0 {
		all := make([]string, len(w.nodes))
		for i, n := range w.nodes {
			all[i] = n.name
		}
		if len(all) == 0 {
			b.WriteString("the cluster has no nodes")
		} else {
			fmt.Fprintf(&b, "no node matches %s (nodes: %s)", sel, list(all))
		}
	} else {
		fmt.Fprintf(&b, "no Citadel agent runs on the %s the model is meant for (%s; selected by %s): none has a live Lease %s<node> in namespace %s",
			plural(len(scope), "node"), list(names(scope)), sel, kube.AgentLeasePrefix, w.namespace)
	}
	if len(agents) == 0 {
		b.WriteString("; no node has a live agent")
	} else {
		fmt.Fprintf(&b, "; nodes with a live agent: %s", list(agents))
	}
	b.WriteString(". The chart's agent.nodeSelector and agent.affinity decide where agents run: make them cover the model's nodes, or change the model's storage.nodeSelector/nodeAffinity")
	return b.String()
}

func agentHint(ns, node string) string {
	return fmt.Sprintf("Check the agent pod on %s: kubectl -n %s get pods -o wide --field-selector spec.nodeName=%s", node, ns, node)
}

// details says, for each node that is not Ready, where it is.
func details(scope []scoped, now time.Time) string {
	var parts []string
	for _, s := range scope {
		if s.state == stReady {
			continue
		}
		parts = append(parts, s.n.name+": "+detail(s, now))
	}
	const max = 4
	if len(parts) > max {
		parts = append(parts[:max], fmt.Sprintf("and %d more (status.nodes)", len(parts)-max))
	}
	return strings.Join(parts, "; ")
}

func detail(s scoped, now time.Time) string {
	switch s.state {
	case stAwaiting:
		return "the agent has not reported the model yet"
	case stNoAgent:
		return "no agent runs there"
	case stStale:
		msg := "no agent runs there any more"
		if s.n.lease {
			// A time, not an age: the status stays the same until something changes.
			msg = fmt.Sprintf("the agent stopped reporting: its Lease expired at %s", s.n.expires.UTC().Format(time.RFC3339))
		}
		if s.entry != nil {
			msg += "; its last entry: " + entryText(s.entry.Citadel)
		}
		return msg
	}
	return entryText(s.entry.Citadel)
}

// oneNode is the message of a model on one node: the node's, naming it.
func oneNode(s scoped) string {
	c := s.entry.Citadel
	if c.Message == "" {
		return "node " + s.n.name + ": " + c.Phase
	}
	return "node " + s.n.name + ": " + c.Message
}

func entryText(c v1.NodeModelStatus) string {
	t := c.Phase
	if c.Reason != "" && c.Reason != c.Phase {
		t += " (" + c.Reason + ")"
	}
	if c.Message != "" {
		t += ": " + c.Message
	}
	return t
}

// staleNote names the Ready nodes whose agents no longer report.
func staleNote(ready []scoped, now time.Time) string {
	var s []string
	for _, r := range ready {
		if !r.n.live(now) {
			s = append(s, r.n.name)
		}
	}
	if len(s) == 0 {
		return ""
	}
	return fmt.Sprintf(" (the agents on %s do not report: their copies are as last reported)", list(s))
}

func names(s []scoped) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.n.name
	}
	return out
}

// list joins names, at most 10 of them.
func list(names []string) string {
	const max = 10
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
