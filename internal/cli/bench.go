package cli

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"citadel.dev/citadel/internal/bench"
)

type benchFlags struct {
	targets                    []string
	dataset, datasetPath       string
	numPrompts                 int
	inputLen, outputLen        int
	rangeRatio                 float64
	prefixLen                  int
	imageSize                  string
	rate, burstiness           float64
	maxConcurrency, warmups    int
	seed                       int64
	goodput                    []string
	percentileMetrics, pctiles string
	out                        string
	concurrency                string
	rates                      int
}

func (f *benchFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.targets, "target", "t", nil, "NAME=URL[,model=M][,api=openai-chat|openai|openai-embeddings|ollama][,key=K]; repeat for side-by-side targets")
	fl.StringVar(&f.dataset, "dataset-name", "random", "random, sharegpt, custom (JSONL), random-vision, prefix-repetition")
	fl.StringVar(&f.datasetPath, "dataset-path", "", "the ShareGPT JSON or custom JSONL file")
	fl.IntVar(&f.numPrompts, "num-prompts", 200, "requests per run (per sweep point)")
	fl.IntVar(&f.inputLen, "input-len", 1024, "random: prompt tokens")
	fl.IntVar(&f.outputLen, "output-len", 128, "random: output tokens (ignore_eos is sent)")
	fl.Float64Var(&f.rangeRatio, "range-ratio", 0, "random: lengths uniform in [len×(1−r), len×(1+r)]")
	fl.IntVar(&f.prefixLen, "prefix-len", 0, "random: shared prefix tokens; prefix-repetition: prefix length")
	fl.StringVar(&f.imageSize, "image-size", "448x448", "random-vision: WxH of each generated image")
	fl.Float64Var(&f.rate, "request-rate", math.Inf(1), "requests per second (inf: all at once)")
	fl.Float64Var(&f.burstiness, "burstiness", 1, "gamma shape of the arrivals: 1 Poisson, < 1 burstier, > 1 more uniform")
	fl.IntVar(&f.maxConcurrency, "max-concurrency", 0, "at most this many requests in flight (0: no limit)")
	fl.IntVar(&f.warmups, "num-warmups", 0, "requests sent first and not measured")
	fl.Int64Var(&f.seed, "seed", 0, "seed of the dataset and the arrivals")
	fl.StringSliceVar(&f.goodput, "goodput", nil, "SLOs for goodput, e.g. ttft:500,tpot:50,e2el:10000 (milliseconds)")
	fl.StringVar(&f.percentileMetrics, "percentile-metrics", "ttft,tpot,itl", "metrics with percentiles: ttft, tpot, itl, e2el")
	fl.StringVar(&f.pctiles, "metric-percentiles", "99", "percentiles, e.g. 50,90,99")
	fl.StringVar(&f.out, "out", "", "write result JSON (vLLM's keys), Markdown and SVG charts here")
}

func parseTargets(specs []string) ([]bench.Target, error) {
	if len(specs) == 0 {
		return nil, usagef("--target NAME=URL is required, e.g. --target vllm=http://127.0.0.1:8000,model=qwen")
	}
	var out []bench.Target
	for _, s := range specs {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, usagef("--target %q: want NAME=URL[,model=M][,api=A]", s)
		}
		parts := strings.Split(rest, ",")
		t := bench.Target{Name: name, BaseURL: strings.TrimSuffix(parts[0], "/"), API: "openai-chat"}
		if !strings.HasPrefix(t.BaseURL, "http://") && !strings.HasPrefix(t.BaseURL, "https://") {
			return nil, usagef("--target %s: %q is not an http(s) URL", name, parts[0])
		}
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(p, "=")
			switch k {
			case "model":
				t.Model = v
			case "api":
				switch v {
				case "openai-chat", "openai", "openai-embeddings", "ollama":
					t.API = v
				default:
					return nil, usagef("--target %s: api %q: want openai-chat, openai, openai-embeddings or ollama", name, v)
				}
			case "key":
				t.APIKey = v
			default:
				return nil, usagef("--target %s: unknown option %q (model, api, key)", name, k)
			}
		}
		if t.Model == "" {
			return nil, usagef("--target %s: model=NAME is required", name)
		}
		out = append(out, t)
	}
	return out, nil
}

func (f *benchFlags) datasetOptions(n int) (bench.DatasetOptions, error) {
	o := bench.DatasetOptions{Name: f.dataset, Path: f.datasetPath, NumRequests: n, InputLen: f.inputLen, OutputLen: f.outputLen,
		RangeRatio: f.rangeRatio, PrefixLen: f.prefixLen, Seed: f.seed, ImagesPerRequest: 1, PrefixCount: 10}
	if (f.dataset == bench.DatasetPrefixRepetition || f.dataset == "prefix_repetition") && o.PrefixLen == 0 {
		o.PrefixLen = 256 // vLLM's default
	}
	if f.dataset == "random-vision" {
		w, h, ok := strings.Cut(f.imageSize, "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || wi < 1 || hi < 1 {
			return o, usagef("--image-size %q: want WxH, e.g. 448x448", f.imageSize)
		}
		o.ImageWidth, o.ImageHeight = wi, hi
	}
	return o, nil
}

