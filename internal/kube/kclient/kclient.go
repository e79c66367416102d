// Package kclient lets `citadel test` drive a Kubernetes cluster as it drives `citadel
// serve`: it implements modeltest.Server over the API server (apply, get, list, delete,
// events, engine logs) and adds the cluster's evidence to a failed step: the agents'
// Leases, the nodes' model labels and entries, the engine Deployment's conditions and its
// pods' states and events.
package kclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/modeltest"
)

// FieldManager owns what a test applies.
const FieldManager = "citadel-test"

// Cluster is a modeltest.Server and modeltest.ClusterEvidence over one API server.
type Cluster struct {
	host string
	dyn  dynamic.Interface
	cs   kubernetes.Interface
	// Namespace is Citadel's own namespace (agent Leases, per-node ConfigMaps).
	Namespace string
	Now       func() time.Time
}

var (
	_ modeltest.Server          = (*Cluster)(nil)
	_ modeltest.ClusterEvidence = (*Cluster)(nil)
)

// New connects to the API server of cfg; namespace is Citadel's own ("" : kube.Namespace()).
func New(cfg *rest.Config, namespace string) (*Cluster, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		namespace = kube.Namespace()
	}
	return &Cluster{host: cfg.Host, dyn: dyn, cs: cs, Namespace: namespace, Now: time.Now}, nil
}

func (c *Cluster) resource(kind, namespace string) (dynamic.ResourceInterface, v1.KindInfo, error) {
	info, err := v1.LookupKind(kind)
	if err != nil {
		return nil, info, err
	}
	gvr, err := kube.GVR(info.Kind)
	if err != nil {
		return nil, info, err
	}
	if !info.Namespaced {
		return c.dyn.Resource(gvr), info, nil
	}
	if namespace == "" {
		namespace = v1.DefaultNamespace
	}
	return c.dyn.Resource(gvr).Namespace(namespace), info, nil
}

// convert maps the API server's errors onto the client's: NotFound and the other status
// errors become *client.APIError with their code, a server that cannot be reached
// *client.UnreachableError.
func (c *Cluster) convert(err error) error {
	if err == nil {
		return nil
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		return &client.APIError{ErrorResponse: v1.ErrorResponse{Code: int(s.Code), Reason: string(s.Reason), Message: s.Message}}
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return &client.UnreachableError{Address: c.host, Err: err, Hint: "check --kubeconfig and that the cluster's API server answers (kubectl get nodes)"}
	}
	return err
}

// Apply applies every item with server-side apply, as `kubectl apply --server-side` would.
// It is not atomic: items are applied in order and the first refusal stops it.
func (c *Cluster) Apply(ctx context.Context, req v1.ApplyRequest) (*v1.ApplyResponse, error) {
	resp := &v1.ApplyResponse{DryRun: req.DryRun}
	for _, it := range req.Items {
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(it.Object, &u.Object); err != nil {
			return nil, fmt.Errorf("apply: item is not a JSON object: %w", err)
		}
		info, err := v1.LookupKind(u.GetKind())
		if err != nil {
			return nil, err
		}
		if u.GetAPIVersion() == "" {
			u.SetAPIVersion(info.APIVersion)
		}
		unstructured.RemoveNestedField(u.Object, "status")
		u.SetResourceVersion("")
		ri, _, err := c.resource(info.Kind, u.GetNamespace())
		if err != nil {
			return nil, err
		}
		before, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		existed := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, c.convert(err)
		}
		body, err := json.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		opts := metav1.PatchOptions{FieldManager: FieldManager, Force: new(true)}
		if req.DryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		after, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", strings.ToLower(info.Kind), u.GetName(), c.convert(err))
		}
		action := "created"
		if existed {
			action = "configured"
			if before.GetResourceVersion() == after.GetResourceVersion() {
				action = "unchanged"
			}
		}
		resp.Results = append(resp.Results, v1.ApplyResult{Kind: info.Kind, Namespace: after.GetNamespace(), Name: after.GetName(),
			Action: action, Generation: after.GetGeneration(), ResourceVersion: after.GetResourceVersion()})
	}
	return resp, nil
}

// Get returns one object.
func (c *Cluster) Get(ctx context.Context, kind, namespace, name string) (v1.Object, error) {
	ri, _, err := c.resource(kind, namespace)
	if err != nil {
		return nil, err
	}
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, c.convert(err)
	}
	return kube.Decode(u)
}

