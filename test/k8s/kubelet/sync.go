package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"

	"citadel.dev/citadel/internal/kube"
)

// state is what one pass read from the API server.
type state struct {
	nodes    map[string]*corev1.Node // the fake nodes, by name
	allPods  []*corev1.Pod           // every Pod (GPU accounting)
	rsByUID  map[types.UID]*appsv1.ReplicaSet
	podsByRS map[types.UID][]*corev1.Pod // this package's active Pods by owning ReplicaSet
	mine     []*corev1.Pod               // this package's Pods, deleting ones included
}

// sync is one pass: Deployments to ReplicaSets to Pods, scheduling, the processes, and
// every status and EndpointSlice.
func (k *kubelet) sync(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	k.collectGarbage(ctx)
	st, deps, err := k.read(ctx)
	if err != nil {
		if ctx.Err() == nil {
			k.logf("test kubelet: reading the cluster: %v", err)
		}
		return
	}
	k.deleteOrphans(ctx, st, deps)
	for _, d := range deps {
		k.syncDeployment(ctx, st, d)
	}
	// The Pods created or deleted above are read again on the next pass; what follows
	// works on the Pods read now.
	k.schedule(ctx, st)
	k.syncRuntimes(ctx, st)
	k.syncEndpointSlices(ctx, st)
}

// read lists what a pass needs.
func (k *kubelet) read(ctx context.Context) (*state, []*appsv1.Deployment, error) {
	nodes, err := k.core.Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	dl, err := k.apps.Deployments("").List(ctx, metav1.ListOptions{LabelSelector: kube.ManagedByLabel + "=" + kube.ManagedBy})
	if err != nil {
		return nil, nil, err
	}
	rl, err := k.apps.ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	pl, err := k.core.Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	st := &state{nodes: map[string]*corev1.Node{}, rsByUID: map[types.UID]*appsv1.ReplicaSet{}, podsByRS: map[types.UID][]*corev1.Pod{}}
	for i := range nodes.Items {
		if n := &nodes.Items[i]; k.nodes[n.Name] != nil {
			st.nodes[n.Name] = n
		}
	}
	for i := range rl.Items {
		if rs := &rl.Items[i]; rs.Annotations[ownedAnnotation] != "" {
			st.rsByUID[rs.UID] = rs
		}
	}
	for i := range pl.Items {
		p := &pl.Items[i]
		st.allPods = append(st.allPods, p)
		if p.Annotations[ownedAnnotation] == "" {
			continue
		}
		st.mine = append(st.mine, p)
		if ref := metav1.GetControllerOf(p); ref != nil && p.DeletionTimestamp == nil {
			st.podsByRS[ref.UID] = append(st.podsByRS[ref.UID], p)
		}
	}
	var deps []*appsv1.Deployment
	for i := range dl.Items {
		deps = append(deps, &dl.Items[i])
	}
	return st, deps, nil
}

// deleteOrphans deletes the ReplicaSets (and their Pods) whose Deployment is gone or
// being deleted, and the Pods being deleted or whose ReplicaSet is gone: no garbage
// collector runs in envtest.
func (k *kubelet) deleteOrphans(ctx context.Context, st *state, deps []*appsv1.Deployment) {
	live := map[types.UID]bool{}
	for _, d := range deps {
		if d.DeletionTimestamp == nil {
			live[d.UID] = true
		}
	}
	for uid, rs := range st.rsByUID {
		if ref := metav1.GetControllerOf(rs); ref != nil && live[ref.UID] && rs.DeletionTimestamp == nil {
			continue
		}
		for _, p := range st.podsByRS[uid] {
			k.deletePod(ctx, p, "its Deployment was deleted")
		}
		delete(st.podsByRS, uid)
		delete(st.rsByUID, uid)
		err := k.apps.ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			k.logf("test kubelet: deleting ReplicaSet %s/%s: %v", rs.Namespace, rs.Name, err)
		}
	}
	for _, p := range st.mine {
		ref := metav1.GetControllerOf(p)
		if p.DeletionTimestamp != nil || ref == nil || st.rsByUID[ref.UID] == nil {
			k.deletePod(ctx, p, "it is being deleted")
		}
	}
}

