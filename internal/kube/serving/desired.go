package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/selection"
)

// DefaultPort is the engine's port when the runtime's container declares none.
const DefaultPort = 8080

// desiredState is what a service should run, from its model and runtime.
type desiredState struct {
	modelKey string   // "ClusterBaseModel mimo-vl-7b-rl"
	label    string   // the model's node label
	nodes    []string // the nodes where the model is Ready
	runtime  string
	engine   string // vllm, sglang, …; "" for a program Citadel does not know
	image    string
	served   []string
	metrics  string
	port     int32
	gpus     int64
	replicas int32
	notes    []string // warnings, recorded as events when the Deployment changes
	deploy   *appsv1.Deployment
	service  *corev1.Service
}

// blocked is why a service cannot run now.
type blocked struct{ phase, reason, msg string }

func (b *blocked) Error() string { return b.msg }

// desired resolves the service's model and runtime and builds its Deployment and
// Service; when it cannot, the status says why (phase, reason, message) and the
// result is nil. The status's runtime and candidates are filled either way.
func (r *reconciler) desired(ctx context.Context, s *v1.InferenceService) (*desiredState, v1.InferenceServiceStatus) {
	var st v1.InferenceServiceStatus
	d, err := r.resolve(ctx, s, &st)
	if err != nil {
		var b *blocked
		if !errors.As(err, &b) {
			b = &blocked{v1.ServicePending, v1.ReasonWaiting, "reading the service's model and runtimes: " + err.Error()}
		}
		st.Phase, st.Reason, st.Message = b.phase, b.reason, b.msg
		return nil, st
	}
	return d, st
}

func (r *reconciler) resolve(ctx context.Context, s *v1.InferenceService, st *v1.InferenceServiceStatus) (*desiredState, error) {
	if s.Spec.Model == nil || s.Spec.Model.Name == "" {
		return nil, &blocked{v1.ServiceFailed, v1.ReasonModelNotFound, "spec.model.name is empty: name the model to serve"}
	}
	name := s.Spec.Model.Name
	kind, spec, mst, err := r.model(ctx, s.Namespace, name)
	if err != nil {
		return nil, err
	}
	d := &desiredState{}
	if kind == v1.KindClusterBaseModel {
		d.modelKey = "ClusterBaseModel " + name
		d.label = kube.ModelLabel(kind, "", name)
	} else {
		d.modelKey = "BaseModel " + s.Namespace + "/" + name
		d.label = kube.ModelLabel(kind, s.Namespace, name)
	}
	if spec.Disabled != nil && *spec.Disabled {
		return nil, &blocked{v1.ServiceFailed, v1.ReasonModelDisabled, d.modelKey + " is disabled (spec.disabled: true)"}
	}
	if mst.Phase != v1.ModelReady {
		return nil, &blocked{v1.ServicePending, v1.ReasonModelNotReady, modelWait(d.modelKey, kind, name, mst)}
	}
	// The runtime, selected as on one host.
	rts, err := r.runtimes(ctx, s.Namespace)
	if err != nil {
		return nil, err
	}
	explicit := ""
	if s.Spec.Runtime != nil {
		explicit = s.Spec.Runtime.Name
	}
	res, err := selection.Select(selection.Model{Name: name, Spec: *spec, Ready: true}, rts, explicit)
	if err != nil {
		var se *selection.Error
		if errors.As(err, &se) {
			st.Runtimes = candidatesOf(se.Candidates)
			phase := v1.ServiceFailed // until a runtime or the model changes
			if se.MetadataPending {
				phase = v1.ServicePending
			}
			return nil, &blocked{phase, se.Reason, se.Message}
		}
		return nil, &blocked{v1.ServiceFailed, v1.ReasonRuntimeSelectionFailed, err.Error()}
	}
	st.Runtimes = candidatesOf(res.Candidates)
	st.Runtime = res.Runtime.Name
	d.runtime = res.Runtime.Name

	// Where the files are: a Ready node's path and store.
	loc, ok := readyFiles(mst)
	if !ok {
		return nil, &blocked{v1.ServicePending, v1.ReasonModelNotReady, d.modelKey + " is Ready but no Ready node reports its path yet (status.nodes[].path); the model agents write it"}
	}
	for _, n := range mst.Nodes {
		if n.Phase == v1.ModelReady {
			d.nodes = append(d.nodes, n.Node)
		}
	}
	if err := r.build(s, spec, res.Runtime, loc, d); err != nil {
		return nil, err
	}
	return d, nil
}

