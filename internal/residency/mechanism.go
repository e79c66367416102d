package residency

// Each engine's cheapest way to release and take back its GPU memory, talking to the engine
// as its upstream server answers (docs/design/0006-residency.md, "Each engine's cheapest
// mechanism"; the simulator implements the same endpoints).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// A Mechanism loads and evicts one service's model.
type Mechanism interface {
	// Load makes the engine hold its model on its GPUs and returns how it did it (the
	// metrics' mechanism label: "wake", "resume", "load", "start").
	Load(ctx context.Context) (how string, err error)
	// Evict releases the engine's GPU memory and returns the state it leaves the service in
	// (StateSleeping or StateUnloaded). The manager calls it only with no request in flight.
	Evict(ctx context.Context) (state string, err error)
}

// An Observer is a Mechanism that can tell whether the engine holds its model now: the
// manager checks it from time to time, so that an engine that evicted the model on its own
// (Ollama's scheduler) or came back awake (a restarted vLLM) is seen as it is.
type Observer interface {
	Resident(ctx context.Context) (bool, error)
}

// Mechanism names, as the metrics label them.
const (
	HowWake   = "vllm-wake"
	HowResume = "sglang-resume"
	HowOllama = "ollama-load"
	HowStart  = "process-start"
)

// VLLM is vLLM's sleep mode (--enable-sleep-mode with VLLM_SERVER_DEV_MODE=1):
// POST /sleep?level=N&mode=wait, POST /wake_up, GET /is_sleeping; after level 2,
// POST /collective_rpc {"method":"reload_weights"} and POST /reset_prefix_cache
// (vllm/entrypoints/serve/sleep/api_router.py, docs/features/sleep_mode.md).
type VLLM struct {
	BaseURL string // http://host:port
	Level   int    // 1 (weights to host memory) or 2 (weights discarded)
	Client  *http.Client
	slept   int // the level of the last sleep, 0 when awake
}

// Load wakes the engine, reloading the weights after a level-2 sleep.
func (v *VLLM) Load(ctx context.Context) (string, error) {
	if err := post(ctx, v.Client, v.BaseURL+"/wake_up", nil, nil); err != nil {
		return HowWake, err
	}
	if v.slept == 2 {
		// Level 2 reallocates the weights without their contents: reload them, and drop the
		// prefix cache computed with the old ones.
		if err := post(ctx, v.Client, v.BaseURL+"/collective_rpc", map[string]string{"method": "reload_weights"}, nil); err != nil {
			return HowWake, err
		}
		if err := post(ctx, v.Client, v.BaseURL+"/reset_prefix_cache", nil, nil); err != nil {
			return HowWake, err
		}
	}
	asleep, err := v.Sleeping(ctx)
	if err != nil {
		return HowWake, err
	}
	if asleep {
		return HowWake, fmt.Errorf("%s/is_sleeping still says true after /wake_up", v.BaseURL)
	}
	v.slept = 0
	return HowWake, nil
}

// Evict puts the engine to sleep once its running requests finish (mode=wait: the default,
// abort, would cut them).
func (v *VLLM) Evict(ctx context.Context) (string, error) {
	level := max(v.Level, 1)
	if err := post(ctx, v.Client, fmt.Sprintf("%s/sleep?level=%d&mode=wait", v.BaseURL, level), nil, nil); err != nil {
		return "", err
	}
	asleep, err := v.Sleeping(ctx)
	if err != nil {
		return "", err
	}
	if !asleep {
		return "", fmt.Errorf("%s/is_sleeping says false after /sleep?level=%d", v.BaseURL, level)
	}
	v.slept = level
	if level == 2 {
		return StateUnloaded, nil
	}
	return StateSleeping, nil
}

// Resident is the opposite of /is_sleeping.
func (v *VLLM) Resident(ctx context.Context) (bool, error) {
	asleep, err := v.Sleeping(ctx)
	return !asleep, err
}

// Sleeping is GET /is_sleeping.
func (v *VLLM) Sleeping(ctx context.Context) (bool, error) {
	var r struct {
		IsSleeping *bool `json:"is_sleeping"`
	}
	if err := get(ctx, v.Client, v.BaseURL+"/is_sleeping", &r); err != nil {
		return false, err
	}
	if r.IsSleeping == nil {
		return false, fmt.Errorf("%s/is_sleeping: no is_sleeping in the answer", v.BaseURL)
	}
	return *r.IsSleeping, nil
}

// SGLang is SGLang's memory saver (--enable-memory-saver): POST /release_memory_occupation {}
// and POST /resume_memory_occupation {} (python/sglang/srt/entrypoints/http_server.py). Older
// servers answer 200 null, newer ones {"success": bool, "message": …}; both are accepted.
type SGLang struct {
	BaseURL string
	Client  *http.Client
}

