// Package engine turns a serving decision (which engine, which model, which
// GPUs, which port) into the command line, environment and health probes of
// one engine process on this host.
//
// Three ways in:
//
//   - Build: Citadel's own adapters for the known engines (a runtime that
//     names engine: {name: vllm}). They write the engine's flags from the
//     model and the placement.
//   - FromRunner: an OME runtime's runner container, run verbatim on the
//     host: its command and args with $(MODEL_PATH) and the runner's env
//     substituted, and only what one host forces changed (the allocated port,
//     the placement's tensor parallelism, the GPUs), each change said in Notes.
//   - Simulate: any launch of a known engine rewritten to run `citadel sim`
//     with the same flags in place of the engine (no GPU needed).
//
// LookPath checks that the program of a launch is installed.
//
// Each engine is one Adapter value in its own file (vllm.go, sglang.go, llamacpp.go,
// ollama.go), registered in one table: its command line, environment, probes, metrics,
// served names, runner detection, planner settings and simulator flags. Other packages
// ask Lookup rather than switch on engine names. See docs/serving.md, "Adding an engine".
//
// The package starts nothing: the supervisor runs Launch.Argv with Launch.Env
// added to its own environment and probes Launch.Port.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Probe is an HTTP GET health check of the engine on Launch.Port: it passes
// on a status 200-399 within Timeout, as in Kubernetes. An empty Path means a TCP connect check
// (from a Kubernetes tcpSocket probe). A refused connection is a failure, so
// an engine that binds only once loaded (vLLM, SGLang) needs a startup probe
// with a long FailureThreshold × Period.
type Probe struct {
	Path                               string
	InitialDelay, Period, Timeout      time.Duration
	SuccessThreshold, FailureThreshold int
}

// String renders the probe on one line, e.g. "GET /health delay=0s period=5s timeout=5s success=1 failure=360".
func (p *Probe) String() string {
	if p == nil {
		return "none"
	}
	what := "GET " + p.Path
	if p.Path == "" {
		what = "TCP connect"
	}
	return fmt.Sprintf("%s delay=%s period=%s timeout=%s success=%d failure=%d",
		what, p.InitialDelay, p.Period, p.Timeout, p.SuccessThreshold, p.FailureThreshold)
}

// Spec is a serving decision: the engine, the model on local disk, and where
// it runs on this host.
type Spec struct {
	Engine      string   // vllm, sglang, llamacpp, ollama
	ModelPath   string   // a local directory (HF snapshot) or a GGUF file; unused by ollama
	ModelName   string   // the OME model name; ServedNames default to [ModelName]; ollama's model (qwen2.5:7b)
	ServedNames []string // the names the API answers to

	Vision          bool // a vision-language model
	ImagesPerPrompt int  // vllm --limit-mm-per-prompt {"image": N} for vision models; 0 keeps vLLM's default

	MaxModelLen          int     // context length per sequence; 0: the engine's default
	TP                   int     // tensor parallelism; 0: the engine's default (1)
	GPUMemoryUtilization float64 // fraction of GPU memory (vllm, sglang); 0: the engine's default

	GPUs []int  // device indices → CUDA_VISIBLE_DEVICES; empty: leave the variable alone
	Host string // address to bind; default 127.0.0.1 (Citadel's gateway fronts the engine)
	Port int    // required: ports are allocated per host

	// CacheDir is Citadel's Hugging Face hub cache (models--org--name/…):
	// HF_HUB_CACHE and vllm/sglang --download-dir point at it. vllm and sglang
	// always get HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1: Citadel pulls
	// models itself and engines never download on their own.
	CacheDir        string
	TrustRemoteCode bool

	// ExtraArgs and Env come from the runtime's EngineRef (args, env) and are
	// applied last: an arg that repeats a computed flag replaces it (the
	// runtime's author knows the engine), except the placement's flags
	// (port, host, tensor parallelism), which win; Env is KEY=VALUE.
	ExtraArgs []string
	Env       []string

	// Ollama: OLLAMA_MODELS (the model store), OLLAMA_KEEP_ALIVE,
	// OLLAMA_NUM_PARALLEL; Parallel is also llama-server's slot count (-np).
	OllamaModels string
	KeepAlive    string
	Parallel     int
}

