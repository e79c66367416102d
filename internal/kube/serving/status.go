package serving

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/kube"
)

// apply writes the Deployment and Service by server-side apply (a change to what the
// controller owns only: other managers' fields stay), and records an event when the
// Deployment is new or its spec changed.
func (r *reconciler) apply(ctx context.Context, u *unstructured.Unstructured, s *v1.InferenceService, d *desiredState) error {
	var old appsv1.Deployment
	existed, err := r.get(ctx, s.Namespace, d.deploy.Name, &old)
	if err != nil {
		return err
	}
	var gen int64
	for _, o := range []client.Object{d.deploy, d.service} {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return err
		}
		delete(m, "status")
		unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
		obj := &unstructured.Unstructured{Object: m}
		if err := r.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		if obj.GetKind() == "Deployment" {
			gen = obj.GetGeneration()
		}
	}
	if existed && old.Generation == gen {
		return nil
	}
	verb := "created"
	if existed {
		verb = "updated"
	}
	c := d.deploy.Spec.Template.Spec.Containers[0]
	r.event(u, corev1.EventTypeNormal, ReasonEngineDeployed, fmt.Sprintf("Deployment %s %s: %d replica(s) of %s (runtime %s), %d %s each, on nodes with %s=Ready: %s",
		d.deploy.Name, verb, d.replicas, c.Image, d.runtime, d.gpus, kube.GPUResource, d.label, strings.Join(strings.Fields(strings.Join(append(slices.Clone(c.Command), c.Args...), " ")), " ")))
	for _, n := range d.notes {
		r.event(u, corev1.EventTypeWarning, ReasonNoGPULimit, n)
	}
	return nil
}

// observe fills the status from the Deployment, its Service, slices and pods: replicas,
// endpoints, the URL and, unless the status already says why the service cannot run,
// the phase with one cause.
func (r *reconciler) observe(ctx context.Context, s *v1.InferenceService, d *desiredState, st *v1.InferenceServiceStatus) error {
	name := kube.EngineName(s.Name)
	var dep appsv1.Deployment
	found, err := r.get(ctx, s.Namespace, name, &dep)
	if err != nil {
		return err
	}
	if !found {
		if st.Phase == "" {
			st.Phase, st.Reason, st.Message = v1.ServicePending, v1.ReasonWaiting, "creating Deployment "+name
		}
		return nil
	}
	st.Replicas, st.ReadyReplicas = dep.Status.Replicas, dep.Status.ReadyReplicas
	// The Service's address: the one just applied, else the one that exists.
	port := int32(0)
	if d != nil {
		port = d.port
	} else {
		var svc corev1.Service
		if ok, err := r.get(ctx, s.Namespace, name, &svc); err != nil {
			return err
		} else if ok && len(svc.Spec.Ports) > 0 {
			port = svc.Spec.Ports[0].Port
		}
	}
	if port > 0 {
		st.URL = fmt.Sprintf("http://%s.%s.svc.%s:%d", name, s.Namespace, r.opts.ClusterDomain, port)
	}
	var pods corev1.PodList
	if err := r.r.List(ctx, &pods, client.InNamespace(s.Namespace), client.MatchingLabels{kube.InferenceServiceLabel: s.Name, kube.ComponentLabel: kube.ComponentEngine}); err != nil {
		return err
	}
	// Pods being deleted, and pods that ended (evicted, their node shut down), are not
	// replicas any more: the ReplicaSet replaces them.
	live := slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool {
		return p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
	})
	slices.SortFunc(live, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	var sliceList discoveryv1.EndpointSliceList
	if err := r.r.List(ctx, &sliceList, client.InNamespace(s.Namespace), client.MatchingLabels{kube.ServiceNameLabel: name}); err != nil {
		return err
	}
	st.Endpoints = endpoints(sliceList.Items, live, d)
	if st.Phase != "" {
		return nil // the model or the runtime says why
	}
	st.Phase, st.Reason, st.Message = diagnose(&dep, live, d, st)
	return nil
}

