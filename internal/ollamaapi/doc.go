// Package ollamaapi is Ollama's HTTP API as the gateway speaks it, in pure functions:
//
//   - request.go: Parse reads an /api/chat, /api/generate or /api/embed body into a Request,
//     with Ollama's defaults and Ollama's error wording (an *Error).
//   - upstream.go: Request.ToOpenAI builds the body for an OpenAI-compatible upstream (vLLM,
//     SGLang, llama.cpp), Request.Passthrough the one for an Ollama upstream (model renamed).
//   - response.go: FromOpenAI turns a whole OpenAI answer into Ollama's JSON.
//   - stream.go: StreamFromOpenAI turns an OpenAI SSE stream into Ollama's NDJSON.
//   - local.go: the answers that need no upstream: Tags, Ps, Show, Version and
//     Request.LocalResponse (Ollama's load and unload requests).
//   - names.go: Name and StripLatest, the ":latest" rule.
//
// No I/O beyond the reader and writer handed in: the gateway's Ollama front
// (internal/gateway/front_ollama.go) owns the HTTP, the routing and the retries.
//
// Wire shapes follow ollama/ollama api/types.go and server/routes.go: stream defaults to
// true, images are base64 strings (decoded by the JSON binding, so bad base64 is a 400),
// durations are integer nanoseconds, and errors are {"error": "…"}.
//
// # Deliberate differences from Ollama's bytes
//
// Ollama's api.Metrics omit zero fields; so does the simulated Ollama (internal/sim), whose
// job is to match Ollama byte for byte. A translated answer is not Ollama's: its final object
// always carries all six metrics (DenseMetrics), zeros included — load_duration is always 0,
// since an OpenAI upstream reports no load, and a count the upstream did not give is an
// estimate rather than absent. Metrics is Ollama's own shape, for a writer that must match it.
//
// Details (a model's "details") are the same in both. The listings differ: Tags and Ps write
// every field of their entries, zeros included (the gateway knows no size or context length
// for most models it lists), where the simulator writes one entry type for both endpoints and
// leaves out what the other endpoint has.
package ollamaapi
