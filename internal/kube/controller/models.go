package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/objstatus"
)

// modelReconciler writes the status and finalizer of the models of one kind
// (ClusterBaseModel or BaseModel).
type modelReconciler struct {
	kind      string
	c         client.Client
	rec       events.EventRecorder
	namespace string
	resync    time.Duration
	now       func() time.Time
	log       *slog.Logger
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// setup watches the models of r.kind, and the per-node ConfigMaps, agent
// Leases and Nodes mapped to the models they affect. The queue dedups: a
// storm of changes makes each model wait in it once.
func (r *modelReconciler) setup(mgr ctrl.Manager) error {
	u, err := kube.NewObject(r.kind)
	if err != nil {
		return err
	}
	cm := handler.TypedFuncs[client.Object, reconcile.Request]{
		CreateFunc: func(_ context.Context, e event.TypedCreateEvent[client.Object], q queue) {
			r.enqueueEntries(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.TypedUpdateEvent[client.Object], q queue) {
			r.enqueueEntries(q, e.ObjectOld)
			r.enqueueEntries(q, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[client.Object], q queue) {
			r.enqueueEntries(q, e.Object)
		},
	}
	lease := handler.TypedFuncs[client.Object, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[client.Object], q queue) {
			if isAgentLease(e.Object) {
				r.enqueueAll(ctx, q)
			}
		},
		// A renewal matters only when it brings back an agent that had
		// expired (an expiry itself is noticed by the requeue at that time).
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[client.Object], q queue) {
			o, ok1 := e.ObjectOld.(*coordinationv1.Lease)
			n, ok2 := e.ObjectNew.(*coordinationv1.Lease)
			if !ok1 || !ok2 || !isAgentLease(n) {
				return
			}
			_, oldExp, _ := leaseTimes(o)
			if !r.now().Before(oldExp) || ptrVal(o.Spec.HolderIdentity) != ptrVal(n.Spec.HolderIdentity) ||
				ptrVal(o.Spec.LeaseDurationSeconds) != ptrVal(n.Spec.LeaseDurationSeconds) {
				r.enqueueAll(ctx, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q queue) {
			if isAgentLease(e.Object) {
				r.enqueueAll(ctx, q)
			}
		},
	}
	node := handler.TypedFuncs[client.Object, reconcile.Request]{
		CreateFunc: func(ctx context.Context, _ event.TypedCreateEvent[client.Object], q queue) { r.enqueueAll(ctx, q) },
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[client.Object], q queue) {
			if !mapsEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) {
				r.enqueueAll(ctx, q)
			}
		},
		DeleteFunc: func(ctx context.Context, _ event.TypedDeleteEvent[client.Object], q queue) { r.enqueueAll(ctx, q) },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(strings.ToLower(r.kind)).
		For(u).
		Watches(&corev1.ConfigMap{}, cm).
		Watches(&coordinationv1.Lease{}, lease).
		Watches(&corev1.Node{}, node).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

// enqueueEntries enqueues the models of r.kind that have an entry in a
// per-node ConfigMap.
func (r *modelReconciler) enqueueEntries(q queue, o client.Object) {
	cm, ok := o.(*corev1.ConfigMap)
	if !ok {
		return
	}
	for key := range cm.Data {
		if nn, ok := r.keyModel(key); ok {
			q.Add(reconcile.Request{NamespacedName: nn})
		}
	}
}

// keyModel is the model of an entry's key (kube.ModelEntryKey), when of r.kind.
func (r *modelReconciler) keyModel(key string) (types.NamespacedName, bool) {
	if r.kind == v1.KindClusterBaseModel {
		name, ok := strings.CutPrefix(key, "clusterbasemodel.")
		return types.NamespacedName{Name: name}, ok && name != ""
	}
	ns, name, ok := strings.Cut(key, ".basemodel.") // a namespace has no dots
	return types.NamespacedName{Namespace: ns, Name: name}, ok && ns != "" && name != ""
}

func (r *modelReconciler) enqueueAll(ctx context.Context, q queue) {
	l, err := kube.NewList(r.kind)
	if err != nil {
		return
	}
	if err := r.c.List(ctx, l); err != nil {
		r.log.Warn("listing models", "err", err)
		return
	}
	for _, it := range l.Items {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: it.GetNamespace(), Name: it.GetName()}})
	}
}

