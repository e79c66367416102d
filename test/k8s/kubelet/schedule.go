package kubelet

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"citadel.dev/citadel/internal/kube"
)

// The scheduler's reasons, as kube-scheduler's filters say them.
const (
	reasonAffinity     = "node(s) didn't match Pod's node affinity/selector"
	reasonUnschedNode  = "node(s) were unschedulable"
	reasonInsufficient = "Insufficient " + kube.GPUResource
)

// schedule binds each unscheduled Pod of this package to a fake node that its node selector
// and required node affinity match and that has the GPUs it requests free (the least
// allocated such node), or marks it PodScheduled=False, Unschedulable, with the
// scheduler's message.
func (k *kubelet) schedule(ctx context.Context, st *state) {
	used := map[string]int64{}
	for _, p := range st.allPods {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			used[p.Spec.NodeName] += gpuRequest(p)
		}
	}
	var pending []*corev1.Pod
	for _, p := range st.mine {
		if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
			pending = append(pending, p)
		}
	}
	sort.Slice(pending, func(i, j int) bool {
		if !pending[i].CreationTimestamp.Equal(&pending[j].CreationTimestamp) {
			return pending[i].CreationTimestamp.Before(&pending[j].CreationTimestamp)
		}
		return pending[i].Name < pending[j].Name
	})
	var names []string
	for name := range st.nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, p := range pending {
		need := gpuRequest(p)
		best, bestFree := "", int64(-1)
		reasons := map[string]int{}
		for _, name := range names {
			n := st.nodes[name]
			free := gpuCapacity(n) - used[name]
			switch {
			case n.Spec.Unschedulable:
				reasons[reasonUnschedNode]++
			case !matchesNode(p, n):
				reasons[reasonAffinity]++
			case need > free:
				reasons[reasonInsufficient]++
			case free > bestFree:
				best, bestFree = name, free
			}
		}
		if best == "" {
			k.unschedulable(ctx, p, fitError(len(names), reasons))
			continue
		}
		err := k.core.Pods(p.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: best},
		}, metav1.CreateOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				k.logf("test kubelet: binding pod %s/%s to %s: %v", p.Namespace, p.Name, best, err)
			}
			continue
		}
		used[best] += need
		k.logf("test kubelet: pod %s/%s scheduled on %s", p.Namespace, p.Name, best)
		k.event(ctx, p, corev1.EventTypeNormal, "Scheduled", "default-scheduler", fmt.Sprintf("Successfully assigned %s/%s to %s", p.Namespace, p.Name, best))
	}
}

// fitError is kube-scheduler's message when no node fits: "0/2 nodes are available: 1
// Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector." (each
// reason counted, sorted).
func fitError(nodes int, reasons map[string]int) string {
	if nodes == 0 {
		return "no nodes available to schedule pods"
	}
	var parts []string
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return fmt.Sprintf("0/%d nodes are available: %s.", nodes, strings.Join(parts, ", "))
}

// unschedulable writes PodScheduled=False, reason Unschedulable, when it changed.
func (k *kubelet) unschedulable(ctx context.Context, p *corev1.Pod, msg string) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && c.Message == msg {
			return
		}
	}
	q := p.DeepCopy()
	q.Status.Phase = corev1.PodPending
	setPodCondition(&q.Status, corev1.PodScheduled, corev1.ConditionFalse, corev1.PodReasonUnschedulable, msg)
	if _, err := k.core.Pods(p.Namespace).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			k.logf("test kubelet: pod %s/%s status: %v", p.Namespace, p.Name, err)
		}
		return
	}
	k.logf("test kubelet: pod %s/%s unschedulable: %s", p.Namespace, p.Name, msg)
	k.event(ctx, p, corev1.EventTypeWarning, "FailedScheduling", "default-scheduler", msg)
}

// gpuRequest is the Pod's nvidia.com/gpu request: the sum over its containers of each one's
// request, or its limit (an extended resource's request defaults to its limit).
func gpuRequest(p *corev1.Pod) int64 {
	var n int64
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Requests[kube.GPUResource]; ok {
			n += q.Value()
		} else if q, ok := c.Resources.Limits[kube.GPUResource]; ok {
			n += q.Value()
		}
	}
	return n
}

func gpuCapacity(n *corev1.Node) int64 {
	if q, ok := n.Status.Allocatable[kube.GPUResource]; ok {
		return q.Value()
	}
	return 0
}

// matchesNode reports whether the Pod's node selector and the required terms of its node
// affinity match the node.
func matchesNode(p *corev1.Pod, n *corev1.Node) bool {
	for key, v := range p.Spec.NodeSelector {
		if got, ok := n.Labels[key]; !ok || got != v {
			return false
		}
	}
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if matchesTerm(term, n) {
			return true // terms are ORed
		}
	}
	return false
}

// matchesTerm: a term's expressions and fields are ANDed; a term with neither matches no node.
func matchesTerm(t corev1.NodeSelectorTerm, n *corev1.Node) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for _, r := range t.MatchExpressions {
		v, ok := n.Labels[r.Key]
		if !matchesRequirement(r, v, ok) {
			return false
		}
	}
	for _, r := range t.MatchFields {
		if r.Key != "metadata.name" || !matchesRequirement(r, n.Name, true) {
			return false
		}
	}
	return true
}

func matchesRequirement(r corev1.NodeSelectorRequirement, v string, ok bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return ok && slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return ok
	case corev1.NodeSelectorOpDoesNotExist:
		return !ok
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !ok || len(r.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}
