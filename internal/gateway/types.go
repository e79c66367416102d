// Package gateway is Citadel's inference gateway: one OpenAI- and Ollama-compatible endpoint
// in front of every engine, routing by public model name and by task, balancing across
// replicas on engine load, failing over, enforcing keys and limits, and exporting metrics.
//
// Pieces (one file each): types.go (shared types), gateway.go (the server, its mux and
// options), source.go (where routes, services and keys come from: the store or another
// Source), route.go (the routing table and Resolve), build.go (building the table),
// classify.go (a virtual name's task: header, image, rules, the built-in classifier of
// internal/taskclass), explain.go (a decision spelled out), balance.go (replica selection,
// passive ejection), health.go (active probes), scrape.go (engine load metrics),
// front_openai.go (the OpenAI front: parsing, the model's rename), front_ollama.go (the
// Ollama front; the protocol itself is internal/ollamaapi), proxy.go (a call's start,
// forwarding with retries and failover, streaming, errors), upstream.go (the plain-HTTP/1.1
// engine client), keys.go (API keys and limits), status.go (Route status), metrics.go
// (Prometheus).
package gateway

import (
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/taskclass"
)

// Upstream APIs.
const (
	APIOpenAI = "openai"
	APIOllama = "ollama"
)

// Replica is one upstream engine instance. Its identity fields never change; its state does.
type Replica struct {
	ID      string // "namespace/service/replica", or the URL of a url target
	Service string // "namespace/name"; "" for a url target
	BaseURL string // http://host:port (no trailing slash)
	API     string // APIOpenAI or APIOllama
	Engine  string // vllm, sglang, llamacpp, ollama; "" when unknown (url targets)
	// Metrics is the Prometheus path and the series that give the engine's load ("" when the
	// engine exports none: its in-flight count is the load).
	MetricsPath, RunningMetric, WaitingMetric, KVMetric string

	State ReplicaState
}

// ReplicaState is a replica's live state, shared by the balancer, the health checker and
// the scraper. Fields are accessed atomically or under mu.
type ReplicaState struct {
	InFlight atomic.Int64 // requests this gateway has outstanding on the replica

	mu sync.Mutex
	// Load scraped from the engine's metrics, and when (zero: never; stale after 1 s).
	Running, Waiting float64
	KVUsage          float64
	ScrapedAt        time.Time
	// Health: ejected until EjectedUntil after failures; Failures counts consecutive ones.
	Healthy      bool // the last active probe (or the controller) said ready
	EjectedUntil time.Time
	Failures     int
	Ejections    int // how many times in a row it was ejected (backoff)
	LastError    string
}

// Target is a weighted group of replicas: one InferenceService, or one URL.
type Target struct {
	Name     string // "namespace/service" or the URL
	Weight   int    // share of new traffic; 0 takes none
	Model    string // the name the upstream knows the model by
	API      string // APIOpenAI or APIOllama
	Replicas []*Replica
	// Balancing policy (v1.BalanceRoundRobin, …; default least-outstanding) and the
	// session-affinity header.
	Policy        string
	SessionHeader string
	// MaxModelLen and Capabilities describe the model, for /v1/models.
	MaxModelLen  int
	Capabilities []string

	rr atomic.Uint64 // round-robin cursor
}

// Destination is where one public model's requests go: weighted targets, then an ordered
// fallback chain.
type Destination struct {
	Targets  []*Target
	Fallback []*Target
	Limits   *v1.Limits
	Retry    *v1.Retry
	Owner    string   // "route ns/name", for messages
	lim      *limiter // the public model's limiter (limits.go); nil without rate limits
}

// TaskEntry is one task rule of a virtual name, compiled.
type TaskEntry struct {
	Task            string
	Keywords        []string // lower-case
	Patterns        []*regexp.Regexp
	MinPromptTokens int // 0: no bound
	MaxPromptTokens int // 0: no bound
	Dest            *Destination
	Public          string // the public model the task goes to (the rule's model, or the virtual name)
	// Examples are the rule's example requests as classifier features (ExampleText as written).
	Examples    []taskclass.Features
	ExampleText []string
}

// Entry is one public model name (or alias) in the table.
type Entry struct {
	Public string       // the name (not the alias) as the route declares it
	Route  string       // "namespace/name" of the Route, or "" for a service's own name
	Dest   *Destination // nil for a virtual name
	Tasks  []TaskEntry  // a virtual name's rules, in order
	// A virtual name's classifier settings: the task it falls back to ("" general), the score
	// a task needs to win (nil: the default), whether any rule has examples.
	DefaultTask   string
	MinConfidence *float64
	hasExamples   bool
}

// RequestInfo is what routing and balancing need to know about a request.
type RequestInfo struct {
	Model        string
	Images       int             // image parts in the messages
	Text         string          // the prompt's text (bounded: the first and last 16 KiB)
	Class        taskclass.Input // what the task classifier reads: the ask, a tool result, context
	PromptTokens int             // estimated: 1 per 4 bytes of text, plus images
	TaskHeader   string          // x-citadel-task
	Session      string          // the session-affinity header's value
	PrefixHash   uint64          // hash of the prompt's first blocks, for prefix affinity
	Embedding    bool            // an embeddings request
}

// Decision is where routing sends a request, and why.
type Decision struct {
	Public string // the public model the request resolved to
	Task   string // the task class, for a virtual name
	How    string // what decided the task: header, embedding, image, rule, classifier, low-confidence
	Reason string // e.g. "image_url", "keyword \"def \"", "exact name"
	Dest   *Destination
}

// NotFoundError is a request for a model no route or service exposes.
type NotFoundError struct {
	Model     string
	Available []string
}

func (e *NotFoundError) Error() string {
	return "The model `" + e.Model + "` does not exist or you do not have access to it."
}
