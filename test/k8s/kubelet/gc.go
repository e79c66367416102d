package kubelet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"citadel.dev/citadel/internal/kube"
)

// collectGarbage is the garbage collector for what Citadel's controller owns: a Deployment
// or Service labelled app.kubernetes.io/managed-by=citadel whose controlling owner (an
// InferenceService) is gone, or is another object of the same name, is deleted, as
// kube-controller-manager's garbage collector deletes it in a real cluster.
func (k *kubelet) collectGarbage(ctx context.Context) {
	sel := metav1.ListOptions{LabelSelector: kube.ManagedByLabel + "=" + kube.ManagedBy}
	deps, err := k.apps.Deployments("").List(ctx, sel)
	if err != nil {
		return
	}
	svcs, err := k.core.Services("").List(ctx, sel)
	if err != nil {
		return
	}
	exists := map[types.UID]bool{} // owners looked up in this pass
	for i := range deps.Items {
		d := &deps.Items[i]
		if k.orphan(ctx, d.Namespace, metav1.GetControllerOf(d), exists) {
			err := k.apps.Deployments(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &d.UID}})
			k.collected("Deployment", d.Namespace, d.Name, err)
		}
	}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if k.orphan(ctx, s.Namespace, metav1.GetControllerOf(s), exists) {
			err := k.core.Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
			k.collected("Service", s.Namespace, s.Name, err)
		}
	}
}

func (k *kubelet) collected(kind, ns, name string, err error) {
	switch {
	case err == nil:
		k.logf("test kubelet: garbage collector deleted %s %s/%s: its owner is gone", kind, ns, name)
	case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
		k.logf("test kubelet: garbage collector: deleting %s %s/%s: %v", kind, ns, name, err)
	}
}

// orphan reports whether ref names an owner that no longer exists. An owner whose kind
// the server does not know, or that cannot be read, counts as present.
func (k *kubelet) orphan(ctx context.Context, ns string, ref *metav1.OwnerReference, exists map[types.UID]bool) bool {
	if ref == nil {
		return false
	}
	if ok, seen := exists[ref.UID]; seen {
		return !ok
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return false
	}
	m, err := k.mapper.RESTMapping(gv.WithKind(ref.Kind).GroupKind(), gv.Version)
	if err != nil {
		k.mapper.Reset() // a CRD installed since the last discovery
		return false
	}
	r := k.dyn.Resource(m.Resource)
	var obj metav1.Object
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		obj, err = r.Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	} else {
		obj, err = r.Get(ctx, ref.Name, metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		exists[ref.UID] = false
	case err != nil:
		return false
	default:
		exists[ref.UID] = obj.GetUID() == ref.UID
	}
	return !exists[ref.UID]
}

// event records an event on a Pod, as the scheduler and the kubelet do, so that kubectl
// describe pod and Citadel's diagnosis read them.
func (k *kubelet) event(ctx context.Context, p *corev1.Pod, typ, reason, component, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", p.Name, time.Now().UnixNano()), Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID,
			ResourceVersion: p.ResourceVersion},
		Reason: reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: component, Host: p.Spec.NodeName},
	}
	if _, err := k.core.Events(p.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
		k.logf("test kubelet: event %s on pod %s/%s: %v", reason, p.Namespace, p.Name, err)
	}
}
