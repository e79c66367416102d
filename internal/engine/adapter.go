package engine

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Adapter is one engine: everything Citadel knows about it, in one value. Each engine is
// one file (vllm.go, sglang.go, llamacpp.go, ollama.go) that declares its Adapter and
// registers it:
//
//	var _ = register(&Adapter{Name: VLLM, …})
//
// Build, FromRunner, Simulate, Detect, Settings and LookPath read the table, and so do
// the rest of Citadel through Lookup (serving: shared GPUs, default context, model by
// name; the gateway: health path and load metrics; citadel test: out-of-memory lines and
// the flag that sets a context), instead of switching on engine names. The name must also
// be in api/v1's EngineNames, which api/v1 validates runtimes against (a test checks the
// two agree).
//
// The exported fields are what other packages read; the unexported ones are the
// package's mechanics. An Adapter is shared: read it, never change it.
type Adapter struct {
	// Name is the engine's name in a runtime (spec.engine.name), in status and in metrics
	// labels: vllm.
	Name string
	// Title is the engine as people write it: vLLM, llama.cpp.
	Title string
	// Install is what to install, for LookPath's message: "llama.cpp (llama-server)".
	Install string
	// Runtime is the built-in ClusterServingRuntime that serves with the engine
	// (examples/runtimes/NAME.yaml); "" when Citadel ships none.
	Runtime string

	// Commands are the command lines that run the engine, the one Build writes first. A
	// runner is recognised by them (Detect, FromRunner, Simulate).
	Commands []Command

	// build writes the program and flags of the engine from the spec (the placement's
	// flags included) and may set variables in env; it may narrow l.Served and add
	// l.Notes. It is called with s.Host set.
	build func(s Spec, l *Launch, env *envSet) (prog, args []string, err error)
	// ByName: the engine loads a model by its name from its own store (ollama:
	// ModelName in OLLAMA_MODELS), so a spec needs no ModelPath.
	ByName bool
	// EnvConfig is the prefix of the variables that configure an engine that takes no
	// flags ("OLLAMA_" for ollama serve): its runner gets no --port, --host or
	// tensor-parallel flag, and place gives it its address. "" for an engine configured by
	// its flags.
	EnvConfig string
	// hostEnv is the variable that holds the address (host:port) of an engine
	// configured by its environment: a runner's bind host is read from it.
	hostEnv string
	// HostDefault is the address the engine binds without --host (or hostEnv).
	HostDefault string
	// TPFlag is the flag that sets tensor parallelism, added to a runner that has none
	// when placement gives the engine several GPUs; "" when the engine has none (it
	// spreads layers over the visible GPUs).
	TPFlag string
	// aliases map the engine's other spellings of a flag to one name (-tp:
	// --tensor-parallel-size), so that a runtime's arg replaces the computed flag
	// whatever its spelling. The spellings of port, host and tensor parallelism must map
	// to --port, --host and --tensor-parallel-size: placement owns those.
	aliases map[string]string
	// splitInline: the engine parses flags with argparse, which reads --flag=value as
	// --flag value: a runner's are split so that they can be read and rewritten.
	splitInline bool
	// HFEnv: the engine reads models with Hugging Face libraries, which get
	// HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE and HF_HUB_CACHE (Citadel pulls models; an
	// engine never downloads on its own).
	HFEnv bool
	// env is set on every launch of the engine (a runner's own value stays).
	env map[string]string
	// place sets what placement forces in the environment of an engine configured by it
	// (its address, its store), with a note for each value it replaces.
	place func(s Spec, env *envSet, notes *[]string)
	// served reads the model names a runner's engine answers to from its flags and the
	// positional model of its command; none: the spec's names.
	served func(flags []string, positional string) []string

	// Startup, Readiness and Liveness are the probes of a launch that brings none.
	Startup, Readiness, Liveness Probe
	// MetricsPath is the engine's Prometheus endpoint and Metrics its load series; ""
	// when it has none (ollama: load comes from the gateway's own request counts).
	MetricsPath string
	Metrics     LoadMetrics
	// metricsFlag must be on the command line for MetricsPath to exist (any of them);
	// none: always there.
	metricsFlag []string

	// Shared: one process serves every model of the engine on a host (ollama serve), so
	// the models share its GPUs and are placed in what the exclusive engines leave.
	Shared bool
	// Slots: requests run in a fixed number of slots that each hold a whole context
	// (llama.cpp -np, OLLAMA_NUM_PARALLEL), rather than in continuous batches over one
	// KV cache (vLLM --max-num-seqs, SGLang --max-running-requests).
	Slots bool
	// ContextTotal: the engine's context flag sets the tokens of all its slots together
	// (llama.cpp -c is the context per request × -np), so a context length is written
	// multiplied by the slots.
	ContextTotal bool
	// DefaultContext is the context length the engine runs with when nothing sets it;
	// 0: the model's own maximum.
	DefaultContext int

	// settingFlags map the engine's flags to the planner's settings (Settings.Read).
	settingFlags map[string]string
	// settingEnv map the variables of an engine configured by its environment to them.
	settingEnv map[string]string
	// writeFlags name the flag FlagFor suggests for a setting; nil: the longest --flag of
	// settingFlags that sets it.
	writeFlags map[string]string

	// OutOfMemory are lower-case fragments of the lines the engine logs when GPU memory
	// runs out, for citadel test's diagnosis.
	OutOfMemory []string

	// SimDialect is the citadel sim --engine dialect that stands in for the engine under
	// --simulate-engines (internal/sim); "" when the simulator has none, and Simulate
	// refuses the engine.
	SimDialect string
	// simRewrites are the engine's flags citadel sim does not take: renamed to the
	// simulator's spelling, or dropped ("") because they do not change what is simulated.
	simRewrites map[string]string
	// simArgs writes citadel sim's arguments after its own for an engine whose flags
	// cannot be passed on (ollama serve takes none); nil: the command's positional model
	// as --model, then the engine's flags with simRewrites applied.
	simArgs func(l Launch) ([]string, error)
}

