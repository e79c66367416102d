package serving

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/controller"
	"citadel.dev/citadel/test/k8s"
)

// cluster is a running API server with the CRDs and the controller in a manager.
type cluster struct {
	t    *testing.T
	env  *k8s.Env
	c    client.Client
	root string
}

func start(t *testing.T) *cluster {
	t.Helper()
	env := k8s.Start(t)
	root := k8s.RepoRoot(t)
	env.MustKubectl(nil, "apply", "-f", filepath.Join(root, "charts/citadel/crds/"))
	// kubectl wait fails on a CRD whose status has no conditions yet: ask again.
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, err := env.Kubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(mgr, Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		stop := time.Now()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		t.Logf("manager stopped in %v", time.Since(stop))
	})
	t.Logf("CRDs installed, controller started: %v", time.Now().Format(time.StampMilli))
	// The controller's manager (citadel controller) takes this reconciler too.
	if _, err := controller.New(controller.Options{Config: env.Config, Setup: []func(ctrl.Manager) error{
		func(m ctrl.Manager) error { return Setup(m, Options{}) },
	}}); err != nil {
		t.Fatalf("citadel controller's manager with the InferenceService controller: %v", err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, env: env, c: c, root: root}
}

func (k *cluster) apply(file, ns string) {
	k.t.Helper()
	args := []string{"apply", "-f", filepath.Join(k.root, file)}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	k.env.MustKubectl(nil, args...)
}

// isvc reads a service's status.
func (k *cluster) isvc(ns, name string) (*v1.InferenceService, error) {
	u, _ := kube.NewObject(v1.KindInferenceService)
	if err := k.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, u); err != nil {
		return nil, err
	}
	o, err := kube.Decode(u)
	if err != nil {
		return nil, err
	}
	return o.(*v1.InferenceService), nil
}

// waitStatus waits until the service's status satisfies ok, and returns it.
func (k *cluster) waitStatus(ns, name string, ok func(*v1.InferenceServiceStatus) bool) *v1.InferenceService {
	k.t.Helper()
	var last *v1.InferenceService
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s, err := k.isvc(ns, name)
		if err == nil {
			last = s
			if ok(&s.Status) {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	k.t.Fatalf("InferenceService %s/%s: status not reached in 30s; last:\n%s", ns, name, b)
	return nil
}

func (k *cluster) deployment(ns, isvc string) *appsv1.Deployment {
	k.t.Helper()
	return k.deploymentWhere(ns, isvc, func(*appsv1.Deployment) bool { return true })
}

// deploymentWhere waits for the service's Deployment to exist and satisfy ok.
func (k *cluster) deploymentWhere(ns, isvc string, ok func(*appsv1.Deployment) bool) *appsv1.Deployment {
	k.t.Helper()
	var d appsv1.Deployment
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := k.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: kube.EngineName(isvc)}, &d)
		if err == nil && ok(&d) {
			return &d
		}
		if err == nil {
			err = fmt.Errorf("Deployment %s/%s is not as expected: %+v", ns, d.Name, d.Spec.Template.Spec)
		}
		if time.Now().After(deadline) {
			st, _ := k.env.Kubectl(nil, "get", "isvc", "-n", ns, isvc, "-o", "jsonpath={.status}")
			k.t.Fatalf("Deployment %s/%s after 30s: %v; the service's status: %s", ns, kube.EngineName(isvc), err, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setModel writes a model's status (and spec metadata, as the agent fills it in).
func (k *cluster) setModel(kind, ns, name string, spec map[string]any, st v1.ModelStatus) {
	k.t.Helper()
	ctx := context.Background()
	u, _ := kube.NewObject(kind)
	key := types.NamespacedName{Namespace: ns, Name: name}
	if spec != nil {
		b, _ := json.Marshal(map[string]any{"spec": spec})
		u.SetNamespace(ns)
		u.SetName(name)
		if err := k.c.Patch(ctx, u, client.RawPatch(types.MergePatchType, b)); err != nil {
			k.t.Fatal(err)
		}
	}
	for range 10 {
		if err := k.c.Get(ctx, key, u); err != nil {
			k.t.Fatal(err)
		}
		b, _ := json.Marshal(st)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		u.Object["status"] = m
		err := k.c.Status().Update(ctx, u)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			k.t.Fatal(err)
		}
	}
	k.t.Fatalf("%s %s: status update kept conflicting", kind, name)
}

func readyModel(nodes ...v1.NodeModelStatus) v1.ModelStatus {
	var names []string
	for _, n := range nodes {
		names = append(names, n.Node)
	}
	return v1.ModelStatus{Status: v1.Status{Phase: v1.ModelReady, Reason: v1.ReasonReady, Message: "ready on " + strings.Join(names, ", ")},
		Nodes: nodes, NodesReady: names, State: "Ready"}
}

// setPodStatus writes a pod's status, retrying conflicts.
func (k *cluster) setPodStatus(ns, name string, st corev1.PodStatus) {
	k.t.Helper()
	ctx := context.Background()
	for range 10 {
		var p corev1.Pod
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
			k.t.Fatal(err)
		}
		p.Status = st
		err := k.c.Status().Update(ctx, &p)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			k.t.Fatal(err)
		}
	}
	k.t.Fatalf("pod %s: status update kept conflicting", name)
}