// deletePod stops the Pod's containers and deletes it at once (the kubelet's part of a
// graceful deletion: the API server waits for it).
func (k *kubelet) deletePod(ctx context.Context, p *corev1.Pod, why string) {
	k.mu.Lock()
	if pr := k.pods[p.UID]; pr != nil {
		pr.stop()
		delete(k.pods, p.UID)
	}
	k.mu.Unlock()
	now := metav1.Now()
	p.DeletionTimestamp = &now // the rest of this pass leaves it alone
	err := k.core.Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	switch {
	case err == nil:
		k.logf("test kubelet: deleted pod %s/%s: %s", p.Namespace, p.Name, why)
	case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
		k.logf("test kubelet: deleting pod %s/%s: %v", p.Namespace, p.Name, err)
	}
}

// syncDeployment is the Deployment and ReplicaSet controllers for one Deployment: a
// ReplicaSet per pod template (the older ones deleted with their Pods at once), Pods up to
// the replicas, and both objects' status.
func (k *kubelet) syncDeployment(ctx context.Context, st *state, d *appsv1.Deployment) {
	if d.DeletionTimestamp != nil {
		return
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	hash := templateHash(&d.Spec.Template)
	var cur *appsv1.ReplicaSet
	for uid, rs := range st.rsByUID {
		if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID {
			continue
		}
		if rs.Labels[templateHashLabel] == hash {
			cur = rs
			continue
		}
		for _, p := range st.podsByRS[uid] {
			k.deletePod(ctx, p, "its pod template changed")
		}
		delete(st.podsByRS, uid)
		if err := k.apps.ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			k.logf("test kubelet: deleting ReplicaSet %s/%s: %v", rs.Namespace, rs.Name, err)
		}
	}
	if cur == nil {
		rs, err := k.createReplicaSet(ctx, d, hash, want)
		if err != nil {
			k.logf("test kubelet: Deployment %s/%s: creating its ReplicaSet: %v", d.Namespace, d.Name, err)
			return
		}
		cur = rs
	}
	if cur.Spec.Replicas == nil || *cur.Spec.Replicas != want {
		cur.Spec.Replicas = ptrTo(want)
		if rs, err := k.apps.ReplicaSets(cur.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
			cur = rs
		}
	}
	pods := st.podsByRS[cur.UID]
	switch n := int32(len(pods)); {
	case n < want:
		for range want - n {
			k.createPod(ctx, cur)
		}
	case n > want:
		sort.SliceStable(pods, func(i, j int) bool { return deleteFirst(pods[i], pods[j]) })
		for _, p := range pods[:n-want] {
			k.deletePod(ctx, p, "scaled down")
		}
		pods = pods[n-want:]
	}
	k.writeStatus(ctx, d, cur, pods, want)
}

// deleteFirst orders the Pods to delete when scaling down, as the ReplicaSet controller
// does: unscheduled before scheduled, not ready before ready, newer before older.
func deleteFirst(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if podReady(a) != podReady(b) {
		return !podReady(a)
	}
	return b.CreationTimestamp.Before(&a.CreationTimestamp)
}

func (k *kubelet) createReplicaSet(ctx context.Context, d *appsv1.Deployment, hash string, want int32) (*appsv1.ReplicaSet, error) {
	tmpl := d.Spec.Template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[templateHashLabel] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[templateHashLabel] = hash
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: maps.Clone(tmpl.Labels),
			Annotations:     map[string]string{ownedAnnotation: "true", "deployment.kubernetes.io/desired-replicas": fmt.Sprint(want)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptrTo(want), Selector: sel, Template: *tmpl},
	}
	out, err := k.apps.ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return k.apps.ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
	}
	if err == nil {
		k.logf("test kubelet: created ReplicaSet %s/%s", out.Namespace, out.Name)
	}
	return out, err
}

func (k *kubelet) createPod(ctx context.Context, rs *appsv1.ReplicaSet) {
	ann := maps.Clone(rs.Spec.Template.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[ownedAnnotation] = "true"
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: rs.Name + "-" + utilrand.String(5), Namespace: rs.Namespace,
			Labels: maps.Clone(rs.Spec.Template.Labels), Annotations: ann,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Spec: *rs.Spec.Template.Spec.DeepCopy(),
	}
	out, err := k.core.Pods(rs.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		k.logf("test kubelet: ReplicaSet %s/%s: creating a pod: %v", rs.Namespace, rs.Name, err)
		return
	}
	k.logf("test kubelet: created pod %s/%s", out.Namespace, out.Name)
}