// model finds the service's model as OME does: a BaseModel in its namespace first, then
// a ClusterBaseModel of the name.
func (r *reconciler) model(ctx context.Context, ns, name string) (string, *v1.BaseModelSpec, *v1.ModelStatus, error) {
	for _, kind := range []string{v1.KindBaseModel, v1.KindClusterBaseModel} {
		u, err := kube.NewObject(kind)
		if err != nil {
			return "", nil, nil, err
		}
		objNS := ns
		if kind == v1.KindClusterBaseModel {
			objNS = ""
		}
		found, err := r.get(ctx, objNS, name, u)
		if err != nil {
			return "", nil, nil, err
		}
		if !found {
			continue
		}
		o, err := kube.Decode(u)
		if err != nil {
			return "", nil, nil, &blocked{v1.ServiceFailed, v1.ReasonModelNotFound, err.Error()}
		}
		switch m := o.(type) {
		case *v1.BaseModel:
			return kind, &m.Spec, &m.Status, nil
		case *v1.ClusterBaseModel:
			return kind, &m.Spec, &m.Status, nil
		}
	}
	return "", nil, nil, &blocked{v1.ServicePending, v1.ReasonModelNotFound, fmt.Sprintf(
		"model %q not found: no BaseModel %s/%s and no ClusterBaseModel %s; apply it (kubectl apply -f MODEL.yaml)", name, ns, name, name)}
}

// modelWait says what the service waits for: the model's phase, reason and message.
func modelWait(key, kind, name string, st *v1.ModelStatus) string {
	p := st.Phase
	if p == "" {
		p = "not yet reconciled"
	}
	msg := fmt.Sprintf("waiting for %s to be Ready: it is %s", key, p)
	if st.Reason != "" && st.Reason != st.Phase {
		msg += " (" + st.Reason + ")"
	}
	if st.Message != "" {
		msg += ": " + st.Message
	}
	return msg + "; see kubectl describe " + strings.ToLower(kind) + " " + name
}

