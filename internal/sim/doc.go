// Package sim is `citadel sim`: an inference-engine simulator that speaks a real engine's HTTP
// API while the timing comes from the pure performance model in internal/perfmodel. The OpenAI
// type serves the OpenAI-compatible API in one of three dialects (Config.Engine): vLLM, SGLang
// (its /generate, /health_generate, /get_model_info, /get_server_info, sglang: metrics, flat
// errors, its own response and stream shapes, any model name accepted) and llama.cpp's
// llama-server (-np slots on the Ollama scheduler, a 503 "Loading model" phase, /completion,
// /props, /slots, llamacpp: metrics). The Ollama type is Ollama's own API, with its
// OpenAI-compatible /v1 on the same engine.
//
// # Dialects
//
// A dialect is a value, not a branch: a dialect struct (dialect.go) holds what an engine does
// differently (its launch defaults, scheduler mode, extra routes, API-key gate, error JSON,
// model-name rule, /v1/models, context-length refusal, whole and streamed response shapes,
// metric names, log lines), and one row per engine lives beside that engine's own endpoints
// (vllm.go, sglang.go, llamacpp.go). The shared server reads requests (request.go), drives the
// engine and decides what each response carries and when (respond.go); the row only words it.
// A fourth engine is a new file with its row, added to the dialects table. Launch and
// PlanOptions (launch.go) are the engines' start-up knowledge `citadel sim` asks for, so the
// command keeps only flags.
//
// # Concurrency
//
// One goroutine, Engine.Run, owns the perfmodel.Scheduler. HTTP handlers submit requests over a
// channel and read their output from a per-request stream: a count of tokens produced per
// choice, guarded by a mutex, plus a notification channel of capacity 1. The driver never
// blocks on a slow client (it only bumps counters and does a non-blocking send), and a handler
// whose client goes away sends an abort that frees the request's KV blocks (perfmodel's Abort).
//
// Simulated time maps to wall time × TimeScale: the driver runs one Step, waits until
// base + TimeScale × step end, then publishes the step's events; base is re-anchored whenever
// the engine becomes busy after idling. TimeScale 0 runs steps back to back. There is one
// timer for the whole engine, never a sleep per token, so one process holds thousands of streams.
//
// # Text
//
// Tokenizer (approximate, deterministic): every whitespace-separated word costs
// ceil(len(word)/4) tokens, at least one. A chat prompt adds the Qwen/ChatML template's
// framing: 4 tokens per message and 3 for the assistant header. Output is pseudo-text, one
// word per token, drawn from a fixed 256-word vocabulary by a hash of (seed, request content,
// choice, index), so identical requests give identical text at any time scale. Without
// ignore_eos the "model" ends on its own after a length drawn from the same hash (finish_reason
// "stop"); with ignore_eos it always generates max_tokens (finish_reason "length"). A stop
// string ends the text before it (it is not included), and the engine is asked for only the
// tokens up to that point. /tokenize returns a vocabulary word's index as its ID, and a hash
// above the vocabulary for other text; /detokenize maps IDs back to vocabulary words.
//
// Images (vision models only): each image_url part costs vision tokens as Qwen2.5-VL counts
// them, one per 28×28 patch of the image, read from a PNG, GIF or JPEG data URL's header
// (1,024 when the size cannot be read, e.g. an https URL, which the simulator never fetches).
//
// # Sleep
//
// sleep.go is how engines give GPU memory back without exiting: vLLM's sleep mode (/sleep,
// /wake_up, /is_sleeping, /collective_rpc reload_weights; with Config.DevMode and
// Config.EnableSleepMode) and SGLang's /release_memory_occupation and /resume_memory_occupation.
// While asleep the Engine is paused: Submit holds new requests until Resume. Transitions take
// perfmodel.SleepTime and perfmodel.WakeTime × TimeScale; GET /sim/state reports the memory.
//
// # Metrics
//
// /metrics writes vLLM's Prometheus names by hand in the text exposition format. Latency
// histograms record simulated time (equal to wall time at TimeScale 1), so a run at TimeScale 0
// still reports what the GPU would have done. VLLMVersion selects names that changed: before
// 0.9 the KV gauge is vllm:gpu_cache_usage_perc, in 0.9.x both gauges are exported, from 0.10
// only vllm:kv_cache_usage_perc; before 0.11 the per-token histogram is
// vllm:time_per_output_token_seconds, from 0.11 vllm:inter_token_latency_seconds. Errors use the
// nested {"error":{…}} JSON from 0.10.1 and the flat {"object":"error",…} JSON before.
package sim