// List returns the objects of kind; opts.Namespace "" lists every namespace.
func (c *Cluster) List(ctx context.Context, kind string, opts client.ListOptions) ([]v1.Object, error) {
	info, err := v1.LookupKind(kind)
	if err != nil {
		return nil, err
	}
	gvr, err := kube.GVR(info.Kind)
	if err != nil {
		return nil, err
	}
	var ri dynamic.ResourceInterface = c.dyn.Resource(gvr)
	if info.Namespaced && opts.Namespace != "" {
		ri = c.dyn.Resource(gvr).Namespace(opts.Namespace)
	}
	l, err := ri.List(ctx, metav1.ListOptions{LabelSelector: opts.LabelSelector})
	if err != nil {
		return nil, c.convert(err)
	}
	out := make([]v1.Object, 0, len(l.Items))
	for i := range l.Items {
		o, err := kube.Decode(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// Delete deletes one object and returns it as it was.
func (c *Cluster) Delete(ctx context.Context, kind, namespace, name, resourceVersion string) (v1.Object, error) {
	ri, _, err := c.resource(kind, namespace)
	if err != nil {
		return nil, err
	}
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, c.convert(err)
	}
	opts := metav1.DeleteOptions{}
	if resourceVersion != "" {
		opts.Preconditions = &metav1.Preconditions{ResourceVersion: &resourceVersion}
	}
	if err := ri.Delete(ctx, name, opts); err != nil {
		return nil, c.convert(err)
	}
	return kube.Decode(u)
}

// Events returns the object's events (core/v1), oldest first.
func (c *Cluster) Events(ctx context.Context, f client.EventFilter) ([]v1.Event, error) {
	info, err := v1.LookupKind(f.Kind)
	if err != nil {
		return nil, err
	}
	ns := f.Namespace
	if !info.Namespaced {
		ns = "" // events of cluster-scoped objects may be in any namespace
	}
	sel := []string{"involvedObject.kind=" + info.Kind}
	if f.Name != "" {
		sel = append(sel, "involvedObject.name="+f.Name)
	}
	l, err := c.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: strings.Join(sel, ",")})
	if err != nil {
		return nil, c.convert(err)
	}
	out := make([]v1.Event, 0, len(l.Items))
	for _, e := range l.Items {
		out = append(out, event(e, info.Kind))
	}
	sort.SliceStable(out, func(i, j int) bool { return evTime(out[i]).Before(evTime(out[j])) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}

func event(e corev1.Event, kind string) v1.Event {
	ev := v1.Event{Type: e.Type, Reason: e.Reason, Message: e.Message, Kind: kind, Namespace: e.InvolvedObject.Namespace,
		Name: e.InvolvedObject.Name, Count: e.Count}
	first, last := e.FirstTimestamp.Time, e.LastTimestamp.Time
	if first.IsZero() {
		first = e.EventTime.Time
	}
	if last.IsZero() {
		last = first
	}
	if !first.IsZero() {
		ev.FirstTimestamp = v1.NewTime(first)
	}
	if !last.IsZero() {
		ev.LastTimestamp = v1.NewTime(last)
	}
	return ev
}

func evTime(e v1.Event) time.Time {
	if e.LastTimestamp != nil {
		return e.LastTimestamp.Time
	}
	return time.Time{}
}

// Fit is not checked on a cluster: the scheduler decides, and the engine pod's
// Unschedulable condition is the evidence.
func (c *Cluster) Fit(context.Context, *v1.InferenceService) (v1.FitResult, error) {
	return v1.FitResult{Checked: false, Message: "on Kubernetes the scheduler places engines; see the engine pods' conditions"}, nil
}

// Logs writes the last tail lines of the engine pod number replica (by name order). The
// API server gets them from the node's kubelet; a cluster without one (or a pod not
// started) answers an error.
func (c *Cluster) Logs(ctx context.Context, namespace, name string, replica, tail int, follow bool, w io.Writer) error {
	pods, err := c.enginePods(ctx, namespace, name)
	if err != nil {
		return err
	}
	if replica < 0 || replica >= len(pods) {
		return fmt.Errorf("inferenceservice %s/%s has %d engine pod(s), no replica %d", namespace, name, len(pods), replica)
	}
	opts := &corev1.PodLogOptions{Follow: follow}
	if tail > 0 {
		opts.TailLines = new(int64(tail))
	}
	rc, err := c.cs.CoreV1().Pods(namespace).GetLogs(pods[replica].Name, opts).Stream(ctx)
	if err != nil {
		return c.convert(err)
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

func (c *Cluster) enginePods(ctx context.Context, namespace, name string) ([]corev1.Pod, error) {
	l, err := c.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{
		LabelSelector: kube.InferenceServiceLabel + "=" + name + "," + kube.ComponentLabel + "=" + kube.ComponentEngine})
	if err != nil {
		return nil, c.convert(err)
	}
	pods := l.Items
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, nil
}

// ModelEvidence says, per node, whether an agent reports (its Lease's age), the model's
// node label and the node's entry; and which nodes have no agent.
func (c *Cluster) ModelEvidence(ctx context.Context, model v1.Object) []string {
	m := model.GetObjectMeta()
	kind := model.GetTypeMeta().Kind
	label := kube.ModelLabel(kind, m.Namespace, m.Name)
	key := kube.ModelEntryKey(kind, m.Namespace, m.Name)
	nodes, err := c.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []string{"cluster: cannot list nodes: " + c.convert(err).Error()}
	}
	leases := map[string]time.Time{}
	if l, err := c.cs.CoordinationV1().Leases(c.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, le := range l.Items {
			if node, ok := strings.CutPrefix(le.Name, kube.AgentLeasePrefix); ok && le.Spec.RenewTime != nil {
				leases[node] = le.Spec.RenewTime.Time
			}
		}
	}
	entries := map[string]string{}
	if l, err := c.cs.CoreV1().ConfigMaps(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: kube.NodeStatusLabel + "=true"}); err == nil {
		for _, cm := range l.Items {
			if d, ok := cm.Data[key]; ok {
				if e, err := kube.ParseEntry(cm.Name, key, d); err == nil {
					line := e.Citadel.Phase
					if e.Citadel.Reason != "" {
						line += " (" + e.Citadel.Reason + ")"
					}
					if e.Citadel.Message != "" {
						line += ": " + e.Citadel.Message
					}
					entries[cm.Name] = line
				}
			}
		}
	}
	var out []string
	now := c.Now()
	for _, n := range nodes.Items {
		line := "node " + n.Name + ": "
		if t, ok := leases[n.Name]; ok {
			age := now.Sub(t).Round(time.Second)
			if age > kube.AgentLeaseDurationSeconds*time.Second {
				line += fmt.Sprintf("agent not reporting (lease renewed %s ago)", age)
			} else {
				line += fmt.Sprintf("agent reporting (lease renewed %s ago)", age)
			}
		} else {
			line += "no agent"
		}
		if v, ok := n.Labels[label]; ok {
			line += "; label " + label + "=" + v
		}
		if e, ok := entries[n.Name]; ok {
			line += "; model " + e
		}
		out = append(out, line)
	}
	if len(nodes.Items) == 0 {
		out = append(out, "cluster: no nodes")
	}
	return out
}

// ServiceEvidence gives the engine Deployment's conditions, each engine pod's state and
// the pods' warning events.
func (c *Cluster) ServiceEvidence(ctx context.Context, namespace, name string) []string {
	var out []string
	dn := kube.EngineName(name)
	if d, err := c.cs.AppsV1().Deployments(namespace).Get(ctx, dn, metav1.GetOptions{}); err != nil {
		out = append(out, fmt.Sprintf("deployment %s/%s: %v", namespace, dn, c.convert(err)))
	} else {
		out = append(out, fmt.Sprintf("deployment %s/%s: %d/%d ready", namespace, dn, d.Status.ReadyReplicas, d.Status.Replicas))
		for _, cd := range d.Status.Conditions {
			out = append(out, fmt.Sprintf("deployment condition %s=%s %s: %s", cd.Type, cd.Status, cd.Reason, cd.Message))
		}
	}
	pods, err := c.enginePods(ctx, namespace, name)
	if err != nil {
		return append(out, "engine pods: "+err.Error())
	}
	for _, p := range pods {
		out = append(out, podLines(p)...)
		evs, err := c.cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + p.Name})
		if err != nil {
			continue
		}
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning {
				out = append(out, fmt.Sprintf("pod %s event %s: %s", p.Name, e.Reason, e.Message))
			}
		}
	}
	return out
}

func podLines(p corev1.Pod) []string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "pod %s: %s", p.Name, p.Status.Phase)
	if p.Spec.NodeName != "" {
		fmt.Fprintf(&b, " on %s", p.Spec.NodeName)
	}
	out := []string{b.String()}
	for _, cd := range p.Status.Conditions {
		if cd.Status != corev1.ConditionTrue && cd.Message != "" {
			out = append(out, fmt.Sprintf("pod %s condition %s=%s %s: %s", p.Name, cd.Type, cd.Status, cd.Reason, cd.Message))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			out = append(out, fmt.Sprintf("pod %s container %s waiting: %s %s (restarts %d)", p.Name, cs.Name, w.Reason, w.Message, cs.RestartCount))
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			out = append(out, fmt.Sprintf("pod %s container %s last exit %d (%s): %s", p.Name, cs.Name, t.ExitCode, t.Reason, strings.TrimSpace(t.Message)))
		}
	}
	return out
}