// writeStatus writes the ReplicaSet's and the Deployment's status from the current
// ReplicaSet's Pods.
func (k *kubelet) writeStatus(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, pods []*corev1.Pod, want int32) {
	var ready int32
	for _, p := range pods {
		if podReady(p) {
			ready++
		}
	}
	n := int32(len(pods))
	rst := appsv1.ReplicaSetStatus{Replicas: n, FullyLabeledReplicas: n, ReadyReplicas: ready, AvailableReplicas: ready, ObservedGeneration: rs.Generation}
	if !jsonEqual(rs.Status, rst) {
		rs.Status = rst
		if _, err := k.apps.ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			k.logf("test kubelet: ReplicaSet %s/%s status: %v", rs.Namespace, rs.Name, err)
		}
	}

	ds := *d.Status.DeepCopy()
	ds.ObservedGeneration = d.Generation
	ds.Replicas, ds.UpdatedReplicas, ds.ReadyReplicas, ds.AvailableReplicas = n, n, ready, ready
	ds.UnavailableReplicas = max(want-ready, 0)
	if ready >= want-maxUnavailable(d, want) {
		setDeploymentCondition(&ds, appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability.")
	} else {
		setDeploymentCondition(&ds, appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
	}
	if ready >= want && n == want {
		setDeploymentCondition(&ds, appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable", fmt.Sprintf("ReplicaSet %q has successfully progressed.", rs.Name))
	} else {
		setDeploymentCondition(&ds, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", fmt.Sprintf("ReplicaSet %q is progressing.", rs.Name))
	}
	if jsonEqual(d.Status, ds) {
		return
	}
	d = d.DeepCopy()
	d.Status = ds
	if _, err := k.apps.Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		k.logf("test kubelet: Deployment %s/%s status: %v", d.Namespace, d.Name, err)
	}
}

// maxUnavailable is the Deployment's rolling update maxUnavailable (default 25 %, a
// percentage rounded down), as the Available condition counts it.
func maxUnavailable(d *appsv1.Deployment, want int32) int32 {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return 0
	}
	v := "25%"
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v = ru.MaxUnavailable.String()
	}
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		var p int32
		fmt.Sscan(pct, &p)
		return min(want*p/100, want)
	}
	var n int32
	fmt.Sscan(v, &n)
	return min(n, want)
}

func setDeploymentCondition(s *appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string) {
	now := metav1.Now()
	for i := range s.Conditions {
		c := &s.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status == status && c.Reason == reason && c.Message == msg {
			return
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message, c.LastUpdateTime = status, reason, msg, now
		return
	}
	s.Conditions = append(s.Conditions, appsv1.DeploymentCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now})
}

// templateHash is the pod-template-hash of a template: the FNV-32a hash of its JSON,
// encoded as the ReplicaSet controller encodes it.
func templateHash(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	h := fnv.New32a()
	h.Write(b)
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// podReady reports the Pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// jsonEqual compares two values as the API server stores them (times to the second).
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// syncRuntimes starts the containers of the Pods bound to the fake nodes, stops those of
// Pods that are gone, and writes each running Pod's status.
func (k *kubelet) syncRuntimes(ctx context.Context, st *state) {
	active := map[types.UID]*corev1.Pod{}
	for _, p := range st.mine {
		if p.DeletionTimestamp == nil && k.nodes[p.Spec.NodeName] != nil {
			active[p.UID] = p
		}
	}
	k.mu.Lock()
	for uid, pr := range k.pods {
		if active[uid] == nil {
			pr.stop()
			delete(k.pods, uid)
		}
	}
	var start []*corev1.Pod
	for uid, p := range active {
		if k.pods[uid] == nil {
			start = append(start, p)
		}
	}
	k.mu.Unlock()
	slices.SortFunc(start, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range start {
		if err := k.startPod(ctx, p); err != nil {
			k.logf("test kubelet: pod %s/%s: %v", p.Namespace, p.Name, err)
		}
	}
	for uid, p := range active {
		k.mu.Lock()
		pr := k.pods[uid]
		k.mu.Unlock()
		if pr == nil {
			continue
		}
		status := pr.status(p)
		if jsonEqual(p.Status, status) {
			continue
		}
		q := p.DeepCopy()
		q.Status = status
		if _, err := k.core.Pods(p.Namespace).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			k.logf("test kubelet: pod %s/%s status: %v", p.Namespace, p.Name, err)
		}
	}
}

// setPodCondition sets a condition, keeping its transition time when its status stays.
func setPodCondition(s *corev1.PodStatus, typ corev1.PodConditionType, status corev1.ConditionStatus, reason, msg string) {
	for i := range s.Conditions {
		c := &s.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = metav1.Now()
		}
		c.Status, c.Reason, c.Message = status, reason, msg
		return
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()})
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func ptrTo[T any](v T) *T { return &v }
