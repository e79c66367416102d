package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"citadel.dev/citadel/internal/mirror"
)

// Faults of the data path (issue 13): a server that ignores Range, a slow
// link, a body cut short at the same byte every time.

// ignoreRange makes the mirror answer every GET as if Range were not
// there (200 with the whole file), as some mirrors and proxies do, and
// counts the ranged requests it saw.
func ignoreRange(ranged *atomic.Int64) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				ranged.Add(1)
				r.Header.Del("Range")
			}
			h.ServeHTTP(w, r)
		})
	}
}

func TestPullServerIgnoringRange(t *testing.T) {
	dir, weights := hubDir(t)
	var ranged atomic.Int64
	hs := startMirror(t, dir, ignoreRange(&ranged))
	// Small chunks: the weights would be split in 7 without the fault.
	p, _ := newTestPuller(t, hs.url, nil)
	var mu sync.Mutex
	var notices []Notice
	res, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, func(pr Progress) {
		mu.Lock()
		notices = append(notices, pr.Notices...)
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("pull from a server that ignores Range: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(res.Dir, "model.safetensors"))
	if err != nil || !bytes.Equal(got, weights) {
		t.Fatalf("model.safetensors differs (err %v)", err)
	}
	if cfg, err := os.ReadFile(filepath.Join(res.Dir, "config.json")); err != nil || !bytes.Contains(cfg, []byte("qwen2_5_vl")) {
		t.Fatalf("config.json: %q, %v", cfg, err)
	}
	// One ranged try per file, then one stream each: no split.
	if n := ranged.Load(); n > int64(len(res.Files)) {
		t.Errorf("%d ranged requests for %d files: the download kept splitting a file the server will not split", n, len(res.Files))
	}
	if res.Refetch > res.Bytes {
		t.Errorf("refetched %d bytes of %d", res.Refetch, res.Bytes)
	}
	// One notice per file, each reported once.
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	for _, n := range notices {
		if n.Reason != ReasonRangeIgnored || !strings.Contains(n.Message, "ignores Range") || !strings.Contains(n.Message, n.File) {
			t.Errorf("notice %+v does not name the file and the fault", n)
		}
		seen[n.File]++
	}
	for _, f := range res.Files {
		if seen[f] != 1 {
			t.Errorf("%s: %d notices, want 1 (all: %+v)", f, seen[f], notices)
		}
	}
}

// trickle sends rate bytes every second, in step with the (fake) clock,
// until its request is cancelled.
type trickle struct {
	ctx  context.Context
	data []byte
	rate int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	select {
	case <-time.After(time.Second):
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	}
	n := copy(p[:min(len(p), r.rate)], r.data)
	r.data = r.data[n:]
	return n, nil
}
func (r *trickle) Close() error { return nil }

// prodEngine is the engine with the production timeouts: 60 s stall
// timeout, 20 s per silent request.
func prodEngine() *engine {
	e := testEngine()
	e.chunkSize, e.stallTimeout, e.attemptIdle, e.maxAttempts = 32<<20, 60*time.Second, 20*time.Second, 12
	e.backoff = defaultBackoff
	return e
}

// A steady 2 KB/s link is slow, not stalled: the download completes
// however long it takes (here 128 s of a fake clock).
func TestSlowLinkIsNotStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, etag := blob(256000, 7)
		src := &source{data: data}
		src.fault = func(ctx context.Context, n int, start, end int64) io.ReadCloser {
			return &trickle{ctx: ctx, data: data[start : end+1], rate: 2000}
		}
		j := job(t.TempDir(), src, etag)
		if err := prodEngine().download(t.Context(), j); err != nil {
			t.Fatalf("a 2 KB/s link failed: %v", err)
		}
		if got, _ := os.ReadFile(j.dest); !bytes.Equal(got, data) {
			t.Fatal("file differs")
		}
		if src.n != 1 {
			t.Errorf("%d requests: a slow request was abandoned and retried", src.n)
		}
	})
}

// A source that sends a few bytes on every request and then goes silent
// stalls; the message says so without claiming that no bytes came.
func TestStallMessageNeverDeniesBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, etag := blob(256<<10, 8)
		src := &source{data: data}
		src.fault = func(ctx context.Context, n int, start, end int64) io.ReadCloser {
			return &blockingReader{head: data[start:min(start+1000, end+1)], ctx: ctx}
		}
		err := prodEngine().download(t.Context(), job(t.TempDir(), src, etag))
		pe := wantReason(t, err, ReasonDownloadStalled)
		if strings.Contains(pe.Message, "no bytes of") {
			t.Errorf("message claims no bytes arrived, but 1000 came on every request: %s", pe.Message)
		}
		if !strings.Contains(pe.Message, "received") {
			t.Errorf("message does not say how much arrived: %s", pe.Message)
		}
	})
}

