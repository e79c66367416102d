package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
)

// simFlags are citadel sim's own flags and the real engines' that a supervisor passes.
type simFlags struct {
	engine, gpu, model, host, apiKey, dtype, quant, maxModelLen, vllmVersion string
	maxLenFlag                                                               string // the flag that set maxModelLen
	servedNames, gpuFree                                                     []string
	port, maxNumSeqs, maxBatched, tp, numParallel                            int
	gpuMemUtil, timeScale                                                    float64
	seed                                                                     int64
	metrics, noSlots, noPrefixCache                                          bool
	sleepMode, memorySaver                                                   bool // vllm --enable-sleep-mode, sglang --enable-memory-saver

	// Faults and knobs for tests.
	failRate, slowdown                  float64
	hangAfter, crashAfter, embeddingDim int
	startupDelay                        time.Duration
	ttft, itl                           time.Duration // fixed latency mode (0: the performance model)
	bindAfterStartup, oomAtLoad         bool
}

// Engine names of --engine.
const (
	engVLLM     = sim.EngineVLLM
	engSGLang   = sim.EngineSGLang
	engLlamaCPP = sim.EngineLlamaCPP
	engOllama   = sim.EngineOllama
)

// engineFlagAnnotation lists the engines whose command line has a flag; flags without it are
// citadel sim's own and valid with every engine.
const engineFlagAnnotation = "citadel.dev/engines"

// llama.cpp's and vLLM's single-dash multi-letter options, which pflag cannot parse, and their
// long forms.
var simShortFlags = map[string]string{
	"-m": "--model", "-c": "--ctx-size", "-np": "--parallel", "-ngl": "--n-gpu-layers", "-a": "--alias",
	"-fa": "--flash-attn", "-cb": "--cont-batching", "-kvu": "--kv-unified", "-ctk": "--cache-type-k", "-ctv": "--cache-type-v",
	"-hf": "--hf-repo", "-t": "--threads", "-b": "--batch-size", "-ub": "--ubatch-size", "-tp": "--tensor-parallel-size",
	"-pp": "--pipeline-parallel-size", "-dp": "--data-parallel-size", "-q": "--quantization",
}

// normalizeSimArgs rewrites the engines' own spellings into what pflag parses: single-dash
// long options (-np 4), vLLM's space-separated --served-model-name a b, and llama.cpp's
// --flash-attn on|off|auto.
func normalizeSimArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		if long, ok := simShortFlags[name]; ok {
			a = long
			if hasValue {
				a += "=" + value
			}
		}
		switch {
		case a == "--served-model-name":
			var names []string
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				names = append(names, args[i])
			}
			if len(names) == 0 {
				out = append(out, a) // pflag reports the missing value
				continue
			}
			a += "=" + strings.Join(names, ",")
		case a == "--flash-attn" && i+1 < len(args) && (args[i+1] == "on" || args[i+1] == "off" || args[i+1] == "auto"):
			i++
			a += "=" + args[i]
		}
		out = append(out, a)
	}
	return out
}