// LoadMetrics names the Prometheus series (on Launch.MetricsPath) that give
// an engine's load: requests running, requests waiting, and KV-cache usage
// as a fraction 0-1. An empty name means the engine exports no such series.
type LoadMetrics struct {
	Running, Waiting, KVUsage string
}

// Metrics returns the Prometheus path and load series of an engine Citadel knows ("" and
// false for one without metrics, such as ollama, or an unknown name). SGLang and llama.cpp
// serve them only when started with --enable-metrics and --metrics.
func Metrics(engine string) (path string, m LoadMetrics, ok bool) {
	a, known := Lookup(engine)
	if !known || a.MetricsPath == "" {
		return "", LoadMetrics{}, false
	}
	return a.MetricsPath, a.Metrics, true
}

// Launch is one engine process: what to run and how to watch it.
type Launch struct {
	Engine string   // vllm, sglang, llamacpp, ollama; "" for a runner command of an unknown program
	Argv   []string // the program and its arguments
	Env    []string // KEY=VALUE, sorted by key, added to the supervisor's environment
	Host   string   // the address the engine binds ("" or 0.0.0.0: probe 127.0.0.1)
	Port   int      // the port the engine listens on (probes, gateway)

	Served []string // the model names the API answers to (the first is vLLM's model_name label)

	Startup, Readiness, Liveness *Probe

	// MetricsPath is the Prometheus endpoint ("" when the engine has none or
	// it is not enabled: ollama exports no metrics, so load comes from the
	// gateway's own request counts or GET /api/ps).
	MetricsPath string
	Metrics     LoadMetrics

	// Simulated: Argv runs citadel sim in place of the engine (see Simulate).
	Simulated bool

	// Notes says what was changed and why, e.g. "runtime args --tp-size 1
	// overridden to 2 by placement".
	Notes []string
}

// Build writes the command line of a known engine from the spec. The engine's adapter
// writes its program and flags (vllmArgs, sglangArgs, llamacppArgs; ollamaEnv configures
// ollama serve by its environment); the runtime's args are merged over the flags
// (mergeArgs), the engine's own variables set (HF offline and cache, VLLM_NO_USAGE_STATS),
// the runtime's env applied, and placement's variables forced last.
func Build(s Spec) (Launch, error) {
	s.Engine = strings.ToLower(strings.TrimSpace(s.Engine))
	a, ok := Lookup(s.Engine)
	if !ok {
		if s.Engine == "sim" {
			return Launch{}, fmt.Errorf("engine sim: build the launch of the engine to imitate (%s) and pass it to Simulate", strings.Join(Engines, ", "))
		}
		return Launch{}, fmt.Errorf("engine %q: unknown; choose one of %s", s.Engine, strings.Join(Engines, ", "))
	}
	if err := checkSpec(a, s); err != nil {
		return Launch{}, fmt.Errorf("engine %s: %w", s.Engine, err)
	}
	if s.Host == "" {
		s.Host = "127.0.0.1"
	}
	l := Launch{Engine: s.Engine, Host: s.Host, Port: s.Port, Served: servedNames(s)}
	env := newEnv()
	prog, args, err := a.build(s, &l, env) // args: the flags after the program
	if err != nil {
		return Launch{}, fmt.Errorf("engine %s: %w", s.Engine, err)
	}
	engineEnv(a, s, env.set)
	l.Argv = append(prog, mergeArgs(args, s.ExtraArgs, &l.Notes)...)
	if err := env.apply(s.Env, "runtime env", &l.Notes); err != nil {
		return Launch{}, fmt.Errorf("engine %s: %w", s.Engine, err)
	}
	placementEnv(a, s, env, &l.Notes)
	l.Env = env.list()
	l.setProbes(a)
	l.setMetrics(a, l.Argv)
	return l, nil
}