// runtimes are the candidates: the namespace's ServingRuntimes, then the
// ClusterServingRuntimes.
func (r *reconciler) runtimes(ctx context.Context, ns string) ([]selection.Runtime, error) {
	var out []selection.Runtime
	for _, kind := range []string{v1.KindServingRuntime, v1.KindClusterServingRuntime} {
		list, err := kube.NewList(kind)
		if err != nil {
			return nil, err
		}
		var opts []client.ListOption
		if kind == v1.KindServingRuntime {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := r.r.List(ctx, list, opts...); err != nil {
			return nil, err
		}
		for i := range list.Items {
			o, err := kube.Decode(&list.Items[i])
			if err != nil {
				continue // a runtime the schema let through but api/v1 cannot read: not a candidate
			}
			o.Default()
			switch rt := o.(type) {
			case *v1.ServingRuntime:
				out = append(out, selection.FromNamespaced(rt))
			case *v1.ClusterServingRuntime:
				out = append(out, selection.FromCluster(rt))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b selection.Runtime) int {
		if a.Namespaced != b.Namespaced {
			if a.Namespaced {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

func candidatesOf(cs []selection.Candidate) []v1.RuntimeCandidate {
	var out []v1.RuntimeCandidate
	for _, c := range cs {
		out = append(out, v1.RuntimeCandidate{Name: c.Runtime, Namespaced: c.Namespaced, Score: c.Score, Selected: c.Selected, Reason: c.Reason})
	}
	return out
}

// files is where a model is on its Ready nodes.
type files struct {
	path       string // MODEL_PATH: the snapshot directory, storage.path or a GGUF file
	store      string // the store the files belong to (HF cache root, OLLAMA_MODELS)
	ollamaName string
}

// readyFiles is the first Ready node's record of the model's files.
func readyFiles(st *v1.ModelStatus) (files, bool) {
	for _, n := range st.Nodes {
		if n.Phase == v1.ModelReady && n.Path != "" {
			return files{n.Path, n.Store, n.OllamaName}, true
		}
	}
	return files{}, false
}

// gpuEngines cannot run without a GPU.
var gpuEngines = []string{engine.VLLM, "sglang"}

// build writes the Deployment and Service of the service: the runtime's container merged
// with the service's, or the engine adapter's command line for a runtime that names an
// engine, on nodes where the model is Ready, with its files mounted from the host.
func (r *reconciler) build(s *v1.InferenceService, spec *v1.BaseModelSpec, rt selection.Runtime, loc files, d *desiredState) error {
	rs := rt.Spec
	var ec, ie v1.EngineSpec // the runtime's and the service's engine component
	if rs.EngineConfig != nil {
		ec = *rs.EngineConfig
	}
	if s.Spec.Engine != nil {
		ie = *s.Spec.Engine
	}
	base := ec.Runner
	if base == nil && len(rs.Containers) > 0 { // OME's legacy runtimes: spec.containers
		base = &rs.Containers[0]
	}
	over := ie.Runner
	c := mergeContainer(base, over)
	runner := base != nil && (len(base.Command) > 0 || len(base.Args) > 0) || over != nil && len(over.Command) > 0

	d.replicas = 1
	if ec.MinReplicas != nil && *ec.MinReplicas > 0 {
		d.replicas = int32(*ec.MinReplicas)
	}
	if ie.MinReplicas != nil {
		d.replicas = int32(max(*ie.MinReplicas, 0))
	}
	d.gpus = gpuCount(c.Resources)
	if r := c.Resources; r != nil && d.gpus > 0 {
		// An extended resource's request must equal its limit. The limit counts (the
		// service's limit over the runtime's request), else the request.
		q := v1.Quantity(fmt.Sprint(d.gpus))
		if r.Limits == nil {
			r.Limits = map[string]v1.Quantity{}
		}
		r.Limits[kube.GPUResource] = q
		if _, ok := r.Requests[kube.GPUResource]; ok {
			r.Requests[kube.GPUResource] = q
		}
	}

	// The port: the container's first, renamed http (probes that named it follow).
	d.port = DefaultPort
	if i := slices.IndexFunc(c.Ports, func(p v1.ContainerPort) bool { return p.Protocol == "" || p.Protocol == "TCP" }); i >= 0 {
		old := c.Ports[i].Name
		c.Ports[i].Name = kube.EnginePortName
		d.port = c.Ports[i].ContainerPort
		for _, p := range []*v1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
			renamePort(p, old)
		}
	} else {
		c.Ports = append(c.Ports, v1.ContainerPort{Name: kube.EnginePortName, ContainerPort: d.port, Protocol: "TCP"})
	}

	hfStore, ollamaStore := loc.store, ""
	if loc.ollamaName != "" {
		hfStore, ollamaStore = "", loc.store
	}
	var launch engine.Launch
	switch {
	case runner:
		argv := append(slices.Clone(c.Command), c.Args...)
		d.engine = engine.Detect(argv)
		// What the engine answers to, its metrics and default probes: FromRunner reads
		// them as on one host. The container itself runs as written.
		l, err := engine.FromRunner(c, engine.Spec{Engine: d.engine, ModelPath: loc.path, ModelName: s.Spec.Model.Name, Port: int(d.port)})
		if err == nil {
			launch = l
			if l.Engine != "" {
				d.engine = l.Engine
			}
		} else {
			launch.Served = []string{s.Spec.Model.Name}
		}
		if c.Image == "" && rs.Engine != nil { // the service's command over a runtime that names an engine
			c.Image = r.image(rs.Engine)
		}
		if c.Image == "" {
			return &blocked{v1.ServiceFailed, v1.ReasonInvalidEngineArgs, fmt.Sprintf(
				"runtime %s: engineConfig.runner has no image: set the engine's image in the runtime (engineConfig.runner.image) or the InferenceService (spec.engine.runner.image)", rt.Name)}
		}
	case rs.Engine != nil:
		ref := rs.Engine
		d.engine = ref.Name
		a, ok := engine.Lookup(ref.Name)
		if !ok {
			return &blocked{v1.ServiceFailed, v1.ReasonEngineUnknown, fmt.Sprintf("runtime %s: engine %q has no adapter on Kubernetes (want %s)", rt.Name, ref.Name, strings.Join(engine.Engines, ", "))}
		}
		es := engine.Spec{Engine: ref.Name, ModelPath: loc.path, ModelName: s.Spec.Model.Name, Host: "0.0.0.0", Port: int(d.port),
			Vision:   slices.Contains(spec.ModelCapabilities, "IMAGE_TEXT_TO_TEXT") || slices.Contains(spec.ModelCapabilities, "VISION"),
			CacheDir: hfStore, OllamaModels: ollamaStore, ExtraArgs: slices.Clone(ref.Args), Env: envList(ref.Env)}
		if base != nil {
			es.Env = append(es.Env, envList(base.Env)...)
		}
		if a.ByName {
			if loc.ollamaName == "" {
				return &blocked{v1.ServiceFailed, v1.ReasonModelNotInOllamaStore, fmt.Sprintf(
					"runtime %s runs ollama serve, which serves models from its own store: %s is not an ollama:// model; pull it from the Ollama registry (storageUri: ollama://name:tag), or serve its GGUF file with runtime llamacpp (spec.runtime.name: llamacpp)", rt.Name, d.modelKey)}
			}
			es.ModelName = loc.ollamaName
		}
		if d.gpus > 1 && a.TPFlag != "" {
			es.TP = int(d.gpus)
		}
		if over != nil {
			es.ExtraArgs = append(es.ExtraArgs, over.Args...)
			es.Env = append(es.Env, envList(over.Env)...)
		}
		l, err := engine.Build(es)
		if err != nil {
			return &blocked{v1.ServiceFailed, v1.ReasonInvalidEngineArgs, fmt.Sprintf("runtime %s: %v", rt.Name, err)}
		}
		launch = l
		c.Command, c.Args = l.Argv, nil
		var env []v1.EnvVar
		for _, kv := range l.Env {
			k, v, _ := strings.Cut(kv, "=")
			env = append(env, v1.EnvVar{Name: k, Value: v})
		}
		for _, e := range append(slices.Clone(ref.Env), c.Env...) { // valueFrom variables stay as written
			if e.ValueFrom != nil && !slices.ContainsFunc(env, func(x v1.EnvVar) bool { return x.Name == e.Name }) {
				env = append(env, e)
			}
		}
		c.Env = env
		if c.Image == "" {
			c.Image = r.image(ref)
		}
	default:
		return &blocked{v1.ServiceFailed, v1.ReasonRuntimeHasNoEngine, fmt.Sprintf("runtime %s has neither engineConfig.runner nor engine: nothing to run", rt.Name)}
	}
	d.image = c.Image
	d.served = launch.Served
	d.metrics = launch.MetricsPath
	if d.gpus == 0 && slices.Contains(gpuEngines, d.engine) {
		d.notes = append(d.notes, fmt.Sprintf("the engine (%s) needs a GPU, but neither runtime %s nor the InferenceService sets a %s limit, so its pods get none: set spec.engine.runner.resources.limits: {%s: 1} in the InferenceService (or engineConfig.runner.resources in the runtime)",
			d.engine, rt.Name, kube.GPUResource, kube.GPUResource))
	}

	// The model: MODEL_PATH first (the runner's own variables may refer to it), and its
	// files mounted from the host at the same paths, writable as on one host (engines may
	// keep lock files in the cache they are given, as vLLM's --download-dir).
	c.Env = append([]v1.EnvVar{{Name: "MODEL_PATH", Value: loc.path}}, slices.DeleteFunc(c.Env, func(e v1.EnvVar) bool { return e.Name == "MODEL_PATH" })...)
	var modelVols []v1.Volume
	addMount := func(name, p string) {
		modelVols = append(modelVols, v1.Volume{Name: name, HostPath: &v1.HostPathVolume{Path: p}})
		c.VolumeMounts = append(slices.DeleteFunc(c.VolumeMounts, func(m v1.VolumeMount) bool { return m.Name == name }),
			v1.VolumeMount{Name: name, MountPath: p})
	}
	if loc.store != "" {
		// The store, whole: a snapshot directory's files are links into its blobs.
		addMount("model-store", loc.store)
	}
	if loc.store == "" || !within(loc.path, loc.store) {
		addMount("model", loc.path)
	}

	// Probes: the runtime's (or the service's), else the engine's.
	if c.StartupProbe == nil {
		c.StartupProbe = probeOf(launch.Startup, engineProbe(d.engine, "startup"))
	}
	if c.ReadinessProbe == nil {
		c.ReadinessProbe = probeOf(launch.Readiness, engineProbe(d.engine, "readiness"))
	}
	if c.LivenessProbe == nil {
		c.LivenessProbe = probeOf(launch.Liveness, engineProbe(d.engine, "liveness"))
	}
	if c.Name == "" {
		c.Name = "engine"
	}
	c.TerminationMessagePolicy = "FallbackToLogsOnError"

	ps := podSpec(&rs, &ec, &ie, c, modelVols)
	ps.NodeSelector[d.label] = kube.EntryReady
	return d.objects(s, ps, &rs, &ec, &ie)
}

// objects writes the Deployment and Service from the pod spec.
func (d *desiredState) objects(s *v1.InferenceService, ps v1.PodSpec, rs *v1.ServingRuntimeSpec, ec, ie *v1.EngineSpec) error {
	var pod corev1.PodSpec
	b, err := json.Marshal(ps)
	if err == nil {
		err = json.Unmarshal(b, &pod)
	}
	if err != nil {
		return &blocked{v1.ServiceFailed, v1.ReasonInvalidEngineArgs, fmt.Sprintf("the engine's pod spec from runtime %s and the InferenceService: %v", d.runtime, err)}
	}
	name := kube.EngineName(s.Name)
	labels := ownLabels(s.Name)
	selector := map[string]string{kube.InferenceServiceLabel: s.Name, kube.ComponentLabel: kube.ComponentEngine}
	podLabels := map[string]string{}
	podAnn := map[string]string{}
	for _, m := range []map[string]string{rs.Labels, ec.Labels, ie.Labels} {
		maps.Copy(podLabels, m)
	}
	maps.Copy(podLabels, labels)
	for _, m := range []map[string]string{rs.Annotations, ec.Annotations, ie.Annotations} {
		maps.Copy(podAnn, m)
	}
	if len(podAnn) == 0 {
		podAnn = nil
	}
	owner := []metav1.OwnerReference{{APIVersion: s.APIVersion, Kind: v1.KindInferenceService, Name: s.Name, UID: types.UID(s.UID),
		Controller: ptr(true), BlockOwnerDeletion: ptr(true)}}
	if owner[0].APIVersion == "" {
		owner[0].APIVersion = v1.OMEGroupVersion
	}
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: labels, OwnerReferences: owner},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(d.replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnn}, Spec: pod},
		},
	}
	for _, raw := range []json.RawMessage{ec.DeploymentStrategy, ie.DeploymentStrategy} {
		if len(raw) > 0 {
			var strat appsv1.DeploymentStrategy
			if err := json.Unmarshal(raw, &strat); err != nil {
				return &blocked{v1.ServiceFailed, v1.ReasonInvalidEngineArgs, "deploymentStrategy: " + err.Error()}
			}
			dep.Spec.Strategy = strat
		}
	}
	d.deploy = dep
	d.service = &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: labels, OwnerReferences: owner},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports: []corev1.ServicePort{{Name: kube.EnginePortName, Port: d.port, TargetPort: intstr.FromString(kube.EnginePortName),
				Protocol: corev1.ProtocolTCP}},
		},
	}
	return nil
}

