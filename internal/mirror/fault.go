package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultKind names an injected failure.
type FaultKind string

// Fault kinds.
const (
	// FaultStall sends Bytes bytes of the body, then nothing, keeping the
	// connection open until the client goes away.
	FaultStall FaultKind = "stall"
	// FaultThrottle sends the body at Rate bytes per second.
	FaultThrottle FaultKind = "throttle"
	// FaultStatus answers with status code Status and a JSON error.
	FaultStatus FaultKind = "status"
	// FaultRateLimit answers 429 with Retry-After: RetryAfter.
	FaultRateLimit FaultKind = "ratelimit"
	// FaultCorrupt flips (XOR 0xff) the body byte at Offset.
	FaultCorrupt FaultKind = "corrupt"
	// FaultDrop sends Bytes bytes of the body, then closes the connection.
	FaultDrop FaultKind = "drop"
	// FaultWrongLength advertises a Content-Length Extra (default 1) bytes
	// larger than the body it sends, then closes the connection.
	FaultWrongLength FaultKind = "wronglength"
	// FaultIgnoreRange answers a ranged GET with 200 and the whole body, as
	// some mirrors and proxies do.
	FaultIgnoreRange FaultKind = "ignorerange"
)

// Request classes a fault applies to (Fault.On).
const (
	// OnDownload (the default) is every request that sends file bytes:
	// resolve GET of a small file, the LFS host, the Ollama blob host.
	OnDownload = "download"
	// OnAPI is every other request about a repo: model info, tree,
	// paths-info, resolve HEAD and the LFS redirect, Ollama manifests and the
	// blob HEAD and redirect.
	OnAPI = "api"
	// OnAll is both.
	OnAll = "all"
)

// Fault is an injected failure, for testing clients. Which requests it hits:
// those of its class (On) about a file matching Files; they are numbered
// 1, 2, … per fault, and request n is hit when After < n ≤ After+Count
// (Count 0: no upper bound) and, if Probability > 0, when a pseudo-random
// draw seeded by (Seed, n) falls below Probability. Decisions therefore
// depend only on a request's number, never on timing.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Files is a path.Match glob on the file's path in the repo (for Ollama:
	// the digest, "sha256:<hex>"); a glob without "/" matches the base name.
	// Empty matches every request, including ones not about a file.
	Files string `json:"files,omitempty"`
	// On is OnDownload (default), OnAPI or OnAll.
	On          string  `json:"on,omitempty"`
	After       int     `json:"after,omitempty"`
	Count       int     `json:"count,omitempty"`
	Probability float64 `json:"probability,omitempty"`
	Seed        int64   `json:"seed,omitempty"`

	Bytes      int64 `json:"bytes,omitempty"`      // stall, drop: body bytes sent first
	Rate       int64 `json:"rate,omitempty"`       // throttle: bytes per second
	Status     int   `json:"status,omitempty"`     // status: HTTP status code
	RetryAfter int   `json:"retryAfter,omitempty"` // ratelimit: seconds (default 1)
	Offset     int64 `json:"offset,omitempty"`     // corrupt: offset in the response body
	Extra      int64 `json:"extra,omitempty"`      // wronglength: excess advertised bytes (default 1)
}

// Validate reports what is wrong with f, if anything.
func (f Fault) Validate() error {
	var errs []error
	switch f.Kind {
	case FaultStall, FaultDrop:
		if f.Bytes < 0 {
			errs = append(errs, fmt.Errorf("bytes: %d is negative", f.Bytes))
		}
	case FaultThrottle:
		if f.Rate <= 0 {
			errs = append(errs, fmt.Errorf("rate: must be positive bytes per second, got %d", f.Rate))
		}
	case FaultStatus:
		if f.Status < 400 || f.Status > 599 {
			errs = append(errs, fmt.Errorf("status: %d is not an HTTP error status (400-599)", f.Status))
		}
	case FaultRateLimit:
		if f.RetryAfter < 0 {
			errs = append(errs, fmt.Errorf("retryAfter: %d is negative", f.RetryAfter))
		}
	case FaultCorrupt:
		if f.Offset < 0 {
			errs = append(errs, fmt.Errorf("offset: %d is negative", f.Offset))
		}
	case FaultWrongLength:
		if f.Extra < 0 {
			errs = append(errs, fmt.Errorf("extra: %d is negative", f.Extra))
		}
	case FaultIgnoreRange:
	default:
		errs = append(errs, fmt.Errorf("kind: %q is not one of stall, throttle, status, ratelimit, corrupt, drop, wronglength, ignorerange", f.Kind))
	}
	switch f.On {
	case "", OnDownload, OnAPI, OnAll:
	default:
		errs = append(errs, fmt.Errorf("on: %q is not %q, %q or %q", f.On, OnDownload, OnAPI, OnAll))
	}
	if _, err := path.Match(f.Files, ""); err != nil {
		errs = append(errs, fmt.Errorf("files: bad glob %q", f.Files))
	}
	if f.After < 0 || f.Count < 0 {
		errs = append(errs, errors.New("after, count: must not be negative"))
	}
	if f.Probability < 0 || f.Probability > 1 {
		errs = append(errs, fmt.Errorf("probability: %v is not in [0, 1]", f.Probability))
	}
	return errors.Join(errs...)
}