// checkSpec validates the fields every adapter uses.
func checkSpec(a *Adapter, s Spec) error {
	switch {
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("port %d: want 1-65535 (the supervisor allocates one)", s.Port)
	case s.ModelName == "" && len(s.ServedNames) == 0:
		return errors.New("no model name: set ModelName or ServedNames")
	case s.ModelPath == "" && !a.ByName:
		return errors.New("no model path: the model must be on local disk (a directory or a GGUF file)")
	case s.TP < 0:
		return fmt.Errorf("tensor parallelism %d: must not be negative", s.TP)
	case s.TP > 0 && len(s.GPUs) > 0 && s.TP > len(s.GPUs):
		return fmt.Errorf("tensor parallelism %d needs %d GPUs, got %v", s.TP, s.TP, s.GPUs)
	case s.GPUMemoryUtilization < 0 || s.GPUMemoryUtilization > 1:
		return fmt.Errorf("GPU memory utilization %g: want a fraction in (0, 1]", s.GPUMemoryUtilization)
	case s.MaxModelLen < 0:
		return fmt.Errorf("max model length %d: must not be negative", s.MaxModelLen)
	case s.Parallel < 0:
		return fmt.Errorf("parallel %d: must not be negative", s.Parallel)
	case s.ImagesPerPrompt < 0:
		return fmt.Errorf("images per prompt %d: must not be negative", s.ImagesPerPrompt)
	}
	seen := map[int]bool{}
	for _, g := range s.GPUs {
		if g < 0 || seen[g] {
			return fmt.Errorf("GPUs %v: want distinct device indices ≥ 0", s.GPUs)
		}
		seen[g] = true
	}
	return nil
}

func servedNames(s Spec) []string {
	if len(s.ServedNames) > 0 {
		return slices.Clone(s.ServedNames)
	}
	return []string{s.ModelName}
}

// engineEnv sets the variables the engine always gets: Hugging Face libraries on
// Citadel's cache and offline (a.HFEnv), and the adapter's own.
func engineEnv(a *Adapter, s Spec, set func(k, v string)) {
	if a.HFEnv {
		set("HF_HUB_OFFLINE", "1")
		set("TRANSFORMERS_OFFLINE", "1")
		if s.CacheDir != "" {
			// HF_HUB_CACHE, not HF_HOME: HF_HOME also moves the token and other
			// state, and Citadel's cache is the hub directory itself.
			set("HF_HUB_CACHE", s.CacheDir)
		}
	}
	for k, v := range a.env {
		set(k, v)
	}
}

// placementEnv sets what placement owns, over anything the runtime set: the GPUs, and
// the address of an engine configured by its environment (a.place). a is nil for a
// program Citadel does not know.
func placementEnv(a *Adapter, s Spec, env *envSet, notes *[]string) {
	if len(s.GPUs) > 0 {
		ids := make([]string, len(s.GPUs))
		for i, g := range s.GPUs {
			ids[i] = strconv.Itoa(g)
		}
		env.force("CUDA_VISIBLE_DEVICES", strings.Join(ids, ","), "placement", notes)
		// The indexes are nvidia-smi's, in PCI bus order; CUDA numbers devices fastest
		// first unless told otherwise, which differs on hosts with mixed GPUs.
		env.force("CUDA_DEVICE_ORDER", "PCI_BUS_ID", "placement (GPU indexes are nvidia-smi's)", notes)
	}
	if a != nil && a.place != nil {
		a.place(s, env, notes)
	}
}

// setProbes gives the launch the adapter's probes where it has none.
func (l *Launch) setProbes(a *Adapter) {
	if l.Startup == nil {
		p := a.Startup
		l.Startup = &p
	}
	if l.Readiness == nil {
		p := a.Readiness
		l.Readiness = &p
	}
	if l.Liveness == nil {
		p := a.Liveness
		l.Liveness = &p
	}
}