// Below --min-throughput the pull goes on, with a warning that carries
// the measured rate.
func TestSlowDownloadWarnsAndCompletes(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "hf", "org", "slow")
	must(t, os.MkdirAll(repo, 0o755))
	must(t, os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"model_type":"llama"}`), 0o644))
	weights, _ := blob(48<<10, 9)
	must(t, os.WriteFile(filepath.Join(repo, "model.safetensors"), weights, 0o644))
	hs := startMirror(t, dir, nil)
	// 16 KB/s: a 64 KiB read buffer would take 4 s to fill, far beyond
	// the 0.67 s a silent request is given here.
	hs.m.SetFaults("org/slow", mirror.Fault{Kind: mirror.FaultThrottle, Files: "model.safetensors", Rate: 16 << 10})
	p, _ := newTestPuller(t, hs.url, func(o *Options) { o.MinThroughput = 1 << 30 })
	var mu sync.Mutex
	var warning string
	res, err := p.Pull(t.Context(), Request{URI: "hf://org/slow"}, func(pr Progress) {
		mu.Lock()
		defer mu.Unlock()
		if pr.Warning != "" {
			warning = pr.Warning
		}
	})
	if err != nil {
		t.Fatalf("a slow link failed: %v", err)
	}
	if res.Refetch != 0 {
		t.Errorf("refetched %d bytes: a slow request was abandoned", res.Refetch)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(warning, "below the minimum") || !strings.Contains(warning, "/s") {
		t.Errorf("warning %q does not give the measured rate against the minimum", warning)
	}
}

// A body that ends at the same byte on every attempt is TruncatedBody,
// named after a few attempts rather than at the stall timeout.
func TestTruncatedAtSameByte(t *testing.T) {
	for _, noRange := range []bool{false, true} {
		name := "ranged"
		if noRange {
			name = "one stream"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				data, etag := blob(200<<10, 10)
				const cut = 150000
				src := &source{data: data}
				src.fault = func(ctx context.Context, n int, start, end int64) io.ReadCloser {
					if end < 0 {
						end = int64(len(data)) - 1
					}
					return io.NopCloser(bytes.NewReader(data[start:max(start, min(end+1, cut))]))
				}
				j := job(t.TempDir(), src, etag)
				j.noRange.Store(noRange)
				e := prodEngine()
				e.chunkSize = 256 << 10 // one chunk: every retry starts at the cut
				began := time.Now()
				err := e.download(t.Context(), j)
				pe := wantReason(t, err, ReasonTruncatedBody)
				if want := "closed at byte 150000 of 204800, attempt "; !strings.Contains(pe.Message, want) {
					t.Errorf("message %q does not say %q", pe.Message, want)
				}
				if strings.Contains(pe.Message, "stopped sending") {
					t.Errorf("message blames a silent source: %s", pe.Message)
				}
				if took := time.Since(began); took >= e.stallTimeout {
					t.Errorf("named after %s, not before the stall timeout %s", took, e.stallTimeout)
				}
			})
		})
	}
}

// paced sends a body at a rate shared by every request of one limiter
// (a link at its capacity) or owned by one request (a per-connection cap).
type limiter struct {
	mu   sync.Mutex
	rate float64 // bytes per second
	next time.Time
}

func (l *limiter) wait(n int) {
	l.mu.Lock()
	at := time.Now()
	if l.next.After(at) {
		at = l.next
	}
	l.next = at.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	until := l.next
	l.mu.Unlock()
	time.Sleep(time.Until(until))
}

type paced struct {
	r *bytes.Reader
	l *limiter
}

func (p *paced) Read(b []byte) (int, error) {
	n, err := p.r.Read(b[:min(len(b), 16<<10)])
	if n > 0 {
		p.l.wait(n)
	}
	return n, err
}
func (p *paced) Close() error { return nil }

// Streams per file: one while one already runs at the source's speed or
// keeps the host's CPUs busy, more while more add throughput.
func TestStreamsFollowThroughput(t *testing.T) {
	data := bytes.Repeat([]byte("citadel!"), 4<<20) // 32 MiB
	etag := sha256hex(data)
	for _, tc := range []struct {
		name     string
		shared   bool
		busy     float64 // CPUs the process keeps busy (0: unknown)
		min, max int
	}{
		{"link at capacity with one stream", true, 0, 1, 2},
		{"capped per connection", false, 0, 6, 8},
		{"capped per connection, CPUs mostly idle", false, 0.2, 6, 8},
		// Another stream would add throughput, but no core is free for it.
		{"capped per connection, CPUs busy with one stream", false, 1.6, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				link := &limiter{rate: 8 << 20}
				var inflight, peak atomic.Int64
				src := &source{data: data}
				src.fault = func(ctx context.Context, n int, start, end int64) io.ReadCloser {
					l := link
					if !tc.shared {
						l = &limiter{rate: 2 << 20}
					}
					if v := inflight.Add(1); v > peak.Load() {
						peak.Store(v)
					}
					return &doneReader{ReadCloser: &paced{r: bytes.NewReader(data[start : end+1]), l: l}, done: func() { inflight.Add(-1) }}
				}
				e := prodEngine()
				e.chunkSize, e.chunkWorkers, e.conns = 1<<20, 8, make(chan struct{}, 16)
				if tc.busy > 0 {
					start := time.Now()
					e.cores = 2
					e.cpuUsed = func() (time.Duration, bool) {
						return time.Duration(tc.busy * float64(time.Since(start))), true
					}
				}
				j := job(t.TempDir(), src, etag)
				if err := e.download(t.Context(), j); err != nil {
					t.Fatal(err)
				}
				if p := int(peak.Load()); p < tc.min || p > tc.max {
					t.Errorf("%d streams at most, want %d to %d", p, tc.min, tc.max)
				}
			})
		})
	}
}

type doneReader struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (d *doneReader) Close() error {
	d.once.Do(d.done)
	return d.ReadCloser.Close()
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
