package sim

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Faults are failures injected for tests of whatever sits in front of the engine (gateway,
// supervisor, clients). The zero value injects nothing. Only inference requests count and
// fail: POST /v1/chat/completions, /v1/completions, /v1/embeddings (and, for other
// personalities, any path Counted reports true for); health, metrics and model listing never do,
// except during StartupDelay.
type Faults struct {
	// FailRate is the fraction of inference requests answered with a 500 error, chosen by a
	// hash of (Seed, request number) so a run with the same seed fails the same requests.
	FailRate float64
	Seed     int64
	// HangAfter > 0: from request HangAfter+1 on, the request is accepted and never answered
	// (no status, no bytes) until the client goes away or the server stops, as a wedged
	// engine behaves; a stream stalls before its first byte.
	HangAfter int
	// CrashAfter > 0: when request CrashAfter+1 arrives the process exits with status 1, cutting
	// every open connection, as a crashed engine does. Exit defaults to os.Exit.
	CrashAfter int
	Exit       func(code int)
	// StartupDelay > 0: until this long after the server is built, health checks (Health)
	// answer 503 with an empty body and every other path 503 with the engine's error JSON.
	// (Real vLLM binds its port only once the engine is ready, so clients see connection
	// refused instead; citadel sim --bind-after-startup imitates that by delaying the listen.)
	StartupDelay time.Duration
	// Counted reports whether a request is an inference request; default isInference.
	Counted func(*http.Request) bool
	// Health reports whether a request is a health check; default isHealth (/health, /ping).
	Health func(*http.Request) bool
	// Now is the clock of StartupDelay; default time.Now.
	Now func() time.Time
}

// Validate reports settings out of range.
func (f Faults) Validate() error {
	switch {
	case f.FailRate < 0 || f.FailRate > 1:
		return fmt.Errorf("fail rate %g: must be between 0 and 1", f.FailRate)
	case f.HangAfter < 0:
		return fmt.Errorf("hang after %d: must be 0 (never) or more", f.HangAfter)
	case f.CrashAfter < 0:
		return fmt.Errorf("crash after %d: must be 0 (never) or more", f.CrashAfter)
	case f.StartupDelay < 0:
		return fmt.Errorf("startup delay %s: must be 0 or more", f.StartupDelay)
	}
	return nil
}

// FailFunc writes an engine's error response with status and message.
type FailFunc func(w http.ResponseWriter, status int, message string)

// faulty is the fault-injecting handler in front of a personality.
type faulty struct {
	f       Faults
	next    http.Handler
	fail    FailFunc
	readyAt time.Time

	mu sync.Mutex
	n  int // inference requests seen
}

// WithFaults wraps next with f's faults; fail writes the personality's error JSON. A zero f
// returns next unchanged.
func WithFaults(f Faults, next http.Handler, fail FailFunc) http.Handler {
	if f.FailRate == 0 && f.HangAfter == 0 && f.CrashAfter == 0 && f.StartupDelay == 0 {
		return next
	}
	if f.Exit == nil {
		f.Exit = os.Exit
	}
	if f.Counted == nil {
		f.Counted = isInference
	}
	if f.Health == nil {
		f.Health = isHealth
	}
	if f.Now == nil {
		f.Now = time.Now
	}
	return &faulty{f: f, next: next, fail: fail, readyAt: f.Now().Add(f.StartupDelay)}
}

func isInference(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings":
		return true
	}
	return false
}

// isHealth is vLLM's health checks: /health and /ping, any method.
func isHealth(r *http.Request) bool { return r.URL.Path == "/health" || r.URL.Path == "/ping" }

func (h *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.f.StartupDelay > 0 && h.f.Now().Before(h.readyAt) {
		if h.f.Health(r) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.fail(w, http.StatusServiceUnavailable, "The engine is still loading the model; retry when /health answers 200.")
		return
	}
	if !h.f.Counted(r) {
		h.next.ServeHTTP(w, r)
		return
	}
	h.mu.Lock()
	h.n++
	n := h.n
	h.mu.Unlock()
	if h.f.CrashAfter > 0 && n > h.f.CrashAfter {
		h.f.Exit(1)
		// An injected Exit that returns: behave as the dead process would look to this
		// client, a dropped connection.
		panic(http.ErrAbortHandler)
	}
	if h.f.HangAfter > 0 && n > h.f.HangAfter {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		<-r.Context().Done()
		return
	}
	if h.f.FailRate > 0 && failDraw(h.f.Seed, n) < h.f.FailRate {
		h.fail(w, http.StatusInternalServerError, fmt.Sprintf("Injected failure (citadel sim --fail-rate %g): request %d failed.", h.f.FailRate, n))
		return
	}
	h.next.ServeHTTP(w, r)
}

// failDraw is a uniform number in [0, 1) for request n of a run with seed.
func failDraw(seed int64, n int) float64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(seed))
	binary.LittleEndian.PutUint64(b[8:], uint64(n))
	h.Write(b[:])
	return float64(generator{key: h.Sum64()}.at(0)>>11) / (1 << 53)
}