// Load resumes the released memory (SGLang reads the weights again).
func (g *SGLang) Load(ctx context.Context) (string, error) {
	return HowResume, g.call(ctx, "/resume_memory_occupation")
}

// Evict releases the memory; the server waits for its running requests first.
func (g *SGLang) Evict(ctx context.Context) (string, error) {
	if err := g.call(ctx, "/release_memory_occupation"); err != nil {
		return "", err
	}
	return StateSleeping, nil
}

func (g *SGLang) call(ctx context.Context, path string) error {
	var r *struct {
		Success *bool  `json:"success"`
		Message string `json:"message"`
	}
	if err := post(ctx, g.Client, g.BaseURL+path, struct{}{}, &r); err != nil {
		return err
	}
	if r != nil && r.Success != nil && !*r.Success {
		return fmt.Errorf("POST %s%s: the server says it failed: %s", g.BaseURL, path, r.Message)
	}
	return nil
}

// Ollama loads and unloads one model of a shared ollama serve: POST /api/generate with only
// the model loads it (kept until unloaded: keep_alive -1), with keep_alive 0 unloads it;
// /api/ps is the truth of what is loaded (server/routes.go).
type Ollama struct {
	BaseURL string
	Model   string // the name Ollama knows it by (qwen2.5:7b)
	Client  *http.Client
}

// Load loads the model.
func (o *Ollama) Load(ctx context.Context) (string, error) {
	if err := post(ctx, o.Client, o.BaseURL+"/api/generate", map[string]any{"model": o.Model, "keep_alive": -1, "stream": false}, nil); err != nil {
		return HowOllama, err
	}
	ok, err := o.Loaded(ctx)
	if err == nil && !ok {
		err = fmt.Errorf("%s/api/ps does not list %s after loading it", o.BaseURL, o.Model)
	}
	return HowOllama, err
}

// Evict unloads the model.
func (o *Ollama) Evict(ctx context.Context) (string, error) {
	if err := post(ctx, o.Client, o.BaseURL+"/api/generate", map[string]any{"model": o.Model, "keep_alive": 0, "stream": false}, nil); err != nil {
		return "", err
	}
	ok, err := o.Loaded(ctx)
	if err == nil && ok {
		err = fmt.Errorf("%s/api/ps still lists %s after unloading it", o.BaseURL, o.Model)
	}
	return StateUnloaded, err
}

// Resident is Loaded.
func (o *Ollama) Resident(ctx context.Context) (bool, error) { return o.Loaded(ctx) }

// Loaded says whether /api/ps lists the model.
func (o *Ollama) Loaded(ctx context.Context) (bool, error) {
	var ps struct {
		Models []struct {
			Name  string `json:"name"`
			Model string `json:"model"`
		} `json:"models"`
	}
	if err := get(ctx, o.Client, o.BaseURL+"/api/ps", &ps); err != nil {
		return false, err
	}
	want := o.Model
	if !strings.Contains(want, ":") {
		want += ":latest"
	}
	return slices.ContainsFunc(ps.Models, func(m struct {
		Name  string `json:"name"`
		Model string `json:"model"`
	}) bool {
		return m.Name == want || m.Model == want || m.Name == o.Model
	}), nil
}

// Process is the fallback for every engine (and llama.cpp's mechanism): stop the process to
// evict, start it again to load. Start returns once the engine is ready.
type Process struct {
	Start func(context.Context) error
	Stop  func(context.Context) error
}

// Load starts the engine.
func (p *Process) Load(ctx context.Context) (string, error) { return HowStart, p.Start(ctx) }

// Evict stops it.
func (p *Process) Evict(ctx context.Context) (string, error) {
	return StateUnloaded, p.Stop(ctx)
}

// Started is an engine whose process runs only once first loaded: the first load (and any
// after the process ended) starts it, cold; later ones use Inner (a wake).
type Started struct {
	Process
	Running func() bool
	Inner   Mechanism
}

// Load starts the process if it does not run, else loads through Inner.
func (s *Started) Load(ctx context.Context) (string, error) {
	if !s.Running() {
		return s.Process.Load(ctx)
	}
	return s.Inner.Load(ctx)
}

// Evict evicts through Inner.
func (s *Started) Evict(ctx context.Context) (string, error) { return s.Inner.Evict(ctx) }

func post(ctx context.Context, c *http.Client, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(c, req, out)
}

func get(ctx context.Context, c *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return do(c, req, out)
}

func do(c *http.Client, req *http.Request, out any) error {
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL, err)
		}
	}
	return nil
}