// setMetrics fills the metrics endpoint, if the command line enables it.
func (l *Launch) setMetrics(a *Adapter, argv []string) {
	if a.MetricsPath == "" {
		return
	}
	if len(a.metricsFlag) > 0 && !slices.ContainsFunc(argv, func(arg string) bool { return slices.Contains(a.metricsFlag, arg) }) {
		l.Notes = append(l.Notes, fmt.Sprintf("no %s on the command line: %s serves no %s, so its load is not scraped", a.metricsFlag[0], a.Name, a.MetricsPath))
		return
	}
	l.MetricsPath, l.Metrics = a.MetricsPath, a.Metrics
}

// envSet is an environment being assembled.
type envSet struct{ m map[string]string }

func newEnv() *envSet { return &envSet{m: map[string]string{}} }

func (e *envSet) set(k, v string) { e.m[k] = v }

func (e *envSet) get(k string) (string, bool) {
	v, ok := e.m[k]
	return v, ok
}

// apply sets KEY=VALUE entries, noting those that change a value Citadel set.
func (e *envSet) apply(kvs []string, who string, notes *[]string) error {
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("%s %q: want KEY=VALUE", who, kv)
		}
		if old, had := e.m[k]; had && old != v {
			*notes = append(*notes, fmt.Sprintf("%s %s=%s replaces %s", who, k, v, old))
		}
		e.m[k] = v
	}
	return nil
}

// force sets a variable placement owns, noting a different value it replaces.
func (e *envSet) force(k, v, why string, notes *[]string) {
	if old, had := e.m[k]; had && old != v {
		*notes = append(*notes, fmt.Sprintf("env %s=%s overridden to %s by %s", k, old, v, why))
	}
	e.m[k] = v
}

// list returns KEY=VALUE sorted by key.
func (e *envSet) list() []string {
	keys := make([]string, 0, len(e.m))
	for k := range e.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + e.m[k]
	}
	return out
}

// NotFoundError is LookPath's error: the launch's program, or the Python
// package it runs, is not installed.
type NotFoundError struct {
	Engine  string // the engine, or the program's name when it is not a known engine
	Program string // what was looked for: the program, or the Python package
	msg     string
}

func (e *NotFoundError) Error() string { return e.msg }

// LookPath checks that the launch's program is installed: the program on
// PATH (or at its path), and for `python -m pkg.module` that pkg is
// importable by that python. Its error is a *NotFoundError, e.g.
// engine vllm not found: install vllm or set runtime command (looked for "vllm" on PATH).
func LookPath(l Launch) error {
	if len(l.Argv) == 0 {
		return &NotFoundError{Engine: l.Engine, msg: "launch has no command"}
	}
	prog := l.Argv[0]
	where := fmt.Sprintf("looked for %q on PATH", prog)
	if strings.ContainsRune(prog, filepath.Separator) {
		where = fmt.Sprintf("looked for %q", prog)
	}
	if l.Simulated {
		if _, err := exec.LookPath(prog); err != nil {
			return &NotFoundError{Engine: l.Engine, Program: prog,
				msg: fmt.Sprintf("citadel binary not found for the simulated %s engine (%s)", l.Engine, where)}
		}
		return nil
	}
	name, install := l.Engine, l.Engine
	if a, ok := Lookup(l.Engine); ok {
		install = a.Install
	}
	if name == "" {
		name, install = filepath.Base(prog), filepath.Base(prog)
	}
	if _, err := exec.LookPath(prog); err != nil {
		return &NotFoundError{Engine: name, Program: prog,
			msg: fmt.Sprintf("engine %s not found: install %s or set runtime command (%s)", name, install, where)}
	}
	if mod, ok := pythonModule(l.Argv); ok {
		pkg, _, _ := strings.Cut(mod, ".")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// find_spec locates the package without importing it (importing vllm takes seconds).
		cmd := exec.CommandContext(ctx, prog, "-c", "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)", pkg)
		cmd.Env = append(os.Environ(), l.Env...) // the engine's environment (PYTHONPATH, a venv's variables)
		if out, err := cmd.CombinedOutput(); err != nil {
			detail := strings.TrimSpace(string(out))
			if detail != "" {
				detail = ": " + detail
			}
			return &NotFoundError{Engine: name, Program: pkg,
				msg: fmt.Sprintf("engine %s not found: install %s or set runtime command (%s has no module %q%s)", name, install, prog, pkg, detail)}
		}
	}
	return nil
}

