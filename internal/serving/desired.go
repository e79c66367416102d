package serving

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/selection"
	"citadel.dev/citadel/internal/sim/perf"
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
	key        string // namespace/name
	runtime    selection.Runtime
	candidates []v1.RuntimeCandidate
	model      perf.Model
	modelName  string
	modelPath  string
	vision     bool
	engine     string
	runner     *v1.Container // the runtime's runner, run verbatim; nil: the engine adapter builds it
	ref        *v1.EngineRef
	maxLen     int
	replicas   int
	request    placement.Request
}

// resolveModel finds the service's model as OME does: a BaseModel in its namespace first,
// then a ClusterBaseModel. It returns the model key, spec and status.
func (w *world) resolveModel(s *v1.InferenceService) (string, *v1.BaseModelSpec, *v1.ModelStatus, error) {
	name := ""
	if s.Spec.Model != nil {
		name = s.Spec.Model.Name
	}
	if m, ok := w.models[[2]string{s.Namespace, name}]; ok {
		return v1.ObjectKey(v1.KindBaseModel, s.Namespace, name), &m.Spec, &m.Status, nil
	}
	if m, ok := w.cluster[name]; ok {
		return v1.ObjectKey(v1.KindClusterBaseModel, "", name), &m.Spec, &m.Status, nil
	}
	return "", nil, nil, &blocked{v1.ServicePending, "ModelNotFound",
		fmt.Sprintf("model %q not found: no BaseModel %s/%s and no ClusterBaseModel %s; apply it", name, s.Namespace, name, name)}
}

// candidates are the runtimes a service may use: its namespace's, then the cluster's.
func (w *world) candidates(ns string) []selection.Runtime {
	var out []selection.Runtime
	for k, r := range w.runtimes {
		if k[0] == ns {
			out = append(out, selection.Runtime{Name: k[1], Namespaced: true, Spec: r.Spec})
		}
	}
	for name, r := range w.cRuntime {
		out = append(out, selection.Runtime{Name: name, Spec: r.Spec})
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

// modelPath is where the model's files are on this host: storage.path, else the agent's copy.
func modelPath(spec *v1.BaseModelSpec, st *v1.ModelStatus) string {
	if spec.Storage != nil && spec.Storage.Path != nil && *spec.Storage.Path != "" {
		return *spec.Storage.Path
	}
	for _, n := range st.Nodes {
		if n.Path != "" {
			return n.Path
		}
	}
	return ""
}

// profile reads the model's shape from its files for the planner.
func profile(name, dir string, spec *v1.BaseModelSpec) (perf.Model, bool, error) {
	info, err := modelinfo.FromDir(dir)
	if err != nil {
		return perf.Model{}, false, err
	}
	var cfg modelinfo.Config
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		if cfg, err = modelinfo.ParseConfig(b); err != nil {
			return perf.Model{}, false, err
		}
	}
	m, err := perf.ModelFromInfo(name, cfg, info)
	if err != nil {
		return perf.Model{}, false, err
	}
	vision := info.Vision || slices.Contains(spec.ModelCapabilities, "IMAGE_TEXT_TO_TEXT") || slices.Contains(spec.ModelCapabilities, "VISION")
	return m, vision, nil
}

// intentFor decides what a service needs, or why it cannot be planned yet.
func (w *world) intentFor(s *v1.InferenceService) (*intent, error) {
	in := &intent{svc: s, key: s.Namespace + "/" + s.Name}
	mkey, spec, st, err := w.resolveModel(s)
	if err != nil {
		return in, err
	}
	in.modelName = s.Spec.Model.Name
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
	res, err := selection.Select(selection.Model{Name: in.modelName, Spec: *spec}, w.candidates(s.Namespace), explicit)
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
	in.modelPath = modelPath(spec, st)
	if in.modelPath == "" {
		return in, &blocked{v1.ServicePending, "ModelNotReady", mkey + " is Ready but says nowhere where its files are (no storage.path, no node path)"}
	}
	in.model, in.vision, err = profile(in.modelName, in.modelPath, spec)
	if err != nil {
		return in, &blocked{v1.ServiceFailed, "ModelUnreadable", fmt.Sprintf("cannot size %s for placement from %s: %v", mkey, in.modelPath, err)}
	}
	rt := in.runtime.Spec
	var es *v1.EngineSpec = rt.EngineConfig
	if s.Spec.Engine != nil && s.Spec.Engine.Runner != nil {
		es = s.Spec.Engine // the service's own runner wins (OME merges, user values first)
	}
	switch {
	case es != nil && es.Runner != nil && (len(es.Runner.Command) > 0 || len(es.Runner.Args) > 0):
		in.runner = es.Runner
		argv := append(slices.Clone(es.Runner.Command), es.Runner.Args...)
		in.engine = engine.Detect(argv)
		if in.engine == "" {
			return in, &blocked{v1.ServiceFailed, "EngineUnknown",
				fmt.Sprintf("runtime %s: cannot tell which engine %q runs (want vllm serve, python3 -m sglang.launch_server, llama-server or ollama serve)", in.runtime.Name, strings.Join(argv, " "))}
		}
		in.maxLen = argInt(argv, "--max-model-len", "--context-length", "-c", "--ctx-size")
	case rt.Engine != nil:
		in.ref = rt.Engine
		in.engine = rt.Engine.Name
	default:
		return in, &blocked{v1.ServiceFailed, "RuntimeHasNoEngine", fmt.Sprintf("runtime %s has neither engineConfig.runner nor engine: nothing to run", in.runtime.Name)}
	}
	if in.maxLen == 0 {
		in.maxLen = in.model.MaxContext
	}
	in.replicas = 1
	if es != nil && es.MinReplicas != nil && *es.MinReplicas > 0 {
		in.replicas = *es.MinReplicas
	}
	if s.Spec.Engine != nil && s.Spec.Engine.MinReplicas != nil {
		in.replicas = max(*s.Spec.Engine.MinReplicas, 0)
	}
	quant := in.model.Quant
	in.request = placement.Request{Service: in.key, Model: in.model, Quant: quant, MaxModelLen: in.maxLen, Concurrency: 1,
		Replicas: in.replicas, Shared: in.engine == "ollama"}
	return in, nil
}

func candidatesOf(cs []selection.Candidate) []v1.RuntimeCandidate {
	var out []v1.RuntimeCandidate
	for _, c := range cs {
		out = append(out, v1.RuntimeCandidate{Name: c.Runtime, Namespaced: c.Namespaced, Score: c.Score, Selected: c.Selected, Reason: c.Reason})
	}
	return out
}

// argInt reads the first of flags ("--x N" or "--x=N") from argv; 0 when absent.
func argInt(argv []string, flags ...string) int {
	for i, a := range argv {
		for _, f := range flags {
			v := ""
			switch {
			case a == f && i+1 < len(argv):
				v = argv[i+1]
			case strings.HasPrefix(a, f+"="):
				v = a[len(f)+1:]
			default:
				continue
			}
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 0
}