// endpoints are the addresses of the engine Service's slices, one per pod, in pod name
// order.
func endpoints(items []discoveryv1.EndpointSlice, pods []corev1.Pod, d *desiredState) []v1.Endpoint {
	type ep struct {
		pod  string
		addr string
		ok   bool
	}
	var all []ep
	for _, sl := range items {
		var port int32
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == kube.EnginePortName) {
				port = *p.Port
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range sl.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			x := ep{addr: net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port))), ok: e.Conditions.Ready == nil || *e.Conditions.Ready}
			if e.TargetRef != nil {
				x.pod = e.TargetRef.Name
			}
			if !slices.ContainsFunc(all, func(y ep) bool { return y.addr == x.addr }) {
				all = append(all, x)
			}
		}
	}
	slices.SortFunc(all, func(a, b ep) int {
		if c := strings.Compare(a.pod, b.pod); c != 0 {
			return c
		}
		return strings.Compare(a.addr, b.addr)
	})
	var out []v1.Endpoint
	for i, x := range all {
		e := v1.Endpoint{Replica: i, Address: x.addr, Ready: x.ok, Phase: v1.EnginePhaseReady}
		if !x.ok {
			e.Phase = v1.EnginePhaseStarting
			if i := slices.IndexFunc(pods, func(p corev1.Pod) bool { return p.Name == x.pod }); i >= 0 {
				if c := podCause(&pods[i], nil); c != nil && c.reason == ReasonCrashLoopBackOff {
					e.Phase = v1.EnginePhaseCrashLoopBackOff
				}
				for _, cs := range pods[i].Status.ContainerStatuses {
					e.Restarts += int(cs.RestartCount)
				}
			}
		}
		if d != nil {
			e.Engine, e.Served, e.Metrics = d.engine, d.served, d.metrics
			if _, m, ok := engine.Metrics(d.engine); ok && d.metrics != "" {
				e.RunningMetric, e.WaitingMetric, e.KVUsageMetric = m.Running, m.Waiting, m.KVUsage
			}
		}
		out = append(out, e)
	}
	return out
}

// cause is one reason a replica is not ready; rank orders causes, the highest is reported.
type cause struct {
	rank               int
	phase, reason, msg string
}

// Ranks of causes: what needs a change before waiting for anything else.
const (
	rankStarting = iota
	rankUnschedulable
	rankCrash
	rankConfig // image, container config: nothing starts until it is fixed
)

// diagnose is the service's phase from its Deployment and pods: Ready when every replica
// is, else one cause, the worst, with what to do.
func diagnose(dep *appsv1.Deployment, pods []corev1.Pod, d *desiredState, st *v1.InferenceServiceStatus) (phase, reason, msg string) {
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	ready := dep.Status.ReadyReplicas
	if want == 0 {
		return v1.ServicePending, v1.ReasonWaiting, fmt.Sprintf("spec.engine.minReplicas is 0: Deployment %s runs no engine; set it to 1 or more to serve", dep.Name)
	}
	if ready >= want {
		where := st.URL
		if where == "" {
			where = "Service " + dep.Name
		}
		return v1.ServiceReady, v1.ReasonEngineReady, fmt.Sprintf("%d of %d replicas ready at %s", ready, want, where)
	}
	var worst *cause
	for i := range pods {
		if c := podCause(&pods[i], d); c != nil && (worst == nil || c.rank > worst.rank) {
			worst = c
		}
	}
	if c := deploymentCause(dep); c != nil && (worst == nil || worst.rank <= rankStarting) {
		worst = c
	}
	if worst == nil {
		worst = &cause{rankStarting, v1.ServiceStarting, v1.ReasonWaiting, fmt.Sprintf("waiting for Deployment %s to create its pods (%d of %d ready)", dep.Name, ready, want)}
	}
	phase = worst.phase
	if ready > 0 {
		phase = v1.ServiceDegraded
		worst.msg = fmt.Sprintf("%d of %d replicas ready; %s", ready, want, worst.msg)
	}
	return phase, worst.reason, worst.msg
}

// podCause is why a pod's engine is not ready, from its conditions and container states.
func podCause(p *corev1.Pod, d *desiredState) *cause {
	var worst *cause
	keep := func(c *cause) {
		if worst == nil || c.rank > worst.rank {
			worst = c
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			keep(&cause{rankUnschedulable, v1.ServicePending, v1.ReasonUnschedulable,
				fmt.Sprintf("replica pod %s cannot be scheduled: %s; %s", p.Name, strings.TrimSuffix(c.Message, "."), scheduleFix(c.Message, p, d))})
		}
	}
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				keep(&cause{rankConfig, v1.ServiceFailed, w.Reason, fmt.Sprintf(
					"replica pod %s cannot pull image %s: %s; fix the image in the runtime (engineConfig.runner.image) or the InferenceService (spec.engine.runner.image), or give the pod imagePullSecrets for a private registry",
					p.Name, cs.Image, strings.TrimSpace(w.Message))})
			case "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
				keep(&cause{rankConfig, v1.ServiceFailed, w.Reason, fmt.Sprintf("replica pod %s: container %s cannot start: %s; see kubectl describe pod %s -n %s",
					p.Name, cs.Name, strings.TrimSpace(w.Message), p.Name, p.Namespace)})
			case ReasonCrashLoopBackOff:
				keep(crashCause(p, &cs, d))
			case "ContainerCreating", "PodInitializing":
				keep(&cause{rankStarting, v1.ServiceStarting, v1.ReasonWaiting, fmt.Sprintf("replica pod %s on node %s: %s", p.Name, p.Spec.NodeName, w.Reason)})
			}
		}
		if t := cs.State.Terminated; t != nil && (t.ExitCode != 0 || t.Reason == ReasonOOMKilled) {
			keep(crashCause(p, &cs, d))
		}
		if run := cs.State.Running; run != nil && !cs.Ready {
			msg := fmt.Sprintf("replica pod %s on node %s: the engine runs since %s and has not passed its probes yet", p.Name, p.Spec.NodeName, run.StartedAt.UTC().Format(time.RFC3339))
			if d != nil && d.engine != "" {
				msg += fmt.Sprintf(" (%s answers once the model is loaded)", d.engine)
			}
			msg += fmt.Sprintf("; kubectl logs %s -n %s", p.Name, p.Namespace)
			keep(&cause{rankStarting, v1.ServiceStarting, v1.ReasonStarted, msg})
		}
	}
	return worst
}

