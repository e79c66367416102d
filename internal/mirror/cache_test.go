package mirror_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/pull"
)

const (
	cacheHFRepo  = "XiaomiMiMo/MiMo-VL-7B-RL"
	cacheOllama  = "ollama://qwen2.5:7b"
	cacheWeights = "model.safetensors"
)

// upstream is a directory mirror standing in for huggingface.co and registry.ollama.ai.
type upstream struct {
	m   *mirror.Server
	url string
	srv *http.Server
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	dir := t.TempDir()
	if _, err := mirror.Seed(dir, []string{"hf://" + cacheHFRepo, cacheOllama}); err != nil {
		t.Fatal(err)
	}
	gated := filepath.Join(dir, "hf", "org", "gated")
	if err := os.MkdirAll(gated, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(gated, "config.json"), []byte(`{"model_type":"llama"}`), 0o644)
	os.WriteFile(filepath.Join(gated, ".mirror.json"), []byte(`{"gated": "manual", "tokens": ["hf_allowed"]}`), 0o644)
	m, err := mirror.New(mirror.Options{Dir: dir, CacheFile: "-", Tokens: []mirror.Token{{User: "alice", Value: "hf_allowed"}, {User: "bob", Value: "hf_other"}}})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{m: m}
	u.url, u.srv = serveLoopback(t, m.Handler())
	t.Cleanup(func() { m.Close() })
	return u
}

func serveLoopback(t *testing.T, h http.Handler) (string, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), srv
}

// upstreamFetches counts the requests that sent file bytes, per file of the upstream directory.
func (u *upstream) fetches() map[string]int64 {
	out := map[string]int64{}
	for f, c := range u.m.Requests().Files {
		out[f] = c.Requests
	}
	return out
}

func startCache(t *testing.T, up *upstream, ttl time.Duration) (*mirror.Cache, string) {
	return startCacheWith(t, up, mirror.CacheOptions{APITTL: ttl})
}

