package v1

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// InferenceService binds a model to a runtime (OME ome.io/v1beta1).
type InferenceService struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       InferenceServiceSpec   `json:"spec"`
	Status     InferenceServiceStatus `json:"status,omitzero"`
}

// InferenceServiceSpec is OME's spec, field for field.
type InferenceServiceSpec struct {
	// Predictor is OME's legacy form, kept as written: a service needs Model.
	Predictor json.RawMessage `json:"predictor,omitempty"`
	// Engine overrides the runtime's engine for this service: minReplicas (the number of
	// engine instances; default the runtime's, else 1) and runner fields (args, env,
	// resources), merged over the runtime's runner as OME merges them.
	Engine *EngineSpec `json:"engine,omitempty"`
	// Decoder is OME's disaggregated decode component; kept as written, never run on one
	// host.
	Decoder *EngineSpec `json:"decoder,omitempty"`
	// Router is OME's router component; kept as written: Citadel's gateway routes.
	Router *RouterSpec `json:"router,omitempty"`
	// Model names the model to serve.
	Model *ModelRef `json:"model,omitempty"`
	// Runtime names the runtime; without it one is selected automatically among those
	// that can serve the model (docs/resources.md, "Automatic selection").
	Runtime *ServingRuntimeRef `json:"runtime,omitempty"`
	// KedaConfig is OME's autoscaling configuration; kept as written.
	KedaConfig json.RawMessage `json:"kedaConfig,omitempty"`
	// AcceleratorSelector is OME's GPU class selection; checked and kept as written.
	AcceleratorSelector *AcceleratorSelector `json:"acceleratorSelector,omitempty"`
	// Residency makes the service on-demand (Citadel's own field): its model is loaded when
	// a request asks for it and evicted when idle or when another needs the memory. Without
	// it a service is on-demand when its model's servingMode is On-demand; otherwise it is
	// dedicated and always resident (docs/resources.md, "On-demand models").
	Residency *ResidencySpec `json:"residency,omitempty"`
}

// ResidencySpec is how an on-demand service is loaded, held and evicted.
type ResidencySpec struct {
	// IdleTimeout evicts the model after this long without requests, e.g. 10m. Default
	// none: it is evicted only when another model needs the memory.
	IdleTimeout *Duration `json:"idleTimeout,omitempty"`
	// Priority breaks ties between idle models when memory is needed: the lower is evicted
	// first. Default 0.
	Priority *int32 `json:"priority,omitempty"`
	// SleepLevel is vLLM's sleep level: 1 keeps the weights in host memory (fast wake),
	// 2 discards them (read again from disk), auto picks 1 when host memory holds them.
	// Default auto.
	SleepLevel *IntOrString `json:"sleepLevel,omitempty"`
	// MaxQueue is how many requests may wait for the model to load; beyond it requests are
	// refused with 429 and Retry-After. Default 64.
	MaxQueue *int32 `json:"maxQueue,omitempty"`
	// MaxWait is how long a request may wait for the model to load before it is refused
	// with 503 and Retry-After. Default 120s.
	MaxWait *Duration `json:"maxWait,omitempty"`
}

// ServingModeOnDemand is OME's servingMode value for a model that may be evicted.
const ServingModeOnDemand = "On-demand"

// OnDemand says whether the service is on-demand: it sets spec.residency, or its model's
// servingMode lists On-demand and not Dedicated.
func (s *InferenceService) OnDemand(model *BaseModelSpec) bool {
	if s.Spec.Residency != nil {
		return true
	}
	if model == nil {
		return false
	}
	return slices.Contains(model.ServingMode, ServingModeOnDemand) && !slices.Contains(model.ServingMode, "Dedicated")
}

func (r *ResidencySpec) validate() FieldErrors {
	var errs FieldErrors
	for _, d := range []struct {
		path string
		v    *Duration
	}{{"idleTimeout", r.IdleTimeout}, {"maxWait", r.MaxWait}} {
		if d.v == nil {
			continue
		}
		if v, err := d.v.Std(); err != nil {
			errs.Add(d.path, err.Error(), "")
		} else if d.path == "maxWait" && v == 0 {
			errs.Add(d.path, "is 0: every request to a model that is not loaded would be refused", "give a wait such as 120s, or remove maxWait for the default")
		}
	}
	if l := r.SleepLevel; l != nil {
		if l.IsString && l.Str != "auto" || !l.IsString && l.Int != 1 && l.Int != 2 {
			errs.Add("sleepLevel", fmt.Sprintf("%q is not a sleep level", l.String()), "want 1 (weights kept in host memory), 2 (weights discarded) or auto")
		}
	}
	if r.MaxQueue != nil && *r.MaxQueue < 1 {
		errs.Add("maxQueue", fmt.Sprintf("must be at least 1, got %d", *r.MaxQueue), "remove maxQueue for the default, 64")
	}
	return errs
}