// crashCause words a container that exits: its last termination's exit code, reason and
// log tail (terminationMessagePolicy FallbackToLogsOnError puts it in the status).
func crashCause(p *corev1.Pod, cs *corev1.ContainerStatus, d *desiredState) *cause {
	t := cs.LastTerminationState.Terminated
	if cur := cs.State.Terminated; cur != nil {
		t = cur
	}
	reason := ReasonCrashLoopBackOff
	if cs.State.Waiting == nil {
		reason = v1.ReasonExited
	}
	if t == nil {
		return &cause{rankCrash, v1.ServiceFailed, reason, fmt.Sprintf("replica pod %s: the engine keeps exiting (%d restarts); kubectl logs %s -n %s --previous",
			p.Name, cs.RestartCount, p.Name, p.Namespace)}
	}
	msg := fmt.Sprintf("replica pod %s: the engine exited with code %d", p.Name, t.ExitCode)
	if t.Reason != "" {
		msg += " (" + t.Reason + ")"
	}
	if cs.RestartCount > 0 {
		msg += fmt.Sprintf(", %d restarts", cs.RestartCount)
	}
	if t.Reason == ReasonOOMKilled {
		limit := "none"
		for _, c := range p.Spec.Containers {
			if c.Name == cs.Name {
				if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
					limit = q.String()
				}
			}
		}
		return &cause{rankCrash, v1.ServiceFailed, ReasonOOMKilled, msg + fmt.Sprintf(
			": killed for using more host memory than its limit (resources.limits.memory %s); raise the limit in the runtime (engineConfig.runner.resources) or the InferenceService (spec.engine.runner.resources). This is host memory, not GPU memory", limit)}
	}
	if tail := logTail(t.Message); tail != "" {
		msg += "; log tail: " + tail
		low := strings.ToLower(t.Message)
		if slices.ContainsFunc(engine.OutOfMemory(), func(f string) bool { return strings.Contains(low, f) }) {
			msg += "; the GPU ran out of memory: " + oomFix(d)
		}
	}
	return &cause{rankCrash, v1.ServiceFailed, reason, msg + fmt.Sprintf("; kubectl logs %s -n %s --previous", p.Name, p.Namespace)}
}

// oomFix says what to lower when an engine runs out of GPU memory, in its own flags.
func oomFix(d *desiredState) string {
	var lower []string
	for _, setting := range []string{"gpu-memory-utilization", "max-model-len", "max-num-seqs"} {
		name := "--" + setting
		if d != nil {
			if d.engine != "" {
				name, _ = engine.FlagFor(d.engine, setting)
			}
		}
		if name != "" {
			lower = append(lower, name)
		}
	}
	fix := "give the engine more GPUs (the nvidia.com/gpu limit, with tensor parallelism)"
	if len(lower) > 0 {
		fix = "lower " + strings.Join(lower, ", ") + ", or " + fix
	}
	return fix
}

// logTail is the last lines of a termination message, at most 5 lines and 600 bytes.
func logTail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	t := strings.Join(lines, " | ")
	if len(t) > 600 {
		t = "…" + t[len(t)-600:]
	}
	return t
}