func isAgentLease(o client.Object) bool { return strings.HasPrefix(o.GetName(), kube.AgentLeasePrefix) }

// Reconcile computes one model's status from the nodes and writes it when it
// changed; it adds the finalizer, and removes it once no live agent holds a
// copy of a deleted model.
func (r *modelReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	u, err := kube.NewObject(r.kind)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.c.Get(ctx, req.NamespacedName, u); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	o, err := kube.Decode(u)
	if err != nil {
		r.log.Warn("reading model", "name", req.String(), "err", err)
		return reconcile.Result{}, nil // a change to the object brings it back
	}
	m := modelFacts{kind: r.kind, namespace: u.GetNamespace(), name: u.GetName(), generation: u.GetGeneration()}
	switch o := o.(type) {
	case *v1.ClusterBaseModel:
		m.storage, m.old = o.Spec.Storage, o.Status
	case *v1.BaseModel:
		m.storage, m.old = o.Spec.Storage, o.Status
	}
	w, all, err := r.world(ctx, u)
	if err != nil {
		return reconcile.Result{}, err
	}
	fin := kube.ClusterBaseModelFinalizer
	if r.kind == v1.KindBaseModel {
		fin = kube.BaseModelFinalizer
	}
	if u.GetDeletionTimestamp() != nil {
		return r.finalize(ctx, u, fin, m.old, w, all)
	}
	if !controllerutil.ContainsFinalizer(u, fin) {
		base := u.DeepCopy()
		controllerutil.AddFinalizer(u, fin)
		if err := r.c.Patch(ctx, u, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	}
	if done, err := r.fillSpec(ctx, u, w); done || err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err) // the patch brings the model back
	}
	st, after := aggregate(m, w, r.resync)
	if err := r.writeStatus(ctx, u, m.old, st); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil // a newer object: read it again
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: after}, nil
}

// world reads the nodes, agent Leases and entries the model's status comes
// from; all has the entries of every node, existing or not.
func (r *modelReconciler) world(ctx context.Context, u *unstructured.Unstructured) (world, map[string]kube.NodeEntry, error) {
	w := world{now: r.now(), namespace: r.namespace, entries: map[string]kube.NodeEntry{}}
	var nodes corev1.NodeList
	if err := r.c.List(ctx, &nodes); err != nil {
		return w, nil, fmt.Errorf("listing nodes: %w", err)
	}
	var leases coordinationv1.LeaseList
	if err := r.c.List(ctx, &leases, client.InNamespace(r.namespace)); err != nil {
		return w, nil, fmt.Errorf("listing the agents' leases in namespace %s: %w", r.namespace, err)
	}
	var cms corev1.ConfigMapList
	if err := r.c.List(ctx, &cms, client.InNamespace(r.namespace), client.MatchingLabels{kube.NodeStatusLabel: "true"}); err != nil {
		return w, nil, fmt.Errorf("listing the per-node ConfigMaps in namespace %s: %w", r.namespace, err)
	}
	byName := map[string]*coordinationv1.Lease{}
	for i := range leases.Items {
		byName[leases.Items[i].Name] = &leases.Items[i]
	}
	for _, n := range nodes.Items {
		f := nodeFacts{name: n.Name, labels: n.Labels}
		if l := byName[kube.AgentLease(n.Name)]; l != nil {
			f.lease = true
			f.renewed, f.expires, _ = leaseTimes(l)
		}
		w.nodes = append(w.nodes, f)
	}
	slices.SortFunc(w.nodes, func(a, b nodeFacts) int { return strings.Compare(a.name, b.name) })
	key := kube.ModelEntryKey(r.kind, u.GetNamespace(), u.GetName())
	all := map[string]kube.NodeEntry{}
	for _, cm := range cms.Items {
		data, ok := cm.Data[key]
		if !ok {
			continue
		}
		node := cm.Labels[kube.NodeLabel]
		if node == "" {
			node = cm.Name
		}
		e, err := kube.ParseEntry(node, key, data)
		if err != nil {
			r.log.Warn("unreadable entry", "namespace", r.namespace, "err", err)
			continue
		}
		if e.UID != "" && e.UID != string(u.GetUID()) {
			continue // an older object of the same name
		}
		all[node] = e
	}
	for _, n := range w.nodes {
		if e, ok := all[n.name]; ok && e.Status != kube.EntryDeleted { // OME's agent marks a removed copy so
			w.entries[n.name] = e
		}
	}
	return w, all, nil
}

