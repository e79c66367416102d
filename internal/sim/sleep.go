package sim

// Releasing GPU memory without stopping the process: vLLM's sleep mode (--enable-sleep-mode,
// with the development endpoints of VLLM_SERVER_DEV_MODE=1) and SGLang's memory saver
// (/release_memory_occupation, /resume_memory_occupation). Timings come from
// perfmodel.SleepTime and perfmodel.WakeTime, scaled by the time scale.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// contextBytes is what a sleeping engine keeps on each GPU: the CUDA context and the model's
// small buffers (vLLM's docs: sleep frees "up to 90%+ of GPU memory").
const contextBytes = 512 << 20

// Pause holds every request submitted from now on until Resume, as vLLM's paused scheduler
// does; requests already running are left alone.
func (e *Engine) Pause() {
	e.gateMu.Lock()
	defer e.gateMu.Unlock()
	if e.paused == nil {
		e.paused = make(chan struct{})
	}
}

// Resume lets the held requests and every later one through.
func (e *Engine) Resume() {
	e.gateMu.Lock()
	defer e.gateMu.Unlock()
	if e.paused != nil {
		close(e.paused)
		e.paused = nil
	}
}

// waitAwake blocks a submission while the engine is paused.
func (e *Engine) waitAwake(ctx context.Context) error {
	e.gateMu.Lock()
	ch := e.paused
	e.gateMu.Unlock()
	if ch == nil {
		return nil
	}
	e.metrics.hold(1)
	defer e.metrics.hold(-1)
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.done:
		return ErrStopped
	}
}

// AbortAll aborts every live request (their streams fail with ErrAborted) and waits for it.
func (e *Engine) AbortAll(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case e.ops <- op{abortAll: done}:
	case <-ctx.Done():
		return ctx.Err()
	case <-e.done:
		return nil
	}
	select {
	case <-done:
	case <-e.done:
	}
	return nil
}

// waitIdle waits until no request runs or waits in the scheduler, polling its gauges.
func (e *Engine) waitIdle(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		e.metrics.mu.Lock()
		busy := e.metrics.running + e.metrics.waiting
		e.metrics.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return nil
		}
	}
}

// sleeper is one engine's memory state: awake, or asleep at a level with its weights and KV
// cache released.
type sleeper struct {
	scale   float64
	weights int64 // per GPU
	budget  int64 // per GPU while awake: what the engine allocated at start-up
	gpus    int
	enabled bool // memory is really released (vLLM --enable-sleep-mode, SGLang --enable-memory-saver)

	mu            sync.Mutex
	level         int  // 0 awake; 1 weights in host memory; 2 weights discarded
	weightsAsleep bool // weight memory released
	kvAsleep      bool // KV cache memory released
	stale         bool // level-2 weights reallocated but not reloaded (vLLM: reload_weights)
	paused        bool // scheduling paused (vLLM /sleep, any level, until /wake_up)
	transitions   int  // sleeps and wakes in progress
}

func newSleeper(plan perfmodel.Plan, scale float64, enabled bool) *sleeper {
	tp := max(plan.Options.TP, 1)
	return &sleeper{scale: scale, weights: plan.WeightBytes, budget: plan.BudgetBytes, gpus: tp, enabled: enabled}
}

// memoryLocked is the GPU memory held on all GPUs and the host memory holding offloaded weights.
func (z *sleeper) memoryLocked() (gpu, host int64) {
	per := z.budget
	if z.enabled {
		kv := max(z.budget-z.weights, 0)
		if z.weightsAsleep {
			per -= z.weights
		}
		if z.kvAsleep {
			per -= kv
		}
		per = max(per, contextBytes)
		if z.weightsAsleep && z.level == 1 {
			host = z.weights * int64(z.gpus)
		}
	}
	return per * int64(z.gpus), host
}

// sleeping reports what vLLM's is_sleeping does: true until every released tag is back, and
// while scheduling is paused.
func (z *sleeper) sleeping() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.weightsAsleep || z.kvAsleep || z.paused
}