// scheduleFix says what to change for a scheduler's refusal.
func scheduleFix(msg string, p *corev1.Pod, d *desiredState) string {
	where := "the nodes where the model is Ready"
	label := ""
	if d != nil {
		label = d.label
		where = fmt.Sprintf("the nodes where %s is Ready (label %s=Ready: %s)", d.modelKey, d.label, orNone(d.nodes))
	}
	switch {
	case strings.Contains(msg, "Insufficient "+kube.GPUResource):
		var gpus string
		for _, c := range p.Spec.Containers {
			if q, ok := c.Resources.Limits[kube.GPUResource]; ok {
				gpus = q.String()
			}
		}
		return fmt.Sprintf("the engine asks for %s %s on one of %s and none has that many free: free GPUs there, lower the GPU limit, or let the model download to more nodes (its spec.storage.nodeSelector)", gpus, kube.GPUResource, where)
	case strings.Contains(msg, "node affinity/selector") || strings.Contains(msg, "didn't match"):
		fix := fmt.Sprintf("engine pods run only on %s", where)
		if label != "" {
			fix += "; if the model is Ready there, check the node label (kubectl get nodes -L " + label + ") and the runtime's or InferenceService's nodeSelector"
		}
		return fix
	case strings.Contains(msg, "untolerated taint"):
		return "add tolerations for the nodes' taints to the runtime (engineConfig.tolerations) or the InferenceService (spec.engine.tolerations)"
	}
	return fmt.Sprintf("see kubectl describe pod %s -n %s", p.Name, p.Namespace)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// deploymentCause is a Deployment condition that says it failed.
func deploymentCause(dep *appsv1.Deployment) *cause {
	for _, c := range dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == ReasonProgressDeadlineExceeded:
			return &cause{rankCrash, v1.ServiceFailed, ReasonProgressDeadlineExceeded, fmt.Sprintf(
				"Deployment %s: %s; the engine did not become ready in time: see kubectl describe deployment %s -n %s, and raise spec.progressDeadlineSeconds for a model that loads slowly",
				dep.Name, strings.TrimSuffix(c.Message, "."), dep.Name, dep.Namespace)}
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return &cause{rankConfig, v1.ServiceFailed, c.Reason, fmt.Sprintf("Deployment %s cannot create its pods: %s", dep.Name, c.Message)}
		}
	}
	return nil
}

// conditions derives the conditions from the phase and reason: each gate passed is True,
// the one the service is stuck at False with the reason, the ones after it Unknown.
func conditions(st *v1.InferenceServiceStatus, gen int64, now time.Time, d *desiredState) {
	at := 3 // the engines are the gate
	switch {
	case st.Reason == v1.ReasonModelNotFound || st.Reason == v1.ReasonModelNotReady || st.Reason == v1.ReasonModelDisabled:
		at = 0
	case st.Phase == v1.ServiceReady:
		at = 4
	case st.Runtime == "" || d == nil:
		at = 1 // runtime selection, or the engine's command line, failed
	case st.Reason == v1.ReasonUnschedulable:
		at = 2
	}
	modelMsg, scheduled := "the model is Ready", "the engine pods are scheduled"
	if d != nil {
		modelMsg = fmt.Sprintf("%s is Ready on %s", d.modelKey, orNone(d.nodes))
	}
	v1.SetServiceGates(st, gen, now, at, modelMsg, scheduled)
}

// writeStatus writes the status when it differs from the stored one, with an event when
// the phase or reason moved.
func (r *reconciler) writeStatus(ctx context.Context, u *unstructured.Unstructured, s *v1.InferenceService, d *desiredState, st v1.InferenceServiceStatus) error {
	old := s.Status
	st.Conditions = slices.Clone(old.Conditions)
	st.ObservedGeneration = s.Generation
	conditions(&st, s.Generation, time.Now(), d)
	w := u.DeepCopy()
	if changed, err := kube.SetStatus(w, old, st); err != nil || !changed {
		return err
	}
	if err := r.c.Status().Update(ctx, w); err != nil {
		return err // a conflict: the next pass reads the new version
	}
	if old.Phase != st.Phase || old.Reason != st.Reason {
		typ := corev1.EventTypeNormal
		switch {
		case st.Phase == v1.ServiceFailed || st.Phase == v1.ServiceDegraded:
			typ = corev1.EventTypeWarning
		case st.Phase == v1.ServicePending && st.Reason != v1.ReasonModelNotReady && st.Reason != v1.ReasonWaiting:
			typ = corev1.EventTypeWarning
		}
		r.event(w, typ, st.Reason, st.Phase+": "+st.Message)
	}
	return nil
}

// event records an event on the InferenceService.
func (r *reconciler) event(u *unstructured.Unstructured, typ, reason, msg string) {
	if reason == "" {
		reason = v1.ReasonChanged
	}
	r.events.Eventf(u, nil, typ, reason, "Reconcile", "%s", kube.EventNote(msg))
}
