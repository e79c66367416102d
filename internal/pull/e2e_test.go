package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
)

// The fault matrix of issue 3, against Citadel's own HF-compatible mirror
// on loopback: every failure ends in a named reason and a message that says
// what to do, within the stall timeout plus a margin, and nothing partial is
// ever placed.

const testRepo = "XiaomiMiMo/MiMo-VL-7B-RL"

// hubDir writes a small repository: config.json, a tokenizer, and a
// 3 MiB weight file (LFS-style: served by redirect to the other host name).
func hubDir(t *testing.T) (dir string, weights []byte) {
	t.Helper()
	dir = t.TempDir()
	repo := filepath.Join(dir, "hf", filepath.FromSlash(testRepo))
	must(t, os.MkdirAll(filepath.Join(repo, "sub"), 0o755))
	cfg := `{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl","torch_dtype":"bfloat16","transformers_version":"4.41.2","max_position_embeddings":128000,"vision_config":{"depth":32}}`
	must(t, os.WriteFile(filepath.Join(repo, "config.json"), []byte(cfg), 0o644))
	must(t, os.WriteFile(filepath.Join(repo, "sub", "tokenizer.json"), []byte(`{"version":"1.0"}`), 0o644))
	weights, _ = blob(3<<20+17, 42)
	must(t, os.WriteFile(filepath.Join(repo, "model.safetensors"), weights, 0o644))
	// A private repo, and a gated one.
	for _, name := range []string{"org/private", "org/gated"} {
		d := filepath.Join(dir, "hf", filepath.FromSlash(name))
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, "config.json"), []byte(cfg), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "hf", "org", "private", ".mirror.json"), []byte(`{"private": true, "tokens": ["hf_good"]}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "hf", "org", "gated", ".mirror.json"), []byte(`{"gated": "manual", "tokens": ["hf_allowed"]}`), 0o644))
	return dir, weights
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type hubServer struct {
	m   *mirror.Server
	url string
}

// startMirror serves dir on a loopback port; wrap may intercept requests.
func startMirror(t *testing.T, dir string, wrap func(http.Handler) http.Handler) *hubServer {
	t.Helper()
	m, url := mirrortest.Start(t, mirror.Options{Dir: dir, Tokens: []mirror.Token{{User: "u", Value: "hf_good"}, {User: "g", Value: "hf_other"}}}, wrap)
	return &hubServer{m: m, url: url}
}

func newTestPuller(t *testing.T, endpoint string, mod func(*Options)) (*Puller, Options) {
	opts := Options{
		HFEndpoint: endpoint, HFCache: filepath.Join(t.TempDir(), "hub"), OllamaDir: filepath.Join(t.TempDir(), "ollama"),
		ChunkSize: 512 << 10, StallTimeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	return New(opts), opts
}

func wantReason(t *testing.T, err error, reason string) *Error {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("got %v (%T), want a pull error with reason %s", err, err, reason)
	}
	if pe.Reason != reason {
		t.Fatalf("reason %s (%s), want %s", pe.Reason, pe.Message, reason)
	}
	if pe.Message == "" {
		t.Fatal("no message")
	}
	return pe
}

// noBlobPlaced checks that nothing half-written became a blob.
func noBlobPlaced(t *testing.T, cache string) {
	t.Helper()
	_ = filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "blobs" && !strings.Contains(d.Name(), ".incomplete") {
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			if len(d.Name()) == 64 && hex.EncodeToString(sum[:]) != d.Name() {
				t.Errorf("blob %s does not match its name", p)
			}
		}
		return nil
	})
}

func TestPullHFLayout(t *testing.T) {
	dir, weights := hubDir(t)
	hs := startMirror(t, dir, nil)
	p, opts := newTestPuller(t, hs.url, nil)
	view := filepath.Join(t.TempDir(), "raid", "models", "MiMo")
	var mu sync.Mutex
	var phases []string
	res, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo, Path: view}, func(pr Progress) {
		mu.Lock()
		defer mu.Unlock()
		if len(phases) == 0 || phases[len(phases)-1] != pr.Phase {
			phases = append(phases, pr.Phase)
		}
	})
	must(t, err)
	repoDir := filepath.Join(opts.HFCache, "models--XiaomiMiMo--MiMo-VL-7B-RL")
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(ref) != res.Commit || len(res.Commit) != 40 {
		t.Fatalf("refs/main = %q (%v), commit %q", ref, err, res.Commit)
	}
	sum := sha256.Sum256(weights)
	blobPath := filepath.Join(repoDir, "blobs", hex.EncodeToString(sum[:]))
	if b, err := os.ReadFile(blobPath); err != nil || len(b) != len(weights) {
		t.Fatalf("LFS blob not stored under its sha256: %v", err)
	}
	for _, f := range []string{"config.json", "sub/tokenizer.json", "model.safetensors"} {
		snap := filepath.Join(repoDir, "snapshots", res.Commit, filepath.FromSlash(f))
		target, err := os.Readlink(snap)
		if err != nil || filepath.IsAbs(target) || !strings.Contains(target, "blobs/") {
			t.Errorf("snapshot %s: link %q (%v)", f, target, err)
		}
		if _, err := os.ReadFile(filepath.Join(view, filepath.FromSlash(f))); err != nil {
			t.Errorf("storage.path view lacks %s: %v", f, err)
		}
	}
	if res.Fetched != res.Bytes {
		t.Errorf("fetched %d bytes for %d", res.Fetched, res.Bytes)
	}
	want := []string{PhaseResolving, PhaseDownloading, PhasePlacing, PhaseDone}
	if strings.Join(phases, ",") != strings.Join(want, ",") {
		t.Errorf("phases %v, want %v", phases, want)
	}
	// A second pull fetches nothing.
	res2, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil)
	must(t, err)
	if res2.Fetched != 0 {
		t.Errorf("second pull fetched %d bytes", res2.Fetched)
	}
}

func TestPullFaultMatrix(t *testing.T) {
	dir, _ := hubDir(t)
	type tc struct {
		name   string
		uri    string
		token  string
		faults []mirror.Fault
		wrap   func(http.Handler) http.Handler
		opts   func(*Options)
		reason string // "" = the pull succeeds
		inMsg  string
		check  func(t *testing.T, res *Result, took time.Duration)
	}
	hostileTree := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/tree/") {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `[{"type":"file","path":"../../etc/cron.d/evil","size":3,"oid":"`+strings.Repeat("a", 40)+`"}]`)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	entryGone := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/resolve/") && strings.HasSuffix(r.URL.Path, "/sub/tokenizer.json") {
				w.Header().Set("X-Error-Code", "EntryNotFound")
				w.Header().Set("X-Error-Message", "Entry not found")
				w.WriteHeader(http.StatusNotFound)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	noDNS := func(o *Options) {
		dialer := &net.Dialer{Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no DNS server in this test")
		}}}
		o.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
		o.HFEndpoint = "http://hub.example.invalid"
	}
	refused := func(o *Options) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		o.HFEndpoint = "http://" + ln.Addr().String()
		ln.Close()
	}
	cases := []tc{
		{name: "bad token 401", uri: "hf://org/private", token: "hf_wrong", reason: ReasonUnauthorized, inMsg: "Invalid credentials"},
		{name: "private repo without token", uri: "hf://org/private", reason: ReasonRepoNotFound, inMsg: "token"},
		{name: "gated 403", uri: "hf://org/gated", token: "hf_other", reason: ReasonGatedRepo, inMsg: "org/gated"},
		{name: "repo 404", uri: "hf://org/missing", reason: ReasonRepoNotFound, inMsg: "org/missing"},
		{name: "revision 404", uri: "hf://" + testRepo + "@v9", reason: ReasonRevisionNotFound, inMsg: "v9"},
		{name: "file 404", uri: "hf://" + testRepo, wrap: entryGone, reason: ReasonEntryNotFound, inMsg: "tokenizer.json"},
		{name: "connection refused", uri: "hf://" + testRepo, opts: refused, reason: ReasonConnectionFailed, inMsg: "HF_ENDPOINT"},
		{name: "DNS failure", uri: "hf://" + testRepo, opts: noDNS, reason: ReasonDNSFailure, inMsg: "hub.example.invalid"},
		{name: "stall mid-file", uri: "hf://" + testRepo, faults: []mirror.Fault{{Kind: mirror.FaultStall, Files: "model.safetensors", Bytes: 100 << 10}},
			reason: ReasonDownloadStalled, inMsg: "model.safetensors"},
		{name: "slow download warns", uri: "hf://" + testRepo, faults: []mirror.Fault{{Kind: mirror.FaultThrottle, Files: "model.safetensors", Rate: 256 << 10}},
			opts: func(o *Options) { o.MinThroughput = 100 << 20 }},
		{name: "truncated bodies are resumed", uri: "hf://" + testRepo, faults: []mirror.Fault{{Kind: mirror.FaultDrop, Files: "model.safetensors", Bytes: 64 << 10, Count: 3}}},
		{name: "wrong length is resumed", uri: "hf://" + testRepo, faults: []mirror.Fault{{Kind: mirror.FaultWrongLength, Files: "model.safetensors", Count: 2}}},
		{name: "checksum mismatch", uri: "hf://" + testRepo, faults: []mirror.Fault{{Kind: mirror.FaultCorrupt, Files: "model.safetensors", Offset: 7}},
			reason: ReasonChecksumMismatch, inMsg: "model.safetensors"},
		{name: "5xx storm", uri: "hf://" + testRepo, faults: []mirror.Fault{{Kind: mirror.FaultStatus, Files: "model.safetensors", Status: 503}},
			reason: ReasonUpstreamError, inMsg: "503"},
		{name: "429 with Retry-After is honoured", uri: "hf://" + testRepo, faults: []mirror.Fault{{Kind: mirror.FaultRateLimit, Files: "model.safetensors", RetryAfter: 1, Count: 1}},
			check: func(t *testing.T, _ *Result, took time.Duration) {
				if took < time.Second {
					t.Errorf("finished in %s, before the Retry-After of 1s", took)
				}
			}},
		{name: "unsupported scheme", uri: "s3://bucket/model", reason: ReasonUnsupportedStorageURI, inMsg: "s3"},
		{name: "hostile file name", uri: "hf://" + testRepo, wrap: hostileTree, reason: ReasonHostileFileName, inMsg: "etc/cron.d/evil"},
		{name: "not enough disk", uri: "hf://" + testRepo, opts: func(o *Options) { o.FreeSpace = func(string) (int64, error) { return 1 << 20, nil } },
			reason: ReasonInsufficientStorage, inMsg: "free on"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := startMirror(t, dir, c.wrap)
			if len(c.faults) > 0 {
				repo := strings.TrimPrefix(c.uri, "hf://")
				hs.m.SetFaults(repo, c.faults...)
			}
			p, opts := newTestPuller(t, hs.url, c.opts)
			var warned bool
			var mu sync.Mutex
			began := time.Now()
			res, err := p.Pull(t.Context(), Request{URI: c.uri, Token: c.token}, func(pr Progress) {
				mu.Lock()
				defer mu.Unlock()
				if pr.Warning != "" {
					warned = true
				}
			})
			took := time.Since(began)
			if limit := opts.StallTimeout + 10*time.Second; took > limit {
				t.Errorf("took %s, more than the stall timeout + 10 s", took)
			}
			if c.reason == "" {
				if err != nil {
					t.Fatalf("pull failed: %v", err)
				}
				if c.name == "slow download warns" && !warned {
					t.Error("no throughput warning")
				}
				if c.check != nil {
					c.check(t, res, took)
				}
				noBlobPlaced(t, opts.HFCache)
				return
			}
			pe := wantReason(t, err, c.reason)
			if !strings.Contains(pe.Error(), c.inMsg) {
				t.Errorf("message %q lacks %q", pe.Error(), c.inMsg)
			}
			noBlobPlaced(t, opts.HFCache)
			t.Logf("%s: %s (after %s)", c.name, pe.Error(), took.Round(time.Millisecond))
		})
	}
}

func TestPullResumeAfterKill(t *testing.T) {
	dir, weights := hubDir(t)
	hs := startMirror(t, dir, nil)
	// Slow the weights down so that the kill lands mid-file.
	hs.m.SetFaults(testRepo, mirror.Fault{Kind: mirror.FaultThrottle, Files: "model.safetensors", Rate: 1 << 20})
	p, opts := newTestPuller(t, hs.url, func(o *Options) { o.ChunkSize = 256 << 10; o.ChunkConcurrency = 2 })
	ctx, cancel := context.WithCancel(t.Context())
	_, err := p.Pull(ctx, Request{URI: "hf://" + testRepo}, func(pr Progress) {
		for _, f := range pr.Files {
			if f.Path == "model.safetensors" && f.Done > f.Size/2 {
				cancel()
			}
		}
	})
	if err == nil || (!errors.Is(err, context.Canceled) && AsError(err).Reason != "Cancelled") {
		t.Fatalf("interrupted pull: %v", err)
	}
	first := hs.m.Requests().Files["hf/"+testRepo+"/model.safetensors"].Bytes
	hs.m.SetFaults(testRepo)
	hs.m.ResetRequests()
	p2 := New(opts)
	res, err := p2.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil)
	must(t, err)
	second := hs.m.Requests().Files["hf/"+testRepo+"/model.safetensors"].Bytes
	again := first + second - int64(len(weights))
	inFlight := int64(2) * (256 << 10)
	t.Logf("killed after %d bytes; the resumed pull fetched %d; %d bytes fetched twice (limit %d)", first, second, again, inFlight)
	if again > inFlight {
		t.Errorf("fetched %d bytes again, more than the chunks in flight (%d)", again, inFlight)
	}
	if first < int64(len(weights))/2 {
		t.Errorf("the kill came too early (%d bytes)", first)
	}
	if res.Bytes == 0 {
		t.Error("empty result")
	}
}

// tmpfs mounts a small filesystem for the disk tests; it needs root.
func tmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount tmpfs (%v): disk-full and read-only tests need root", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestPullDiskFullMidDownload(t *testing.T) {
	dir, _ := hubDir(t)
	hs := startMirror(t, dir, nil)
	small := tmpfs(t, "size=1m")
	// Preflight is told there is room, so the disk fills during the download.
	p, _ := newTestPuller(t, hs.url, func(o *Options) {
		o.HFCache = filepath.Join(small, "hub")
		o.FreeSpace = func(string) (int64, error) { return 1 << 40, nil }
	})
	_, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil)
	pe := wantReason(t, err, ReasonInsufficientStorage)
	if !strings.Contains(pe.Message, "free space") {
		t.Errorf("message %q does not say what to do", pe.Message)
	}
}

func TestPullReadOnlyStorage(t *testing.T) {
	dir, _ := hubDir(t)
	hs := startMirror(t, dir, nil)
	ro := tmpfs(t, "ro,size=1m")
	p, _ := newTestPuller(t, hs.url, func(o *Options) { o.HFCache = filepath.Join(ro, "hub") })
	_, err := p.Pull(t.Context(), Request{URI: "hf://" + testRepo}, nil)
	wantReason(t, err, ReasonStorageNotWritable)
}

func TestPullProgressJSON(t *testing.T) {
	// Progress events are plain JSON for scripts (citadel pull --json).
	b, err := json.Marshal(Progress{Phase: PhaseDownloading, BytesDone: 1, BytesTotal: 2, Files: []FileProgress{{Path: "a", Size: 2, Done: 1, State: "downloading"}}})
	must(t, err)
	for _, k := range []string{`"phase":"Downloading"`, `"bytesDone":1`, `"bytesTotal":2`, `"state":"downloading"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
}