// awake reports whether every released tag is back.
func (z *sleeper) awake() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return !z.weightsAsleep && !z.kvAsleep
}

func (z *sleeper) setPaused(p bool) {
	z.mu.Lock()
	z.paused = p
	z.mu.Unlock()
}

// wait sleeps d of simulated time in wall time, or until ctx ends.
func (z *sleeper) wait(ctx context.Context, d time.Duration) error {
	w := time.Duration(z.scale * float64(d))
	if w <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(w)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleep releases weights (level 1 to host memory, level 2 discarded) and the KV cache. The
// caller has paused the engine.
func (z *sleeper) sleep(ctx context.Context, level int) error {
	z.mu.Lock()
	if z.weightsAsleep && z.kvAsleep {
		z.mu.Unlock()
		return nil // sleeping an already sleeping tag is a no-op
	}
	z.transitions++
	z.mu.Unlock()
	err := z.wait(ctx, perfmodel.SleepTime(level, z.weights))
	z.mu.Lock()
	defer z.mu.Unlock()
	z.transitions--
	if err != nil {
		return err
	}
	z.level, z.weightsAsleep, z.kvAsleep, z.stale = level, true, true, false
	return nil
}

// wake restores the tags given (nil: all). Level-1 weights are copied back from host memory;
// level-2 weights are only reallocated when vLLM is imitated (reloadOnWake false: the
// contents come with reload_weights), read from disk otherwise (SGLang).
func (z *sleeper) wake(ctx context.Context, tags []string, reloadOnWake bool) error {
	all := len(tags) == 0
	z.mu.Lock()
	level := z.level
	weights := z.weightsAsleep && (all || slices.Contains(tags, "weights"))
	kv := z.kvAsleep && (all || slices.Contains(tags, "kv_cache"))
	z.transitions++
	z.mu.Unlock()
	var d time.Duration
	switch {
	case weights && level == 2 && !reloadOnWake:
		d = perfmodel.WakeTime(1, 0) // reallocation only
	case weights:
		d = perfmodel.WakeTime(level, z.weights)
	case kv:
		d = perfmodel.WakeTime(1, 0)
	}
	err := z.wait(ctx, d)
	z.mu.Lock()
	defer z.mu.Unlock()
	z.transitions--
	if err != nil {
		return err
	}
	if weights {
		z.weightsAsleep = false
		z.stale = level == 2 && !reloadOnWake
	}
	if kv {
		z.kvAsleep = false
	}
	if !z.weightsAsleep && !z.kvAsleep {
		z.level = 0
	}
	return nil
}

// reload reads level-2 weights from disk into their reallocated memory (vLLM's
// collective_rpc reload_weights).
func (z *sleeper) reload(ctx context.Context) error {
	if err := z.wait(ctx, perfmodel.WakeTime(2, z.weights)-perfmodel.WakeTime(1, 0)); err != nil {
		return err
	}
	z.mu.Lock()
	z.stale = false
	z.mu.Unlock()
	return nil
}

// state is the sleeper as GET /sim/state reports it.
func (z *sleeper) state() simState {
	z.mu.Lock()
	defer z.mu.Unlock()
	gpu, host := z.memoryLocked()
	st := simState{State: "awake", Level: z.level, GPUMemoryBytes: gpu, HostMemoryBytes: host, WeightsStale: z.stale, MemoryRelease: z.enabled}
	switch {
	case z.transitions > 0:
		st.State = "transitioning"
	case z.weightsAsleep || z.kvAsleep:
		st.State = "sleeping"
	}
	return st
}

// simState is GET /sim/state: the simulator's own view of the engine's memory, which the real
// engines show only through nvidia-smi and the host's free memory.
type simState struct {
	State           string `json:"state"` // awake, sleeping or transitioning
	Level           int    `json:"level"`
	GPUMemoryBytes  int64  `json:"gpu_memory_bytes"`  // on all GPUs
	HostMemoryBytes int64  `json:"host_memory_bytes"` // offloaded weights
	WeightsStale    bool   `json:"weights_stale"`     // woken from level 2 without reload_weights
	MemoryRelease   bool   `json:"memory_release"`    // sleep really frees memory
}

func (s *OpenAI) serveSimState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.sleep.state())
}

