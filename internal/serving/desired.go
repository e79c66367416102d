package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/selection"
)

// world is one snapshot of the objects the controller reads.
type world struct {
	services []*v1.InferenceService
	cluster  map[string]*v1.ClusterBaseModel
	models   map[[2]string]*v1.BaseModel // {namespace, name}
	cRuntime map[string]*v1.ClusterServingRuntime
	runtimes map[[2]string]*v1.ServingRuntime
}

// blocked is why a service cannot be planned now: its phase, reason and message.
type blocked struct {
	phase, reason, msg string
}

func (b *blocked) Error() string { return b.msg }

// intent is what a service needs before placement: the runtime, the model and the
// engine settings, and the placement request.
type intent struct {
	svc        *v1.InferenceService
	key        string    // namespace/name
	modelKey   [3]string // kind, namespace, name of the model object
	runtime    selection.Runtime
	candidates []v1.RuntimeCandidate
	model      perfmodel.Model
	modelName  string
	modelPath  string // a directory (HF snapshot, storage.path) or a GGUF file
	ollamaName string // the model's name in the Ollama store (deepcoder:14b); an engine that loads models by name only
	store      string // the model store the files belong to (OLLAMA_MODELS for ollama)
	vision     bool
	engine     string
	adapter    *engine.Adapter // the engine's; nil when no adapter knows it
	runner     *v1.Container   // the runner, run verbatim; nil: the engine adapter builds it
	ref        *v1.EngineRef
	extraArgs  []string // the InferenceService's runner args on top of an engine adapter's flags
	extraEnv   []string
	settings   engine.Settings
	tpNote     string // a runtime's tensor-parallel size the planner may change
	maxLen     int
	replicas   int
	onDemand   bool // the residency manager runs it (spec.residency, or servingMode On-demand)
	preload    bool // on-demand, loaded at start while it fits (minReplicas not 0)
	request    placement.Request
	ifp        string // what the service asks for, without placement: a change re-places it
}

// resolveModel finds the service's model as OME does: a BaseModel in its namespace first,
// then a ClusterBaseModel. It returns the model key, spec and status.
func (w *world) resolveModel(s *v1.InferenceService) ([3]string, *v1.BaseModelSpec, *v1.ModelStatus, error) {
	name := ""
	if s.Spec.Model != nil {
		name = s.Spec.Model.Name
	}
	if m, ok := w.models[[2]string{s.Namespace, name}]; ok {
		return [3]string{v1.KindBaseModel, s.Namespace, name}, &m.Spec, &m.Status, nil
	}
	if m, ok := w.cluster[name]; ok {
		return [3]string{v1.KindClusterBaseModel, "", name}, &m.Spec, &m.Status, nil
	}
	return [3]string{}, nil, nil, &blocked{v1.ServicePending, "ModelNotFound",
		fmt.Sprintf("model %q not found: no BaseModel %s/%s and no ClusterBaseModel %s; apply it", name, s.Namespace, name, name)}
}

