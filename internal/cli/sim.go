package cli

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/sim/perf"
)

// simFlags are citadel sim's own flags and the real engine's that the supervisor passes.
type simFlags struct {
	engine, gpu, model, host, apiKey, dtype, quant, maxModelLen, vllmVersion string
	servedNames                                                              []string
	port, maxNumSeqs, maxBatched, tp, numParallel                            int
	gpuMemUtil, timeScale                                                    float64
	seed                                                                     int64

	// Faults and knobs for tests.
	failRate, slowdown                  float64
	hangAfter, crashAfter, embeddingDim int
	startupDelay                        time.Duration
	bindAfterStartup, oomAtLoad         bool
}

func newSim(e *env) *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim [model] --engine vllm --gpu h100-sxm",
		Short: "Simulate an inference engine's API and performance without a GPU",
		Long: `Run a simulated inference engine: the real engine's HTTP API, with latencies
from a performance model of the GPU and model (internal/sim/perf).

It accepts the engine's own flags, so a supervisor can start it in place of
vLLM. A model that does not fit the GPU refuses to start, as vLLM does.

GPUs:   ` + strings.Join(perf.GPUNames(), ", ") + `
Models: ` + strings.Join(perf.ModelNames(), ", ") + ` (or a Hugging Face repo
        whose name starts with one of them, e.g. XiaomiMiMo/MiMo-VL-7B-RL)

--time-scale multiplies simulated time into wall time: 1 is real time, 0 runs
as fast as possible (for gateway overhead benchmarks).`,
		Example: `  citadel sim --engine vllm --gpu h100-sxm --model qwen2.5-7b --port 8000
  citadel sim Qwen/Qwen2.5-7B-Instruct --gpu a100-80g --max-num-seqs 64 --time-scale 0`,
		Args: argsBetween(0, 1, "at most one model argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if f.model != "" && f.model != args[0] {
					return usagef("model given twice: %q and --model %q", args[0], f.model)
				}
				f.model = args[0]
			}
			if !cmd.Flags().Changed("api-key") {
				f.apiKey = e.getenv("VLLM_API_KEY")
			}
			return runSim(cmd, e, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.numParallel, "num-parallel", 0, "ollama: parallel slots (default OLLAMA_NUM_PARALLEL, else 1)")
	fl.StringVar(&f.engine, "engine", "vllm", "engine personality: vllm or ollama (sglang and llamacpp are not yet available)")
	fl.StringVar(&f.gpu, "gpu", "", "GPU profile to simulate (required)")
	fl.StringVar(&f.model, "model", "", "model to simulate: a catalogue name or a repo id (or the positional argument)")
	fl.StringVar(&f.host, "host", "", "address to bind (default all interfaces)")
	fl.IntVar(&f.port, "port", 8000, "port to listen on")
	fl.StringSliceVar(&f.servedNames, "served-model-name", nil, "model names the API answers to (default the --model value)")
	fl.StringVar(&f.maxModelLen, "max-model-len", "", "context length, e.g. 8192 or 32k (default the model's)")
	fl.IntVar(&f.maxNumSeqs, "max-num-seqs", 0, "maximum sequences per iteration (default 256)")
	fl.IntVar(&f.maxBatched, "max-num-batched-tokens", 0, "token budget per iteration (default 8192)")
	fl.Float64Var(&f.gpuMemUtil, "gpu-memory-utilization", perf.DefaultGPUMemoryUtilization, "fraction of GPU memory the engine may use")
	fl.IntVar(&f.tp, "tensor-parallel-size", 1, "number of GPUs to shard the model over")
	fl.StringVar(&f.apiKey, "api-key", "", "require this bearer token on /v1 paths (env VLLM_API_KEY)")
	fl.StringVar(&f.dtype, "dtype", "auto", "weight data type: auto, bfloat16, float16")
	fl.StringVar(&f.quant, "quantization", "", "weight quantisation: fp8, awq, gguf q4_k_m")
	fl.Float64Var(&f.timeScale, "time-scale", 1, "wall seconds per simulated second; 0 = no delay")
	fl.Int64Var(&f.seed, "seed", 0, "seed of the generated text")
	fl.IntVar(&f.embeddingDim, "embedding-dim", 0, "length of /v1/embeddings vectors (default the model's hidden size)")
	fl.Float64Var(&f.failRate, "fail-rate", 0, "fault: answer this fraction of inference requests with a 500 error (chosen by --seed)")
	fl.IntVar(&f.hangAfter, "hang-after", 0, "fault: after this many inference requests, accept requests but never answer them (0: never)")
	fl.IntVar(&f.crashAfter, "crash-after", 0, "fault: exit with status 1 when inference request N+1 arrives (0: never)")
	fl.DurationVar(&f.startupDelay, "startup-delay", 0, "fault: answer 503 (/health with an empty body) for this long after start; real vLLM binds only when ready, see --bind-after-startup")
	fl.BoolVar(&f.bindAfterStartup, "bind-after-startup", false, "with --startup-delay: listen only once the delay has passed, as real vLLM does (connection refused while loading)")
	fl.BoolVar(&f.oomAtLoad, "oom-at-load", false, "fault: exit 1 at start with a CUDA out-of-memory error, as a model that does not fit")
	fl.Float64Var(&f.slowdown, "slowdown", 1, "multiply every simulated step time by this factor (a slower or throttled GPU)")
	fl.StringVar(&f.vllmVersion, "vllm-version", sim.DefaultVLLMVersion, "vLLM release to imitate: error JSON (< 0.10.1 flat) and metric names (< 0.10 gpu_cache_usage_perc, < 0.11 time_per_output_token_seconds)")
	// Flags of vllm serve that change nothing in the simulation, accepted so a supervisor's
	// command line works unchanged.
	for _, name := range []string{"download-dir", "revision", "tokenizer", "load-format", "kv-cache-dtype", "chat-template",
		"chat-template-content-format", "generation-config", "limit-mm-per-prompt", "mm-processor-kwargs", "tool-call-parser",
		"reasoning-parser", "uvicorn-log-level", "task", "runner"} {
		fl.String(name, "", "ignored (vllm serve compatibility)")
		_ = fl.MarkHidden(name)
	}
	for _, name := range []string{"trust-remote-code", "enforce-eager", "disable-log-requests", "enable-prefix-caching",
		"no-enable-prefix-caching", "enable-auto-tool-choice", "enable-request-id-headers", "disable-log-stats"} {
		fl.Bool(name, false, "ignored (vllm serve compatibility)")
		_ = fl.MarkHidden(name)
	}
	return cmd
}