// SleepLevelOf is the vLLM sleep level the service asks for: 1, 2, or 0 for auto.
func (r *ResidencySpec) SleepLevelOf() int {
	if r == nil || r.SleepLevel == nil || r.SleepLevel.IsString {
		return 0
	}
	return int(r.SleepLevel.Int)
}

// ModelRef names the model to serve. As in OME, a BaseModel in the
// service's namespace is preferred over a ClusterBaseModel of the same name.
type ModelRef struct {
	// Name is the model's metadata.name.
	Name string `json:"name"`
	// Kind is ClusterBaseModel (default) or BaseModel; either way a BaseModel of the
	// name in the service's namespace is found first.
	Kind *string `json:"kind,omitempty"`
	// APIGroup is ome.io, the default.
	APIGroup *string `json:"apiGroup,omitempty"`
	// FineTunedWeights are OME's fine-tuned weight names; kept as written.
	FineTunedWeights []string `json:"fineTunedWeights,omitempty"`
}

// ServingRuntimeRef names the runtime explicitly; without it the runtime is
// selected automatically among those with autoSelect.
type ServingRuntimeRef struct {
	// Name is the runtime's metadata.name (the built-ins: vllm, sglang, llamacpp,
	// ollama).
	Name string `json:"name"`
	// Kind is ClusterServingRuntime (default) or ServingRuntime; either way a
	// ServingRuntime of the name in the service's namespace is found first.
	Kind *string `json:"kind,omitempty"`
	// APIGroup is ome.io, the default.
	APIGroup *string `json:"apiGroup,omitempty"`
}

// AcceleratorSelector constrains the GPUs a service may use.
type AcceleratorSelector struct {
	// AcceleratorClass names an OME AcceleratorClass; kept as written.
	AcceleratorClass *string `json:"acceleratorClass,omitempty"`
	// Constraints are OME's accelerator constraints; kept as written.
	Constraints json.RawMessage `json:"constraints,omitempty"`
	// Policy is how OME picks among matching accelerators.
	Policy *string `json:"policy,omitempty"`
}

// InferenceService phases: Pending (waiting for its model or a runtime) →
// Scheduling (placing it on GPUs) → Starting (engines launched, not yet ready)
// → Ready (every replica ready) | Degraded (some replicas ready, or restarting)
// | Failed (cannot run until something changes).
const (
	ServicePending    = "Pending"
	ServiceScheduling = "Scheduling"
	ServiceStarting   = "Starting"
	ServiceReady      = "Ready"
	ServiceDegraded   = "Degraded"
	ServiceFailed     = "Failed"
)

// InferenceServiceStatus is the observed state of a service.
type InferenceServiceStatus struct {
	Status `json:",inline"`
	// URL is where the service answers (the engine, or the gateway).
	URL string `json:"url,omitempty"`
	// Runtime is the runtime in use, selected or named.
	Runtime string `json:"runtime,omitempty"`
	// Runtimes are every runtime considered, with why each was rejected.
	Runtimes []RuntimeCandidate `json:"runtimes,omitempty"`
	// Replicas are the running engine instances.
	Replicas      int32 `json:"replicas,omitempty"`
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Placement is the planner's decision, with its arithmetic.
	Placement []string `json:"placement,omitempty"`
	// Endpoints are the engine instances, for the gateway.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Residency is where an on-demand service is: loaded, loading, sleeping, unloaded or
	// failed, and why.
	Residency *ResidencyStatus `json:"residency,omitempty"`
}

// ResidencyStatus is an on-demand service's state.
type ResidencyStatus struct {
	// State is loaded, loading, sleeping (the engine keeps its process, the weights left the
	// GPU), unloaded or failed.
	State string `json:"state"`
	// Progress is 0–1 while loading.
	Progress float64 `json:"progress,omitempty"`
	// Reason says why it is in this state: a code and words ("Evicted: Pressure (…)").
	Reason string `json:"reason,omitempty"`
	// Since is when it entered the state; LastUsed when a request last ended.
	Since    *Time `json:"since,omitempty"`
	LastUsed *Time `json:"lastUsed,omitempty"`
	// SizeVRAM is the GPU memory it holds while resident, in bytes.
	SizeVRAM int64 `json:"sizeVRAM,omitempty"`
	// InFlight and Queued are the requests running on it and waiting for it.
	InFlight int32 `json:"inFlight,omitempty"`
	Queued   int32 `json:"queued,omitempty"`
}