// sleepMetrics are the series appended to /metrics: vLLM's vllm:engine_sleep_state (with
// sleep mode on), and the simulator's own memory gauges.
func (s *OpenAI) sleepMetrics() string {
	st := s.sleep.state()
	p := newPromWriter(label{"model_name", s.cfg.ServedModelNames[0]}, label{"engine", "0"})
	if s.d == vllmDialect && s.cfg.EnableSleepMode {
		// vllm/v1/metrics/loggers.py: one series per sleep_state, 1 for the current one.
		p.header("vllm:engine_sleep_state", "gauge", "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.")
		for i, name := range []string{"awake", "weights_offloaded", "discard_all"} {
			v := 0.0
			if i == st.Level {
				v = 1
			}
			p.sample("vllm:engine_sleep_state", v, label{"sleep_state", name})
		}
	}
	p.gauge("citadel_sim_gpu_memory_bytes", "GPU memory the simulated engine holds on all its GPUs (not an engine metric).", float64(st.GPUMemoryBytes))
	p.gauge("citadel_sim_host_memory_bytes", "Host memory holding offloaded weights (not an engine metric).", float64(st.HostMemoryBytes))
	return p.b.String()
}

// vLLM's development endpoints (VLLM_SERVER_DEV_MODE=1): vllm/entrypoints/serve/sleep/api_router.py
// (earlier in entrypoints/openai/api_server.py, same handlers). /sleep and /wake_up answer
// 200 with an empty body once done; /is_sleeping answers {"is_sleeping": bool}.
func (s *OpenAI) vllmSleepRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /sleep", s.vllmSleep)
	mux.HandleFunc("POST /wake_up", s.vllmWake)
	mux.HandleFunc("GET /is_sleeping", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"is_sleeping": s.sleep.sleeping()})
	})
	mux.HandleFunc("POST /collective_rpc", s.vllmCollectiveRPC)
	mux.HandleFunc("POST /reset_prefix_cache", func(w http.ResponseWriter, _ *http.Request) {
		s.prefix.reset()
		w.WriteHeader(http.StatusOK)
	})
}

// errSleepDisabled is vLLM's refusal without --enable-sleep-mode: the engine's assertion
// "Sleep mode is not enabled in the model config" (vllm/engine/llm_engine.py), an internal error.
var errSleepDisabled = &apiError{status: http.StatusInternalServerError, message: "Sleep mode is not enabled in the model config"}

func (s *OpenAI) vllmSleep(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.EnableSleepMode {
		s.writeError(w, errSleepDisabled)
		return
	}
	q := r.URL.Query()
	level := 1
	if v := q.Get("level"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &level); err != nil || level < 0 || level > 2 {
			s.writeError(w, badRequest("level %q: want 0, 1 or 2", v))
			return
		}
	}
	mode := q.Get("mode")
	if mode == "" {
		mode = "abort"
	}
	if mode != "abort" && mode != "wait" && mode != "keep" {
		s.writeError(w, badRequest("mode %q: want abort, wait or keep", mode))
		return
	}
	ctx := r.Context()
	s.engine.Pause()
	s.sleep.setPaused(true)
	switch mode {
	case "abort":
		_ = s.engine.AbortAll(ctx)
	case "wait":
		if err := s.engine.waitIdle(ctx); err != nil {
			return
		}
	}
	if level > 0 {
		if err := s.sleep.sleep(ctx, level); err != nil {
			return
		}
		s.prefix.reset() // the KV cache's contents are gone
	}
	s.cfg.Logger.Info("engine asleep", "level", level, "mode", mode)
	w.WriteHeader(http.StatusOK)
}