func newSim(e *env) *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim [model] --engine vllm|sglang|llamacpp|ollama --gpu GPU",
		Short: "Simulate an inference engine's API and performance without a GPU",
		Long: `Run a simulated inference engine: the real engine's HTTP API, with latencies
from a performance model of the GPU and model (internal/perfmodel).

It accepts the engine's own flags (vllm serve, sglang.launch_server,
llama-server), so a supervisor can start it in place of the real engine; a
flag of another engine is refused. A model that does not fit the GPU refuses to
start, as vLLM does.

GPUs:   ` + strings.Join(perfmodel.GPUNames(), ", ") + `
Models: ` + strings.Join(perfmodel.ModelNames(), ", ") + ` (or a Hugging Face repo
        or GGUF file whose name starts with one of them, e.g.
        XiaomiMiMo/MiMo-VL-7B-RL, or a model directory with config.json)

--time-scale multiplies simulated time into wall time: 1 is real time, 0 runs
as fast as possible (for gateway overhead benchmarks).`,
		Example: `  citadel sim --engine vllm --gpu h100-sxm --model qwen2.5-7b --port 8000
  citadel sim Qwen/Qwen2.5-7B-Instruct --gpu a100-80g --max-num-seqs 64 --time-scale 0
  citadel sim --engine sglang --gpu h100-sxm --model-path Qwen/Qwen2.5-7B-Instruct --tp-size 1 --enable-metrics
  citadel sim --engine llamacpp --gpu rtx-4090 -m /models/qwen2.5-7b-instruct-q4_k_m.gguf -c 16384 -np 4 --metrics
  citadel sim --engine ollama --gpu rtx-4090 --model llama-3.1-8b --quantization q4_k_m --num-parallel 2`,
		// The engines' single-dash long options (-np 4) need rewriting before pflag sees them.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			if err := fl.Parse(normalizeSimArgs(args)); err != nil {
				return usageError{err}
			}
			if help, _ := fl.GetBool("help"); help {
				return cmd.Help()
			}
			args = fl.Args()
			if len(args) > 1 {
				return usagef("at most one model argument, got %q", args)
			}
			if len(args) == 1 {
				if f.model != "" && f.model != args[0] {
					return usagef("model given twice: %q and --model %q", args[0], f.model)
				}
				f.model = args[0]
			}
			if err := checkEngineFlags(fl, f.engine); err != nil {
				return err
			}
			for _, n := range []string{"no-enable-prefix-caching", "disable-radix-cache"} {
				if v, _ := fl.GetBool(n); v {
					f.noPrefixCache = true // vLLM V1 and SGLang cache prefixes unless told not to
				}
			}
			for _, n := range []string{"max-model-len", "context-length", "ctx-size"} {
				if fl.Changed(n) {
					f.maxLenFlag = "--" + n
				}
			}
			launch, _ := sim.LaunchOf(f.engine) // checkEngineFlags refused an unknown engine
			if !fl.Changed("api-key") && launch.APIKeyEnv != "" {
				f.apiKey = e.getenv(launch.APIKeyEnv)
			}
			if !fl.Changed("port") {
				f.port = launch.Port
			}
			if !fl.Changed("host") {
				f.host = launch.Host
			}
			if v := e.getenv("OLLAMA_HOST"); f.engine == engOllama && v != "" && !fl.Changed("host") && !fl.Changed("port") {
				// ollama serve listens where OLLAMA_HOST says: host, host:port or scheme://host:port.
				host, port, err := parseOllamaHost(v)
				if err != nil {
					return usagef("OLLAMA_HOST=%q: %v", v, err)
				}
				f.host, f.port = host, port
			}
			return runSim(cmd, e, f)
		},
	}
	fl := cmd.Flags()
	// only marks the flags registered by fn as belonging to engines' command lines.
	only := func(engines []string, fn func()) {
		before := map[string]bool{}
		fl.VisitAll(func(p *pflag.Flag) { before[p.Name] = true })
		fn()
		fl.VisitAll(func(p *pflag.Flag) {
			if !before[p.Name] {
				_ = fl.SetAnnotation(p.Name, engineFlagAnnotation, engines)
			}
		})
	}
	vllm, sglang, llamacpp := []string{engVLLM}, []string{engSGLang}, []string{engLlamaCPP}
	openai := []string{engVLLM, engSGLang, engLlamaCPP}

	fl.StringVar(&f.engine, "engine", engVLLM, "engine personality: vllm, sglang, llamacpp or ollama")
	fl.StringVar(&f.gpu, "gpu", "", "GPU profile to simulate (required)")
	fl.StringVar(&f.model, "model", "", "model: a catalogue name, repo id, GGUF file or model directory (or the positional argument; llama-server -m)")
	fl.StringVar(&f.host, "host", "", "address to bind (default: all interfaces for vllm, 127.0.0.1 for the others)")
	fl.IntVar(&f.port, "port", 0, "port to listen on (default: vllm 8000, sglang 30000, llamacpp 8080, ollama 11434)")
	fl.StringVar(&f.quant, "quantization", "", "weight quantisation: fp8, awq, gguf q4_k_m (llamacpp: read from the GGUF file name)")
	fl.Float64Var(&f.timeScale, "time-scale", 1, "wall seconds per simulated second; 0 = no delay")
	fl.Int64Var(&f.seed, "seed", 0, "seed of the generated text and of --fail-rate")
	fl.IntVar(&f.embeddingDim, "embedding-dim", 0, "length of embedding vectors (default the model's hidden size)")
	fl.Float64Var(&f.failRate, "fail-rate", 0, "fault: answer this fraction of inference requests with a 500 error (chosen by --seed)")
	fl.IntVar(&f.hangAfter, "hang-after", 0, "fault: after this many inference requests, accept requests but never answer them (0: never)")
	fl.IntVar(&f.crashAfter, "crash-after", 0, "fault: exit with status 1 when inference request N+1 arrives (0: never)")
	fl.DurationVar(&f.startupDelay, "startup-delay", 0, "fault: loading time; vllm/sglang/ollama answer 503 meanwhile (see --bind-after-startup), llamacpp answers 503 \"Loading model\" (default for llamacpp: weights at 2 GiB/s × --time-scale)")
	fl.BoolVar(&f.bindAfterStartup, "bind-after-startup", false, "with --startup-delay: listen only once the delay has passed, as real vLLM and SGLang do (connection refused while loading)")
	fl.BoolVar(&f.oomAtLoad, "oom-at-load", false, "fault: fail to load with an out-of-memory error (vllm, sglang, llamacpp exit 1; ollama answers 500 on each load)")
	fl.Float64Var(&f.slowdown, "slowdown", 1, "multiply every simulated step time by this factor (a slower or throttled GPU)")
	fl.DurationVar(&f.ttft, "ttft", 0, "fixed latency mode: every request's first token after this long, regardless of load")
	fl.DurationVar(&f.itl, "itl", 0, "fixed latency mode: every later token this long after the previous one, regardless of load")
	only([]string{engOllama}, func() {
		fl.IntVar(&f.numParallel, "num-parallel", 0, "ollama: parallel slots (default OLLAMA_NUM_PARALLEL, else 1)")
		fl.StringSliceVar(&f.gpuFree, "gpu-free-memory", nil, "ollama: memory the engine may use on each visible GPU, e.g. 16GiB,6.4GiB (default: each GPU's total, one GPU per CUDA_VISIBLE_DEVICES entry); a model that does not fit runs with layers on the CPU, slower")
	})
	only(vllm, func() {
		fl.StringVar(&f.vllmVersion, "vllm-version", sim.DefaultVLLMVersion, "vLLM release to imitate: error JSON (< 0.10.1 flat) and metric names (< 0.10 gpu_cache_usage_perc, < 0.11 time_per_output_token_seconds)")
		fl.StringVar(&f.maxModelLen, "max-model-len", "", "vllm: context length, e.g. 8192 or 32k (default the model's)")
		fl.IntVar(&f.maxNumSeqs, "max-num-seqs", 0, "vllm: maximum sequences per iteration (default 256)")
		fl.IntVar(&f.maxBatched, "max-num-batched-tokens", 0, "vllm: token budget per iteration (default 8192)")
		fl.Float64Var(&f.gpuMemUtil, "gpu-memory-utilization", perfmodel.DefaultGPUMemoryUtilization, "vllm: fraction of GPU memory the engine may use")
		fl.IntVar(&f.tp, "tensor-parallel-size", 1, "vllm: number of GPUs to shard the model over (-tp)")
		fl.BoolVar(&f.sleepMode, "enable-sleep-mode", false, "vllm: let /sleep release GPU memory (the endpoints need VLLM_SERVER_DEV_MODE=1)")
	})
	only([]string{engVLLM, engSGLang}, func() {
		fl.StringSliceVar(&f.servedNames, "served-model-name", nil, "vllm, sglang: model names the API answers to (default the model)")
		fl.StringVar(&f.dtype, "dtype", "auto", "vllm, sglang: weight data type: auto, bfloat16, float16")
	})
	only(sglang, func() {
		fl.StringVar(&f.model, "model-path", "", "sglang: the model")
		fl.StringVar(&f.maxModelLen, "context-length", "", "sglang: context length (default the model's)")
		fl.IntVar(&f.maxNumSeqs, "max-running-requests", 0, "sglang: maximum running requests")
		fl.IntVar(&f.maxBatched, "chunked-prefill-size", 0, "sglang: prefill tokens per iteration")
		fl.Float64Var(&f.gpuMemUtil, "mem-fraction-static", perfmodel.DefaultGPUMemoryUtilization, "sglang: fraction of GPU memory for weights and KV pool")
		fl.IntVar(&f.tp, "tp-size", 1, "sglang: tensor parallelism (--tp)")
		fl.IntVar(&f.tp, "tp", 1, "sglang: alias of --tp-size")
		fl.BoolVar(&f.metrics, "enable-metrics", false, "sglang: serve /metrics")
		fl.BoolVar(&f.memorySaver, "enable-memory-saver", false, "sglang: let /release_memory_occupation free GPU memory")
	})
	only(llamacpp, func() {
		fl.StringVar(&f.maxModelLen, "ctx-size", "", "llamacpp: total context, split over the slots (-c; default 4096)")
		fl.IntVar(&f.numParallel, "parallel", 0, "llamacpp: slots (-np; default 1)")
		fl.IntVar(&f.maxBatched, "batch-size", 0, "llamacpp: logical batch size (-b)")
		fl.StringSliceVar(&f.servedNames, "alias", nil, "llamacpp: the model id the API reports (-a; default the model file)")
		fl.BoolVar(&f.metrics, "metrics", false, "llamacpp: serve /metrics")
		fl.BoolVar(&f.noSlots, "no-slots", false, "llamacpp: disable /slots")
		fl.Bool("slots", true, "llamacpp: enable /slots (the default)")
	})
	only(openai, func() {
		fl.StringVar(&f.apiKey, "api-key", "", "require this key (vllm: on /v1 paths, env VLLM_API_KEY; sglang: all but /health and /metrics; llamacpp: all but /health and /models)")
	})
	// The engines' flags that change nothing in the simulation, accepted so a supervisor's
	// command line works unchanged.
	ignored := func(engines []string, strs, bools []string) {
		only(engines, func() {
			for _, name := range strs {
				if fl.Lookup(name) == nil {
					fl.String(name, "", "ignored (engine compatibility)")
				}
			}
			for _, name := range bools {
				if fl.Lookup(name) == nil {
					fl.Bool(name, false, "ignored (engine compatibility)")
				}
			}
		})
		// A flag another engine registered first is also this one's.
		for _, name := range append(slices.Clone(strs), bools...) {
			p := fl.Lookup(name)
			if have := p.Annotations[engineFlagAnnotation]; !slices.Contains(have, engines[0]) {
				_ = fl.SetAnnotation(name, engineFlagAnnotation, append(slices.Clone(have), engines...))
			}
		}
	}
	ignored(vllm, []string{"download-dir", "revision", "tokenizer", "load-format", "kv-cache-dtype", "chat-template",
		"chat-template-content-format", "generation-config", "limit-mm-per-prompt", "mm-processor-kwargs", "tool-call-parser",
		"reasoning-parser", "uvicorn-log-level", "task", "runner", "pipeline-parallel-size", "data-parallel-size"},
		[]string{"trust-remote-code", "enforce-eager", "disable-log-requests", "enable-prefix-caching",
			"no-enable-prefix-caching", "enable-auto-tool-choice", "enable-request-id-headers", "disable-log-stats"})
	ignored(sglang, []string{"tokenizer-path", "kv-cache-dtype", "chat-template", "download-dir", "revision", "log-level",
		"max-total-tokens", "dp-size", "dp", "tool-call-parser", "reasoning-parser"},
		[]string{"trust-remote-code", "enable-multimodal", "skip-server-warmup", "disable-radix-cache"})
	ignored(llamacpp, []string{"n-gpu-layers", "flash-attn", "cache-type-k", "cache-type-v", "hf-repo", "threads",
		"ubatch-size", "mmproj", "timeout", "chat-template", "api-key-file", "n-predict"},
		[]string{"jinja", "cont-batching", "no-cont-batching", "embeddings", "props", "kv-unified", "no-webui", "no-mmap", "mlock"})
	fl.VisitAll(func(p *pflag.Flag) {
		if strings.HasPrefix(p.Usage, "ignored") {
			_ = fl.MarkHidden(p.Name)
		}
	})
	fl.BoolP("help", "h", false, "help for sim")
	return cmd
}