// HealthPath is the path the gateway probes every few seconds to know that a replica of
// the engine is up: its liveness probe's (SGLang's readiness path /health_generate runs a
// decode step, too much for that).
func (a *Adapter) HealthPath() string { return a.Liveness.Path }

// command is the engine's own command line, for messages: "vllm serve".
func (a *Adapter) command() string {
	if len(a.Commands) == 0 {
		return a.Name
	}
	return a.Commands[0].String()
}

// Command is one command line that runs an engine: a program and its subcommand (vllm
// serve, llama-server), or a Python module run by any python (python3 -m
// sglang.launch_server).
type Command struct {
	Program string // the program's base name: vllm, llama-server; "" for a Python module
	Sub     string // the subcommand after it: serve; "" for none
	Module  string // python -m MODULE, by python, python3 or python3.N
	Model   bool   // a positional model may follow (vllm serve MODEL)
}

// String writes the command as Build would: "python3 -m sglang.launch_server".
func (c Command) String() string {
	if c.Module != "" {
		return "python3 -m " + c.Module
	}
	return strings.TrimSpace(c.Program + " " + c.Sub)
}

// match reports whether argv runs the command: the length of its program prefix, and the
// positional model if the prefix ends with one.
func (c Command) match(argv []string) (prefix int, model string, ok bool) {
	if len(argv) == 0 {
		return 0, "", false
	}
	if c.Module != "" {
		mod, ok := pythonModule(argv)
		if !ok || mod != c.Module {
			return 0, "", false
		}
		return slices.Index(argv, "-m") + 2, "", true
	}
	if filepath.Base(argv[0]) != c.Program {
		return 0, "", false
	}
	n := 1
	if c.Sub != "" {
		if len(argv) < 2 || argv[1] != c.Sub {
			return 0, "", false
		}
		n = 2
	}
	if c.Model && n < len(argv) && argv[n] != "" && !isFlag(argv[n]) {
		return n + 1, argv[n], true
	}
	return n, "", true
}

// table is every engine Citadel knows, by name: each adapter's file registers it.
var table = map[string]*Adapter{}

// register adds an engine to the table and its flag spellings to the package's; an
// adapter that repeats a name or spells a flag the way another means a different one
// stops the program at start (and every test).
func register(a *Adapter) *Adapter {
	if a.Name == "" || table[a.Name] != nil {
		panic(fmt.Sprintf("engine: adapter %q registered twice or without a name", a.Name))
	}
	for k, v := range a.aliases {
		if old, ok := flagAliases[k]; ok && old != v {
			panic(fmt.Sprintf("engine %s: flag %s means %s, another engine's means %s", a.Name, k, v, old))
		}
		flagAliases[k] = v
	}
	table[a.Name] = a
	return a
}

// Engines lists the engines Build knows, in the order of api/v1's EngineNames (the order
// messages name them in).
var Engines []string

func init() {
	for name := range table {
		Engines = append(Engines, name)
	}
	rank := func(n string) int {
		if i := slices.Index(v1.EngineNames, n); i >= 0 {
			return i
		}
		return len(v1.EngineNames)
	}
	slices.SortFunc(Engines, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
}

// Lookup returns the adapter of an engine name; false for a name no adapter has ("",
// sim, a program Citadel does not know).
func Lookup(name string) (*Adapter, bool) {
	a, ok := table[name]
	return a, ok
}

// adapters returns the table in Engines' order.
func adapters() []*Adapter {
	out := make([]*Adapter, len(Engines))
	for i, n := range Engines {
		out[i] = table[n]
	}
	return out
}

// CommandLines lists each engine's own command line, in Engines' order, for messages:
// "vllm serve", "python3 -m sglang.launch_server", "llama-server", "ollama serve".
func CommandLines() []string {
	var out []string
	for _, a := range adapters() {
		out = append(out, a.command())
	}
	return out
}

// OutOfMemory lists every engine's out-of-memory log fragments (lower case, each once),
// in Engines' order.
func OutOfMemory() []string {
	var out []string
	for _, a := range adapters() {
		for _, f := range a.OutOfMemory {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// unknown probes a program Citadel does not know by TCP connect.
var unknown = &Adapter{
	Startup:   Probe{Period: 5 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 360},
	Readiness: Probe{Period: 10 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	Liveness:  Probe{Period: 30 * time.Second, Timeout: 10 * time.Second, SuccessThreshold: 1, FailureThreshold: 5},
}
