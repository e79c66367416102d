// Package bench is `citadel bench`: serving benchmarks with vLLM's metric definitions
// (vllm bench serve), load shapes, sweeps, side-by-side targets, comparisons and charts.
//
// Files: types.go (shared types), metrics.go (per-request outputs → aggregate results with
// vLLM's definitions and JSON keys), load.go (arrivals, concurrency, warmups, sweeps),
// client.go (OpenAI chat/completions/embeddings and Ollama native request functions, one
// monotonic clock), dataset.go (random, ShareGPT, JSONL, random vision, prefix repetition),
// report.go (console, Markdown, SVG charts, compare).
package bench

import "time"

// Request is one benchmark request, from a dataset.
type Request struct {
	Prompt       string   // text prompt (chat: the user message)
	PromptLen    int      // tokens, as the dataset counts them (usage.prompt_tokens overrides)
	OutputLen    int      // max_tokens; with IgnoreEOS the engine generates exactly this many
	Images       []string // data URLs (random vision)
	MultiModal   bool
	ExpectedText string // ShareGPT's reply, for reference
}

// Output is what the client measured for one request (vLLM's RequestFuncOutput).
type Output struct {
	Success   bool
	Error     string
	PromptLen int // usage.prompt_tokens when present, else Request.PromptLen
	OutputLen int // usage.completion_tokens when present, else the counted chunks (documented fallback)
	// Start is when the request was sent, relative to the run's start (one monotonic clock).
	Start time.Duration
	// TTFT: first chunk with non-empty choices (Ollama: first line with content), minus Start.
	TTFT time.Duration
	// ITL: gaps between later content-bearing chunks.
	ITL []time.Duration
	// Latency (E2EL): the last token-bearing chunk minus Start (a trailing usage chunk does not extend it).
	Latency time.Duration
	// QueueTime: time waiting for a --max-concurrency slot before Start.
	QueueTime     time.Duration
	GeneratedText string
	UsageFromAPI  bool // OutputLen came from usage
}

// Target is one endpoint under test.
type Target struct {
	Name    string // label in reports, e.g. "vllm" or "ollama"
	BaseURL string // http://127.0.0.1:8000
	Model   string
	// API: "openai-chat" (default), "openai" (completions), "openai-embeddings", "ollama" (native /api/chat).
	API     string
	APIKey  string
	Headers map[string]string
}

// Percentiles default to vLLM's: 99.
var DefaultPercentiles = []float64{99}

// Goodput is an SLO set (--goodput ttft:MS tpot:MS e2el:MS); zero fields are not checked.
type Goodput struct {
	TTFT, TPOT, E2EL time.Duration
}

// Result is one run against one target, in vLLM's `--save-result` shape: the JSON keys are
// vllm bench serve's (duration, completed, request_throughput, mean_ttft_ms, p99_itl_ms, …).
// Latency statistics are in milliseconds. Metrics holds every mean_/median_/std_/pNN_<metric>_ms
// key (metric one of ttft, tpot, itl, e2el) so that the chosen percentiles appear as vLLM names
// them; MarshalJSON flattens it into the top level.
type Result struct {
	Label                string             `json:"label"`                  // target name
	Model                string             `json:"model_id"`               // as vLLM's result
	Backend              string             `json:"backend"`                // openai-chat, openai, ollama, …
	RequestRate          float64            `json:"request_rate"`           // configured; +Inf is written as "inf"
	Burstiness           float64            `json:"burstiness"`             //
	MaxConcurrency       int                `json:"max_concurrency"`        // 0: none
	Duration             float64            `json:"duration"`               // seconds, after warmups, until every request finished
	Completed            int                `json:"completed"`              //
	Failed               int                `json:"failed"`                 //
	TotalInputTokens     int                `json:"total_input_tokens"`     //
	TotalOutputTokens    int                `json:"total_output_tokens"`    //
	RequestThroughput    float64            `json:"request_throughput"`     // completed / duration
	RequestGoodput       *float64           `json:"request_goodput"`        // null without --goodput
	OutputThroughput     float64            `json:"output_throughput"`      // Σ output / duration
	TotalTokenThroughput float64            `json:"total_token_throughput"` // Σ (input + output) / duration
	MaxOutputTokensPerS  float64            `json:"max_output_tokens_per_s"`
	MaxConcurrentReqs    int                `json:"max_concurrent_requests"`
	Metrics              map[string]float64 `json:"-"` // mean_ttft_ms, p99_itl_ms, …
	// Per-request arrays, as vLLM saves them (times in seconds).
	InputLens  []int       `json:"input_lens"`
	OutputLens []int       `json:"output_lens"`
	TTFTs      []float64   `json:"ttfts"`
	ITLs       [][]float64 `json:"itls"`
	Latencies  []float64   `json:"latencies"`
	StartTimes []float64   `json:"start_times"`
	QueueTimes []float64   `json:"queue_times"`
	Errors     []string    `json:"errors"`
	// Generator's own overhead: how late requests were sent against their schedule.
	SendLagP99Ms float64 `json:"citadel_send_lag_p99_ms"`
	// Formulas documents each metric's definition (printed in the report).
	Formulas map[string]string `json:"-"`
}