// checkEngineFlags refuses a flag that belongs to other engines' command lines, naming the
// engines that take it.
func checkEngineFlags(fl *pflag.FlagSet, engine string) error {
	if _, ok := sim.LaunchOf(engine); !ok {
		return usagef("--engine %q: unknown engine; choose one of %s", engine, strings.Join(sim.Engines, ", "))
	}
	var bad []string
	fl.Visit(func(p *pflag.Flag) {
		engines, ok := p.Annotations[engineFlagAnnotation]
		if ok && !slices.Contains(engines, engine) {
			bad = append(bad, fmt.Sprintf("--%s is a flag of %s, not of %s", p.Name, strings.Join(engines, " and "), engine))
		}
	})
	if len(bad) > 0 {
		return usagef("%s (see citadel sim --help)", strings.Join(bad, "; "))
	}
	return nil
}

func runSim(cmd *cobra.Command, e *env, f simFlags) error {
	if f.engine == engOllama && f.model == "" && e.getenv("OLLAMA_MODELS") != "" {
		return runOllamaStore(cmd, e, f)
	}
	ollamaName := "" // --engine ollama: the model as Ollama names it, e.g. qwen2.5:7b
	if f.engine == engOllama {
		// The tag separator becomes the catalogue's dash: qwen2.5:7b is looked up as qwen2.5-7b.
		ollamaName, f.model = f.model, strings.ReplaceAll(f.model, ":", "-")
	}
	if f.gpu == "" {
		return usagef("--gpu is required: one of %s", strings.Join(perfmodel.GPUNames(), ", "))
	}
	gpu, err := perfmodel.LookupGPU(f.gpu)
	if err != nil {
		return usagef("--gpu: %v", err)
	}
	if f.model == "" {
		if f.engine == engOllama {
			return usagef("a model is required: --model (one of %s), or OLLAMA_MODELS naming an Ollama store to serve every model in it, as ollama serve does", strings.Join(perfmodel.ModelNames(), ", "))
		}
		return usagef("a model is required: --model or a positional argument, one of %s", strings.Join(perfmodel.ModelNames(), ", "))
	}
	model, fileQuant, err := lookupSimModel(f.model)
	if err != nil {
		return usagef("--model: %v", err)
	}
	opts := perfmodel.Options{TP: f.tp, GPUMemoryUtilization: f.gpuMemUtil, MaxNumSeqs: f.maxNumSeqs, MaxNumBatchedTokens: f.maxBatched,
		Parallel: f.numParallel}
	launch, _ := sim.LaunchOf(f.engine)
	if f.maxModelLen != "" {
		if opts.MaxModelLen, err = parseModelLen(f.maxModelLen); err != nil {
			return usagef("%s: %v", f.maxLenFlag, err)
		}
	} else if opts.MaxModelLen, err = contextFromEnv(e, launch); err != nil {
		return err
	}
	switch {
	case f.quant != "":
		if opts.Quant, err = perfmodel.ParseQuant(f.quant); err != nil {
			return usagef("--quantization: %v", err)
		}
	case fileQuant != "":
		opts.Quant = fileQuant
	case f.dtype != "" && f.dtype != "auto":
		if opts.Quant, err = perfmodel.ParseQuant(f.dtype); err != nil {
			return usagef("--dtype: %v", err)
		}
	}
	if opts, err = sim.PlanOptions(f.engine, opts); err != nil {
		return usagef("%v", err)
	}
	if f.timeScale < 0 {
		return usagef("--time-scale %g: must be 0 or more", f.timeScale)
	}
	if f.slowdown <= 0 {
		return usagef("--slowdown %g: must be more than 0", f.slowdown)
	}
	// --bind-after-startup spends the delay before listening, unless the engine listens while
	// it loads (llama-server): then the delay is its loading phase.
	waitToListen := f.bindAfterStartup && !launch.LoadsWhileListening
	faults := sim.Faults{FailRate: f.failRate, Seed: f.seed, HangAfter: f.hangAfter, CrashAfter: f.crashAfter, StartupDelay: f.startupDelay}
	if waitToListen {
		faults.StartupDelay = 0
	}
	if err := faults.Validate(); err != nil {
		return usagef("%v", err)
	}
	if f.engine == engOllama {
		return runOllamaSim(cmd, e, f, ollamaName, gpu, model, opts)
	}
	plan, err := perfmodel.NewPlan(gpu, model, opts)
	if err != nil {
		var pe *perfmodel.PlanError
		if errors.As(err, &pe) {
			return err // the engine's own refusal: exit 1
		}
		return usageError{err}
	}
	names := f.servedNames
	if len(names) == 0 {
		names = []string{f.model}
	}
	cfg := sim.Config{Engine: f.engine, Plan: plan, ServedModelNames: names, ModelRoot: f.model, APIKey: f.apiKey,
		VLLMVersion: f.vllmVersion, TimeScale: f.timeScale, Seed: f.seed, Slowdown: f.slowdown, EmbeddingDim: f.embeddingDim,
		Faults: faults, OOMAtLoad: f.oomAtLoad, EnableMetrics: f.metrics, NoSlots: f.noSlots, NoPrefixCache: f.noPrefixCache,
		EnableSleepMode: f.sleepMode, EnableMemorySaver: f.memorySaver, DevMode: e.getenv("VLLM_SERVER_DEV_MODE") == "1",
		FixedTTFT: f.ttft, FixedITL: f.itl}
	srv, err := sim.NewOpenAI(cfg)
	if err != nil {
		var le *sim.LoadError
		if errors.As(err, &le) {
			return err // the engine fails to load: exit 1
		}
		return usagef("%v", err)
	}
	srv.LogLoad(e.stdout)
	if waitToListen && f.startupDelay > 0 {
		select { // loading: nothing listens yet, so clients see connection refused
		case <-time.After(f.startupDelay):
		case <-cmd.Context().Done():
			return nil
		}
	}
	addr := net.JoinHostPort(f.host, strconv.Itoa(f.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another engine on that port? choose one with --port)", addr, err)
	}
	srv.LogServing(e.stdout, ln.Addr())
	return srv.Serve(cmd.Context(), ln)
}