// leaseTimes returns a Lease's renewTime (or acquireTime) and when it expires.
func leaseTimes(l *coordinationv1.Lease) (renewed, expires time.Time, ok bool) {
	switch {
	case l.Spec.RenewTime != nil:
		renewed = l.Spec.RenewTime.Time
	case l.Spec.AcquireTime != nil:
		renewed = l.Spec.AcquireTime.Time
	default:
		return time.Time{}, time.Time{}, false
	}
	d := int32(kube.AgentLeaseDurationSeconds)
	if l.Spec.LeaseDurationSeconds != nil {
		d = *l.Spec.LeaseDurationSeconds
	}
	return renewed, renewed.Add(time.Duration(d) * time.Second), true
}

// writeStatus writes st when it differs from old, and records an event when
// the phase moved, or the reason outside a download's progress.
func (r *modelReconciler) writeStatus(ctx context.Context, u *unstructured.Unstructured, old, st v1.ModelStatus) error {
	if changed, err := kube.SetStatus(u, old, st); err != nil || !changed {
		return err
	}
	if err := r.c.Status().Update(ctx, u); err != nil {
		return err
	}
	if old.Phase == st.Phase && (old.Reason == st.Reason || st.Phase == v1.ModelDownloading) {
		return nil
	}
	typ := corev1.EventTypeNormal
	if objstatus.Warning(st.Phase, st.Reason) || st.Reason == v1.ReasonNoAgentOnMatchingNodes || st.Reason == v1.ReasonAgentNotReporting {
		typ = corev1.EventTypeWarning
	}
	reason := st.Reason
	if reason == "" {
		reason = st.Phase
	}
	r.log.Info("status", "namespace", u.GetNamespace(), "name", u.GetName(), "phase", st.Phase, "reason", st.Reason)
	r.rec.Eventf(u, nil, typ, reason, "Aggregate", "%s", kube.EventNote(st.Phase+": "+st.Message))
	return nil
}