// placement says where the engines go, for status.placement: the Kubernetes scheduler
// places them, on the nodes where the model is Ready.
func (d *desiredState) placement() []string {
	gpus := fmt.Sprintf("%d %s", d.gpus, kube.GPUResource)
	if d.gpus == 0 {
		gpus = "no GPU"
	}
	eng := d.engine
	if eng == "" {
		eng = "an engine Citadel does not know"
	}
	return []string{
		fmt.Sprintf("Deployment %s: %d replica(s) of %s (image %s), %s each", d.deploy.Name, d.replicas, eng, d.image, gpus),
		fmt.Sprintf("scheduled by Kubernetes on nodes labelled %s=Ready (the model is Ready on %s)", d.label, orNone(d.nodes)),
	}
}

// ownLabels are the labels of the Deployment, the Service and the pods.
func ownLabels(isvc string) map[string]string {
	return map[string]string{kube.InferenceServiceLabel: isvc, kube.ComponentLabel: kube.ComponentEngine, kube.ManagedByLabel: kube.ManagedBy}
}

// podSpec merges the pod fields of the runtime (its legacy top-level fields, then
// engineConfig) and of the service's spec.engine, the service's winning, around c.
func podSpec(rs *v1.ServingRuntimeSpec, ec, ie *v1.EngineSpec, c v1.Container, modelVols []v1.Volume) v1.PodSpec {
	ps := v1.PodSpec{NodeSelector: map[string]string{}}
	legacy := v1.PodSpec{Volumes: rs.Volumes, NodeSelector: rs.NodeSelector, Affinity: rs.Affinity, Tolerations: rs.Tolerations,
		ImagePullSecrets: rs.ImagePullSecrets, SchedulerName: rs.SchedulerName, HostIPC: rs.HostIPC, DNSPolicy: rs.DNSPolicy, HostNetwork: rs.HostNetwork}
	for _, p := range []*v1.PodSpec{&legacy, &ec.PodSpec, &ie.PodSpec} {
		for _, v := range p.Volumes {
			ps.Volumes = append(slices.DeleteFunc(ps.Volumes, func(x v1.Volume) bool { return x.Name == v.Name }), v)
		}
		maps.Copy(ps.NodeSelector, p.NodeSelector)
		ps.Tolerations = append(ps.Tolerations, p.Tolerations...)
		for _, s := range p.ImagePullSecrets {
			if !slices.Contains(ps.ImagePullSecrets, s) {
				ps.ImagePullSecrets = append(ps.ImagePullSecrets, s)
			}
		}
		if len(p.Affinity) > 0 {
			ps.Affinity = p.Affinity
		}
		if len(p.SecurityContext) > 0 {
			ps.SecurityContext = p.SecurityContext
		}
		setStr(&ps.ServiceAccountName, p.ServiceAccountName)
		setStr(&ps.SchedulerName, p.SchedulerName)
		setStr(&ps.PriorityClassName, p.PriorityClassName)
		setStr(&ps.DNSPolicy, p.DNSPolicy)
		ps.HostIPC = ps.HostIPC || p.HostIPC
		ps.HostNetwork = ps.HostNetwork || p.HostNetwork
		if p.RuntimeClassName != nil {
			ps.RuntimeClassName = p.RuntimeClassName
		}
		if p.TerminationGracePeriodSeconds != nil {
			ps.TerminationGracePeriodSeconds = p.TerminationGracePeriodSeconds
		}
	}
	for _, v := range modelVols {
		ps.Volumes = append(slices.DeleteFunc(ps.Volumes, func(x v1.Volume) bool { return x.Name == v.Name }), v)
	}
	ps.Containers = []v1.Container{c}
	return ps
}