// contextFromEnv is the context length the engine's environment sets (Ollama's
// OLLAMA_CONTEXT_LENGTH); 0 when it sets none.
func contextFromEnv(e *env, launch sim.Launch) (int, error) {
	if launch.ContextEnv == "" {
		return 0, nil
	}
	v := e.getenv(launch.ContextEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, usagef("%s=%q: want a positive number of tokens", launch.ContextEnv, v)
	}
	return n, nil
}

// ollamaSettings are what ollama serve reads from its environment: OLLAMA_NUM_PARALLEL (slots,
// default 1; --num-parallel wins), OLLAMA_KEEP_ALIVE (default 5m), and the memory of the visible
// GPUs (--gpu-free-memory, else each GPU's total, one per CUDA_VISIBLE_DEVICES entry).
type ollamaSettings struct {
	parallel int
	keep     time.Duration
	free     []int64 // nil: --gpu-free-memory not given
	gpus     int
}

func ollamaEnv(e *env, f simFlags, gpu perfmodel.GPU) (ollamaSettings, error) {
	st := ollamaSettings{keep: 5 * time.Minute, gpus: 1}
	if v := e.getenv("OLLAMA_NUM_PARALLEL"); v != "" && f.numParallel == 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return st, usagef("OLLAMA_NUM_PARALLEL=%q: want a positive number of slots", v)
		}
		st.parallel = n
	}
	if f.numParallel > 0 {
		st.parallel = f.numParallel
	}
	if v := e.getenv("OLLAMA_KEEP_ALIVE"); v != "" {
		d, err := time.ParseDuration(v)
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil {
			return st, usagef("OLLAMA_KEEP_ALIVE=%q: want a duration such as 5m or a number of seconds", v)
		}
		if d == 0 {
			d = time.Nanosecond // unload at once (sim.OllamaConfig reads 0 as the default)
		}
		st.keep = d
	}
	if v := strings.TrimSpace(e.getenv("CUDA_VISIBLE_DEVICES")); v != "" {
		st.gpus = len(strings.Split(v, ","))
	}
	for _, v := range f.gpuFree {
		n, err := parseByteSize(v)
		if err != nil {
			return st, usagef("--gpu-free-memory %q: %v", v, err)
		}
		st.free = append(st.free, n)
	}
	if st.free != nil {
		st.gpus = len(st.free)
	}
	return st, nil
}