func startCacheWith(t *testing.T, up *upstream, opts mirror.CacheOptions) (*mirror.Cache, string) {
	t.Helper()
	opts.Dir, opts.Upstream, opts.OllamaUpstream = t.TempDir(), up.url, up.url
	c, err := mirror.NewCache(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	url, _ := serveLoopback(t, c.Handler())
	return c, url
}

// mustPull pulls uri through the cache into fresh directories, as a new node would.
func mustPull(t *testing.T, cacheURL, uri, token string) *pull.Result {
	t.Helper()
	res := pullThrough(t, cacheURL, uri, token)
	if res == nil {
		t.FailNow()
	}
	return res
}

// pullThrough is mustPull for other goroutines than the test's: it reports a failure and returns nil.
func pullThrough(t *testing.T, cacheURL, uri, token string) *pull.Result {
	t.Helper()
	p := pull.New(pull.Options{
		HFEndpoint: cacheURL, HFCache: filepath.Join(t.TempDir(), "hub"), OllamaDir: filepath.Join(t.TempDir(), "ollama"),
		OllamaRegistry: strings.TrimPrefix(cacheURL, "http://"), OllamaInsecure: true, StallTimeout: 5 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.Pull(ctx, pull.Request{URI: uri, Token: token}, func(pull.Progress) {})
	if err != nil {
		t.Errorf("pull %s through the cache: %v", uri, err)
	}
	return res
}

func TestCachePullsEachFileOnce(t *testing.T) {
	up := startUpstream(t)
	_, url := startCache(t, up, time.Minute)
	for i := range 2 {
		for _, uri := range []string{"hf://" + cacheHFRepo, cacheOllama} {
			res := mustPull(t, url, uri, "")
			if len(res.Files) == 0 || res.Bytes == 0 {
				t.Fatalf("pull %d of %s: no files: %+v", i, uri, res)
			}
			checkSameBytes(t, up, res)
		}
	}
	got := up.fetches()
	if len(got) < 7 { // 6 HF files + Ollama blobs
		t.Fatalf("upstream served only %d files: %v", len(got), got)
	}
	for f, n := range got {
		if n != 1 {
			t.Errorf("upstream served %s %d times for two pulls through the cache, want 1", f, n)
		}
	}
}

// checkSameBytes compares every pulled file with the upstream directory's, by content hash.
func checkSameBytes(t *testing.T, up *upstream, res *pull.Result) {
	t.Helper()
	want := map[string]bool{}
	filepath.Walk(up.m.Dir(), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			want[sum(b)] = true
		}
		return nil
	})
	if res == nil {
		return
	}
	for _, f := range res.Files {
		b, err := os.ReadFile(filepath.Join(res.Dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if !want[sum(b)] {
			t.Errorf("pulled %s differs from every upstream file", f)
		}
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestCacheConcurrentPullsShareOneFetch(t *testing.T) {
	for _, mode := range []struct {
		name       string
		streamFrom int64
	}{{"wait", 0}, {"stream", 1}} {
		t.Run(mode.name, func(t *testing.T) {
			up := startUpstream(t)
			// Slow the files so the second pull asks while the first fetch runs.
			up.m.SetFaults(cacheHFRepo, mirror.Fault{Kind: mirror.FaultThrottle, Files: "*.safetensors", Rate: 300})
			up.m.SetFaults("ollama:library/qwen2.5", mirror.Fault{Kind: mirror.FaultThrottle, Rate: 1000})
			_, url := startCacheWith(t, up, mirror.CacheOptions{StreamFrom: mode.streamFrom})
			var wg sync.WaitGroup
			for range 2 {
				for _, uri := range []string{"hf://" + cacheHFRepo, cacheOllama} {
					wg.Go(func() { checkSameBytes(t, up, pullThrough(t, url, uri, "")) })
				}
			}
			wg.Wait()
			for f, n := range up.fetches() {
				if n != 1 {
					t.Errorf("upstream served %s %d times for two concurrent pulls, want 1", f, n)
				}
			}
		})
	}
}

func TestCacheStreamsWhileFetching(t *testing.T) {
	up := startUpstream(t)
	up.m.SetFaults(cacheHFRepo, mirror.Fault{Kind: mirror.FaultThrottle, Files: "*.safetensors", Rate: 200}) // 224 bytes: > 1 s
	_, url := startCacheWith(t, up, mirror.CacheOptions{StreamFrom: 1})
	hc := hub.New(hub.Options{Endpoint: url, Retry: hub.Retry{Tries: 1}})
	ctx := context.Background()
	meta, err := hc.FileMeta(ctx, cacheHFRepo, "main", cacheWeights)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	body, _, err := hc.Get(ctx, meta.Location, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	b, err := io.ReadAll(body)
	body.Close()
	all := time.Since(start)
	if err != nil || sum(b) != meta.ETag {
		t.Fatalf("streamed file: %d bytes, sha256 %s, %v; want %s", len(b), sum(b), err, meta.ETag)
	}
	if first > all/2 {
		t.Errorf("headers after %v of a %v fetch: the cache waited for the whole file instead of streaming it", first, all)
	}
}

func TestCacheStreamCutOnCorruptUpstream(t *testing.T) {
	up := startUpstream(t)
	up.m.SetFaults(cacheHFRepo, mirror.Fault{Kind: mirror.FaultCorrupt, Files: "*.safetensors", Offset: 10})
	c, url := startCacheWith(t, up, mirror.CacheOptions{StreamFrom: 1})
	hc := hub.New(hub.Options{Endpoint: url, Retry: hub.Retry{Tries: 1}})
	ctx := context.Background()
	meta, err := hc.FileMeta(ctx, cacheHFRepo, "main", cacheWeights)
	if err != nil {
		t.Fatal(err)
	}
	if body, _, err := hc.Get(ctx, meta.Location, 0, -1); err == nil {
		b, err := io.ReadAll(body)
		body.Close()
		if err == nil {
			t.Fatalf("a corrupt upstream file was streamed whole (%d bytes, sha256 %s)", len(b), sum(b))
		}
	}
	_, _, err = hc.Get(ctx, meta.Location, 0, -1)
	var he *hub.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadGateway || !strings.Contains(he.Message, "failed verification") {
		t.Fatalf("after a streamed fetch failed verification: %v, want a 502 saying so", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), "hf", "blobs", meta.ETag)); err == nil {
		t.Error("the corrupt file was kept in the cache")
	}
}

func TestCacheServesWhenUpstreamIsDown(t *testing.T) {
	up := startUpstream(t)
	// A TTL of 1ns: every API answer is asked upstream again, so the second pull uses the stale ones.
	_, url := startCache(t, up, time.Nanosecond)
	hf := mustPull(t, url, "hf://"+cacheHFRepo, "")
	first := mustPull(t, url, cacheOllama, "")
	// An API answer about a commit is kept for good, even with this TTL.
	hc := hub.New(hub.Options{Endpoint: url, Retry: hub.Retry{Tries: 1}})
	if _, err := hc.ModelInfo(context.Background(), cacheHFRepo, hf.Commit); err != nil {
		t.Fatal(err)
	}
	up.m.ResetRequests()
	if _, err := hc.ModelInfo(context.Background(), cacheHFRepo, hf.Commit); err != nil {
		t.Fatal(err)
	}
	if n := len(up.m.Requests().Paths); n != 0 {
		t.Errorf("model info at a commit asked upstream again: %v", up.m.Requests().Paths)
	}
	up.srv.Close()
	res := mustPull(t, url, "hf://"+cacheHFRepo, "")
	checkSameBytes(t, up, res)
	if again := mustPull(t, url, cacheOllama, ""); again.Commit != first.Commit {
		t.Errorf("manifest from the cache has digest %s, want %s", again.Commit, first.Commit)
	}
	// API calls about the pinned commit are answered from the cache.
	info, err := hc.ModelInfo(context.Background(), cacheHFRepo, hf.Commit)
	if err != nil || info.SHA != hf.Commit {
		t.Errorf("model info at commit %s with upstream down: %+v, %v", hf.Commit, info, err)
	}
	// A file never fetched: a clear 502/504 naming the upstream.
	resp, err := http.Get(url + "/" + cacheHFRepo + "/resolve/main/never-fetched.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("uncached file with upstream down: %d %s, want 502 or 504", resp.StatusCode, b)
	}
	if !strings.Contains(string(b), up.url) || !strings.Contains(string(b), "unavailable") {
		t.Errorf("uncached file with upstream down: message %s does not name the upstream %s", b, up.url)
	}
}

func TestCacheRejectsCorruptUpstream(t *testing.T) {
	up := startUpstream(t)
	up.m.SetFaults(cacheHFRepo, mirror.Fault{Kind: mirror.FaultCorrupt, Files: "*.safetensors", Offset: 100})
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var logs lockedBuffer
	c, url := startCacheWith(t, up, mirror.CacheOptions{APITTL: time.Hour, Now: clock, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	hc := hub.New(hub.Options{Endpoint: url, Retry: hub.Retry{Tries: 1}})
	ctx := context.Background()
	meta, err := hc.FileMeta(ctx, cacheHFRepo, "main", cacheWeights)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = hc.Get(ctx, meta.Location, 0, -1)
	var he *hub.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadGateway || !strings.Contains(he.Message, "failed verification") {
		t.Fatalf("corrupt upstream file: got %v, want a 502 saying it failed verification", err)
	}
	if l := logs.String(); !strings.Contains(l, "failed verification") || !strings.Contains(l, "/__lfs/"+cacheHFRepo+"/") {
		t.Errorf("no log line naming the upstream URL of the corrupt file:\n%s", l)
	}
	blobs, _ := os.ReadDir(filepath.Join(c.Dir(), "hf", "blobs"))
	for _, b := range blobs {
		if strings.HasPrefix(b.Name(), meta.ETag) {
			t.Errorf("the corrupt file was kept in the cache: %s", b.Name())
		}
	}
	// The failure is answered again for a minute without asking upstream; then the good bytes are fetched.
	up.m.SetFaults(cacheHFRepo)
	up.m.ResetRequests()
	if _, _, err = hc.Get(ctx, meta.Location, 0, -1); !errors.As(err, &he) || he.Status != http.StatusBadGateway {
		t.Fatalf("within a minute of the failure: %v, want the 502 again", err)
	}
	if n := len(up.fetches()); n != 0 {
		t.Errorf("within a minute of the failure the cache asked upstream for %d files, want none", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	body, _, err := hc.Get(ctx, meta.Location, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if sum(b) != meta.ETag {
		t.Errorf("after the fault: sha256 %s, want %s", sum(b), meta.ETag)
	}
}

func TestCacheResumesInterruptedFetch(t *testing.T) {
	up := startUpstream(t)
	up.m.SetFaults(cacheHFRepo, mirror.Fault{Kind: mirror.FaultDrop, Files: "*.safetensors", Bytes: 100, Count: 1})
	_, url := startCache(t, up, time.Minute)
	hc := hub.New(hub.Options{Endpoint: url, Retry: hub.Retry{Tries: 1}})
	ctx := context.Background()
	meta, err := hc.FileMeta(ctx, cacheHFRepo, "main", cacheWeights)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := hc.Get(ctx, meta.Location, 0, -1); err == nil || !strings.Contains(err.Error(), "resumes") {
		t.Fatalf("dropped upstream fetch: got %v, want an error saying the next request resumes it", err)
	}
	body, _, err := hc.Get(ctx, meta.Location, 50, -1) // a ranged request, served once the file is complete
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if int64(len(b)) != meta.Size-50 {
		t.Fatalf("range from 50: %d bytes, want %d", len(b), meta.Size-50)
	}
	var file string
	for f := range up.fetches() {
		if strings.HasSuffix(f, cacheWeights) {
			file = f
		}
	}
	st := up.m.Requests().Files[file]
	if st.Requests != 2 || st.Bytes != meta.Size {
		t.Errorf("upstream sent %d bytes in %d requests for a %d-byte file dropped after 100: want %d bytes in 2 (a resume)", st.Bytes, st.Requests, meta.Size, meta.Size)
	}
}

func TestCachePassesTokenToGatedRepo(t *testing.T) {
	up := startUpstream(t)
	_, url := startCache(t, up, time.Minute)
	ctx := context.Background()
	get := func(token string) ([]byte, error) {
		hc := hub.New(hub.Options{Endpoint: url, Token: token, Retry: hub.Retry{Tries: 1}})
		meta, err := hc.FileMeta(ctx, "org/gated", "main", "config.json")
		if err != nil {
			return nil, err
		}
		body, _, err := hc.Get(ctx, meta.Location, 0, -1)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		return io.ReadAll(body)
	}
	var gated *hub.GatedRepoError
	if _, err := get(""); !errors.As(err, &gated) {
		t.Errorf("gated file without a token: %v, want GatedRepoError", err)
	}
	b, err := get("hf_allowed")
	if err != nil || !bytes.Contains(b, []byte("llama")) {
		t.Fatalf("gated file with an allowed token: %q, %v", b, err)
	}
	// Cached now; a token without access is still refused (upstream decides, per token).
	if _, err := get("hf_other"); !errors.As(err, &gated) {
		t.Errorf("gated file with a token without access, after it was cached: %v, want GatedRepoError", err)
	}
	info, err := hub.New(hub.Options{Endpoint: url, Token: "hf_allowed"}).ModelInfo(ctx, "org/gated", "main")
	if err != nil || info.Gated != "manual" {
		t.Errorf("model info through the cache: %+v, %v", info, err)
	}
}

// lockedBuffer collects log lines written from the cache's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
