package pull

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/netclass/netclasstest"

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
)

// Metadata faults (issue 13 item 3, 4 and 6): model info, tree, HEAD and manifests are retried like
// downloads; the waits are counted, not slept.

// warnings collects the progress warnings of a pull.
type warnings struct {
	mu sync.Mutex
	w  []string
}

func (w *warnings) progress(pr Progress) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pr.Warning != "" {
		w.w = append(w.w, pr.Phase+": "+pr.Warning)
	}
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.w...)
}

func TestPullRetriesMetadata(t *testing.T) {
	dir, _ := hubDir(t)
	sec := time.Second
	tests := []struct {
		name      string
		fault     mirror.Fault
		waits     []time.Duration
		inWarning string
	}{
		{"four 503s", mirror.Fault{Kind: mirror.FaultStatus, On: mirror.OnAPI, Status: 503, Count: 4},
			[]time.Duration{sec, 2 * sec, 4 * sec, 8 * sec}, "503 Service Unavailable"},
		{"two 429s with Retry-After: 3", mirror.Fault{Kind: mirror.FaultRateLimit, On: mirror.OnAPI, RetryAfter: 3, Count: 2},
			[]time.Duration{3 * sec, 3 * sec}, "retrying in 3s (Retry-After)"},
		{"HEAD of one file fails twice", mirror.Fault{Kind: mirror.FaultStatus, On: mirror.OnAPI, Files: "config.json", Status: 502, Count: 2},
			[]time.Duration{sec, 2 * sec}, "502 Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := startMirror(t, dir, nil)
			hs.m.SetFaults(testRepo, tt.fault)
			s := &netclasstest.Waits{}
			p, _ := newTestPuller(t, hs.url, func(o *Options) { o.StallTimeout = time.Minute; o.Sleep = s.Sleep })
			w := &warnings{}
			if _, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, w.progress); err != nil {
				t.Fatalf("pull failed: %v", err)
			}
			if diff := cmp.Diff(tt.waits, s.All()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			ws := w.all()
			if len(ws) != len(tt.waits) || !strings.HasPrefix(ws[0], PhaseResolving+": ") || !strings.Contains(ws[0], tt.inWarning) {
				t.Errorf("warnings %q, want %d in the Resolving phase saying %q", ws, len(tt.waits), tt.inWarning)
			}
		})
	}
}

// With the stall timeout as its budget, a pull names a metadata failure within it.
func TestPullMetadataRetriesStopAtStallTimeout(t *testing.T) {
	dir, _ := hubDir(t)
	hs := startMirror(t, dir, nil)
	hs.m.SetFaults(testRepo, mirror.Fault{Kind: mirror.FaultStatus, On: mirror.OnAPI, Status: 503})
	s := &netclasstest.Waits{}
	p, _ := newTestPuller(t, hs.url, func(o *Options) { o.StallTimeout = 5 * time.Second; o.Sleep = s.Sleep })
	_, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil)
	pe := wantReason(t, err, ReasonUpstreamError)
	if !pe.Retryable || !strings.Contains(pe.Message, "503") {
		t.Errorf("error %v, want a retryable 503", pe)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second}, s.All()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

// A 429 asking for longer than the pull waits in place ends it at once, saying when to come back.
func TestPullLongRetryAfter(t *testing.T) {
	dir, _ := hubDir(t)
	hs := startMirror(t, dir, nil)
	hs.m.SetFaults(testRepo, mirror.Fault{Kind: mirror.FaultRateLimit, On: mirror.OnAPI, RetryAfter: 120})
	s := &netclasstest.Waits{}
	p, _ := newTestPuller(t, hs.url, func(o *Options) { o.StallTimeout = time.Minute; o.Sleep = s.Sleep })
	_, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil)
	wantReason(t, err, ReasonRateLimited)
	if d, ok := RetryAfter(err); !ok || d != 2*time.Minute || len(s.All()) != 0 {
		t.Errorf("RetryAfter %v, %t; waits %v; want 2m at once", d, ok, s.All())
	}
}