func (f *benchFlags) metricOptions(t bench.Target) (bench.Options, error) {
	o := bench.Options{Label: t.Name, Model: t.Model, Backend: t.API, RequestRate: f.rate, Burstiness: f.burstiness, MaxConcurrency: f.maxConcurrency}
	for _, m := range strings.Split(f.percentileMetrics, ",") {
		switch m = strings.TrimSpace(m); m {
		case "ttft", "tpot", "itl", "e2el":
			o.Metrics = append(o.Metrics, m)
		case "":
		default:
			return o, usagef("--percentile-metrics: %q is not ttft, tpot, itl or e2el", m)
		}
	}
	for _, p := range strings.Split(f.pctiles, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v > 100 {
			return o, usagef("--metric-percentiles: %q is not a percentile in (0, 100]", p)
		}
		o.Percentiles = append(o.Percentiles, v)
	}
	if len(f.goodput) > 0 {
		g := &bench.Goodput{}
		for _, s := range f.goodput {
			k, v, ok := strings.Cut(s, ":")
			ms, err := strconv.ParseFloat(v, 64)
			if !ok || err != nil || ms < 0 {
				return o, usagef("--goodput %q: want NAME:MILLISECONDS, e.g. ttft:500", s)
			}
			d := time.Duration(ms * float64(time.Millisecond))
			switch k {
			case "ttft":
				g.TTFT = d
			case "tpot":
				g.TPOT = d
			case "e2el":
				g.E2EL = d
			default:
				return o, usagef("--goodput %q: the SLO names are ttft, tpot and e2el (as vLLM's)", s)
			}
		}
		o.Goodput = g
	}
	return o, nil
}

func formulasText() string {
	keys := make([]string, 0, len(bench.Formulas))
	for k := range bench.Formulas {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s\n", bench.Formulas[k])
	}
	return b.String()
}

func newBench(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Serving benchmarks with vLLM's metric definitions: runs, sweeps, comparisons and charts",
		Long: `Serving benchmarks with vLLM's definitions (vllm bench serve), against any
OpenAI-compatible server or Ollama's native API; several targets side by side.

Metrics:
` + formulasText(),
		Args: argsBetween(0, 0, "a subcommand: run, sweep or compare"),
	}
	cmd.AddCommand(newBenchRun(e), newBenchSweep(e), newBenchCompare(e))
	return cmd
}

func newBenchRun(e *env) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "run --target NAME=URL,model=M [--target …] [load and dataset flags]",
		Short: "One run per target: console summary, JSON with vLLM's keys (--out)",
		Example: `  citadel bench run --target vllm=http://127.0.0.1:8000,model=qwen --request-rate 8 --num-prompts 200
  citadel bench run --target gw=http://127.0.0.1:8080,model=qwen --target direct=http://127.0.0.1:8000,model=qwen --max-concurrency 16`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			targets, err := parseTargets(f.targets)
			if err != nil {
				return err
			}
			do, err := f.datasetOptions(f.numPrompts + f.warmups)
			if err != nil {
				return err
			}
			reqs, err := bench.Load(do)
			if err != nil {
				return usageError{err}
			}
			started := time.Now()
			var results []*bench.Result
			for _, t := range targets {
				mo, err := f.metricOptions(t)
				if err != nil {
					return err
				}
				c := bench.NewClient(t, max(f.maxConcurrency, 64))
				outs, dur, lag := bench.Run(cmd.Context(), c, reqs, bench.LoadOptions{Rate: f.rate, Burstiness: f.burstiness,
					MaxConcurrency: f.maxConcurrency, Warmups: f.warmups, NumRequests: f.numPrompts, Seed: f.seed})
				r := bench.Compute(outs, dur, mo)
				r.SendLagP99Ms = float64(lag) / 1e6
				bench.Console(e.stdout, r)
				results = append(results, r)
			}
			if len(results) == 2 {
				_, _ = e.stdout.Write(bench.CompareMarkdown(results[0].Label, results[1].Label, bench.Compare(results[0], results[1])))
			}
			if f.out == "" {
				return nil
			}
			// One point per target: X is the load the run was given.
			var series []bench.Series
			for _, r := range results {
				s := bench.Series{Label: r.Label, X: "concurrency", Points: []bench.Point{{X: float64(r.MaxConcurrency), R: r}}}
				if r.MaxConcurrency == 0 {
					s.X, s.Points[0].X = "request rate (req/s)", r.RequestRate
				}
				series = append(series, s)
			}
			return writeOutput(e, bench.Files{Dir: f.out, Kind: "run", Series: series, Formulas: bench.Formulas, Now: started})
		},
	}
	f.register(cmd)
	return cmd
}

