package kubelet

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilrand "k8s.io/apimachinery/pkg/util/rand"

	"citadel.dev/citadel/internal/kube"
)

// syncEndpointSlices is the EndpointSlice controller for the Pods running here: for every
// Service whose selector matches such a Pod, one slice per Pod (each Pod's process has its
// own port, and a slice has one port list), labelled kubernetes.io/service-name and with the
// Service's labels, address 127.0.0.1, ready as the Pod, and each Service port's real port.
// Slices of Pods that stopped and of Services that are gone are deleted.
func (k *kubelet) syncEndpointSlices(ctx context.Context, st *state) {
	svcs, err := k.core.Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	have, err := k.disc.EndpointSlices("").List(ctx, metav1.ListOptions{LabelSelector: sliceManagedByLabel + "=" + sliceManagedBy})
	if err != nil {
		return
	}
	k.mu.Lock()
	running := map[*corev1.Pod]*podRuntime{}
	for _, p := range st.mine {
		if pr := k.pods[p.UID]; pr != nil && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			running[p] = pr
		}
	}
	k.mu.Unlock()

	want := map[string]*discoveryv1.EndpointSlice{} // by namespace/name
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for p, pr := range running {
			if p.Namespace == svc.Namespace && sel.Matches(labels.Set(p.Labels)) {
				s := slice(svc, p, pr)
				want[s.Namespace+"/"+s.Name] = s
			}
		}
	}
	for i := range have.Items {
		h := &have.Items[i]
		w := want[h.Namespace+"/"+h.Name]
		delete(want, h.Namespace+"/"+h.Name)
		if w == nil {
			if err := k.disc.EndpointSlices(h.Namespace).Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				k.logf("test kubelet: deleting EndpointSlice %s/%s: %v", h.Namespace, h.Name, err)
			}
			continue
		}
		if jsonEqual(h.Labels, w.Labels) && jsonEqual(h.Endpoints, w.Endpoints) && jsonEqual(h.Ports, w.Ports) && jsonEqual(h.OwnerReferences, w.OwnerReferences) {
			continue
		}
		h.Labels, h.Endpoints, h.Ports, h.OwnerReferences = w.Labels, w.Endpoints, w.Ports, w.OwnerReferences
		if _, err := k.disc.EndpointSlices(h.Namespace).Update(ctx, h, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			k.logf("test kubelet: EndpointSlice %s/%s: %v", h.Namespace, h.Name, err)
		}
	}
	for _, w := range want {
		if _, err := k.disc.EndpointSlices(w.Namespace).Create(ctx, w, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			k.logf("test kubelet: creating EndpointSlice %s/%s: %v", w.Namespace, w.Name, err)
		} else if err == nil {
			k.logf("test kubelet: EndpointSlice %s/%s for pod %s", w.Namespace, w.Name, w.Endpoints[0].TargetRef.Name)
		}
	}
}

// slice is the EndpointSlice of one Pod for one Service.
func slice(svc *corev1.Service, p *corev1.Pod, pr *podRuntime) *discoveryv1.EndpointSlice {
	lbl := maps.Clone(svc.Labels)
	if lbl == nil {
		lbl = map[string]string{}
	}
	lbl[kube.ServiceNameLabel] = svc.Name
	lbl[sliceManagedByLabel] = sliceManagedBy
	ready := podReady(p)
	node := p.Spec.NodeName
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: sliceName(svc.Name, string(p.UID)), Namespace: svc.Namespace, Labels: lbl,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{pr.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(ready), Serving: ptrTo(ready), Terminating: ptrTo(false)},
			NodeName:   &node,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}},
	}
	for _, sp := range svc.Spec.Ports {
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptrTo(sp.Name), Port: ptrTo(int32(targetPort(sp, pr))), Protocol: &proto})
	}
	return s
}

// targetPort is the real port of the process behind a Service port: the container that
// declares the target port (by number or name) listens on its own loopback port; a target
// no container declares goes to the first container's.
func targetPort(sp corev1.ServicePort, pr *podRuntime) int {
	tp := sp.TargetPort
	for _, c := range pr.containers {
		for _, cp := range c.spec.Ports {
			if (tp.IntVal == 0 && tp.StrVal == "" && cp.ContainerPort == sp.Port) ||
				(tp.StrVal != "" && cp.Name == tp.StrVal) || (tp.StrVal == "" && tp.IntVal != 0 && cp.ContainerPort == tp.IntVal) {
				return c.port
			}
		}
	}
	if len(pr.containers) > 0 {
		return pr.containers[0].port
	}
	return int(sp.Port)
}

// sliceName is <service>-<5 characters from the Pod's uid>, as short as the controller's.
func sliceName(svc, uid string) string {
	h := fnv.New32a()
	h.Write([]byte(uid))
	suffix := utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
	if len(suffix) > 5 {
		suffix = suffix[:5]
	}
	if len(svc) > 63-6 {
		svc = svc[:63-6]
	}
	return svc + "-" + suffix
}
