package sim

import (
	"fmt"
	"strings"

	"citadel.dev/citadel/internal/perfmodel"
)

// Engine names: Config.Engine's dialects of the OpenAI type, and the Ollama type's.
const (
	EngineVLLM     = "vllm"
	EngineSGLang   = "sglang"
	EngineLlamaCPP = "llamacpp"
	EngineOllama   = "ollama"
)

// Engines are the personalities of `citadel sim --engine`.
var Engines = []string{EngineVLLM, EngineSGLang, EngineLlamaCPP, EngineOllama}

// Launch is how an engine starts and lays out its model where engines differ: what `citadel
// sim` needs to know about an engine beyond its flags.
type Launch struct {
	Port int    // the port it listens on by default
	Host string // the address it binds by default; "" all interfaces
	// APIKeyEnv is the environment variable the engine takes its API key from when no
	// --api-key is given (vLLM's VLLM_API_KEY); "" none.
	APIKeyEnv string
	// DefaultContext is the context window the engine gives a model when not told (Ollama's
	// num_ctx, llama-server's -c): 0 means the model's maximum.
	DefaultContext int
	// ContextEnv is the environment variable that changes DefaultContext
	// (OLLAMA_CONTEXT_LENGTH); "" none.
	ContextEnv string
	// SlotsShareContext: the context is split over the -np slots (llama-server), so each slot
	// holds context ÷ slots tokens.
	SlotsShareContext bool
	// DefaultQuant is the weight format when neither a flag nor the file name says
	// (llama-server: a GGUF file, most often downloaded as Q4_K_M); "" the model's own.
	DefaultQuant perfmodel.Quant
	// LoadsWhileListening: the engine binds its port at once and answers 503 while it loads
	// the weights (llama-server), so a start-up delay is that loading phase. Without it the
	// engine binds only once loaded, or answers 503 from its health checks meanwhile (Faults).
	LoadsWhileListening bool
}

// ollamaLaunch is `ollama serve`'s: it binds at once and loads models on first use, each with
// a 4,096-token context per slot unless OLLAMA_CONTEXT_LENGTH says.
var ollamaLaunch = Launch{Port: 11434, Host: "127.0.0.1", DefaultContext: 4096, ContextEnv: "OLLAMA_CONTEXT_LENGTH"}

// LaunchOf is engine's Launch; false for an engine the simulator does not know.
func LaunchOf(engine string) (Launch, bool) {
	if engine == EngineOllama {
		return ollamaLaunch, true
	}
	d, ok := dialects[engine]
	if !ok {
		return Launch{}, false
	}
	return d.launch, true
}

// PlanOptions completes the plan options of an engine's command line, o, whose MaxModelLen,
// Parallel and Quant are zero where no flag gave them, with the engine's own defaults
// (LaunchOf): Ollama and llama-server give a model a 4,096-token context rather than its
// maximum, llama-server splits that context over its -np slots, and a GGUF file whose name
// says no quantisation is Q4_K_M.
func PlanOptions(engine string, o perfmodel.Options) (perfmodel.Options, error) {
	l, ok := LaunchOf(engine)
	if !ok {
		return o, fmt.Errorf("engine %q: unknown; choose one of %s", engine, strings.Join(Engines, ", "))
	}
	if o.MaxModelLen == 0 {
		o.MaxModelLen = l.DefaultContext
	}
	if o.Quant == "" {
		o.Quant = l.DefaultQuant
	}
	if l.SlotsShareContext {
		o.Parallel = max(o.Parallel, 1)
		if o.MaxModelLen < o.Parallel {
			return o, fmt.Errorf("--ctx-size %d is less than one token per slot (--parallel %d)", o.MaxModelLen, o.Parallel)
		}
		o.MaxModelLen /= o.Parallel
	}
	return o, nil
}

// LoadError is an engine's failure to load its model (Config.OOMAtLoad): the real engine
// exits 1 with this message.
type LoadError struct{ Message string }

func (e *LoadError) Error() string { return e.Message }

// oomAtLoad is the error PyTorch raises when the weights do not fit (vLLM and SGLang; the
// simulated llama-server says the same).
func oomAtLoad(p perfmodel.Plan) *LoadError {
	return &LoadError{fmt.Sprintf("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate %.2f GiB. GPU 0 has a total capacity of %.2f GiB (citadel sim --oom-at-load)",
		float64(p.WeightBytes)/(1<<30), float64(p.GPU.MemoryBytes)/(1<<30))}
}
