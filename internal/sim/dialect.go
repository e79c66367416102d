package sim

import (
	"io"
	"net"
	"net/http"

	"citadel.dev/citadel/internal/perfmodel"
)

// A dialect is one engine's OpenAI-compatible server: everything the OpenAI type does
// differently for vLLM, SGLang and llama.cpp. The request parsing, the engine driver and the
// responders are shared; a dialect only words and routes. Each row lives beside its engine's
// own endpoints (vllm.go, sglang.go, llamacpp.go), so a fourth engine is one more file with
// one more row in dialects.
type dialect struct {
	// name is Config.Engine's value for this dialect.
	name string
	// launch is how the engine starts and lays out its model (ports, context defaults, a
	// loading phase); `citadel sim` reads it through LaunchOf.
	launch Launch
	// mode is the scheduler: continuous batching (vLLM, SGLang) or fixed slots (llama.cpp -np).
	mode perfmodel.Mode
	// prefixCache: the engine reuses cached prompt prefixes across requests unless
	// Config.NoPrefixCache turns it off.
	prefixCache bool

	// routes adds the engine's own endpoints to the OpenAI ones every dialect serves.
	routes func(*OpenAI, *http.ServeMux)
	// gate runs before routing (the API-key check, and a loading phase's 503); it reports
	// whether it answered the request itself.
	gate func(*OpenAI, http.ResponseWriter, *http.Request) bool
	// errorBody is the JSON body of an error.
	errorBody func(*OpenAI, *apiError) any
	// model resolves a request's "model": the name the response echoes, or a 404.
	model func(*OpenAI, string) (string, error)
	// models answers GET /v1/models.
	models func(*OpenAI, http.ResponseWriter, *http.Request)
	// contextError refuses input prompt tokens plus maxTokens (0: not given) that do not fit
	// the context, in the engine's words; nil when they fit. chat is a chat request.
	contextError func(s *OpenAI, input, maxTokens int, chat bool) *apiError
	// chatError words a chat request's validation error (vLLM 0.9–0.11 append " None").
	chatError func(*OpenAI, string) string

	// whole writes a non-streamed chat or completion response.
	whole func(*whole)
	// stream words a streamed one.
	stream streamDialect
	// metrics are /metrics' names and histogram buckets.
	metrics metricsDialect

	// loadLog and servingLog print what the engine logs while it loads and once it listens.
	loadLog    func(*OpenAI, io.Writer)
	servingLog func(*OpenAI, io.Writer, net.Addr)
}

// dialects are the rows, by Config.Engine.
var dialects = map[string]*dialect{
	EngineVLLM:     vllmDialect,
	EngineSGLang:   sglangDialect,
	EngineLlamaCPP: llamacppDialect,
}

// streamDialect is how a dialect words a streamed chat or completion response: the sse
// responder decides what to send when (a chat choice's role first, each token's text, usage
// last when asked for) and the dialect writes each chunk's JSON.
type streamDialect struct {
	// chunk is the chunk that carries one part of a choice.
	chunk func(*sse, streamPart) any
	// chatFinishApart: a chat choice's finish reason comes in a chunk of its own, with an
	// empty delta, after every choice's last token (SGLang), rather than on its last token
	// (vLLM). Completions carry it on the last token in both.
	chatFinishApart bool
	// usage is the last chunk before [DONE] when the request asks for usage.
	usage func(*sse) any
}

// streamPart is one chunk's content before a dialect words it.
type streamPart struct {
	choice   int
	role     bool    // a chat choice's first chunk: role "assistant", empty content
	index    int     // the token the text belongs to (0: a tool call's first, with its name)
	text     *string // the token's text; nil in role and finish-only chunks
	finish   bool    // the chunk carries the choice's finish reason
	logprobs any     // the token's log probabilities; nil when not asked for
}

// metricsDialect are the names /metrics writes and the bounds of its latency histograms.
type metricsDialect struct {
	write          func(*metrics) string
	ttft, itl, e2e []float64
}

// plainChatError leaves a chat request's validation error as it is.
func plainChatError(_ *OpenAI, m string) string { return m }