// RuntimeCandidate is one runtime's verdict in selection.
type RuntimeCandidate struct {
	// Name is the runtime's name; Namespaced says it is a ServingRuntime.
	Name       string `json:"name"`
	Namespaced bool   `json:"namespaced,omitempty"`
	// Score is its selection score (format and framework weights × priority).
	Score int64 `json:"score,omitempty"`
	// Selected marks the runtime in use.
	Selected bool `json:"selected,omitempty"`
	// Reason is why the runtime was rejected; empty when it is compatible.
	Reason string `json:"reason,omitempty"`
}

// Endpoint is one engine instance of a service.
type Endpoint struct {
	// Replica is the instance's index, from 0.
	Replica int `json:"replica"`
	// Address is the engine's host:port (a free loopback port, new at each start).
	Address string `json:"address"`
	// Engine is vllm, sglang, llamacpp or ollama.
	Engine string `json:"engine"`
	// GPUs are the indexes of the GPUs it runs on (as nvidia-smi numbers them).
	GPUs []int `json:"gpus,omitempty"`
	// Ready says it answers its readiness probe.
	Ready bool `json:"ready"`
	// Phase is the supervisor's: Starting, Ready, Unready, Restarting, CrashLoopBackOff, …
	// (docs/reasons.md, engine phases).
	Phase string `json:"phase"`
	// Restarts counts the engine's restarts.
	Restarts int `json:"restarts,omitempty"`
	// PID is the engine process's id.
	PID int `json:"pid,omitempty"`
	// Served are the model names the engine answers to.
	Served []string `json:"served,omitempty"`
	// Metrics is the Prometheus path and the series that give its load.
	Metrics       string `json:"metrics,omitempty"`
	RunningMetric string `json:"runningMetric,omitempty"`
	WaitingMetric string `json:"waitingMetric,omitempty"`
	KVUsageMetric string `json:"kvUsageMetric,omitempty"`
	// LastExit is how the engine's last process ended, in Go's words ("exit status 1",
	// "signal: killed"); LastExitReason is the supervisor's reason for it.
	LastExit       string `json:"lastExit,omitempty"`
	LastExitReason string `json:"lastExitReason,omitempty"`
	// ExitCode is the last process's exit status (128+signal when a signal ended it).
	// Default is none: no process has ended, or it could not be waited for.
	ExitCode *int32 `json:"exitCode,omitempty"`
	// Signal names the signal that ended the last process ("killed", "segmentation
	// fault"). Default is "": it exited by itself, or none has ended.
	Signal string `json:"signal,omitempty"`
	// Shared names the multi-model engine this service's model runs in (one ollama serve
	// for every Ollama model on the host), e.g. "ollama (runtime ollama)"; empty for an
	// engine of its own.
	Shared string `json:"shared,omitempty"`
}

// Default fills the service's defaults.
func (s *InferenceService) Default() {
	s.APIVersion, s.Kind = OMEGroupVersion, KindInferenceService
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if m := s.Spec.Model; m != nil {
		if m.Kind == nil {
			k := KindClusterBaseModel
			m.Kind = &k
		}
		if m.APIGroup == nil {
			g := "ome.io"
			m.APIGroup = &g
		}
	}
	if r := s.Spec.Runtime; r != nil {
		if r.Kind == nil {
			k := KindClusterServingRuntime
			r.Kind = &k
		}
		if r.APIGroup == nil {
			g := "ome.io"
			r.APIGroup = &g
		}
	}
}