// writeOutput writes a run's or sweep's report, charts and JSON, and names them on stderr.
func writeOutput(e *env, o bench.Files) error {
	w, err := o.Write()
	if err != nil {
		return fmt.Errorf("writing the results to %s: %w (check the directory is writable, or give another --out)", o.Dir, err)
	}
	fmt.Fprintf(e.stderr, "report in %s (%d files)\n", w.Report, len(w.Files))
	return nil
}

func newBenchSweep(e *env) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "sweep --target NAME=URL,model=M [--target …] (--concurrency 1,2,4,… | --rates N)",
		Short: "Sweep concurrency levels or request rates per target; a Markdown report with SVG charts (--out)",
		Example: `  citadel bench sweep --target vllm=http://127.0.0.1:8000,model=qwen --target ollama=http://127.0.0.1:11434,model=qwen2.5:7b,api=ollama \
      --concurrency 1,2,4,8,16 --num-prompts 64 --out /tmp/sweep`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			targets, err := parseTargets(f.targets)
			if err != nil {
				return err
			}
			var levels []int
			if f.concurrency != "" {
				for _, s := range strings.Split(f.concurrency, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(s))
					if err != nil || n < 1 {
						return usagef("--concurrency %q: want levels such as 1,2,4,8", f.concurrency)
					}
					levels = append(levels, n)
				}
			}
			if len(levels) == 0 && f.rates < 2 {
				return usagef("give --concurrency LEVELS or --rates N (N ≥ 2: synchronous, throughput and N−2 constant rates)")
			}
			started := time.Now()
			var series []bench.Series
			for _, t := range targets {
				mo, err := f.metricOptions(t)
				if err != nil {
					return err
				}
				reqs := func(n int) []bench.Request {
					do, _ := f.datasetOptions(n)
					rs, err := bench.Load(do)
					if err != nil {
						return nil
					}
					return rs
				}
				c := bench.NewClient(t, 256)
				lo := bench.LoadOptions{Rate: f.rate, Burstiness: f.burstiness, Warmups: f.warmups, NumRequests: f.numPrompts, Seed: f.seed}
				var pts []bench.SweepPoint
				s := bench.Series{Label: t.Name}
				if len(levels) > 0 {
					s.X = "concurrency"
					pts, err = bench.SweepConcurrency(cmd.Context(), c, reqs, levels, func(int) int { return f.numPrompts }, lo)
				} else {
					s.X = "request rate (req/s)"
					pts, err = bench.SweepRates(cmd.Context(), c, reqs, f.rates, lo)
				}
				if err != nil {
					return err
				}
				for _, p := range pts {
					po := mo
					po.RequestRate, po.MaxConcurrency = p.Rate, p.Concurrency
					r := bench.Compute(p.Outs, p.Duration, po)
					r.SendLagP99Ms = float64(p.SendLagP99) / 1e6
					x := float64(p.Concurrency)
					if len(levels) == 0 {
						x = p.Rate
					}
					s.Points = append(s.Points, bench.Point{X: x, R: r})
					fmt.Fprintf(e.stdout, "%s %s=%g: %.1f req/s, %.1f output tok/s, mean TTFT %.1f ms, failed %d\n",
						t.Name, s.X, x, r.RequestThroughput, r.OutputThroughput, r.Metrics["mean_ttft_ms"], r.Failed)
				}
				series = append(series, s)
			}
			if f.out == "" {
				return nil
			}
			return writeOutput(e, bench.Files{Dir: f.out, Kind: "sweep", Series: series, Formulas: bench.Formulas, Now: started})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.concurrency, "concurrency", "", "concurrency levels to sweep, e.g. 1,2,4,8,16,32,64")
	cmd.Flags().IntVar(&f.rates, "rates", 0, "rate sweep points (guidellm: synchronous, throughput, then constant rates between)")
	return cmd
}

func newBenchCompare(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Compare two results (citadel's or vllm bench serve's): ratios and a verdict per metric",
		Args:  argsBetween(2, 2, "A.json B.json"),
		RunE: func(_ *cobra.Command, args []string) error {
			var rs [2]*bench.Result
			for i, p := range args {
				b, err := os.ReadFile(p)
				if err != nil {
					return usageError{err}
				}
				r, err := bench.ParseResult(b)
				if err != nil {
					return usagef("%s: not a benchmark result: %v", p, err)
				}
				rs[i] = r
			}
			_, err := e.stdout.Write(bench.CompareMarkdown(filepath.Base(args[0]), filepath.Base(args[1]), bench.Compare(rs[0], rs[1])))
			return err
		},
	}
}