func (f Fault) matches(class, file string) bool {
	on := f.On
	if on == "" {
		on = OnDownload
	}
	if on != OnAll && on != class {
		return false
	}
	if f.Files == "" {
		return true
	}
	if file == "" {
		return false
	}
	name := file
	if !strings.Contains(f.Files, "/") {
		name = path.Base(file)
	}
	ok, _ := path.Match(f.Files, name)
	return ok
}

// hits decides request number n (1-based).
func (f Fault) hits(n int64) bool {
	if n <= int64(f.After) || (f.Count > 0 && n > int64(f.After)+int64(f.Count)) {
		return false
	}
	if f.Probability == 0 {
		return true
	}
	return draw(f.Seed, n) < f.Probability
}

// draw is a deterministic pseudo-random number in [0, 1) (splitmix64).
func draw(seed, n int64) float64 {
	z := uint64(seed) + uint64(n)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// faultTable holds the programmatic faults and every fault's request count.
type faultTable struct {
	mu       sync.Mutex
	set      map[string][]Fault
	gen      map[string]int
	counters map[string]int64
}

func newFaultTable() *faultTable {
	return &faultTable{set: map[string][]Fault{}, gen: map[string]int{}, counters: map[string]int64{}}
}

// SetFaults replaces the programmatic faults of repo ("org/name" for a Hugging
// Face repo, "ollama:<namespace>/<model>" for an Ollama model) and resets
// their request counts; no faults clears them. Faults from .mirror.json apply
// in addition. It panics if a fault is invalid (check with Fault.Validate).
func (s *Server) SetFaults(repo string, faults ...Fault) {
	for i, f := range faults {
		if err := f.Validate(); err != nil {
			panic(fmt.Sprintf("mirror: SetFaults(%q): fault %d: %v", repo, i, err))
		}
	}
	t := s.faults
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen[repo]++
	if len(faults) == 0 {
		delete(t.set, repo)
		return
	}
	t.set[repo] = append([]Fault(nil), faults...)
}

// pick numbers this request for every fault of repo that matches it and
// returns those that hit it. fromFile are the repo's .mirror.json faults.
func (t *faultTable) pick(repo, class, file string, fromFile []Fault) []Fault {
	t.mu.Lock()
	defer t.mu.Unlock()
	var hit []Fault
	count := func(key string, f Fault) {
		if !f.matches(class, file) {
			return
		}
		t.counters[key]++
		if f.hits(t.counters[key]) {
			hit = append(hit, f)
		}
	}
	for i, f := range fromFile {
		b, _ := json.Marshal(f)
		count(fmt.Sprintf("file\x00%s\x00%d\x00%s", repo, i, b), f)
	}
	gen := t.gen[repo]
	for i, f := range t.set[repo] {
		count(fmt.Sprintf("set\x00%s\x00%d\x00%d", repo, gen, i), f)
	}
	return hit
}

// faultsFor decides the faults of one request. When one of them answers the
// request itself (status, ratelimit) it does so and returns ok false;
// otherwise it returns the writer the handler must use, and a finish
// function the handler must call (deferred) once it has written the body.
func (s *Server) faultsFor(w http.ResponseWriter, r *http.Request, repo, class, file string, fromFile []Fault) (_ http.ResponseWriter, finish func(), ok bool) {
	hit := s.faults.pick(repo, class, file, fromFile)
	if len(hit) == 0 {
		return w, func() {}, true
	}
	fw := &faultWriter{ResponseWriter: w, ctx: r.Context(), corruptAt: -1, stallAt: -1, dropAt: -1}
	for _, f := range hit {
		switch f.Kind {
		case FaultStatus:
			s.log.Debug("mirror fault", "kind", f.Kind, "repo", repo, "file", file, "status", f.Status)
			writeJSON(w, f.Status, map[string]string{"error": fmt.Sprintf("injected fault: status %d", f.Status)})
			return nil, nil, false
		case FaultRateLimit:
			after := f.RetryAfter
			if after == 0 {
				after = 1
			}
			h := w.Header()
			h.Set("Retry-After", strconv.Itoa(after))
			h.Set("RateLimit", fmt.Sprintf(`"api";r=0;t=%d`, after))
			h.Set("RateLimit-Policy", `"fixed window";"api";q=500;w=300`)
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "injected fault: rate limited, retry later"})
			return nil, nil, false
		case FaultStall:
			fw.stallAt = minPos(fw.stallAt, f.Bytes)
		case FaultDrop:
			fw.dropAt = minPos(fw.dropAt, f.Bytes)
		case FaultThrottle:
			if fw.rate == 0 || f.Rate < fw.rate {
				fw.rate = f.Rate
			}
		case FaultCorrupt:
			fw.corruptAt = f.Offset
		case FaultIgnoreRange:
			r.Header.Del("Range")
			r.Header.Del("If-Range")
		case FaultWrongLength:
			fw.extra = f.Extra
			if fw.extra == 0 {
				fw.extra = 1
			}
		}
	}
	return fw, fw.finish, true
}