// parseByteSize reads a size in bytes: 17179869184, 16GiB, 6.4GiB, 512MiB, 16GB (decimal units
// B, KB, MB, GB, TB; binary KiB, MiB, GiB, TiB; case-insensitive).
func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v <= 0 {
		return 0, errors.New("want a positive size such as 17179869184, 16GiB or 6.4GiB")
	}
	return int64(v * mult), nil
}

// parseOllamaHost reads OLLAMA_HOST as ollama's envconfig.Host does: [scheme://]host[:port],
// port 11434 by default.
func parseOllamaHost(v string) (string, int, error) {
	if _, rest, ok := strings.Cut(v, "://"); ok {
		v = rest
	}
	v = strings.TrimSuffix(v, "/")
	host, port := v, "11434"
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q: want host:port, e.g. 127.0.0.1:11434", port)
	}
	return host, n, nil
}

// runOllamaSim serves the Ollama personality with one model. Like ollama serve it reads
// OLLAMA_NUM_PARALLEL and OLLAMA_KEEP_ALIVE (see ollamaEnv); with --gpu-free-memory a model
// that does not fit runs with some layers on the CPU (sim.OllamaModelFor).
func runOllamaSim(cmd *cobra.Command, e *env, f simFlags, name string, gpu perfmodel.GPU, model perfmodel.Model, opts perfmodel.Options) error {
	st, err := ollamaEnv(e, f, gpu)
	if err != nil {
		return err
	}
	if st.parallel > 0 {
		opts.Parallel = st.parallel
	}
	cfg := sim.OllamaConfig{Model: name, KeepAlive: st.keep, TimeScale: f.timeScale, Seed: f.seed,
		Slowdown: f.slowdown, OOMAtLoad: f.oomAtLoad, FixedTTFT: f.ttft, FixedITL: f.itl}
	if st.free != nil {
		m, err := sim.OllamaModelFor(name, model, gpu, opts, st.free)
		if err != nil {
			return err
		}
		cfg.Models, cfg.GPUFree, cfg.Plan = []sim.OllamaModel{m}, st.free, m.Plan
	} else if cfg.Plan, err = perfmodel.NewPlan(gpu, model, opts); err != nil {
		return err
	}
	return serveOllama(cmd, e, f, cfg)
}