// finalize removes the finalizer of a deleted model once no node with a live
// agent holds an entry of it. The entries of nodes whose agent is gone (or
// that are gone) hold nothing up: an event names each node and the path left
// on its disk.
func (r *modelReconciler) finalize(ctx context.Context, u *unstructured.Unstructured, fin string, old v1.ModelStatus, w world, all map[string]kube.NodeEntry) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(u, fin) {
		return reconcile.Result{}, nil
	}
	live := map[string]nodeFacts{}
	for _, n := range w.nodes {
		if n.live(w.now) {
			live[n.name] = n
		}
	}
	var holders, left []string
	next := time.Time{}
	for _, node := range slices.Sorted(mapsKeys(all)) {
		e := all[node]
		if e.Status == kube.EntryDeleted {
			continue
		}
		if n, ok := live[node]; ok {
			holders = append(holders, node)
			if next.IsZero() || n.expires.Before(next) {
				next = n.expires
			}
			continue
		}
		left = append(left, node)
	}
	if len(holders) > 0 {
		r.log.Info("deleting: waiting for agents", "namespace", u.GetNamespace(), "name", u.GetName(), "nodes", holders)
		st := old
		st.Message = fmt.Sprintf("deleting: waiting for the agents on %s to remove their copies", list(holders))
		if len(holders) == 1 {
			st.Message = fmt.Sprintf("deleting: waiting for the agent on %s to remove its copy", holders[0])
		}
		st.Message += " (the finalizer goes once no live agent has an entry of the model)"
		if err := r.writeStatus(ctx, u, old, st); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		after := r.resync
		if d := next.Sub(w.now) + 100*time.Millisecond; d < after {
			after = d
		}
		return reconcile.Result{RequeueAfter: after}, nil
	}
	for _, node := range left {
		path := all[node].Citadel.Path
		if path == "" {
			path = "its store under the chart's models.root"
		}
		why := "its agent does not run"
		if !slices.ContainsFunc(w.nodes, func(n nodeFacts) bool { return n.name == node }) {
			why = "the node no longer exists"
		}
		r.rec.Eventf(u, nil, corev1.EventTypeWarning, v1.ReasonAgentNotReporting, "Delete", "%s", kube.EventNote(fmt.Sprintf(
			"deleted without node %s's agent (%s): its copy stays at %s on that node; remove it there by hand, or start the agent, which no longer finds the model", node, why, path)))
	}
	base := u.DeepCopy()
	controllerutil.RemoveFinalizer(u, fin)
	if err := r.c.Patch(ctx, u, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil // a newer object: read it again
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	r.log.Info("deleted", "namespace", u.GetNamespace(), "name", u.GetName(), "left on", left)
	return reconcile.Result{}, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func ptrVal[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

// fillSpec fills the spec fields the model left empty from what a Ready node read from its
// files (the entry's config), as the single-host agent fills them and as OME's controller
// copies them from its agents' entries: user-set fields are never changed. It returns true
// when it patched the model (the change brings it back).
func (r *modelReconciler) fillSpec(ctx context.Context, u *unstructured.Unstructured, w world) (bool, error) {
	var config json.RawMessage
	for _, n := range w.nodes { // sorted: the same node's config every time
		if e, ok := w.entries[n.name]; ok && e.Citadel.Phase == v1.ModelReady && len(e.Config) > 0 {
			config = e.Config
			break
		}
	}
	if config == nil {
		return false, nil
	}
	var fields map[string]any
	if err := json.Unmarshal(config, &fields); err != nil {
		return false, nil
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	var filled []string
	for name, v := range fields {
		if _, set := spec[name]; set || v == nil || !validWith(u, name, v) {
			continue
		}
		if spec == nil {
			spec = map[string]any{}
		}
		spec[name] = v
		filled = append(filled, name)
	}
	if len(filled) == 0 {
		return false, nil
	}
	slices.Sort(filled)
	base := u.DeepCopy()
	if err := unstructured.SetNestedMap(u.Object, spec, "spec"); err != nil {
		return false, err
	}
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	// The annotation lists every field filled so far: the ones before and these.
	all := filled
	if prev := ann[v1.AnnotationFilledFromFiles]; prev != "" {
		all = append(strings.Split(prev, ","), filled...)
		slices.Sort(all)
		all = slices.Compact(all)
	}
	ann[v1.AnnotationFilledFromFiles] = strings.Join(all, ",")
	u.SetAnnotations(ann)
	if err := r.c.Patch(ctx, u, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return true, nil
		}
		return false, err
	}
	r.rec.Eventf(u, nil, corev1.EventTypeNormal, v1.ReasonMetadataFilled, "FillSpec", "filled from the model's files: %s", strings.Join(filled, ", "))
	return true, nil
}

// validWith says whether the model stays valid with spec field name set to v: what the
// files say is kept on the node that read it, but only what the schema accepts goes into
// the object (a model of under a thousand parameters reads as a bare "4", which a
// parameter size may not be), so that no agent refuses the spec it was given.
func validWith(u *unstructured.Unstructured, name string, v any) bool {
	c := u.DeepCopy()
	if err := unstructured.SetNestedField(c.Object, runtime.DeepCopyJSONValue(v), "spec", name); err != nil {
		return false
	}
	o, err := kube.Decode(c)
	if err != nil {
		return false
	}
	o.Default()
	for _, e := range o.Validate() {
		if !e.Warning && (e.Path == "spec."+name || strings.HasPrefix(e.Path, "spec."+name+".") || strings.HasPrefix(e.Path, "spec."+name+"[")) {
			return false
		}
	}
	return true
}