func setStr(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// mergeContainer is the runtime's container with the service's fields over it, as OME
// merges an InferenceService's runner into the runtime's: a field the service sets
// replaces the runtime's; env, volume mounts and ports merge by name; resources merge by
// resource name.
func mergeContainer(base, over *v1.Container) v1.Container {
	var c v1.Container
	if base != nil {
		b, _ := json.Marshal(base) // a deep copy
		_ = json.Unmarshal(b, &c)
	}
	if over == nil {
		return c
	}
	var o v1.Container
	b, _ := json.Marshal(over)
	_ = json.Unmarshal(b, &o)
	setStr(&c.Name, o.Name)
	setStr(&c.Image, o.Image)
	setStr(&c.ImagePullPolicy, o.ImagePullPolicy)
	setStr(&c.WorkingDir, o.WorkingDir)
	if len(o.Command) > 0 {
		c.Command = o.Command
	}
	if len(o.Args) > 0 {
		c.Args = o.Args
	}
	for _, e := range o.Env {
		c.Env = append(slices.DeleteFunc(c.Env, func(x v1.EnvVar) bool { return x.Name == e.Name }), e)
	}
	for _, m := range o.VolumeMounts {
		c.VolumeMounts = append(slices.DeleteFunc(c.VolumeMounts, func(x v1.VolumeMount) bool { return x.Name == m.Name }), m)
	}
	for _, p := range o.Ports {
		c.Ports = append(slices.DeleteFunc(c.Ports, func(x v1.ContainerPort) bool { return x.Name == p.Name || x.ContainerPort == p.ContainerPort }), p)
	}
	if len(o.EnvFrom) > 0 {
		c.EnvFrom = o.EnvFrom
	}
	if r := o.Resources; r != nil {
		if c.Resources == nil {
			c.Resources = &v1.ResourceRequirements{}
		}
		if c.Resources.Requests == nil && len(r.Requests) > 0 {
			c.Resources.Requests = map[string]v1.Quantity{}
		}
		if c.Resources.Limits == nil && len(r.Limits) > 0 {
			c.Resources.Limits = map[string]v1.Quantity{}
		}
		maps.Copy(c.Resources.Requests, r.Requests)
		maps.Copy(c.Resources.Limits, r.Limits)
	}
	for _, p := range []struct{ dst, src **v1.Probe }{{&c.StartupProbe, &o.StartupProbe}, {&c.ReadinessProbe, &o.ReadinessProbe}, {&c.LivenessProbe, &o.LivenessProbe}} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	if len(o.SecurityContext) > 0 {
		c.SecurityContext = o.SecurityContext
	}
	if len(o.Lifecycle) > 0 {
		c.Lifecycle = o.Lifecycle
	}
	return c
}

// gpuCount is the container's nvidia.com/gpu limit, else its request.
func gpuCount(r *v1.ResourceRequirements) int64 {
	if r == nil {
		return 0
	}
	for _, m := range []map[string]v1.Quantity{r.Limits, r.Requests} {
		if q, ok := m[kube.GPUResource]; ok {
			if v, err := q.Value(); err == nil {
				return int64(math.Ceil(v))
			}
		}
	}
	return 0
}

func renamePort(p *v1.Probe, old string) {
	if p == nil || old == "" || old == kube.EnginePortName {
		return
	}
	for _, port := range []*v1.IntOrString{httpPort(p), tcpPort(p)} {
		if port != nil && port.IsString && port.Str == old {
			port.Str = kube.EnginePortName
		}
	}
}

func httpPort(p *v1.Probe) *v1.IntOrString {
	if p.HTTPGet == nil {
		return nil
	}
	return &p.HTTPGet.Port
}

func tcpPort(p *v1.Probe) *v1.IntOrString {
	if p.TCPSocket == nil {
		return nil
	}
	return &p.TCPSocket.Port
}

// engineProbe is the engine adapter's probe of a kind; a TCP check for an engine Citadel
// does not know.
func engineProbe(name, kind string) *engine.Probe {
	a, ok := engine.Lookup(name)
	if !ok {
		p := engine.Probe{Period: 10 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 3}
		if kind == "startup" {
			p.Period, p.FailureThreshold = 5*time.Second, 360
		}
		return &p
	}
	switch kind {
	case "startup":
		return &a.Startup
	case "readiness":
		return &a.Readiness
	}
	return &a.Liveness
}

// probeOf is a Kubernetes probe of the engine's port http: p, else def.
func probeOf(p, def *engine.Probe) *v1.Probe {
	if p == nil {
		p = def
	}
	port := v1.IntOrString{IsString: true, Str: kube.EnginePortName}
	out := &v1.Probe{InitialDelaySeconds: secs(p.InitialDelay), PeriodSeconds: secs(p.Period), TimeoutSeconds: secs(p.Timeout),
		SuccessThreshold: int32(max(p.SuccessThreshold, 1)), FailureThreshold: int32(max(p.FailureThreshold, 1))}
	if p.Path == "" {
		out.TCPSocket = &v1.TCPSocketAction{Port: port}
	} else {
		out.HTTPGet = &v1.HTTPGetAction{Path: p.Path, Port: port}
	}
	return out
}

func secs(d time.Duration) int32 { return int32(d / time.Second) }

// image is the container image of a runtime that names an engine.
func (r *reconciler) image(ref *v1.EngineRef) string {
	img := r.opts.Images[ref.Name]
	if img == "" {
		img = DefaultImages[ref.Name]
	}
	if img == "" || strings.Contains(img[strings.LastIndex(img, "/")+1:], ":") || strings.Contains(img, "@") {
		return img
	}
	tag := "latest"
	if ref.Version != "" {
		tag = ref.Version
	}
	return img + ":" + tag
}

func envList(env []v1.EnvVar) []string {
	var out []string
	for _, e := range env {
		if e.ValueFrom == nil {
			out = append(out, e.Name+"="+e.Value)
		}
	}
	return out
}

// within reports whether p is dir or under it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func ptr[T any](v T) *T { return &v }