// An API that accepts and never answers is named within the stall timeout + 10 s.
func TestPullAPINeverAnswers(t *testing.T) {
	dir, _ := hubDir(t)
	release := make(chan struct{})
	defer close(release)
	var n atomic.Int32
	hs := startMirror(t, dir, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/api/models/") {
				n.Add(1)
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	stall := time.Second
	p, _ := newTestPuller(t, hs.url, func(o *Options) { o.StallTimeout = stall })
	ctx, cancel := context.WithTimeout(t.Context(), stall+10*time.Second)
	defer cancel()
	_, err := p.Pull(ctx, Request{URI: "hf://" + testRepo}, nil)
	pe := wantReason(t, err, ReasonConnectionFailed)
	for _, s := range []string{"/api/models/" + testRepo, "sent no answer within 1s", "HF_ENDPOINT"} {
		if !strings.Contains(pe.Error(), s) {
			t.Errorf("message %q lacks %q", pe.Error(), s)
		}
	}
	if !pe.Retryable || n.Load() != 1 {
		t.Errorf("retryable %t after %d requests; want true after 1", pe.Retryable, n.Load())
	}
}

// dnsFlaky resolves host to 127.0.0.1 after failing its first fails lookups ("no such host").
func dnsFlaky(host string, fails int32) (*http.Client, *atomic.Int32) {
	var n atomic.Int32
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, port, _ := net.SplitHostPort(addr)
		if h == host {
			if n.Add(1) <= fails {
				return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
			}
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}}}, &n
}

// The LFS/CDN host not resolving is transient (the endpoint answered), and named.
func TestPullCDNHostDNSFailure(t *testing.T) {
	dir, _ := hubDir(t)
	_, url := mirrortest.Start(t, mirror.Options{Dir: dir, RedirectHost: "cdn-lfs.test"}, nil)

	hc, n := dnsFlaky("cdn-lfs.test", 2)
	p, _ := newTestPuller(t, url, func(o *Options) { o.HTTPClient = hc; o.StallTimeout = 5 * time.Second })
	if _, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil); err != nil {
		t.Fatalf("two failed lookups of the CDN host failed the pull: %v", err)
	}
	if n.Load() < 3 {
		t.Errorf("%d lookups of the CDN host, want at least 3", n.Load())
	}

	hc, _ = dnsFlaky("cdn-lfs.test", 1<<30)
	p, _ = newTestPuller(t, url, func(o *Options) { o.HTTPClient = hc; o.StallTimeout = 2 * time.Second })
	began := time.Now()
	_, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil)
	pe := wantReason(t, err, ReasonDNSFailure)
	if !pe.Retryable || pe.File != "model.safetensors" || !strings.Contains(pe.Error(), `download host "cdn-lfs.test"`) || strings.Contains(pe.Error(), "HF_ENDPOINT") {
		t.Errorf("error %v (retryable %t), want a retryable DNSFailure naming cdn-lfs.test, not HF_ENDPOINT", pe, pe.Retryable)
	}
	if took := time.Since(began); took > 2*time.Second+10*time.Second {
		t.Errorf("named after %s", took)
	}
}

// CheckFiles fails a model whose safetensors header no engine can load, as the agent and the CLI both
// report it.
func TestCheckFilesHostileHeader(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func([]byte) []byte{
		"length 2^40": func(b []byte) []byte { binary.LittleEndian.PutUint64(b, 1<<40); return b },
		"invalid JSON": func(b []byte) []byte {
			return append(binary.LittleEndian.AppendUint64(nil, 8), []byte("{not json")[:8]...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			must(t, os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama"}`), 0o644))
			good := append(binary.LittleEndian.AppendUint64(nil, 2), []byte("{}")...)
			must(t, os.WriteFile(filepath.Join(d, "model.safetensors"), mutate(good), 0o644))
			_, err := CheckFiles(&Result{Dir: d, Files: []string{"config.json", "model.safetensors"}})
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason != ReasonInvalidModelFiles || !strings.Contains(pe.Error(), "model.safetensors") {
				t.Errorf("CheckFiles = %v, want InvalidModelFiles naming model.safetensors", err)
			}
		})
	}
	d := t.TempDir()
	must(t, os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama"}`), 0o644))
	if _, err := CheckFiles(&Result{Dir: d}); err != nil {
		t.Errorf("a config-only model: %v", err)
	}
}