func (s *OpenAI) vllmWake(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.EnableSleepMode {
		s.writeError(w, errSleepDisabled)
		return
	}
	tags := r.URL.Query()["tags"]
	for _, t := range tags {
		if t != "weights" && t != "kv_cache" {
			s.writeError(w, badRequest("tags %q: want weights or kv_cache", t))
			return
		}
	}
	if err := s.sleep.wake(r.Context(), tags, false); err != nil {
		return
	}
	if s.sleep.awake() {
		s.sleep.setPaused(false)
		s.engine.Resume()
	}
	w.WriteHeader(http.StatusOK)
}

// vllmCollectiveRPC runs the one method a wake from level 2 needs, reload_weights; others are
// accepted and do nothing.
func (s *OpenAI) vllmCollectiveRPC(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Method string `json:"method"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if req.Method == "reload_weights" {
		if err := s.sleep.reload(r.Context()); err != nil {
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string][]any{"results": {nil}})
}

// SGLang's memory saver: python/sglang/srt/entrypoints/http_server.py, GET or POST with a
// ReleaseMemoryOccupationReqInput / ResumeMemoryOccupationReqInput body ({"tags": [...]},
// tags weights, kv_cache, cuda_graph; none: all). The handlers return nothing, so FastAPI
// answers 200 with the body null; a failure is 400 {"error":{"message":…}}. Without
// --enable-memory-saver the release succeeds and frees nothing (torch_memory_saver's no-op
// adapter).
func (s *OpenAI) sglangMemoryRoutes(mux *http.ServeMux) {
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /release_memory_occupation", s.sglangRelease)
		mux.HandleFunc(m+" /resume_memory_occupation", s.sglangResume)
	}
}

// sglangTags reads the request's body as SGLang's dataclass does: a JSON object is required
// (FastAPI answers 422 without one), tags is optional.
func (s *OpenAI) sglangTags(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	b, _ := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	var req struct {
		Tags []string `json:"tags"`
	}
	if len(b) == 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []map[string]any{{"type": "missing", "loc": []string{"body"}, "msg": "Field required", "input": nil}}})
		return nil, false
	}
	if err := json.Unmarshal(b, &req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []map[string]any{{"type": "json_invalid", "loc": []any{"body", 0}, "msg": "JSON decode error", "input": map[string]any{}}}})
		return nil, false
	}
	for _, t := range req.Tags {
		if t != "weights" && t != "kv_cache" && t != "cuda_graph" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"message": fmt.Sprintf("unknown memory tag %q: want weights, kv_cache or cuda_graph", t)}})
			return nil, false
		}
	}
	return req.Tags, true
}

func (s *OpenAI) sglangRelease(w http.ResponseWriter, r *http.Request) {
	tags, ok := s.sglangTags(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	// The scheduler releases memory only when idle: running requests finish first.
	s.engine.Pause()
	if err := s.engine.waitIdle(ctx); err != nil {
		return
	}
	level := 2 // SGLang discards the weights and reads them again on resume
	if len(tags) > 0 && !slices.Contains(tags, "weights") {
		s.sleep.mu.Lock()
		s.sleep.kvAsleep = s.sleep.kvAsleep || slices.Contains(tags, "kv_cache")
		s.sleep.mu.Unlock()
	} else if err := s.sleep.sleep(ctx, level); err != nil {
		return
	}
	s.prefix.reset()
	writeJSON(w, http.StatusOK, nil)
}

func (s *OpenAI) sglangResume(w http.ResponseWriter, r *http.Request) {
	tags, ok := s.sglangTags(w, r)
	if !ok {
		return
	}
	if err := s.sleep.wake(r.Context(), tags, true); err != nil {
		return
	}
	if s.sleep.awake() {
		s.engine.Resume()
	}
	writeJSON(w, http.StatusOK, nil)
}