// runOllamaStore serves every model of the Ollama store OLLAMA_MODELS names, as ollama serve
// does: each sized from its GGUF blob, planned with OLLAMA_CONTEXT_LENGTH (default 4096) tokens
// per slot, loaded on first use and evicted when idle or short of memory.
func runOllamaStore(cmd *cobra.Command, e *env, f simFlags) error {
	dir := e.getenv("OLLAMA_MODELS")
	if f.gpu == "" {
		return usagef("--gpu is required: one of %s", strings.Join(perfmodel.GPUNames(), ", "))
	}
	gpu, err := perfmodel.LookupGPU(f.gpu)
	if err != nil {
		return usagef("--gpu: %v", err)
	}
	if f.slowdown <= 0 {
		return usagef("--slowdown %g: must be more than 0", f.slowdown)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("OLLAMA_MODELS=%s is not a directory: pull a model there first (citadel pull ollama://NAME with OLLAMA_MODELS set) or point it at an Ollama store", dir)
	}
	st, err := ollamaEnv(e, f, gpu)
	if err != nil {
		return err
	}
	launch, _ := sim.LaunchOf(engOllama)
	opts := perfmodel.Options{Parallel: max(st.parallel, 1)}
	if opts.MaxModelLen, err = contextFromEnv(e, launch); err != nil {
		return err
	}
	if opts, err = sim.PlanOptions(engOllama, opts); err != nil {
		return err
	}
	free := st.free
	if free == nil {
		for range st.gpus {
			free = append(free, gpu.MemoryBytes)
		}
	}
	models, skipped, err := sim.OllamaStoreModels(dir, gpu, opts, free)
	if err != nil {
		return err
	}
	ts := time.Now().Format(time.RFC3339)
	for _, err := range skipped {
		fmt.Fprintf(e.stdout, "time=%s level=WARN source=sim msg=\"skipping a model of the store\" err=%q\n", ts, err.Error())
	}
	for _, m := range models {
		fmt.Fprintf(e.stdout, "time=%s level=INFO source=sim msg=\"model %s: %s\"\n", ts, m.Name, ollamaPlanLine(m, gpu))
	}
	cfg := sim.OllamaConfig{Models: models, GPUFree: free, KeepAlive: st.keep, TimeScale: f.timeScale, Seed: f.seed,
		Slowdown: f.slowdown, OOMAtLoad: f.oomAtLoad, FixedTTFT: f.ttft, FixedITL: f.itl,
		Store:  &sim.OllamaStore{Dir: dir, GPU: gpu, Options: opts},
		Logger: slog.New(slog.NewTextHandler(e.stdout, nil))}
	return serveOllama(cmd, e, f, cfg)
}

