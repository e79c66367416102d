package controller

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
)

// The model's status from its nodes, in the cases the API server test does not reach.
func TestAggregate(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	liveNode := func(name string) nodeFacts {
		return nodeFacts{name: name, lease: true, renewed: now.Add(-5 * time.Second), expires: now.Add(25 * time.Second)}
	}
	deadNode := func(name string) nodeFacts {
		return nodeFacts{name: name, lease: true, renewed: now.Add(-time.Minute), expires: now.Add(-30 * time.Second)}
	}
	entry := func(phase, reason, msg string) kube.NodeEntry {
		return kube.NodeEntry{Citadel: v1.NodeModelStatus{Phase: phase, Reason: reason, Message: msg}}
	}
	cases := []struct {
		name          string
		nodes         []nodeFacts
		entries       map[string]kube.NodeEntry
		phase, reason string
		msg           []string
		requeue       time.Duration
	}{
		{
			name:  "the furthest phase of the working nodes",
			nodes: []nodeFacts{liveNode("a"), liveNode("b")},
			entries: map[string]kube.NodeEntry{
				"a": entry(v1.ModelDownloading, v1.ReasonDownloading, "1/7 files"),
				"b": entry(v1.ModelVerifying, v1.ReasonVerifying, "checking"),
			},
			phase: v1.ModelVerifying, reason: v1.ReasonVerifying, msg: []string{"0 of 2 nodes ready; a: Downloading: 1/7 files; b: Verifying: checking"},
			requeue: 10 * time.Second,
		},
		{
			name:  "every live agent failed: the first failure",
			nodes: []nodeFacts{liveNode("a"), liveNode("b"), deadNode("c")},
			entries: map[string]kube.NodeEntry{
				"a": entry(v1.ModelFailed, v1.ReasonRepoNotFound, "no such repository"),
				"b": entry(v1.ModelFailed, v1.ReasonGatedRepo, "gated"),
			},
			phase: v1.ModelFailed, reason: v1.ReasonRepoNotFound, msg: []string{"failed on 2 of 3 nodes; a: Failed (RepoNotFound): no such repository", "c: the agent stopped reporting: its Lease expired at 2026-05-01T11:59:30Z"},
			requeue: 10 * time.Second,
		},
		{
			name:  "a missing secret is named even when the node's message does not",
			nodes: []nodeFacts{liveNode("a")},
			entries: map[string]kube.NodeEntry{"a": {Citadel: v1.NodeModelStatus{Phase: v1.ModelFailed, Reason: v1.ReasonSecretNotFound, Message: "the agent's service account may not read it",
				LastFailure: &v1.DownloadFailure{Reason: v1.ReasonSecretNotFound, Secret: &v1.FailureSecret{Namespace: "ome", Name: "hf-token"}}}}},
			phase: v1.ModelFailed, reason: v1.ReasonSecretNotFound, msg: []string{"node a: the agent's service account may not read it (secret ome/hf-token)"},
			requeue: 10 * time.Second,
		},
		{
			name:    "a failure while another agent has not reported",
			nodes:   []nodeFacts{liveNode("a"), liveNode("b")},
			entries: map[string]kube.NodeEntry{"a": entry(v1.ModelFailed, v1.ReasonRepoNotFound, "no such repository")},
			phase:   v1.ModelPending, reason: v1.ReasonAwaitingAgent, msg: []string{"the agent on b runs but has not reported", "a: Failed (RepoNotFound)"},
			requeue: 10 * time.Second,
		},
		{
			name:    "Ready on a node whose agent stopped",
			nodes:   []nodeFacts{deadNode("a")},
			entries: map[string]kube.NodeEntry{"a": entry(v1.ModelReady, v1.ReasonReady, "")},
			phase:   v1.ModelReady, reason: v1.ReasonReady, msg: []string{"ready on a (the agents on a do not report"},
		},
		{
			name:    "Ready: looked at again when a Lease expires",
			nodes:   []nodeFacts{liveNode("a")},
			entries: map[string]kube.NodeEntry{"a": entry(v1.ModelReady, v1.ReasonReady, "")},
			phase:   v1.ModelReady, reason: v1.ReasonReady, msg: []string{"ready on a"},
			requeue: 25*time.Second + 100*time.Millisecond,
		},
		{
			name:  "a node with an entry and no Lease",
			nodes: []nodeFacts{{name: "a"}},
			entries: map[string]kube.NodeEntry{
				"a": entry(v1.ModelDownloading, v1.ReasonDownloading, "1/7 files"),
			},
			phase: v1.ModelPending, reason: v1.ReasonAgentNotReporting, msg: []string{"a: no agent runs there any more; its last entry: Downloading"},
			requeue: 10 * time.Second,
		},
		{
			name:  "no nodes at all",
			phase: v1.ModelPending, reason: v1.ReasonNoAgentOnMatchingNodes, msg: []string{"the cluster has no nodes; no node has a live agent"},
			requeue: 10 * time.Second,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, after := aggregate(modelFacts{kind: v1.KindClusterBaseModel, name: "m", generation: 3}, world{now: now, namespace: "citadel", nodes: c.nodes, entries: c.entries}, 10*time.Second)
			if st.Phase != c.phase || st.Reason != c.reason {
				t.Errorf("phase %s, reason %s; want %s, %s (message %q)", st.Phase, st.Reason, c.phase, c.reason, st.Message)
			}
			for _, m := range c.msg {
				if !strings.Contains(st.Message, m) {
					t.Errorf("message %q does not say %q", st.Message, m)
				}
			}
			if after != c.requeue {
				t.Errorf("looked at again after %v, want %v", after, c.requeue)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d, want 3", st.ObservedGeneration)
			}
			if c := v1.FindCondition(st.Conditions, v1.CondReady); c == nil || c.Reason != st.Reason && st.Phase != v1.ModelReady {
				t.Errorf("condition Ready = %+v, want the status's reason", c)
			}
		})
	}
}