// Validate checks the service on its own.
func (s *InferenceService) Validate() FieldErrors {
	errs := validateMeta(&s.ObjectMeta, true)
	var spec FieldErrors
	if s.Spec.Model == nil || s.Spec.Model.Name == "" {
		spec.Add("model.name", "is required", "name the model to serve, e.g. model: {name: mimo-vl-7b-rl}")
	}
	if m := s.Spec.Model; m != nil {
		if m.Kind != nil {
			oneOf(&spec, "model.kind", *m.Kind, KindClusterBaseModel, KindBaseModel)
		}
		if m.APIGroup != nil {
			oneOf(&spec, "model.apiGroup", *m.APIGroup, "ome.io")
		}
	}
	if r := s.Spec.Runtime; r != nil {
		if r.Name == "" {
			spec.Add("runtime.name", "is empty", "name a runtime, or remove runtime to select one automatically")
		}
		if r.Kind != nil {
			oneOf(&spec, "runtime.kind", *r.Kind, KindClusterServingRuntime, KindServingRuntime)
		}
	}
	if s.Spec.Engine != nil {
		spec.Prefixed("engine", s.Spec.Engine.validate())
	}
	if s.Spec.Decoder != nil {
		spec.Prefixed("decoder", s.Spec.Decoder.validate())
	}
	if s.Spec.Router != nil {
		spec.Prefixed("router", s.Spec.Router.validate())
	}
	if r := s.Spec.Residency; r != nil {
		spec.Prefixed("residency", r.validate())
		if e := s.Spec.Engine; e != nil && e.MinReplicas != nil && *e.MinReplicas > 1 {
			spec.Add("engine.minReplicas", fmt.Sprintf("%d with residency: an on-demand service runs one engine instance", *e.MinReplicas),
				"set minReplicas 0 (loaded on the first request) or 1 (loaded at start while it fits), or remove residency for a dedicated service with replicas")
		}
	}
	if a := s.Spec.AcceleratorSelector; a != nil && a.Policy != nil {
		oneOf(&spec, "acceleratorSelector.policy", *a.Policy, "BestFit", "Cheapest", "MostCapable", "FirstAvailable")
	}
	errs.Prefixed("spec", spec)
	return errs
}

// References returns the model and the runtime. OME resolves both by name,
// namespaced kind first, whatever kind the reference says; so does Citadel.
func (s *InferenceService) References() []Reference {
	var refs []Reference
	if m := s.Spec.Model; m != nil && m.Name != "" {
		refs = append(refs, Reference{Path: "spec.model.name", Kinds: []string{KindBaseModel, KindClusterBaseModel}, Namespace: s.Namespace, Name: m.Name})
	}
	if r := s.Spec.Runtime; r != nil && r.Name != "" {
		refs = append(refs, Reference{Path: "spec.runtime.name", Kinds: []string{KindServingRuntime, KindClusterServingRuntime}, Namespace: s.Namespace, Name: r.Name})
	}
	return refs
}

// ServiceRef parses "name" or "namespace/name" relative to ns.
func ServiceRef(ref, ns string) (namespace, name string, err error) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == '/' {
			namespace, name = ref[:i], ref[i+1:]
			if namespace == "" || name == "" {
				return "", "", fmt.Errorf("%q is not a service reference: write name or namespace/name", ref)
			}
			return namespace, name, nil
		}
	}
	if ref == "" {
		return "", "", fmt.Errorf("empty service reference")
	}
	return ns, ref, nil
}

// SetServiceGates sets a service's gate conditions in the order a service passes them
// (ModelReady, RuntimeSelected, Scheduled, EngineReady) and Ready: the gates before at are
// True with the given messages (the model's, and where the engines run), the one at at is
// False with the status's reason and message, and the ones after it are Unknown, waiting for
// it. at is 4 for a Ready service. citadel serve and the Kubernetes controller share it.
func SetServiceGates(st *InferenceServiceStatus, gen int64, now time.Time, at int, modelMsg, scheduledMsg string) {
	gates := []struct{ typ, okReason, okMsg string }{
		{CondModelReady, ReasonModelReady, modelMsg},
		{CondRuntimeSelected, ReasonRuntimeSelected, "runtime " + st.Runtime},
		{CondScheduled, ReasonScheduled, scheduledMsg},
		{CondEngineReady, ReasonEngineReady, st.Message},
	}
	for i, g := range gates {
		c := Condition{Type: g.typ, ObservedGeneration: gen}
		switch {
		case i < at:
			c.Status, c.Reason, c.Message = ConditionTrue, g.okReason, g.okMsg
		case i == at:
			c.Status, c.Reason, c.Message = ConditionFalse, st.Reason, st.Message
		default:
			c.Status, c.Reason, c.Message = ConditionUnknown, ReasonWaiting, "waits for "+gates[at].typ
		}
		SetCondition(&st.Conditions, c, now)
	}
	ready := Condition{Type: CondReady, Status: ConditionFalse, Reason: st.Reason, Message: st.Message, ObservedGeneration: gen}
	if st.Phase == ServiceReady {
		ready.Status = ConditionTrue
	}
	SetCondition(&st.Conditions, ready, now)
}