func runSim(cmd *cobra.Command, e *env, f simFlags) error {
	ollamaName := "" // --engine ollama: the model as Ollama names it, e.g. qwen2.5:7b
	switch f.engine {
	case "vllm":
	case "ollama":
		// The tag separator becomes the catalogue's dash: qwen2.5:7b is looked up as qwen2.5-7b.
		ollamaName, f.model = f.model, strings.ReplaceAll(f.model, ":", "-")
	default:
		if _, err := perf.ParseMode(f.engine); err != nil {
			return usagef("--engine: %v", err)
		}
		return usagef("--engine %s: not yet available in citadel sim; use --engine vllm or ollama", f.engine)
	}
	if f.gpu == "" {
		return usagef("--gpu is required: one of %s", strings.Join(perf.GPUNames(), ", "))
	}
	gpu, err := perf.LookupGPU(f.gpu)
	if err != nil {
		return usagef("--gpu: %v", err)
	}
	if f.model == "" {
		return usagef("a model is required: --model or a positional argument, one of %s", strings.Join(perf.ModelNames(), ", "))
	}
	model, err := lookupSimModel(f.model)
	if err != nil {
		return usagef("--model: %v", err)
	}
	opts := perf.Options{TP: f.tp, GPUMemoryUtilization: f.gpuMemUtil, MaxNumSeqs: f.maxNumSeqs, MaxNumBatchedTokens: f.maxBatched}
	if f.maxModelLen != "" {
		if opts.MaxModelLen, err = parseModelLen(f.maxModelLen); err != nil {
			return usagef("--max-model-len: %v", err)
		}
	} else if f.engine == "ollama" {
		// Ollama serves a model with a context window of its own (num_ctx,
		// OLLAMA_CONTEXT_LENGTH; 4096 by default), not the model's maximum.
		opts.MaxModelLen = 4096
		if v := e.getenv("OLLAMA_CONTEXT_LENGTH"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return usagef("OLLAMA_CONTEXT_LENGTH=%q: want a positive number of tokens", v)
			}
			opts.MaxModelLen = n
		}
	}
	switch {
	case f.quant != "":
		if opts.Quant, err = perf.ParseQuant(f.quant); err != nil {
			return usagef("--quantization: %v", err)
		}
	case f.dtype != "" && f.dtype != "auto":
		if opts.Quant, err = perf.ParseQuant(f.dtype); err != nil {
			return usagef("--dtype: %v", err)
		}
	}
	if f.timeScale < 0 {
		return usagef("--time-scale %g: must be 0 or more", f.timeScale)
	}
	if f.slowdown <= 0 {
		return usagef("--slowdown %g: must be more than 0", f.slowdown)
	}
	faults := sim.Faults{FailRate: f.failRate, Seed: f.seed, HangAfter: f.hangAfter, CrashAfter: f.crashAfter, StartupDelay: f.startupDelay}
	if f.bindAfterStartup {
		faults.StartupDelay = 0
	}
	if err := faults.Validate(); err != nil {
		return usagef("%v", err)
	}
	plan, err := perf.NewPlan(gpu, model, opts)
	if err != nil {
		var pe *perf.PlanError
		if errors.As(err, &pe) {
			return err // vLLM's own refusal: exit 1
		}
		return usageError{err}
	}
	names := f.servedNames
	if len(names) == 0 {
		names = []string{f.model}
	}
	if f.engine == "ollama" {
		return runOllamaSim(cmd, e, f, ollamaName, gpu, model, opts)
	}
	srv, err := sim.NewVLLM(sim.Config{Plan: plan, ServedModelNames: names, ModelRoot: f.model, APIKey: f.apiKey,
		VLLMVersion: f.vllmVersion, TimeScale: f.timeScale, Seed: f.seed, Slowdown: f.slowdown, EmbeddingDim: f.embeddingDim, Faults: faults})
	if err != nil {
		return usagef("%v", err)
	}
	if f.oomAtLoad {
		return fmt.Errorf("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate %.2f GiB. GPU 0 has a total capacity of %.2f GiB (citadel sim --oom-at-load)",
			float64(plan.WeightBytes)/(1<<30), float64(gpu.MemoryBytes)/(1<<30))
	}
	if f.bindAfterStartup && f.startupDelay > 0 {
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
	out := e.stdout
	ts := func() string { return time.Now().Format("01-02 15:04:05") }
	fmt.Fprintf(out, "INFO %s [api_server.py] vLLM API server version %s (citadel sim, time scale %g)\n", ts(), f.vllmVersion, f.timeScale)
	fmt.Fprintf(out, "INFO %s [gpu_model_runner.py] Model loading took %.4f GiB\n", ts(), float64(plan.WeightBytes)/(1<<30))
	fmt.Fprintf(out, "INFO %s [kv_cache_utils.py] GPU KV cache size: %d tokens\n", ts(), plan.KVTokens)
	fmt.Fprintf(out, "INFO %s [kv_cache_utils.py] Maximum concurrency for %d tokens per request: %.2fx\n", ts(), plan.Options.MaxModelLen, plan.MaxConcurrency())
	fmt.Fprintf(out, "INFO %s [sim] plan: %s\n", ts(), plan)
	fmt.Fprintf(out, "INFO %s [launcher.py] Starting vLLM API server on http://%s\n", ts(), ln.Addr())
	return srv.Serve(cmd.Context(), ln)
}