// ollamaPlanLine says where a model's layers go and how fast it runs.
func ollamaPlanLine(m sim.OllamaModel, gpu perfmodel.GPU) string {
	o := m.Offload
	standIn := ""
	if m.StandIn {
		standIn = " (stand-in)"
	}
	line := fmt.Sprintf("%s %s%s, %s weights, context %d × %d slots", m.ParameterSize, m.QuantizationLevel, standIn,
		modelinfo.FormatBytes(m.Plan.WeightBytes), m.Plan.Options.MaxModelLen, m.Plan.Options.Parallel)
	if o.Layers == 0 {
		return line
	}
	line += fmt.Sprintf("; %d/%d layers on %d× %s %v", o.OnGPU(), o.Layers, len(o.GPULayers), gpu.Name, o.GPULayers)
	if o.CPULayers > 0 {
		line += fmt.Sprintf(", %d on the CPU: decode %.1f× slower", o.CPULayers, o.Slowdown)
	}
	return line
}

// serveOllama listens and serves cfg until the command's context ends.
func serveOllama(cmd *cobra.Command, e *env, f simFlags, cfg sim.OllamaConfig) error {
	faults := sim.Faults{FailRate: f.failRate, Seed: f.seed, HangAfter: f.hangAfter, CrashAfter: f.crashAfter, StartupDelay: f.startupDelay}
	if f.bindAfterStartup {
		faults.StartupDelay = 0 // the delay is spent before listening instead
	}
	cfg.Faults = faults
	// --oom-at-load: ollama serve keeps running and fails each load of the model with a 500.
	srv, err := sim.NewOllama(cfg)
	if err != nil {
		return err // e.g. the slots' contexts do not fit: exit 1, as ollama fails to load
	}
	if f.bindAfterStartup && f.startupDelay > 0 {
		select { // starting: nothing listens yet, so clients see connection refused
		case <-time.After(f.startupDelay):
		case <-cmd.Context().Done():
			return nil
		}
	}
	addr := net.JoinHostPort(f.host, strconv.Itoa(f.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another engine on that port? choose one with --port or OLLAMA_HOST)", addr, err)
	}
	parallel := cfg.Plan.Options.Parallel
	if len(cfg.Models) > 0 {
		parallel = cfg.Models[0].Plan.Options.Parallel
	}
	fmt.Fprintf(e.stdout, "time=%s level=INFO source=routes.go msg=\"Listening on %s (version %s, citadel sim, time scale %g, %d parallel)\"\n",
		time.Now().Format(time.RFC3339), ln.Addr(), sim.DefaultOllamaVersion, f.timeScale, parallel)
	if len(cfg.Models) == 0 || cfg.Store == nil {
		p := cfg.Plan
		fmt.Fprintf(e.stdout, "time=%s level=INFO source=sim msg=\"plan: %s\"\n", time.Now().Format(time.RFC3339), p)
		if len(cfg.Models) == 1 && cfg.Models[0].Offload.Layers > 0 {
			fmt.Fprintf(e.stdout, "time=%s level=INFO source=sim msg=\"model %s: %s\"\n", time.Now().Format(time.RFC3339), cfg.Models[0].Name, ollamaPlanLine(cfg.Models[0], p.GPU))
		}
	}
	return srv.Serve(cmd.Context(), ln)
}