// Detect names the engine a command line runs: vllm for `vllm serve` and
// `python -m vllm.entrypoints.openai.api_server`, sglang for `python3 -m
// sglang.launch_server` and `sglang serve`, llamacpp for `llama-server`,
// ollama for `ollama serve`, looking inside a shell wrapper's script
// (bash -lc -- "python3 -m sglang.launch_server …"); "" for anything else.
func Detect(argv []string) string {
	if a, _, _ := detect(argv); a != nil {
		return a.Name
	}
	if i, ok := shellScript(argv); ok {
		fields := looseFields(argv[i], func(string) (string, bool) { return "", false })
		for j := range fields {
			if a, _, _ := detect(fields[j:]); a != nil {
				return a.Name
			}
		}
	}
	return ""
}

// opt is one option of a command line: argv[start:end]. A positional has no name.
type opt struct {
	name       string // as written: --port, -tp
	values     []string
	inline     bool // --name=value
	start, end int
}

// isFlag reports whether t is an option name rather than a value (-1 and -0.5 are values).
func isFlag(t string) bool {
	if len(t) < 2 || t[0] != '-' {
		return false
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return false
	}
	return true
}

// parseOpts splits flags and their values: the tokens after a flag up to the
// next flag are its values (argparse's nargs="+" for --served-model-name;
// a boolean flag followed by a positional is misread, which the engines'
// command lines after the program prefix do not have).
func parseOpts(args []string) []opt {
	var out []opt
	for i := 0; i < len(args); {
		t := args[i]
		if !isFlag(t) {
			out = append(out, opt{values: []string{t}, start: i, end: i + 1})
			i++
			continue
		}
		o := opt{name: t, start: i}
		if n, v, ok := strings.Cut(t, "="); ok && strings.HasPrefix(t, "--") {
			o.name, o.values, o.inline = n, []string{v}, true
			i++
		} else {
			i++
			for i < len(args) && !isFlag(args[i]) {
				o.values = append(o.values, args[i])
				i++
			}
		}
		o.end = i
		out = append(out, o)
	}
	return out
}

// flagAliases maps the engines' other spellings of a flag to one name: the union of
// their adapters' aliases (register adds them; two engines may not spell a flag
// alike with different meanings).
var flagAliases = map[string]string{}

func canon(name string) string {
	if c, ok := flagAliases[name]; ok {
		return c
	}
	return name
}

// placementFlags are the flags the placement owns: the runtime's args do not override them.
var placementFlags = map[string]bool{"--port": true, "--host": true, "--tensor-parallel-size": true}

func render(o opt) string {
	if o.name == "" {
		return strings.Join(o.values, " ")
	}
	return strings.TrimSpace(o.name + " " + strings.Join(o.values, " "))
}