func minPos(cur, v int64) int64 {
	if cur < 0 || v < cur {
		return v
	}
	return cur
}

// faultWriter applies body faults as the handler writes.
type faultWriter struct {
	http.ResponseWriter
	ctx context.Context

	n           int64 // body bytes written
	wroteHeader bool
	stallAt     int64 // -1: none
	dropAt      int64 // -1: none
	corruptAt   int64 // -1: none
	rate        int64 // 0: unthrottled
	extra       int64 // wronglength
	start       time.Time
}

func (fw *faultWriter) Unwrap() http.ResponseWriter { return fw.ResponseWriter }

func (fw *faultWriter) WriteHeader(code int) {
	if fw.wroteHeader {
		return
	}
	fw.wroteHeader = true
	if fw.extra > 0 && code < 300 {
		if cl, err := strconv.ParseInt(fw.Header().Get("Content-Length"), 10, 64); err == nil {
			fw.Header().Set("Content-Length", strconv.FormatInt(cl+fw.extra, 10))
		}
	}
	fw.ResponseWriter.WriteHeader(code)
}

func (fw *faultWriter) Flush() {
	_ = http.NewResponseController(fw.ResponseWriter).Flush()
}

func (fw *faultWriter) Write(p []byte) (int, error) {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	written := 0
	for len(p) > 0 {
		chunk := p
		limit := int64(-1)
		for _, at := range []int64{fw.stallAt, fw.dropAt} {
			if at >= 0 && (limit < 0 || at < limit) {
				limit = at
			}
		}
		if limit >= 0 && fw.n+int64(len(chunk)) > limit {
			chunk = chunk[:limit-fw.n]
		}
		if fw.rate > 0 {
			step := max(fw.rate/20, 1)
			if int64(len(chunk)) > step {
				chunk = chunk[:step]
			}
		}
		if len(chunk) == 0 {
			fw.Flush()
			if fw.dropAt >= 0 && fw.n >= fw.dropAt {
				panic(http.ErrAbortHandler) // closes the connection
			}
			<-fw.ctx.Done() // stall until the client (or the server) gives up
			return written, fw.ctx.Err()
		}
		if fw.corruptAt >= fw.n && fw.corruptAt < fw.n+int64(len(chunk)) {
			c := append([]byte(nil), chunk...)
			c[fw.corruptAt-fw.n] ^= 0xff
			chunk = c
		}
		if err := fw.pace(int64(len(chunk))); err != nil {
			return written, err
		}
		m, err := fw.ResponseWriter.Write(chunk)
		written += m
		fw.n += int64(m)
		if err != nil {
			return written, err
		}
		if fw.rate > 0 {
			fw.Flush()
		}
		p = p[len(chunk):]
	}
	return written, nil
}

// pace waits until sending the next k bytes keeps the rate.
func (fw *faultWriter) pace(k int64) error {
	if fw.rate <= 0 {
		return nil
	}
	if fw.start.IsZero() {
		fw.start = time.Now()
	}
	due := fw.start.Add(time.Duration(float64(fw.n+k) / float64(fw.rate) * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-fw.ctx.Done():
		return fw.ctx.Err()
	}
}

// finish closes the connection after a short body (wronglength).
func (fw *faultWriter) finish() {
	if fw.extra > 0 && fw.wroteHeader {
		fw.Flush()
		panic(http.ErrAbortHandler)
	}
}