// lookupSimModel finds the profile of a model: a model directory is read (config.json and
// weight headers, see modelinfo.FromDir); a name, repo id or GGUF file is matched against the
// catalogue, "Qwen/Qwen2.5-7B-Instruct" as qwen2.5-7b-instruct, then with trailing -segments
// dropped (qwen2.5-7b). A GGUF file name's quantisation is returned when the simulator models
// it; one it does not model is an error rather than a silent substitute.
func lookupSimModel(name string) (perfmodel.Model, perfmodel.Quant, error) {
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		m, err := modelFromDir(name)
		return m, "", err
	}
	n := strings.ToLower(path.Base(name))
	var quant perfmodel.Quant
	if base, ok := strings.CutSuffix(n, ".gguf"); ok {
		n = base
		if m := ggufQuant.FindStringSubmatch(n); m != nil {
			q, err := perfmodel.ParseQuant(m[1])
			if err != nil {
				return perfmodel.Model{}, "", fmt.Errorf("%s: the simulator models GGUF q4_k_m and f16 weights, not %s; pass --quantization to choose one", name, m[1])
			}
			quant, n = q, strings.TrimSuffix(n[:len(n)-len(m[1])], "-")
			n = strings.TrimSuffix(strings.TrimSuffix(n, "."), "_")
		}
	}
	for {
		if m, err := perfmodel.LookupModel(n); err == nil {
			return m, quant, nil
		}
		i := strings.LastIndexByte(n, '-')
		if i <= 0 {
			break
		}
		n = n[:i]
	}
	return perfmodel.Model{}, "", fmt.Errorf("no built-in profile matches %q: use one of %s, or a model directory", name, strings.Join(perfmodel.ModelNames(), ", "))
}

// ggufQuant finds a GGUF file name's quantisation suffix (qwen2.5-7b-instruct-q4_k_m).
var ggufQuant = regexp.MustCompile(`[-._]((?:i?q[1-8](?:_[a-z0-9]+)*)|f16|bf16|f32)$`)

// modelFromDir builds a profile from a model directory's files.
func modelFromDir(dir string) (perfmodel.Model, error) {
	info, err := modelinfo.FromDir(dir)
	if err != nil {
		return perfmodel.Model{}, err
	}
	var cfg modelinfo.Config
	if data, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		if cfg, err = modelinfo.ParseConfig(data); err != nil {
			return perfmodel.Model{}, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
		}
	}
	return perfmodel.ModelFromInfo(filepath.Base(filepath.Clean(dir)), cfg, info)
}

// parseModelLen reads vLLM's --max-model-len: 8192, or human-readable with a decimal (k, m) or
// binary (K, M) suffix as vLLM's human_readable_int does: 32k = 32000, 32K = 32768.
func parseModelLen(s string) (int, error) {
	mult, digits := 1, s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k':
			mult = 1000
		case 'K':
			mult = 1024
		case 'm':
			mult = 1000000
		case 'M':
			mult = 1 << 20
		}
		if mult > 1 {
			digits = s[:n-1]
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q: want a positive token count such as 8192, 32k or 32K", s)
	}
	return n * mult, nil
}