// mergeArgs appends the runtime's args to the computed ones. A runtime arg
// that repeats a computed flag replaces it, unless placement owns the flag.
func mergeArgs(gen, extra []string, notes *[]string) []string {
	genOpts, extraOpts := parseOpts(gen), parseOpts(extra)
	dropGen := map[int]bool{}
	dropExtra := map[int]bool{}
	for j, e := range extraOpts {
		if e.name == "" {
			continue
		}
		c := canon(e.name)
		for i, g := range genOpts {
			if g.name == "" || canon(g.name) != c || dropGen[i] {
				continue
			}
			same := slices.Equal(g.values, e.values)
			if placementFlags[c] {
				dropExtra[j] = true
				if !same {
					*notes = append(*notes, fmt.Sprintf("runtime args %s overridden to %s by placement", render(e), strings.Join(g.values, " ")))
				}
			} else {
				dropGen[i] = true
				if !same {
					*notes = append(*notes, fmt.Sprintf("runtime args %s replace the computed %s", render(e), render(g)))
				}
			}
		}
	}
	var out []string
	for i, g := range genOpts {
		if !dropGen[i] {
			out = append(out, gen[g.start:g.end]...)
		}
	}
	for j, e := range extraOpts {
		if !dropExtra[j] {
			out = append(out, extra[e.start:e.end]...)
		}
	}
	return out
}

// firstValue returns the first value of the last occurrence of a flag (any of its
// spellings); "" when it is absent or has none.
func firstValue(args []string, name string) string {
	if v, ok := flagValue(args, name); ok && len(v) > 0 {
		return v[0]
	}
	return ""
}

// tpFlags are every spelling of the tensor-parallel flag, longest first.
func tpFlags() []string {
	out := []string{"--tensor-parallel-size"}
	for k, v := range flagAliases {
		if v == "--tensor-parallel-size" {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return out
}

// flagValue returns the value of the last occurrence of a flag (any of its spellings).
func flagValue(args []string, name string) ([]string, bool) {
	var vals []string
	found := false
	for _, o := range parseOpts(args) {
		if o.name != "" && canon(o.name) == canon(name) {
			vals, found = o.values, true
		}
	}
	return vals, found
}

// setFlag gives every occurrence of a flag (any spelling) the value, as two
// tokens; it returns the old values found.
func setFlag(args []string, name, value string) (out []string, old []string, found bool) {
	for _, o := range parseOpts(args) {
		if o.name != "" && canon(o.name) == canon(name) {
			n, _, _ := strings.Cut(o.name, "=")
			out = append(out, n, value)
			old = append(old, strings.Join(o.values, " "))
			found = true
			continue
		}
		out = append(out, args[o.start:o.end]...)
	}
	return out, old, found
}

// splitInline rewrites --flag=value as --flag value, which argparse (vLLM,
// SGLang) reads alike; a value starting with "-" stays inline.
func splitInline(args []string) []string {
	var out []string
	for _, a := range args {
		if n, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "--") && v != "" && !strings.HasPrefix(v, "-") {
			out = append(out, n, v)
			continue
		}
		out = append(out, a)
	}
	return out
}

// detect finds the engine of a command line: its adapter, the length of the
// program prefix (vllm serve, python3 -m sglang.launch_server, …) and the positional
// model if the prefix ends with one (vllm serve MODEL); nil for a program Citadel does not
// know.
func detect(argv []string) (a *Adapter, prefix int, model string) {
	for _, a := range adapters() {
		for _, c := range a.Commands {
			if n, m, ok := c.match(argv); ok {
				return a, n, m
			}
		}
	}
	return nil, 0, ""
}

// pythonModule returns the module of `python[3[.x]] [opts] -m module …`.
func pythonModule(argv []string) (string, bool) {
	if len(argv) < 3 || !isPython(filepath.Base(argv[0])) {
		return "", false
	}
	for i := 1; i+1 < len(argv); i++ {
		switch a := argv[i]; {
		case a == "-m":
			return argv[i+1], true
		case a == "-X" || a == "-W":
			i++
		case !strings.HasPrefix(a, "-") || a == "-c":
			return "", false
		}
	}
	return "", false
}

func isPython(prog string) bool {
	if prog == "python" || prog == "python3" {
		return true
	}
	v, ok := strings.CutPrefix(prog, "python3.")
	_, err := strconv.Atoi(v)
	return ok && err == nil
}