func TestPullOllama(t *testing.T) {
	dir := t.TempDir()
	weights, wsum := blob(2<<20, 7)
	cfg := []byte(`{"model_format":"gguf","model_family":"qwen2"}`)
	csum := sha256.Sum256(cfg)
	blobs := filepath.Join(dir, "ollama", "blobs")
	must(t, os.MkdirAll(blobs, 0o755))
	must(t, os.WriteFile(filepath.Join(blobs, "sha256-"+wsum), weights, 0o644))
	must(t, os.WriteFile(filepath.Join(blobs, "sha256-"+hex.EncodeToString(csum[:])), cfg, 0o644))
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":%d}]}`,
		hex.EncodeToString(csum[:]), len(cfg), wsum, len(weights))
	mdir := filepath.Join(dir, "ollama", "manifests", "registry.ollama.ai", "library", "tiny")
	must(t, os.MkdirAll(mdir, 0o755))
	must(t, os.WriteFile(filepath.Join(mdir, "latest"), []byte(man), 0o644))
	hs := startMirror(t, dir, nil)
	p, opts := newTestPuller(t, "", func(o *Options) {
		o.OllamaRegistry = strings.TrimPrefix(hs.url, "http://")
		o.OllamaInsecure = true
	})
	res, err := p.Pull(t.Context(), Request{URI: "ollama://tiny"}, nil)
	must(t, err)
	placed := filepath.Join(opts.OllamaDir, "manifests", "registry.ollama.ai", "library", "tiny", "latest")
	if b, err := os.ReadFile(placed); err != nil || string(b) != man {
		t.Fatalf("manifest not where Ollama looks (%s): %v", placed, err)
	}
	if b, err := os.ReadFile(filepath.Join(opts.OllamaDir, "blobs", "sha256-"+wsum)); err != nil || len(b) != len(weights) {
		t.Fatalf("weights blob: %v", err)
	}
	if res.ModelFile != filepath.Join(opts.OllamaDir, "blobs", "sha256-"+wsum) {
		t.Errorf("ModelFile = %s", res.ModelFile)
	}
	// A corrupted blob on the registry side is caught by its digest.
	hs.m.SetFaults("ollama:library/tiny", mirror.Fault{Kind: mirror.FaultCorrupt, Offset: 3})
	p2, _ := newTestPuller(t, "", func(o *Options) {
		o.OllamaRegistry = strings.TrimPrefix(hs.url, "http://")
		o.OllamaInsecure = true
	})
	_, err = p2.Pull(t.Context(), Request{URI: "ollama://tiny:latest"}, nil)
	wantReason(t, err, ReasonChecksumMismatch)
	// An unknown model is named.
	_, err = p2.Pull(t.Context(), Request{URI: "ollama://nope:7b"}, nil)
	wantReason(t, err, ReasonRepoNotFound)
}

func TestConcurrentPullsOfOneRepo(t *testing.T) {
	dir, weights := hubDir(t)
	hs := startMirror(t, dir, nil)
	p, opts := newTestPuller(t, hs.url, nil)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = p.Pull(t.Context(), Request{URI: "hf://" + testRepo, Path: filepath.Join(t.TempDir(), "view")}, nil)
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	noBlobPlaced(t, opts.HFCache)
	if got := hs.m.Requests().Files["hf/"+testRepo+"/model.safetensors"].Bytes; got != int64(len(weights)) {
		t.Errorf("three concurrent pulls fetched the weights %d bytes, want once (%d)", got, len(weights))
	}
}