// The node selection (kube.ModelNodeSelection) is read as the scheduler reads
// required node affinity.
func TestModelNodeSelection(t *testing.T) {
	aff := func(s string) *v1.StorageSpec { return &v1.StorageSpec{NodeAffinity: json.RawMessage(s)} }
	gpu := map[string]string{"gpu": "h100", "mem": "80", "zone": "a"}
	cases := []struct {
		name    string
		storage *v1.StorageSpec
		node    string
		labels  map[string]string
		want    bool
	}{
		{"no selection", nil, "n", nil, true},
		{"nodeSelector", &v1.StorageSpec{NodeSelector: map[string]string{"gpu": "h100"}}, "n", gpu, true},
		{"nodeSelector, other value", &v1.StorageSpec{NodeSelector: map[string]string{"gpu": "a100"}}, "n", gpu, false},
		{"In", aff(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"gpu","operator":"In","values":["a100","h100"]}]}]}}`), "n", gpu, true},
		{"NotIn", aff(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"zone","operator":"NotIn","values":["a"]}]}]}}`), "n", gpu, false},
		{"DoesNotExist", aff(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"spot","operator":"DoesNotExist"}]}]}}`), "n", gpu, true},
		{"Gt", aff(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"mem","operator":"Gt","values":["40"]}]}]}}`), "n", gpu, true},
		{"Lt, equal", aff(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"mem","operator":"Lt","values":["80"]}]}]}}`), "n", gpu, false},
		{"terms are ORed", aff(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"gpu","operator":"In","values":["a100"]}]},{"matchFields":[{"key":"metadata.name","operator":"In","values":["n"]}]}]}}`), "n", gpu, true},
		{"an empty term matches nothing", aff(`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{}]}}`), "n", gpu, false},
		{"preferred terms only", aff(`{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"preference":{"matchExpressions":[{"key":"gpu","operator":"In","values":["a100"]}]}}]}`), "n", gpu, true},
	}
	for _, c := range cases {
		sel, err := kube.ModelNodeSelection(c.storage)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := sel.Matches(c.node, c.labels); got != c.want {
			t.Errorf("%s: matches = %v, want %v (%s)", c.name, got, c.want, sel)
		}
	}
	if _, err := kube.ModelNodeSelection(aff(`{"requiredDuringSchedulingIgnoredDuringExecution":"x"}`)); err == nil || !strings.Contains(err.Error(), "spec.storage.nodeAffinity") {
		t.Errorf("a wrong nodeAffinity: error %v, want one naming spec.storage.nodeAffinity", err)
	}
}