var unschedEvent = regexp.MustCompile(`Warning\s+Unschedulable`)

func container(d *appsv1.Deployment) corev1.Container { return d.Spec.Template.Spec.Containers[0] }

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func hostPaths(d *appsv1.Deployment) map[string]string {
	vols := map[string]string{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			vols[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]string{}
	for _, m := range container(d).VolumeMounts {
		if p, ok := vols[m.Name]; ok {
			mounts[p] = m.MountPath
		}
	}
	return mounts
}

// TestInferenceServices runs the controller against a real API server: OME's own
// MiMo-VL files applied verbatim, the model's status written by hand as the agents and
// the controller would, and the pods' and Deployment's status written by hand as a
// kubelet and the Deployment controller would.
func TestInferenceServices(t *testing.T) {
	k := start(t)
	ctx := context.Background()
	const ns, name = "mimo-vl-7b-rl", "mimo-vl-7b-rl"
	k.env.MustKubectl(nil, "create", "namespace", ns)
	k.apply("test/k8s/testdata/ome/runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml", "")
	k.apply("test/k8s/testdata/ome/models/XiaomiMiMo/MiMo-VL-7B-RL.yaml", "")
	k.apply("test/k8s/testdata/ome/samples/isvc/XiaomiMiMo/mimo-vl-7b-rl.yaml", "")
	label := kube.ModelLabel(v1.KindClusterBaseModel, "", name)

	t.Run("model downloading", func(t *testing.T) {
		k.t = t
		k.setModel(v1.KindClusterBaseModel, "", name, nil, v1.ModelStatus{
			Status: v1.Status{Phase: v1.ModelDownloading, Reason: v1.ReasonDownloading, Message: "gpu-a: 1.20 GB of 7.40 GB at 50.0 MB/s"},
			Nodes:  []v1.NodeModelStatus{{Node: "gpu-a", Phase: v1.ModelDownloading, BytesDone: 1_200_000_000, BytesTotal: 7_400_000_000}},
		})
		s := k.waitStatus(ns, name, func(st *v1.InferenceServiceStatus) bool {
			return st.Reason == v1.ReasonModelNotReady && strings.Contains(st.Message, "1.20 GB of 7.40 GB")
		})
		t.Logf("%s %s: %s", s.Status.Phase, s.Status.Reason, s.Status.Message)
		if s.Status.Phase != v1.ServicePending || !strings.Contains(s.Status.Message, "ClusterBaseModel "+name) {
			t.Errorf("status: %s %s: %s", s.Status.Phase, s.Status.Reason, s.Status.Message)
		}
		var d appsv1.Deployment
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: kube.EngineName(name)}, &d); !apierrors.IsNotFound(err) {
			t.Errorf("a Deployment exists while the model downloads (err %v)", err)
		}
	})

	const path = "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL"
	const snap = "/raid/models/hub/models--XiaomiMiMo--MiMo-VL-7B-RL/snapshots/0123abcd" // seed-001's copy of the model
	const store = "/raid/models/.citadel/hf"
	var dep *appsv1.Deployment
	t.Run("deployment", func(t *testing.T) {
		k.t = t
		// The agent fills in what the files say; the controller aggregates the nodes.
		k.setModel(v1.KindClusterBaseModel, "", name, map[string]any{
			"modelFormat":        map[string]any{"name": "safetensors", "version": "1.0.0"},
			"modelFramework":     map[string]any{"name": "transformers", "version": "4.41.2"},
			"modelArchitecture":  "Qwen2_5_VLForConditionalGeneration",
			"modelParameterSize": "7B",
		}, readyModel(v1.NodeModelStatus{Node: "gpu-a", Phase: v1.ModelReady, Path: path, Store: store}))
		dep = k.deployment(ns, name)
		if l := dep.Labels; l[kube.InferenceServiceLabel] != name || l[kube.ComponentLabel] != kube.ComponentEngine || l[kube.ManagedByLabel] != kube.ManagedBy {
			t.Errorf("Deployment labels %v", l)
		}
		if o := dep.OwnerReferences; len(o) != 1 || o[0].Kind != v1.KindInferenceService || o[0].Name != name || o[0].Controller == nil || !*o[0].Controller {
			t.Errorf("owner references %+v: want the InferenceService as controller (deleting it deletes the Deployment)", o)
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
			t.Errorf("replicas %v, want 1 (spec.engine.minReplicas)", dep.Spec.Replicas)
		}
		ps := dep.Spec.Template.Spec
		if ps.NodeSelector[label] != "Ready" {
			t.Errorf("node selector %v: want %s=Ready", ps.NodeSelector, label)
		}
		if !slices.ContainsFunc(ps.Tolerations, func(tl corev1.Toleration) bool { return tl.Key == kube.GPUResource }) {
			t.Errorf("tolerations %v: the runtime's are lost", ps.Tolerations)
		}
		if dep.Spec.Template.Labels["logging-forward"] != "enabled" || dep.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
			t.Errorf("pod labels %v, annotations %v: the runtime's engineConfig labels and annotations are lost", dep.Spec.Template.Labels, dep.Spec.Template.Annotations)
		}
		c := container(dep)
		if c.Image != "docker.io/lmsysorg/sglang:v0.5.5.post3-cu129-amd64" || c.Command[0] != "/bin/bash" || !strings.Contains(c.Args[0], "sglang.launch_server") {
			t.Errorf("container %s %v %v: want the runtime's runner as written", c.Image, c.Command, c.Args)
		}
		if env(c, "MODEL_PATH") != path {
			t.Errorf("MODEL_PATH %q, want %s", env(c, "MODEL_PATH"), path)
		}
		if m := hostPaths(dep); m[path] != path || m[store] != store {
			t.Errorf("host paths mounted %v: want %s and its store %s, each at the same path", m, path, store)
		}
		if q := c.Resources.Limits[kube.GPUResource]; q.Value() != 1 {
			t.Errorf("GPU limit %v, want the runtime's 1", c.Resources.Limits)
		}
		if len(c.Ports) != 1 || c.Ports[0].Name != kube.EnginePortName || c.Ports[0].ContainerPort != 8080 {
			t.Errorf("ports %+v: want http 8080", c.Ports)
		}
		if p := c.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health_generate" || p.FailureThreshold != 150 || p.InitialDelaySeconds != 60 {
			t.Errorf("startup probe %+v: want the runtime's", p)
		}
		if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" {
			t.Errorf("liveness probe %+v: want the runtime's", p)
		}
		if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
			t.Errorf("terminationMessagePolicy %q", c.TerminationMessagePolicy)
		}
		var svc corev1.Service
		for i := 0; ; i++ {
			err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: kube.EngineName(name)}, &svc)
			if err == nil {
				break
			}
			if i == 100 {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if p := svc.Spec.Ports; len(p) != 1 || p[0].Name != "http" || p[0].Port != 8080 || p[0].TargetPort.StrVal != "http" {
			t.Errorf("service ports %+v", p)
		}
		if svc.Spec.Selector[kube.InferenceServiceLabel] != name || svc.Labels[kube.ManagedByLabel] != kube.ManagedBy {
			t.Errorf("service selector %v labels %v", svc.Spec.Selector, svc.Labels)
		}
		s := k.waitStatus(ns, name, func(st *v1.InferenceServiceStatus) bool { return st.Phase == v1.ServiceStarting })
		if s.Status.Runtime != "srt-mimo-vl-7b-rl" || s.Status.URL != "http://mimo-vl-7b-rl-engine.mimo-vl-7b-rl.svc.cluster.local:8080" {
			t.Errorf("runtime %q url %q", s.Status.Runtime, s.Status.URL)
		}
		if p := strings.Join(s.Status.Placement, "\n"); !strings.Contains(p, "1 replica(s) of sglang") || !strings.Contains(p, "1 nvidia.com/gpu each") || !strings.Contains(p, label+"=Ready (the model is Ready on gpu-a)") {
			t.Errorf("placement:\n%s", p)
		}
		// Reconciling again changes nothing: the apply is a no-op.
		k.env.MustKubectl(nil, "annotate", "-n", ns, "isvc", name, "touched=1")
		time.Sleep(500 * time.Millisecond)
		if d := k.deployment(ns, name); d.Generation != dep.Generation {
			t.Errorf("Deployment generation %d → %d on a reconcile that changed nothing", dep.Generation, d.Generation)
		}
	})
	if dep == nil {
		t.FailNow()
	}

	// A pod of the Deployment, as the ReplicaSet controller would create it.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name + "-engine-7d9f8-abcde", Namespace: ns, Labels: dep.Spec.Template.Labels},
		Spec: dep.Spec.Template.Spec}
	if err := k.c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Run("unschedulable", func(t *testing.T) {
		k.t = t
		const sched = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
		k.setPodStatus(ns, pod.Name, corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: sched, LastTransitionTime: metav1.Now()}}})
		s := k.waitStatus(ns, name, func(st *v1.InferenceServiceStatus) bool { return st.Reason == v1.ReasonUnschedulable })
		t.Logf("%s %s: %s", s.Status.Phase, s.Status.Reason, s.Status.Message)
		if s.Status.Phase != v1.ServicePending || !strings.Contains(s.Status.Message, "2 Insufficient nvidia.com/gpu") || !strings.Contains(s.Status.Message, "gpu-a") {
			t.Errorf("status %s %s: %s", s.Status.Phase, s.Status.Reason, s.Status.Message)
		}
		var out string
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			out = k.env.MustKubectl(nil, "describe", "isvc", "-n", ns, name)
			if unschedEvent.MatchString(out) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !unschedEvent.MatchString(out) || !strings.Contains(out, "Insufficient nvidia.com/gpu") {
			t.Errorf("kubectl describe isvc shows no Unschedulable event:\n%s", out)
		}
	})

	t.Run("crash loop", func(t *testing.T) {
		k.t = t
		tail := "Loading safetensors checkpoint shards: 100% 4/4\nTraceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
		k.setPodStatus(ns, pod.Name, corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: container(dep).Name, Image: container(dep).Image, RestartCount: 3,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: tail}}}}})
		s := k.waitStatus(ns, name, func(st *v1.InferenceServiceStatus) bool { return st.Reason == ReasonCrashLoopBackOff })
		t.Logf("%s %s: %s", s.Status.Phase, s.Status.Reason, s.Status.Message)
		for _, want := range []string{"exited with code 1", "CUDA out of memory", "lower --mem-fraction-static, --context-length", "kubectl logs " + pod.Name} {
			if !strings.Contains(s.Status.Message, want) {
				t.Errorf("message lacks %q: %s", want, s.Status.Message)
			}
		}
		if s.Status.Phase != v1.ServiceFailed {
			t.Errorf("phase %s", s.Status.Phase)
		}
	})

	t.Run("ready", func(t *testing.T) {
		k.t = t
		k.setPodStatus(ns, pod.Name, corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.7",
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: container(dep).Name, Image: container(dep).Image, Ready: true, RestartCount: 3,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}})
		d := k.deployment(ns, name)
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, UpdatedReplicas: 1}
		if err := k.c.Status().Update(ctx, d); err != nil {
			t.Fatal(err)
		}
		svc := kube.EngineName(name)
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: svc + "-x7k2p", Namespace: ns, Labels: map[string]string{
				kube.ServiceNameLabel: svc, kube.InferenceServiceLabel: name, kube.ComponentLabel: kube.ComponentEngine, kube.ManagedByLabel: kube.ManagedBy}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name}}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: ptr(corev1.ProtocolTCP)}},
		}
		if err := k.c.Create(ctx, slice); err != nil {
			t.Fatal(err)
		}
		s := k.waitStatus(ns, name, func(st *v1.InferenceServiceStatus) bool { return st.Phase == v1.ServiceReady && len(st.Endpoints) == 1 })
		e := s.Status.Endpoints[0]
		if e.Address != "10.1.0.7:8080" || !e.Ready || e.Engine != "sglang" || e.Phase != v1.EnginePhaseReady || !slices.Contains(e.Served, "XiaomiMiMo/MiMo-VL-7B-RL") {
			t.Errorf("endpoint %+v", e)
		}
		if s.Status.Reason != v1.ReasonEngineReady || s.Status.ReadyReplicas != 1 || s.Status.Replicas != 1 {
			t.Errorf("status %s %s ready %d/%d: %s", s.Status.Phase, s.Status.Reason, s.Status.ReadyReplicas, s.Status.Replicas, s.Status.Message)
		}
		for _, c := range s.Status.Conditions {
			if c.Status != v1.ConditionTrue {
				t.Errorf("condition %s is %s (%s: %s) on a Ready service", c.Type, c.Status, c.Reason, c.Message)
			}
		}
	})

	t.Run("second service in the namespace", func(t *testing.T) {
		k.t = t
		isvc := fmt.Sprintf(`{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"mimo-b","namespace":%q},
			"spec":{"model":{"name":%q},"runtime":{"name":"srt-mimo-vl-7b-rl"},"engine":{"minReplicas":2,"runner":{"resources":{"limits":{"nvidia.com/gpu":2}}}}}}`, ns, name)
		k.env.MustKubectl([]byte(isvc), "apply", "-f", "-")
		d := k.deployment(ns, "mimo-b")
		if *d.Spec.Replicas != 2 || d.Spec.Selector.MatchLabels[kube.InferenceServiceLabel] != "mimo-b" {
			t.Errorf("replicas %d selector %v", *d.Spec.Replicas, d.Spec.Selector.MatchLabels)
		}
		if q := container(d).Resources.Limits[kube.GPUResource]; q.Value() != 2 {
			t.Errorf("GPU limit %v: the service's 2 should win over the runtime's 1", container(d).Resources.Limits)
		}
		if q := container(d).Resources.Limits["memory"]; q.String() != "30Gi" {
			t.Errorf("memory limit %v: the runtime's should stay", container(d).Resources.Limits)
		}
		s := k.waitStatus(ns, "mimo-b", func(st *v1.InferenceServiceStatus) bool { return st.Phase == v1.ServiceStarting })
		if len(s.Status.Endpoints) != 0 {
			t.Errorf("the other service's endpoints leaked: %+v", s.Status.Endpoints)
		}
		if first, _ := k.isvc(ns, name); first.Status.Phase != v1.ServiceReady {
			t.Errorf("first service went %s", first.Status.Phase)
		}
	})

	t.Run("runtime not found", func(t *testing.T) {
		k.t = t
		isvc := fmt.Sprintf(`{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"mimo-c","namespace":%q},
			"spec":{"model":{"name":%q},"runtime":{"name":"no-such-runtime"}}}`, ns, name)
		k.env.MustKubectl([]byte(isvc), "apply", "-f", "-")
		s := k.waitStatus(ns, "mimo-c", func(st *v1.InferenceServiceStatus) bool { return st.Reason == v1.ReasonRuntimeNotFound })
		if s.Status.Phase != v1.ServiceFailed || !strings.Contains(s.Status.Message, "no-such-runtime") {
			t.Errorf("status %s: %s", s.Status.Phase, s.Status.Message)
		}
		var d appsv1.Deployment
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: kube.EngineName("mimo-c")}, &d); !apierrors.IsNotFound(err) {
			t.Errorf("a Deployment for a service without runtime (err %v)", err)
		}
	})

	t.Run("model not found", func(t *testing.T) {
		k.t = t
		isvc := fmt.Sprintf(`{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"nomodel","namespace":%q},"spec":{"model":{"name":"nope"}}}`, ns)
		k.env.MustKubectl([]byte(isvc), "apply", "-f", "-")
		s := k.waitStatus(ns, "nomodel", func(st *v1.InferenceServiceStatus) bool { return st.Reason == v1.ReasonModelNotFound })
		if !strings.Contains(s.Status.Message, "no BaseModel mimo-vl-7b-rl/nope and no ClusterBaseModel nope") {
			t.Errorf("message: %s", s.Status.Message)
		}
	})

	// seed-001: Citadel's own runtimes (engine: {name: ...}) selected automatically.
	t.Run("seed-001", func(t *testing.T) {
		k.t = t
		for _, f := range []string{"vllm", "sglang", "llamacpp", "ollama"} {
			k.apply("examples/runtimes/"+f+".yaml", "")
		}
		k.apply("examples/seed-001/models.yaml", "")
		k.apply("examples/seed-001/services.yaml", "default")
		k.setModel(v1.KindClusterBaseModel, "", "mimo-vl-7b-rl", map[string]any{
			"modelFormat": map[string]any{"name": "safetensors", "version": "1.0.0"}, "modelArchitecture": "Qwen2_5_VLForConditionalGeneration",
		}, readyModel(v1.NodeModelStatus{Node: "gpu-a", Phase: v1.ModelReady, Path: snap, Store: "/raid/models/hub"}))
		for _, m := range []struct{ name, tag string }{{"deepseek-r1-32b", "deepseek-r1:32b"}, {"deepcoder-14b", "deepcoder:14b"}, {"qwen2-5-7b", "qwen2.5:7b"}} {
			k.setModel(v1.KindClusterBaseModel, "", m.name, map[string]any{"modelFormat": map[string]any{"name": "gguf", "version": "1.0.0"}},
				readyModel(v1.NodeModelStatus{Node: "gpu-b", Phase: v1.ModelReady, Path: "/raid/models/ollama/blobs/sha256-" + m.name, Store: "/raid/models/ollama", OllamaName: m.tag}))
		}

		// The seed's model replaced OME's of the same name: wait for its files.
		d := k.deploymentWhere("default", "mimo-vl-7b-rl", func(d *appsv1.Deployment) bool { return env(container(d), "MODEL_PATH") == snap })
		c := container(d)
		argv := strings.Join(c.Command, " ")
		for _, want := range []string{"vllm serve " + snap, "--served-model-name mimo-vl-7b-rl", "--port 8080", "--host 0.0.0.0", "--gpu-memory-utilization=0.61", "--max-model-len=8192", "--download-dir /raid/models/hub"} {
			if !strings.Contains(argv, want) {
				t.Errorf("vllm command %q lacks %q", argv, want)
			}
		}
		if c.Image != "docker.io/vllm/vllm-openai:latest" || env(c, "HF_HUB_OFFLINE") != "1" || env(c, "MODEL_PATH") != snap {
			t.Errorf("image %s, env %+v", c.Image, c.Env)
		}
		if p := c.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.FailureThreshold != 360 || p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("startup probe %+v: want vLLM's (GET /health on http, 360 × 5 s)", p)
		}
		if m := hostPaths(d); m["/raid/models/hub"] != "/raid/models/hub" || len(m) != 1 {
			t.Errorf("host paths %v: want the HF cache, which holds the snapshot", m)
		}
		s := k.waitStatus("default", "mimo-vl-7b-rl", func(st *v1.InferenceServiceStatus) bool { return st.Phase == v1.ServiceStarting })
		if s.Status.Runtime != "vllm" {
			t.Errorf("runtime %q selected, want vllm; candidates %+v", s.Status.Runtime, s.Status.Runtimes)
		}
		t.Logf("seed deployments checked: %v", time.Now().Format(time.StampMilli))
		// No GPU limit in Citadel's runtimes: said in an event.
		deadline := time.Now().Add(30 * time.Second)
		out := ""
		for time.Now().Before(deadline) && !strings.Contains(out, ReasonNoGPULimit) {
			out = k.env.MustKubectl(nil, "describe", "isvc", "-n", "default", "mimo-vl-7b-rl")
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(out, ReasonNoGPULimit) {
			t.Errorf("no %s event:\n%s", ReasonNoGPULimit, out)
		}

		for _, m := range []struct{ name, tag string }{{"deepseek-r1-32b", "deepseek-r1:32b"}, {"deepcoder-14b", "deepcoder:14b"}, {"qwen2-5-7b", "qwen2.5:7b"}} {
			d := k.deployment("default", m.name)
			c := container(d)
			if strings.Join(c.Command, " ") != "ollama serve" || env(c, "OLLAMA_HOST") != "0.0.0.0:8080" || env(c, "OLLAMA_MODELS") != "/raid/models/ollama" {
				t.Errorf("%s: command %v env %+v", m.name, c.Command, c.Env)
			}
			if hp := hostPaths(d); hp["/raid/models/ollama"] != "/raid/models/ollama" {
				t.Errorf("%s: host paths %v", m.name, hp)
			}
			if d.Spec.Template.Spec.NodeSelector[kube.ModelLabel(v1.KindClusterBaseModel, "", m.name)] != "Ready" {
				t.Errorf("%s: node selector %v", m.name, d.Spec.Template.Spec.NodeSelector)
			}
			s := k.waitStatus("default", m.name, func(st *v1.InferenceServiceStatus) bool { return st.Runtime != "" })
			if s.Status.Runtime != "ollama" {
				t.Errorf("%s: runtime %s", m.name, s.Status.Runtime)
			}
		}
		// Every Deployment was accepted by the API server's validation.
		var deps appsv1.DeploymentList
		if err := k.c.List(ctx, &deps, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		if len(deps.Items) != 4 {
			t.Errorf("%d Deployments in default, want 4", len(deps.Items))
		}
	})

	t.Run("the missing runtime is applied", func(t *testing.T) {
		k.t = t
		rt := fmt.Sprintf(`{"apiVersion":"ome.io/v1beta1","kind":"ServingRuntime","metadata":{"name":"no-such-runtime","namespace":%q},
			"spec":{"engine":{"name":"sglang"},"supportedModelFormats":[{"modelFormat":{"name":"safetensors"}}]}}`, ns)
		k.env.MustKubectl([]byte(rt), "apply", "-f", "-")
		d := k.deployment(ns, "mimo-c")
		if argv := strings.Join(container(d).Command, " "); !strings.HasPrefix(argv, "python3 -m sglang.launch_server --model-path "+snap) {
			t.Errorf("command %q", argv)
		}
		s := k.waitStatus(ns, "mimo-c", func(st *v1.InferenceServiceStatus) bool { return st.Runtime == "no-such-runtime" })
		if len(s.Status.Runtimes) == 0 || !s.Status.Runtimes[0].Namespaced || !s.Status.Runtimes[0].Selected {
			t.Errorf("candidates %+v: want the namespace's runtime, selected", s.Status.Runtimes)
		}
	})

	t.Run("a BaseModel in the namespace comes first", func(t *testing.T) {
		k.t = t
		bm := fmt.Sprintf(`{"apiVersion":"ome.io/v1beta1","kind":"BaseModel","metadata":{"name":%q,"namespace":%q},
			"spec":{"storage":{"storageUri":"hf://XiaomiMiMo/MiMo-VL-7B-RL"}}}`, name, ns)
		// The seed's model of the same name, now Ready with other files, is what it serves.
		before := k.deploymentWhere(ns, name, func(d *appsv1.Deployment) bool { return env(container(d), "MODEL_PATH") == snap })
		k.env.MustKubectl([]byte(bm), "apply", "-f", "-")
		s := k.waitStatus(ns, name, func(st *v1.InferenceServiceStatus) bool { return st.Reason == v1.ReasonModelNotReady })
		if !strings.Contains(s.Status.Message, "BaseModel "+ns+"/"+name) {
			t.Errorf("message: %s", s.Status.Message)
		}
		if d := k.deployment(ns, name); d.Generation != before.Generation {
			t.Errorf("the Deployment changed (generation %d → %d) while the new model is not Ready: it should be kept", before.Generation, d.Generation)
		}
	})
}