// runOllamaSim serves the Ollama personality. Like ollama serve it reads OLLAMA_NUM_PARALLEL
// (slots, default 1) and OLLAMA_KEEP_ALIVE (default 5m) from the environment.
func runOllamaSim(cmd *cobra.Command, e *env, f simFlags, name string, gpu perf.GPU, model perf.Model, opts perf.Options) error {
	if v := e.getenv("OLLAMA_NUM_PARALLEL"); v != "" && f.numParallel == 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return usagef("OLLAMA_NUM_PARALLEL=%q: want a positive number of slots", v)
		}
		opts.Parallel = n
	}
	if f.numParallel > 0 {
		opts.Parallel = f.numParallel
	}
	keep := 5 * time.Minute
	if v := e.getenv("OLLAMA_KEEP_ALIVE"); v != "" {
		d, err := time.ParseDuration(v)
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil {
			return usagef("OLLAMA_KEEP_ALIVE=%q: want a duration such as 5m or a number of seconds", v)
		}
		if d == 0 {
			d = time.Nanosecond // unload at once (sim.OllamaConfig reads 0 as the default)
		}
		keep = d
	}
	plan, err := perf.NewPlan(gpu, model, opts)
	if err != nil {
		return err
	}
	faults := sim.Faults{FailRate: f.failRate, Seed: f.seed, HangAfter: f.hangAfter, CrashAfter: f.crashAfter, StartupDelay: f.startupDelay}
	if f.bindAfterStartup {
		faults.StartupDelay = 0 // the delay is spent before listening instead
	}
	// --oom-at-load: ollama serve keeps running and fails each load of the model with a 500.
	srv, err := sim.NewOllama(sim.OllamaConfig{Plan: plan, Model: name, KeepAlive: keep, TimeScale: f.timeScale, Seed: f.seed,
		Slowdown: f.slowdown, Faults: faults, OOMAtLoad: f.oomAtLoad})
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
		return fmt.Errorf("listening on %s: %w (is another engine on that port? choose one with --port)", addr, err)
	}
	fmt.Fprintf(e.stdout, "time=%s level=INFO source=routes.go msg=\"Listening on %s (version %s, citadel sim, time scale %g, %d parallel)\"\n",
		time.Now().Format(time.RFC3339), ln.Addr(), sim.DefaultOllamaVersion, f.timeScale, plan.Options.Parallel)
	fmt.Fprintf(e.stdout, "time=%s level=INFO source=sim msg=\"plan: %s\"\n", time.Now().Format(time.RFC3339), plan)
	return srv.Serve(cmd.Context(), ln)
}

// lookupSimModel finds a catalogue profile for a name or repo id: "Qwen/Qwen2.5-7B-Instruct"
// is tried as qwen2.5-7b-instruct, then with trailing -segments dropped (qwen2.5-7b).
func lookupSimModel(name string) (perf.Model, error) {
	n := strings.ToLower(path.Base(name))
	for {
		if m, err := perf.LookupModel(n); err == nil {
			return m, nil
		}
		i := strings.LastIndexByte(n, '-')
		if i <= 0 {
			break
		}
		n = n[:i]
	}
	return perf.Model{}, fmt.Errorf("no built-in profile matches %q: use one of %s", name, strings.Join(perf.ModelNames(), ", "))
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