// candidates are the runtimes a service may use: its namespace's, then the cluster's.
func (w *world) candidates(ns string) []selection.Runtime {
	var out []selection.Runtime
	for k, r := range w.runtimes {
		if k[0] == ns {
			out = append(out, selection.Runtime{Name: k[1], Namespaced: true, BuiltIn: v1.IsBuiltIn(&r.ObjectMeta), Spec: r.Spec})
		}
	}
	for name, r := range w.cRuntime {
		out = append(out, selection.Runtime{Name: name, BuiltIn: v1.IsBuiltIn(&r.ObjectMeta), Spec: r.Spec})
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
	return out
}

// modelFiles is where the model's files are on this host: storage.path, else the agent's
// record in status (the snapshot directory or the GGUF blob), with the store they belong to
// and, for an Ollama model, the name Ollama knows it by.
func modelFiles(spec *v1.BaseModelSpec, st *v1.ModelStatus) (path, store, ollamaName string) {
	for _, n := range st.Nodes {
		if n.Path != "" || n.OllamaName != "" {
			path, store, ollamaName = n.Path, n.Store, n.OllamaName
			break
		}
	}
	if ollamaName == "" && spec.Storage != nil && spec.Storage.StorageURI != nil {
		if u, err := v1.ParseStorageURI(*spec.Storage.StorageURI); err == nil {
			ollamaName = u.OllamaName()
		}
	}
	if path == "" && ollamaName == "" && spec.Storage != nil && spec.Storage.Path != nil {
		path = *spec.Storage.Path
	}
	return path, store, ollamaName
}

// profile reads the model's shape from its files (a directory, or a GGUF file such as an
// Ollama weights blob) for the planner, as citadel sim reads them (modelinfo.Inspect).
func profile(name, path string, spec *v1.BaseModelSpec) (perfmodel.Model, bool, error) {
	info, cfg, err := modelinfo.Inspect(path)
	if err != nil {
		return perfmodel.Model{}, false, err
	}
	m, err := perfmodel.ModelFromInfo(name, cfg, info)
	if err != nil {
		return perfmodel.Model{}, false, err
	}
	vision := info.Vision || slices.Contains(spec.ModelCapabilities, "IMAGE_TEXT_TO_TEXT") || slices.Contains(spec.ModelCapabilities, "VISION")
	return m, vision, nil
}

// intentFor decides what a service needs, or why it cannot be planned yet.
func (w *world) intentFor(s *v1.InferenceService) (*intent, error) {
	in := &intent{svc: s, key: s.Namespace + "/" + s.Name}
	mk, spec, st, err := w.resolveModel(s)
	if err != nil {
		return in, err
	}
	in.modelName = s.Spec.Model.Name
	in.modelKey = mk
	mkey := v1.ObjectKey(mk[0], mk[1], mk[2])
	if spec.Disabled != nil && *spec.Disabled {
		return in, &blocked{v1.ServiceFailed, "ModelDisabled", mkey + " is disabled (spec.disabled: true)"}
	}
	if st.Phase != v1.ModelReady {
		p := st.Phase
		if p == "" {
			p = "not yet reconciled"
		}
		msg := fmt.Sprintf("waiting for %s to be Ready (it is %s", mkey, p)
		if st.Reason != "" {
			msg += ": " + st.Reason
		}
		return in, &blocked{v1.ServicePending, "ModelNotReady", msg + "); see citadel describe model " + in.modelName}
	}
	explicit := ""
	if s.Spec.Runtime != nil {
		explicit = s.Spec.Runtime.Name
	}
	res, err := selection.Select(selection.Model{Name: in.modelName, Spec: *spec, Ready: true}, w.candidates(s.Namespace), explicit)
	in.candidates = candidatesOf(res.Candidates)
	if err != nil {
		var se *selection.Error
		if errors.As(err, &se) {
			in.candidates = candidatesOf(se.Candidates)
			phase := v1.ServiceFailed // until a runtime or the model changes
			if se.MetadataPending {
				phase = v1.ServicePending
			}
			return in, &blocked{phase, se.Reason, se.Message}
		}
		return in, &blocked{v1.ServiceFailed, "RuntimeSelectionFailed", err.Error()}
	}
	in.runtime = res.Runtime
	if err := in.engineOf(s); err != nil {
		return in, err
	}
	in.adapter, _ = engine.Lookup(in.engine)
	byName := in.adapter != nil && in.adapter.ByName // the engine loads models by name from its own store
	in.modelPath, in.store, in.ollamaName = modelFiles(spec, st)
	if !byName {
		in.ollamaName = ""
	} else if in.ollamaName == "" {
		return in, &blocked{v1.ServiceFailed, "ModelNotInOllamaStore", fmt.Sprintf(
			"runtime %s runs ollama serve, which serves models from its own store: %s is not an ollama:// model; pull it from the Ollama registry (storageUri: ollama://name:tag), or serve its GGUF file with runtime llamacpp (spec.runtime.name: llamacpp)", in.runtime.Name, mkey)}
	}
	if in.modelPath == "" {
		return in, &blocked{v1.ServicePending, "ModelNotReady", mkey + " is Ready but its status records no path on this host yet; the model agent writes it (status.nodes[].path)"}
	}
	if _, err := os.Stat(in.modelPath); err != nil {
		return in, &blocked{v1.ServicePending, v1.ReasonModelFilesMissing, fmt.Sprintf(
			"%s is Ready but its files are gone from %s (%v); the model agent has been asked to check and download them again: see citadel describe model %s", mkey, in.modelPath, errors.Unwrap(err), in.modelName)}
	}
	in.model, in.vision, err = profile(in.modelName, in.modelPath, spec)
	if err != nil {
		return in, &blocked{v1.ServiceFailed, "ModelUnreadable", fmt.Sprintf("cannot size %s for placement from %s: %v", mkey, in.modelPath, err)}
	}
	if in.maxLen = in.settings.MaxModelLen; in.maxLen == 0 {
		in.maxLen = in.model.MaxContext
		if in.adapter != nil && in.adapter.DefaultContext > 0 { // Ollama's 4096 (OLLAMA_CONTEXT_LENGTH)
			in.maxLen = in.adapter.DefaultContext
		}
	}
	in.replicas = 1
	if es := in.runtime.Spec.EngineConfig; es != nil && es.MinReplicas != nil && *es.MinReplicas > 0 {
		in.replicas = *es.MinReplicas
	}
	if s.Spec.Engine != nil && s.Spec.Engine.MinReplicas != nil {
		in.replicas = max(*s.Spec.Engine.MinReplicas, 0)
	}
	if s.OnDemand(spec) {
		// One instance, loaded on the first request (minReplicas 0) or at start while it
		// fits; the residency manager decides when it is resident.
		in.onDemand, in.preload = true, in.replicas != 0
		in.replicas = 1
	}
	quant := in.model.Quant
	if q, err := perfmodel.ParseQuant(in.settings.Quantization); err == nil && in.settings.Quantization != "" {
		quant = q
	}
	in.request = placement.Request{Service: in.key, Model: in.model, Quant: quant, MaxModelLen: in.maxLen,
		Engine: in.engine, Concurrency: max(in.settings.Concurrency, 1), MaxNumSeqs: in.settings.MaxNumSeqs, GPUMemoryUtilization: in.settings.GPUMemoryUtilization,
		TP: in.settings.TP, KVCacheDtype: in.settings.KVCacheDtype, Replicas: in.replicas, Shared: in.adapter != nil && in.adapter.Shared}
	b, _ := json.Marshal(struct {
		Gen      int64
		Runtime  string
		RT       v1.ServingRuntimeSpec
		Path     string
		Settings engine.Settings
		OnDemand bool
	}{s.Generation, in.runtime.Name, in.runtime.Spec, in.modelPath, in.settings, in.onDemand})
	in.ifp = string(b)
	return in, nil
}

// engineOf decides how the service's engine runs: the runtime's runner (or the service's
// own, which wins field by field as in OME), or an engine adapter with the runtime's and the
// service's arguments; and reads the planner's settings from those arguments.
func (in *intent) engineOf(s *v1.InferenceService) error {
	rt := in.runtime.Spec
	var over *v1.Container // the service's runner fields
	if s.Spec.Engine != nil && s.Spec.Engine.Runner != nil {
		over = s.Spec.Engine.Runner
	}
	var base *v1.Container
	if rt.EngineConfig != nil && rt.EngineConfig.Runner != nil && (len(rt.EngineConfig.Runner.Command) > 0 || len(rt.EngineConfig.Runner.Args) > 0) {
		base = rt.EngineConfig.Runner
	}
	in.settings = engine.NewSettings()
	switch {
	case base != nil || (over != nil && len(over.Command) > 0):
		r := mergeRunner(base, over)
		in.runner = r
		argv := append(slices.Clone(r.Command), r.Args...)
		in.engine = engine.Detect(argv)
		if in.engine == "" {
			return &blocked{v1.ServiceFailed, "EngineUnknown",
				fmt.Sprintf("runtime %s: cannot tell which engine %q runs (want %s)", in.runtime.Name, strings.Join(argv, " "), orList(engine.CommandLines()))}
		}
		src := "runner of runtime " + in.runtime.Name
		if base == nil || (over != nil && (len(over.Command) > 0 || len(over.Args) > 0)) {
			src = "InferenceService spec.engine.runner"
		}
		if err := in.settings.Read(in.engine, argv, envList(r.Env), src); err != nil {
			return &blocked{v1.ServiceFailed, "InvalidEngineArgs", err.Error()}
		}
		if src != "InferenceService spec.engine.runner" {
			in.tpPreference()
		}
	case rt.Engine != nil:
		in.ref = rt.Engine
		in.engine = rt.Engine.Name
		if err := in.settings.Read(in.engine, rt.Engine.Args, envList(rt.Engine.Env), "runtime "+in.runtime.Name+" engine.args"); err != nil {
			return &blocked{v1.ServiceFailed, "InvalidEngineArgs", err.Error()}
		}
		in.tpPreference()
		if over != nil {
			in.extraArgs, in.extraEnv = over.Args, envList(over.Env)
			if err := in.settings.Read(in.engine, over.Args, in.extraEnv, "InferenceService spec.engine.runner.args"); err != nil {
				return &blocked{v1.ServiceFailed, "InvalidEngineArgs", err.Error()}
			}
		}
	default:
		return &blocked{v1.ServiceFailed, "RuntimeHasNoEngine", fmt.Sprintf("runtime %s has neither engineConfig.runner nor engine: nothing to run", in.runtime.Name)}
	}
	return nil
}

// tpPreference turns a tensor-parallel size the runtime wrote into a preference: OME writes
// runtimes for an accelerator (and changes the size per accelerator with acceleratorOverride),
// so on this host the planner picks the size that fits, and the status says so. A size in the
// InferenceService's own arguments binds.
func (in *intent) tpPreference() {
	if in.settings.TP == 0 {
		return
	}
	in.tpNote = fmt.Sprintf("tensor-parallel-size %d in runtime %s is a preference: the planner uses the smallest size that fits these GPUs (to fix it, set it in the InferenceService's spec.engine.runner.args)", in.settings.TP, in.runtime.Name)
	in.settings.TP = 0
	in.settings.From = slices.DeleteFunc(in.settings.From, func(f engine.SettingSource) bool { return f.Name == "tensor-parallel-size" })
}

// orList writes "a, b, c or d".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// mergeRunner is the runtime's runner with the service's fields over it, as OME merges the
// InferenceService's runner into the runtime's: set fields replace, env merges by name.
func mergeRunner(base, over *v1.Container) *v1.Container {
	var r v1.Container
	if base != nil {
		r = *base
	}
	if over == nil {
		return &r
	}
	if len(over.Command) > 0 {
		r.Command = over.Command
	}
	if len(over.Args) > 0 {
		r.Args = over.Args
	}
	env := slices.Clone(r.Env)
	for _, e := range over.Env {
		if i := slices.IndexFunc(env, func(x v1.EnvVar) bool { return x.Name == e.Name }); i >= 0 {
			env[i] = e
		} else {
			env = append(env, e)
		}
	}
	r.Env = env
	for _, p := range []struct{ dst, src **v1.Probe }{{&r.StartupProbe, &over.StartupProbe}, {&r.ReadinessProbe, &over.ReadinessProbe}, {&r.LivenessProbe, &over.LivenessProbe}} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	return &r
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

func candidatesOf(cs []selection.Candidate) []v1.RuntimeCandidate {
	var out []v1.RuntimeCandidate
	for _, c := range cs {
		out = append(out, v1.RuntimeCandidate{Name: c.Runtime, Namespaced: c.Namespaced, Score: c.Score, Selected: c.Selected, Reason: c.Reason})
	}
	return out
}
