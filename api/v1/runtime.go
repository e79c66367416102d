package v1

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ClusterServingRuntime is a cluster-scoped runtime (OME ome.io/v1beta1).
type ClusterServingRuntime struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       ServingRuntimeSpec `json:"spec"`
	Status     Status             `json:"status,omitzero"`
}

// ServingRuntime is a namespaced runtime (OME ome.io/v1beta1).
type ServingRuntime struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       ServingRuntimeSpec `json:"spec"`
	Status     Status             `json:"status,omitzero"`
}

// ServingRuntimeSpec says how to run an engine for a family of models: which
// models it supports and the engine's runner. OME's fields, plus Citadel's
// optional Engine shortcut.
type ServingRuntimeSpec struct {
	// SupportedModelFormats are the models the runtime can serve: a model must match one
	// entry to be served by it.
	SupportedModelFormats []SupportedModelFormat `json:"supportedModelFormats,omitempty"`
	// ModelSizeRange bounds the parameter count of the models it serves.
	ModelSizeRange *ModelSizeRange `json:"modelSizeRange,omitempty"`
	// Disabled runtimes are never selected; a service naming one reports
	// RuntimeDisabled. Apply a built-in with disabled: true to switch it off.
	Disabled *bool `json:"disabled,omitempty"`
	// RouterConfig is OME's router component; kept as written: Citadel's gateway routes.
	RouterConfig *RouterSpec `json:"routerConfig,omitempty"`
	// EngineConfig is the engine: its runner (the command line, env, probes, resources)
	// and minReplicas.
	EngineConfig *EngineSpec `json:"engineConfig,omitempty"`
	// DecoderConfig is OME's disaggregated decode component: a runtime with one is
	// stored with a warning and never selected on one host.
	DecoderConfig *EngineSpec `json:"decoderConfig,omitempty"`
	// ProtocolVersions are the APIs the engine speaks (openAI, …).
	ProtocolVersions []string `json:"protocolVersions,omitempty"`
	// The legacy pod-level fields (OME's inline ServingRuntimePodSpec).
	Containers       []Container       `json:"containers,omitempty"`
	Volumes          []Volume          `json:"volumes,omitempty"`
	NodeSelector     map[string]string `json:"nodeSelector,omitempty"`
	Affinity         json.RawMessage   `json:"affinity,omitempty"`
	Tolerations      []Toleration      `json:"tolerations,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	Annotations      map[string]string `json:"annotations,omitempty"`
	ImagePullSecrets []LocalObjectRef  `json:"imagePullSecrets,omitempty"`
	SchedulerName    string            `json:"schedulerName,omitempty"`
	HostIPC          bool              `json:"hostIPC,omitempty"`
	DNSPolicy        string            `json:"dnsPolicy,omitempty"`
	HostNetwork      bool              `json:"hostNetwork,omitempty"`
	Workers          *WorkerSpec       `json:"workers,omitempty"`

	AcceleratorRequirements json.RawMessage `json:"acceleratorRequirements,omitempty"`

	// Engine is Citadel's shortcut: name a known engine (vllm, sglang,
	// llamacpp, ollama, sim) instead of writing a runner command; the
	// engine adapter builds the command line from the model.
	Engine *EngineRef `json:"engine,omitempty"`
}

// MultiNode reports whether the runtime needs more than one host: OME's
// multi-node engine (engineConfig.leader/worker, or the legacy
// spec.workers) or its disaggregated prefill/decode (decoderConfig). It
// returns the field path that says so and the words for messages; "" when
// the runtime runs on one host.
func (s *ServingRuntimeSpec) MultiNode() (path, what string) {
	switch e := s.EngineConfig; {
	case e != nil && e.Leader != nil:
		return "engineConfig.leader", "multi-node serving (engineConfig.leader/worker)"
	case e != nil && e.Worker != nil:
		return "engineConfig.worker", "multi-node serving (engineConfig.leader/worker)"
	case s.DecoderConfig != nil:
		return "decoderConfig", "disaggregated prefill/decode serving (decoderConfig)"
	case s.Workers != nil:
		return "workers", "multi-node serving (workers)"
	}
	return "", ""
}

// Built-in runtimes: Citadel installs one ClusterServingRuntime per engine
// at start (vllm, sglang, llamacpp, ollama) and marks it with these
// annotations. It updates a runtime only while both are present and the hash
// is its own; a runtime a user applied under the same name is never touched.
const (
	// AnnotationBuiltIn is "true" on a runtime Citadel installed.
	AnnotationBuiltIn = "citadel.dev/built-in"
	// AnnotationBuiltInHash is the hash of the built-in file it was installed from.
	AnnotationBuiltInHash = "citadel.dev/built-in-hash"
)

// IsBuiltIn reports whether m is a runtime Citadel installed.
func IsBuiltIn(m *ObjectMeta) bool { return m.Annotations[AnnotationBuiltIn] == "true" }

// EngineRef names a known engine and its options.
type EngineRef struct {
	// Name is the engine: vllm, sglang, llamacpp, ollama or sim.
	Name string `json:"name"`
	// Version is the engine version the runtime was written for; recorded, not checked.
	Version string `json:"version,omitempty"`
	// Args are added to the command line the engine adapter builds (--max-model-len
	// 8192, --gpu-memory-utilization 0.9).
	Args []string `json:"args,omitempty"`
	// Env is set in the engine's environment.
	Env []EnvVar `json:"env,omitempty"`
}

// EngineNames are the engines a runtime's engine.name may name, in the order messages list
// them: one per engine adapter of internal/engine (a test there checks the two agree),
// then sim, which stands for the simulator.
var EngineNames = []string{"vllm", "sglang", "llamacpp", "ollama", "sim"}

// SupportedModelFormat is one kind of model the runtime can serve.
type SupportedModelFormat struct {
	// Name labels the entry.
	Name string `json:"name,omitempty"`
	// ModelFormat is the weights format the model must have (its version compared by
	// the entry's operator).
	ModelFormat *ModelFormat `json:"modelFormat,omitempty"`
	// ModelType is the model_type the model must have, when set.
	ModelType *string `json:"modelType,omitempty"`
	// Version is OME's legacy format version.
	Version *string `json:"version,omitempty"`
	// ModelFramework is the framework (and version) the model must have, when set.
	ModelFramework *ModelFrameworkSpec `json:"modelFramework,omitempty"`
	// ModelArchitecture is the architecture the model must have (Qwen2ForCausalLM), when
	// set.
	ModelArchitecture *string `json:"modelArchitecture,omitempty"`
	// Quantization is the quantization the model must have, when set.
	Quantization *string `json:"quantization,omitempty"`
	// DiffusionPipeline is OME's; kept as written.
	DiffusionPipeline json.RawMessage `json:"diffusionPipeline,omitempty"`
	// AutoSelect lets the entry be chosen for a service that names no runtime.
	AutoSelect *bool `json:"autoSelect,omitempty"`
	// Priority multiplies the entry's score in automatic selection.
	Priority *int32 `json:"priority,omitempty"`
	// AcceleratorConfig is OME's; kept as written.
	AcceleratorConfig json.RawMessage `json:"acceleratorConfig,omitempty"`
}

// ModelSizeRange bounds the parameter count of models the runtime serves.
type ModelSizeRange struct {
	// Min and Max are parameter counts ("1B", "32.8B"), not bytes.
	Min *ParameterSize `json:"min,omitempty"`
	Max *ParameterSize `json:"max,omitempty"`
}

// EngineSpec is an engine (or decoder) component: a pod spec, scaling
// settings and the runner container. OME inlines PodSpec and the component
// extension; so does Citadel.
type EngineSpec struct {
	PodSpec                `json:",inline"`
	ComponentExtensionSpec `json:",inline"`
	// Runner is the engine's container: Citadel runs its command and args (vllm serve
	// …, llama-server …) as a process, with its env, probes and resources.
	Runner *Container `json:"runner,omitempty"`
	// Leader and Worker are OME's multi-node engine: a runtime with them is stored with
	// a warning and never selected on one host.
	Leader *LeaderSpec `json:"leader,omitempty"`
	Worker *WorkerSpec `json:"worker,omitempty"`
	// AcceleratorOverride is OME's; kept as written.
	AcceleratorOverride json.RawMessage `json:"acceleratorOverride,omitempty"`
}

// RouterSpec is OME's router component.
type RouterSpec struct {
	PodSpec                `json:",inline"`
	ComponentExtensionSpec `json:",inline"`
	Runner                 *Container        `json:"runner,omitempty"`
	Config                 map[string]string `json:"config,omitempty"`
}

// LeaderSpec is the leader of a multi-node engine.
type LeaderSpec struct {
	PodSpec `json:",inline"`
	Runner  *Container `json:"runner,omitempty"`
}

// WorkerSpec is the workers of a multi-node engine.
type WorkerSpec struct {
	PodSpec `json:",inline"`
	Size    *int       `json:"size,omitempty"`
	Runner  *Container `json:"runner,omitempty"`
}

// ComponentExtensionSpec holds the scaling and rollout settings of a component.
type ComponentExtensionSpec struct {
	// MinReplicas is the number of engine instances Citadel runs (default 1; 0 stops
	// the service's engines). The other scaling fields are OME's, kept as written.
	MinReplicas          *int              `json:"minReplicas,omitempty"`
	MaxReplicas          int               `json:"maxReplicas,omitempty"`
	ScaleTarget          *int              `json:"scaleTarget,omitempty"`
	ScaleMetric          *string           `json:"scaleMetric,omitempty"`
	ContainerConcurrency *int64            `json:"containerConcurrency,omitempty"`
	TimeoutSeconds       *int64            `json:"timeoutSeconds,omitempty"`
	CanaryTrafficPercent *int64            `json:"canaryTrafficPercent,omitempty"`
	Labels               map[string]string `json:"labels,omitempty"`
	Annotations          map[string]string `json:"annotations,omitempty"`
	MinAvailable         json.RawMessage   `json:"minAvailable,omitempty"`
	MaxUnavailable       json.RawMessage   `json:"maxUnavailable,omitempty"`
	DeploymentStrategy   json.RawMessage   `json:"deploymentStrategy,omitempty"`
	KedaConfig           json.RawMessage   `json:"kedaConfig,omitempty"`
}

// Default fills the runtime's defaults.
func (r *ClusterServingRuntime) Default() {
	r.APIVersion, r.Kind = OMEGroupVersion, KindClusterServingRuntime
	r.Spec.defaults()
}

// Default fills the runtime's defaults.
func (r *ServingRuntime) Default() {
	r.APIVersion, r.Kind = OMEGroupVersion, KindServingRuntime
	if r.Namespace == "" {
		r.Namespace = DefaultNamespace
	}
	r.Spec.defaults()
}

func (s *ServingRuntimeSpec) defaults() {
	for i := range s.SupportedModelFormats {
		f := &s.SupportedModelFormats[i]
		if f.ModelFormat != nil && f.ModelFormat.Weight == 0 {
			f.ModelFormat.Weight = 1
		}
		if f.ModelFramework != nil && f.ModelFramework.Weight == 0 {
			f.ModelFramework.Weight = 1
		}
	}
}

// Validate checks the runtime on its own.
func (r *ClusterServingRuntime) Validate() FieldErrors {
	errs := validateMeta(&r.ObjectMeta, false)
	errs.Prefixed("spec", r.Spec.validate())
	return errs
}

// Validate checks the runtime on its own.
func (r *ServingRuntime) Validate() FieldErrors {
	errs := validateMeta(&r.ObjectMeta, true)
	errs.Prefixed("spec", r.Spec.validate())
	return errs
}

// References: runtimes name no other object.
func (r *ClusterServingRuntime) References() []Reference { return nil }

// References: runtimes name no other object.
func (r *ServingRuntime) References() []Reference { return nil }

var protocolVersions = []string{"openAI", "cohere", "openInference-v1", "openInference-v2"}

func (s *ServingRuntimeSpec) validate() FieldErrors {
	var errs FieldErrors
	if len(s.SupportedModelFormats) == 0 {
		errs.Add("supportedModelFormats", "is empty: the runtime matches no model", "list at least one format, e.g. - modelFormat: {name: safetensors}")
	}
	for i, f := range s.SupportedModelFormats {
		p := fmt.Sprintf("supportedModelFormats[%d]", i)
		if f.ModelFormat == nil || f.ModelFormat.Name == "" {
			errs.Add(p+".modelFormat.name", "is required", "e.g. modelFormat: {name: safetensors, version: \"1.0.0\"}")
		}
		if f.ModelFormat != nil && f.ModelFormat.Operator != nil {
			oneOf(&errs, p+".modelFormat.operator", *f.ModelFormat.Operator, formatOperators...)
		}
		if fw := f.ModelFramework; fw != nil {
			if fw.Name == "" {
				errs.Add(p+".modelFramework.name", "is required", "e.g. modelFramework: {name: transformers}")
			}
			if fw.Operator != nil {
				oneOf(&errs, p+".modelFramework.operator", *fw.Operator, formatOperators...)
			}
		}
		if f.Priority != nil && *f.Priority < 1 {
			errs.Add(p+".priority", fmt.Sprintf("must be at least 1, got %d", *f.Priority), "")
		}
		if f.Quantization != nil {
			knownValue(&errs, p+".quantization", "quantization", *f.Quantization, true, quantizations...)
		}
	}
	if r := s.ModelSizeRange; r != nil {
		var lo, hi float64
		var err error
		if r.Min != nil {
			if lo, err = r.Min.Count(); err != nil {
				errs.Add("modelSizeRange.min", err.Error(), "")
			}
		}
		if r.Max != nil {
			if hi, err = r.Max.Count(); err != nil {
				errs.Add("modelSizeRange.max", err.Error(), "")
			}
		}
		if lo > 0 && hi > 0 && lo > hi {
			errs.Add("modelSizeRange", fmt.Sprintf("min %s is greater than max %s", *r.Min, *r.Max), "swap them")
		}
	}
	for i, p := range s.ProtocolVersions {
		knownValue(&errs, fmt.Sprintf("protocolVersions[%d]", i), "protocol version", p, false, protocolVersions...)
	}
	if s.Engine != nil {
		if s.Engine.Name == "" {
			errs.Add("engine.name", "is required", "one of: "+strings.Join(EngineNames, ", "))
		}
		oneOf(&errs, "engine.name", s.Engine.Name, EngineNames...)
	}
	hasRunner := s.EngineConfig != nil && s.EngineConfig.Runner != nil || len(s.Containers) > 0
	if path, what := s.MultiNode(); path != "" {
		// Valid OME: stored, so that OME's runtime directories apply unchanged, but
		// never selected (internal/selection refuses it with the same words).
		errs = append(errs, FieldError{Path: path, Warning: true, Message: what + " is not supported on one host: the runtime is stored but never selected",
			Fix: "serve the model with a single-node runtime (engineConfig.runner, or engine: {name: vllm}), or leave spec.runtime unset to use a built-in one"})
	} else if s.Engine == nil && !hasRunner {
		errs.Add("engineConfig.runner", "is missing: the runtime has no way to start an engine", "add engineConfig.runner with a command, or name a known engine with engine: {name: vllm}")
	}
	if s.EngineConfig != nil {
		errs.Prefixed("engineConfig", s.EngineConfig.validate())
	}
	if s.DecoderConfig != nil {
		errs.Prefixed("decoderConfig", s.DecoderConfig.validate())
	}
	if s.RouterConfig != nil {
		errs.Prefixed("routerConfig", s.RouterConfig.validate())
	}
	for i := range s.Containers {
		errs.Prefixed(fmt.Sprintf("containers[%d]", i), s.Containers[i].Validate())
	}
	return errs
}

func (e *EngineSpec) validate() FieldErrors {
	var errs FieldErrors
	errs = append(errs, e.ComponentExtensionSpec.validate()...)
	errs = append(errs, e.PodSpec.validate()...)
	if e.Runner != nil {
		errs.Prefixed("runner", e.Runner.Validate())
		if len(e.Runner.Command) == 0 && len(e.Runner.Args) == 0 {
			errs.Add("runner.command", "is empty: nothing to run", "give the engine's command line, e.g. command: [vllm, serve, $(MODEL_PATH)]")
		}
	}
	return errs
}

func (r *RouterSpec) validate() FieldErrors {
	var errs FieldErrors
	errs = append(errs, r.ComponentExtensionSpec.validate()...)
	errs = append(errs, r.PodSpec.validate()...)
	if r.Runner != nil {
		errs.Prefixed("runner", r.Runner.Validate())
	}
	return errs
}

func (p *PodSpec) validate() FieldErrors {
	var errs FieldErrors
	for i := range p.Containers {
		errs.Prefixed(fmt.Sprintf("containers[%d]", i), p.Containers[i].Validate())
	}
	names := map[string]bool{}
	for i, v := range p.Volumes {
		if v.Name == "" {
			errs.Add(fmt.Sprintf("volumes[%d].name", i), "is required", "")
		} else if names[v.Name] {
			errs.Add(fmt.Sprintf("volumes[%d].name", i), fmt.Sprintf("duplicate volume name %q", v.Name), "give each volume its own name")
		}
		names[v.Name] = true
		if v.EmptyDir != nil {
			oneOf(&errs, fmt.Sprintf("volumes[%d].emptyDir.medium", i), v.EmptyDir.Medium, "Memory", "HugePages")
			if v.EmptyDir.SizeLimit != nil {
				if _, err := v.EmptyDir.SizeLimit.Value(); err != nil {
					errs.Add(fmt.Sprintf("volumes[%d].emptyDir.sizeLimit", i), err.Error(), "")
				}
			}
		}
	}
	for i, t := range p.Tolerations {
		oneOf(&errs, fmt.Sprintf("tolerations[%d].operator", i), t.Operator, "Exists", "Equal")
		oneOf(&errs, fmt.Sprintf("tolerations[%d].effect", i), t.Effect, "NoSchedule", "PreferNoSchedule", "NoExecute")
	}
	if p.Resources != nil {
		errs.Prefixed("resources", p.Resources.Validate())
	}
	return errs
}

func (c *ComponentExtensionSpec) validate() FieldErrors {
	var errs FieldErrors
	if c.MinReplicas != nil && *c.MinReplicas < 0 {
		errs.Add("minReplicas", fmt.Sprintf("must not be negative, got %d", *c.MinReplicas), "")
	}
	if c.MaxReplicas < 0 {
		errs.Add("maxReplicas", fmt.Sprintf("must not be negative, got %d", c.MaxReplicas), "")
	}
	if c.MinReplicas != nil && c.MaxReplicas > 0 && *c.MinReplicas > c.MaxReplicas {
		errs.Add("minReplicas", fmt.Sprintf("%d is greater than maxReplicas %d", *c.MinReplicas, c.MaxReplicas), "raise maxReplicas or lower minReplicas")
	}
	if c.ScaleMetric != nil {
		oneOf(&errs, "scaleMetric", *c.ScaleMetric, "cpu", "memory", "concurrency", "rps")
	}
	if c.CanaryTrafficPercent != nil && (*c.CanaryTrafficPercent < 0 || *c.CanaryTrafficPercent > 100) {
		errs.Add("canaryTrafficPercent", fmt.Sprintf("must be between 0 and 100, got %d", *c.CanaryTrafficPercent), "")
	}
	return errs
}
