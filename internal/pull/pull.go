// Package pull brings a model from the Hugging Face Hub, an Ollama
// registry or a local directory onto this host: plan (resolve the revision,
// list the files, preflight disk space and permissions) → download (parallel
// files, parallel ranged chunks, resume after a crash, stall detection,
// retries) → verify (sha256 / git sha1 against the hub's ETag, Ollama
// digests) → place (atomic rename into the HF cache or Ollama's layout,
// snapshot links, storage.path view). Every failure is an *Error with a
// reason code and a message that says what to do.
package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/modelstore"
	"citadel.dev/citadel/internal/registry"
)

// Options configure a Puller. Zero values take the defaults.
type Options struct {
	HFEndpoint string // default https://huggingface.co
	HFCache    string // the hub cache directory ($HF_HUB_CACHE)
	OllamaDir  string // Ollama's models directory
	// OllamaRegistry overrides the registry host of ollama:// names (a mirror).
	OllamaRegistry string
	OllamaInsecure bool // plain http to the registry (mirrors on loopback)
	HTTPClient     *http.Client

	// PathRoot, when set, is the only directory a storage.path view is
	// written under (Kubernetes mode: the chart's models.root). A Request.Path
	// outside it is not written: the files stay in the store and
	// Result.PathNote says so, with PathAdvice.
	PathRoot   string
	PathAdvice string

	FileConcurrency  int   // files at once; default 4
	ChunkConcurrency int   // chunks of one file at once; default 8
	Connections      int   // all requests at once; default 16
	ChunkSize        int64 // default 32 MiB
	// StallTimeout: no bytes of a file for this long fails it; default 60 s. It is also how long a request
	// waits for response headers (a server that accepts and never answers is named after it) and the most
	// one metadata request spends waiting between its retries.
	StallTimeout  time.Duration
	MinThroughput int64 // bytes/s below which progress carries a warning; 0 = none
	Now           func() time.Time
	Logger        *slog.Logger
	// FreeSpace reports the bytes available on the filesystem of dir; a
	// seam for tests. Default: statfs.
	FreeSpace func(dir string) (int64, error)
	// Sleep waits between retries of metadata requests (model info, tree, HEAD, manifest); default a timer.
	// A seam for tests, which count retries instead of waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Puller runs pulls. It is safe for concurrent use: pulls that need the
// same blob take turns on it.
type Puller struct {
	opts  Options
	locks sync.Map // blob path → chan struct{} (a one-slot semaphore)
}

// lockPath takes the blob's slot, or returns when ctx ends.
func (p *Puller) lockPath(ctx context.Context, path string) (func(), error) {
	v, _ := p.locks.LoadOrStore(path, make(chan struct{}, 1))
	slot := v.(chan struct{})
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// New returns a Puller.
func New(opts Options) *Puller {
	if opts.FileConcurrency <= 0 {
		opts.FileConcurrency = 4
	}
	if opts.ChunkConcurrency <= 0 {
		opts.ChunkConcurrency = 8
	}
	if opts.Connections <= 0 {
		opts.Connections = 16
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 32 << 20
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FreeSpace == nil {
		opts.FreeSpace = freeSpace
	}
	return &Puller{opts: opts}
}

// Request is one pull.
type Request struct {
	// URI is a storage URI: hf://org/repo[@rev], ollama://name[:tag], file:///dir.
	URI string
	// Revision overrides the URI's revision (hf only).
	Revision string
	// Token authenticates to the hub or registry; empty is anonymous.
	Token string
	// Include and Exclude filter repository files (fnmatch globs, as
	// huggingface_hub's allow_patterns and ignore_patterns).
	Include, Exclude []string
	// Path, when set, is made a view of the model (OME's storage.path).
	Path string
	// Reverify hashes blobs already in the cache instead of trusting their size.
	Reverify bool
}

// Phases of a pull, in order.
const (
	PhaseResolving   = "Resolving"
	PhaseDownloading = "Downloading"
	PhaseVerifying   = "Verifying"
	PhasePlacing     = "Placing"
	PhaseDone        = "Done"
)

// FileProgress is one file's state.
type FileProgress struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Done  int64  `json:"done"`
	State string `json:"state"` // queued, downloading, verifying, done, cached, failed
}

// Progress is a snapshot of a pull, reported at least every ProgressEvery.
type Progress struct {
	Phase          string         `json:"phase"`
	Commit         string         `json:"commit,omitempty"`
	FilesDone      int            `json:"filesDone"`
	FilesTotal     int            `json:"filesTotal"`
	BytesDone      int64          `json:"bytesDone"`
	BytesTotal     int64          `json:"bytesTotal"`
	BytesPerSecond int64          `json:"bytesPerSecond"`
	LastProgress   time.Time      `json:"lastProgress"`
	Warning        string         `json:"warning,omitempty"`
	Files          []FileProgress `json:"files,omitempty"`
	// Notices are one-time warnings (a server that ignores Range), each
	// in exactly one Progress.
	Notices []Notice `json:"notices,omitempty"`
}

// Result says where the model is.
type Result struct {
	Source   string   `json:"source"`
	Commit   string   `json:"commit,omitempty"`   // hf commit, or ollama manifest digest
	Dir      string   `json:"dir"`                // snapshot dir (hf), model dir (file), blobs dir (ollama)
	Path     string   `json:"path,omitempty"`     // storage.path view, when requested
	Files    []string `json:"files"`              // files of the model, relative to Dir
	Sizes    []int64  `json:"sizes"`              // their sizes, in the same order
	Bytes    int64    `json:"bytes"`              // total size
	Fetched  int64    `json:"fetched"`            // bytes downloaded by this pull
	Refetch  int64    `json:"refetched"`          // bytes downloaded again (resume overlap, retries)
	Manifest string   `json:"manifest,omitempty"` // ollama manifest path
	// ModelFile is the weights blob of an Ollama model (its GGUF file).
	ModelFile string `json:"modelFile,omitempty"`
	// Store is the model store the files belong to: the HF cache root
	// (HF_HUB_CACHE) or the Ollama models directory (OLLAMA_MODELS); empty
	// for a file:// model, which lives where it is.
	Store string `json:"store,omitempty"`
	// OllamaName is the name Ollama knows an ollama:// model by, with its
	// tag (deepcoder:14b), as OllamaName returns it.
	OllamaName string `json:"ollamaName,omitempty"`
	// PathNote says how a requested storage.path was used when it is not
	// where the files are (an ollama:// model lives in the Ollama store).
	PathNote string `json:"pathNote,omitempty"`
}

// OllamaName is the name an Ollama server lists a model under: model:tag
// for registry.ollama.ai/library, namespace/model:tag for another namespace
// of that registry, host/namespace/model:tag for another registry (Ollama's
// own short form of a name).
func OllamaName(n registry.Name) string {
	host, ns, tag := n.Host, n.Namespace, n.Tag
	if host == "" {
		host = registry.DefaultHost
	}
	if ns == "" {
		ns = registry.DefaultNamespace
	}
	if tag == "" {
		tag = registry.DefaultTag
	}
	switch {
	case host != registry.DefaultHost:
		return host + "/" + ns + "/" + n.Model + ":" + tag
	case ns != registry.DefaultNamespace:
		return ns + "/" + n.Model + ":" + tag
	}
	return n.Model + ":" + tag
}

// ProgressEvery is how often progress is reported while bytes move.
const ProgressEvery = 500 * time.Millisecond

// Pull runs one pull to the end. progress may be nil.
func (p *Puller) Pull(ctx context.Context, req Request, progress func(Progress)) (*Result, error) {
	u, err := v1.ParseStorageURI(req.URI)
	if err != nil {
		return nil, &Error{Reason: ReasonUnsupportedStorageURI, Message: err.Error()}
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	// Retry notices of metadata requests arrive from the per-file goroutines: one report at a time.
	var mu sync.Mutex
	report := progress
	progress = func(pr Progress) {
		mu.Lock()
		defer mu.Unlock()
		report(pr)
	}
	note := ""
	if req.Path != "" && p.opts.PathRoot != "" && !within(p.opts.PathRoot, req.Path) {
		note = fmt.Sprintf("storage.path %s was not written (%s): it lies outside the models root %s, the only directory this agent writes; the files stay in the store", req.Path, v1.ReasonStoragePathNotUsed, p.opts.PathRoot)
		if p.opts.PathAdvice != "" {
			note += "; " + p.opts.PathAdvice
		}
		req.Path = ""
	}
	var res *Result
	switch u.Scheme {
	case "hf":
		res, err = p.pullHF(ctx, u, req, progress)
	case "ollama":
		res, err = p.pullOllama(ctx, u, req, progress)
	case "file", "local":
		res, err = p.importDir(ctx, u, req, progress)
	default:
		return nil, &Error{Reason: ReasonUnsupportedStorageURI, Message: fmt.Sprintf("scheme %q cannot be pulled", u.Scheme)}
	}
	if res != nil && note != "" {
		res.PathNote = note
	}
	return res, err
}

// within reports whether path is root or lies under it.
func within(root, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func (p *Puller) engine() *engine {
	return &engine{
		chunkSize:    p.opts.ChunkSize,
		chunkWorkers: p.opts.ChunkConcurrency,
		conns:        make(chan struct{}, p.opts.Connections),
		stallTimeout: p.opts.StallTimeout,
		attemptIdle:  min(p.opts.StallTimeout/3, 20*time.Second),
		maxAttempts:  12,
		backoff:      defaultBackoff,
		now:          p.opts.Now,
		bufs:         sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }},
		cores:        runtime.GOMAXPROCS(0),
		cpuUsed:      cpuUsed,
		lock:         p.lockPath,
	}
}

func (p *Puller) pullHF(ctx context.Context, u v1.StorageURI, req Request, progress func(Progress)) (*Result, error) {
	if p.opts.HFCache == "" {
		return nil, &Error{Reason: ReasonInternal, Message: "no HF cache directory configured"}
	}
	rev := u.Revision
	if req.Revision != "" {
		rev = req.Revision
	}
	resolving, notify := p.retryNotices(progress)
	hc := hub.New(hub.Options{Endpoint: p.opts.HFEndpoint, Token: req.Token, HTTPClient: p.opts.HTTPClient,
		HeaderTimeout: p.opts.StallTimeout, Now: p.opts.Now,
		Retry: hub.Retry{Budget: p.opts.StallTimeout, Sleep: p.opts.Sleep, Notify: func(n hub.RetryNotice) { notify(n.String()) }}})
	progress(Progress{Phase: PhaseResolving, LastProgress: p.opts.Now()})
	info, err := hc.ModelInfo(ctx, u.Repo, rev)
	if err != nil {
		return nil, classify(err, "")
	}
	commit := info.SHA
	files, err := hc.ListFiles(ctx, u.Repo, commit)
	if err != nil {
		return nil, classify(err, "")
	}
	var selected []hub.File
	for _, f := range files {
		if hub.Match(f.Path, req.Include, req.Exclude) {
			selected = append(selected, f)
		}
	}
	if len(selected) == 0 {
		return nil, &Error{Reason: ReasonNoFiles, Message: fmt.Sprintf("%s@%s has %d files and none matches --include %v --exclude %v", u.Repo, rev, len(files), req.Include, req.Exclude)}
	}
	cache := modelstore.HFCache{Root: p.opts.HFCache}

	// Per-file metadata (etag and where to GET it), in parallel.
	jobs := make([]*fileJob, len(selected))
	eng := p.engine()
	if err := p.forEach(ctx, len(selected), 8, func(ctx context.Context, i int) error {
		f := selected[i]
		meta, err := hc.FileMeta(ctx, u.Repo, commit, f.Path)
		if err != nil {
			return classify(err, f.Path)
		}
		want := f.OID
		if f.LFS != nil {
			want = f.LFS.SHA256
		}
		if want != "" && meta.ETag != want {
			return &Error{Reason: ReasonUpstreamError, File: f.Path, Message: fmt.Sprintf("the hub lists %s with hash %s but serves etag %s", f.Path, want, meta.ETag)}
		}
		if meta.Size != f.Size && f.Size > 0 {
			return &Error{Reason: ReasonUpstreamError, File: f.Path, Message: fmt.Sprintf("the hub lists %s with %d bytes but serves %d", f.Path, f.Size, meta.Size)}
		}
		var mu sync.Mutex
		loc := meta.Location
		jobs[i] = &fileJob{
			name: f.Path, dest: cache.BlobPath(u.Repo, meta.ETag), partial: cache.IncompletePath(u.Repo, meta.ETag),
			size: meta.Size, etag: meta.ETag,
			fetch: func(ctx context.Context, start, end int64) (io.ReadCloser, error) {
				mu.Lock()
				l := loc
				mu.Unlock()
				body, _, err := hc.Get(ctx, l, start, end)
				var he *hub.HTTPError
				if errors.As(err, &he) && he.Status == http.StatusForbidden && l != hc.ResolveURL(u.Repo, commit, f.Path) {
					// A signed CDN URL expired during a long download: ask the hub for a fresh one.
					m, merr := hc.FileMeta(ctx, u.Repo, commit, f.Path)
					if merr == nil && m.Location != l {
						mu.Lock()
						loc = m.Location
						mu.Unlock()
						body, _, err = hc.Get(ctx, m.Location, start, end)
					}
				}
				return body, downloadHostError(err, f.Path)
			},
		}
		jobs[i].state.Store("queued")
		return nil
	}); err != nil {
		return nil, err
	}
	if err := p.preflight(cache.RepoDir(u.Repo), req.Path, jobs, req.Reverify); err != nil {
		return nil, err
	}
	resolving.Store(false)
	if err := p.run(ctx, eng, jobs, commit, progress); err != nil {
		return nil, err
	}
	progress(p.snapshot(PhasePlacing, commit, jobs, 0))
	res := &Result{Source: u.Scheme + "://" + u.Repo + "@" + rev, Commit: commit, Dir: cache.SnapshotDir(u.Repo, commit), Store: p.opts.HFCache}
	for _, j := range jobs {
		if err := cache.LinkSnapshot(u.Repo, commit, j.name, j.etag); err != nil {
			return nil, classify(err, j.name)
		}
		res.Files = append(res.Files, j.name)
		res.Sizes = append(res.Sizes, j.size)
		res.Bytes += j.size
		res.Refetch += j.refetched.Load()
	}
	if err := cache.WriteRef(u.Repo, rev, commit); err != nil {
		return nil, classify(err, "")
	}
	if req.Path != "" {
		if err := modelstore.Materialize(req.Path, res.Dir, res.Files); err != nil {
			return nil, &Error{Reason: ReasonStorageNotWritable, Message: fmt.Sprintf("placing the model at storage.path %s: %v", req.Path, err), Err: err}
		}
		res.Path = req.Path
	}
	res.Fetched = p.fetched(jobs)
	progress(p.snapshot(PhaseDone, commit, jobs, 0))
	return res, nil
}

// fetched is the bytes this pull moved over the network.
func (p *Puller) fetched(jobs []*fileJob) int64 {
	var n int64
	for _, j := range jobs {
		if s, _ := j.state.Load().(string); s != "cached" {
			n += j.done.Load() - j.resumed.Load()
		}
		n += j.refetched.Load()
	}
	return n
}

// preflight checks that the files fit and that the directories are writable
// before a byte is fetched.
func (p *Puller) preflight(cacheDir, path string, jobs []*fileJob, reverify bool) error {
	for _, dir := range []string{cacheDir, path} {
		if dir == "" {
			continue
		}
		if err := checkWritable(dir); err != nil {
			return err
		}
	}
	var need int64
	for _, j := range jobs {
		if st, err := os.Stat(j.dest); err == nil && st.Size() == j.size {
			if reverify {
				if err := modelstore.VerifyFile(j.dest, j.etag, j.size); err != nil {
					os.Remove(j.dest) // damaged: fetch again
					need += j.size
				}
			}
			continue
		}
		// The partial file is sparse: only the bytes its sidecar records
		// as written already take space.
		need += j.size - partialBytes(j)
	}
	free, err := p.opts.FreeSpace(cacheDir)
	if err != nil {
		return nil // unknown: let the download find out
	}
	if need > free {
		return &Error{Reason: ReasonInsufficientStorage, BytesNeeded: need, BytesFree: free, Directory: cacheDir, Message: fmt.Sprintf("need %s, %s free on %s: free space, or move the cache (--data-dir / HF_HUB_CACHE) to a larger disk", modelinfo.FormatBytes(need), modelinfo.FormatBytes(free), cacheDir)}
	}
	return nil
}

func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &Error{Reason: ReasonStorageNotWritable, Message: fmt.Sprintf("cannot create %s: %v", dir, err), Err: err}
	}
	f, err := os.CreateTemp(dir, ".citadel-write-test-*")
	if err != nil {
		return &Error{Reason: ReasonStorageNotWritable, Message: fmt.Sprintf("%s is not writable: %v; make it writable by citadel or choose another path", dir, err), Err: err}
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// run downloads jobs with bounded file concurrency, reporting progress.
func (p *Puller) run(ctx context.Context, eng *engine, jobs []*fileJob, commit string, progress func(Progress)) error {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(ProgressEvery)
		defer t.Stop()
		var last int64
		lastAt := p.opts.Now()
		var rate float64
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				now := p.opts.Now()
				var done int64
				for _, j := range jobs {
					done += j.done.Load()
				}
				if dt := now.Sub(lastAt).Seconds(); dt > 0 {
					inst := float64(done-last) / dt
					rate = 0.7*rate + 0.3*inst // smoothed over ~2 s
				}
				last, lastAt = done, now
				progress(p.snapshot(PhaseDownloading, commit, jobs, int64(rate)))
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	progress(p.snapshot(PhaseDownloading, commit, jobs, 0))
	return p.forEach(ctx, len(jobs), p.opts.FileConcurrency, func(ctx context.Context, i int) error {
		return eng.download(ctx, jobs[i])
	})
}

func (p *Puller) snapshot(phase, commit string, jobs []*fileJob, rate int64) Progress {
	pr := Progress{Phase: phase, Commit: commit, FilesTotal: len(jobs), BytesPerSecond: rate}
	var last int64
	for _, j := range jobs {
		state, _ := j.state.Load().(string)
		fp := FileProgress{Path: j.name, Size: j.size, Done: j.done.Load(), State: state}
		pr.Files = append(pr.Files, fp)
		pr.BytesDone += fp.Done
		pr.BytesTotal += j.size
		if state == "done" || state == "cached" {
			pr.FilesDone++
		}
		last = max(last, j.lastByte.Load())
		if n, ok := j.notice(); ok {
			pr.Notices = append(pr.Notices, n)
		}
	}
	if last > 0 {
		pr.LastProgress = time.Unix(0, last)
	}
	if phase == PhaseDownloading && p.opts.MinThroughput > 0 && rate > 0 && rate < p.opts.MinThroughput && pr.BytesDone < pr.BytesTotal {
		pr.Warning = fmt.Sprintf("throughput %s/s is below the minimum %s/s", modelinfo.FormatBytes(rate), modelinfo.FormatBytes(p.opts.MinThroughput))
	}
	sort.SliceStable(pr.Files, func(a, b int) bool { return pr.Files[a].Path < pr.Files[b].Path })
	return pr
}

// forEach runs f for 0..n-1 with at most limit at once; the first error
// cancels the rest and is returned.
func (p *Puller) forEach(ctx context.Context, n, limit int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// pullOllama pulls ollama://[host/]namespace/model:tag into Ollama's layout.
func (p *Puller) pullOllama(ctx context.Context, u v1.StorageURI, req Request, progress func(Progress)) (*Result, error) {
	if p.opts.OllamaDir == "" {
		return nil, &Error{Reason: ReasonInternal, Message: "no Ollama models directory configured"}
	}
	host := u.Registry
	if host == "" {
		host = p.opts.OllamaRegistry
	}
	resolving, notify := p.retryNotices(progress)
	rc := registry.New(registry.Options{Registry: host, Insecure: p.opts.OllamaInsecure, HTTPClient: p.opts.HTTPClient,
		HeaderTimeout: p.opts.StallTimeout, Now: p.opts.Now,
		Retry: registry.Retry{Budget: p.opts.StallTimeout, Sleep: p.opts.Sleep, Notify: func(n registry.RetryNotice) { notify(n.String()) }}})
	ref := u.Name + ":" + u.Tag
	if u.Registry != "" {
		ref = u.Registry + "/" + ref
	}
	// The name keeps the registry the user named (registry.ollama.ai by
	// default), so the manifest lands where Ollama looks for it even when
	// the bytes come from a mirror (Options.OllamaRegistry).
	name, err := registry.ParseName(ref)
	if err != nil {
		return nil, &Error{Reason: ReasonUnsupportedStorageURI, Message: err.Error()}
	}
	progress(Progress{Phase: PhaseResolving, LastProgress: p.opts.Now()})
	man, raw, err := rc.Manifest(ctx, name)
	if err != nil {
		return nil, classify(err, "")
	}
	layers := append([]registry.Layer{man.Config}, man.Layers...)
	blobs := filepath.Join(p.opts.OllamaDir, "blobs")
	jobs := make([]*fileJob, 0, len(layers))
	seen := map[string]bool{}
	modelFile := ""
	for _, l := range layers {
		if seen[l.Digest] || l.Digest == "" {
			continue
		}
		seen[l.Digest] = true
		hexDigest := l.Digest[len("sha256:"):]
		file := "sha256-" + hexDigest
		digest := l.Digest
		j := &fileJob{name: file, dest: filepath.Join(blobs, file), partial: filepath.Join(blobs, file+"-partial"), size: l.Size, etag: hexDigest}
		if l.MediaType == "application/vnd.ollama.image.model" && modelFile == "" {
			modelFile = j.dest
		}
		var direct string
		var mu sync.Mutex
		j.fetch = func(ctx context.Context, start, end int64) (io.ReadCloser, error) {
			mu.Lock()
			if direct == "" {
				url, _, err := rc.BlobURL(ctx, name, digest)
				if err != nil {
					mu.Unlock()
					return nil, err
				}
				direct = url
			}
			url := direct
			mu.Unlock()
			body, err := rc.Get(ctx, url, start, end)
			return body, downloadHostError(err, file)
		}
		j.state.Store("queued")
		jobs = append(jobs, j)
	}
	if err := p.preflight(p.opts.OllamaDir, "", jobs, req.Reverify); err != nil {
		return nil, err
	}
	resolving.Store(false)
	eng := p.engine()
	if err := p.run(ctx, eng, jobs, "", progress); err != nil {
		return nil, err
	}
	manPath := filepath.Join(p.opts.OllamaDir, "manifests", name.Host, name.Namespace, name.Model, name.Tag)
	if err := modelstore.WriteFileAtomic(manPath, raw, 0o644); err != nil {
		return nil, classify(err, "")
	}
	res := &Result{Source: req.URI, Dir: blobs, Manifest: manPath, Commit: manifestDigest(raw), ModelFile: modelFile,
		Store: p.opts.OllamaDir, OllamaName: OllamaName(name)}
	for _, j := range jobs {
		res.Files = append(res.Files, j.name)
		res.Sizes = append(res.Sizes, j.size)
		res.Bytes += j.size
		res.Refetch += j.refetched.Load()
	}
	if req.Path != "" {
		res.PathNote = ollamaPathNote(req.Path, p.opts.OllamaDir, modelFile)
	}
	res.Fetched = p.fetched(jobs)
	progress(p.snapshot(PhaseDone, "", jobs, 0))
	return res, nil
}

// importDir uses a local directory in place (file:// and OME's local://),
// checking that it exists and is readable; with a Path it is linked there.
func (p *Puller) importDir(_ context.Context, u v1.StorageURI, req Request, progress func(Progress)) (*Result, error) {
	var files []string
	var sizes []int64
	var total int64
	err := filepath.WalkDir(u.Path, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() != "." && len(d.Name()) > 0 && d.Name()[0] == '.' && path != u.Path {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(u.Path, path)
		st, err := os.Stat(path) // follows links
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		sizes = append(sizes, st.Size())
		total += st.Size()
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, &Error{Reason: ReasonLocalPathNotFound, Message: fmt.Sprintf("%s does not exist on this host: copy the model there or fix storageUri", u.Path), Err: err}
	}
	if err != nil {
		return nil, &Error{Reason: ReasonStorageNotWritable, Message: fmt.Sprintf("reading %s: %v", u.Path, err), Err: err}
	}
	if len(files) == 0 {
		return nil, &Error{Reason: ReasonNoFiles, Message: fmt.Sprintf("%s is empty", u.Path)}
	}
	res := &Result{Source: req.URI, Dir: u.Path, Files: files, Sizes: sizes, Bytes: total}
	if req.Path != "" && filepath.Clean(req.Path) != u.Path {
		if err := modelstore.Materialize(req.Path, u.Path, files); err != nil {
			return nil, &Error{Reason: ReasonStorageNotWritable, Message: fmt.Sprintf("placing the model at storage.path %s: %v", req.Path, err), Err: err}
		}
		res.Path = req.Path
	}
	progress(Progress{Phase: PhaseDone, FilesDone: len(files), FilesTotal: len(files), BytesDone: total, BytesTotal: total, LastProgress: p.opts.Now()})
	return res, nil
}

// ollamaPathNote handles storage.path for an ollama:// model. One Ollama
// server reads one store (OLLAMA_MODELS), so the files stay there; the
// directory gets a link model.gguf to the weights blob, for tools that read
// a directory (llama.cpp, the planner). Failing to link fails nothing: the
// note says why the directory was not used.
func ollamaPathNote(dir, store, modelFile string) string {
	base := fmt.Sprintf("storage.path %s is not where an ollama:// model lives: its files stay in the Ollama store %s (OLLAMA_MODELS), because one Ollama server reads one store", dir, store)
	if modelFile == "" {
		return base + "; the manifest names no weights layer, so nothing was linked there"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return base + "; storage.path was not used: " + err.Error()
	}
	link := filepath.Join(dir, "model.gguf")
	if st, err := os.Lstat(link); err == nil && st.Mode()&os.ModeSymlink == 0 {
		return base + fmt.Sprintf("; storage.path was not used: %s exists and is not a link Citadel made", link)
	}
	if err := modelstore.SymlinkAtomic(modelFile, link); err != nil {
		return base + "; storage.path was not used: " + err.Error()
	}
	return base + fmt.Sprintf("; %s links to the weights blob", link)
}

func manifestDigest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// retryNotices returns a flag that is true while a pull resolves its files, and a function that reports a
// metadata retry as a warning of the Resolving phase (status shows it: "rate limited …: retrying in 3s
// (Retry-After), attempt 2 of 6"). Once downloads run, retries are the download engine's to report.
func (p *Puller) retryNotices(progress func(Progress)) (*atomic.Bool, func(string)) {
	resolving := &atomic.Bool{}
	resolving.Store(true)
	return resolving, func(msg string) {
		if resolving.Load() {
			progress(Progress{Phase: PhaseResolving, Warning: msg, LastProgress: p.opts.Now()})
		}
	}
}

// downloadHostError makes a download host (a CDN the hub or registry redirects to) that does not resolve a
// retryable DNSFailure naming that host: the endpoint answered, so this is the network's or the CDN's doing,
// not a wrong HF_ENDPOINT. Other errors are returned as they are.
func downloadHostError(err error, file string) error {
	var hu *hub.UnresolvedHostError
	var ru *registry.UnresolvedHostError
	if errors.As(err, &hu) || errors.As(err, &ru) {
		return &Error{Reason: ReasonDNSFailure, File: file, Message: err.Error(), Retryable: true, Err: err}
	}
	return err
}

// RetryAfter is how long the hub or registry asked to wait before trying err's pull again (429, or a 5xx
// with Retry-After), if it said.
func RetryAfter(err error) (time.Duration, bool) {
	if d, ok := hub.RetryAfter(err); ok {
		return d, true
	}
	return registry.RetryAfter(err)
}

// CheckFiles reads the metadata of a pulled model (config.json, safetensors headers, a GGUF) as the
// planner and the engines will, so that files no engine can load fail the pull instead of being reported
// as pulled: a hostile or damaged header (a length of 2^40, invalid JSON) is an *Error InvalidModelFiles.
// Other read errors (no config.json, say) are returned as they are: the model may still be usable.
func CheckFiles(res *Result) (modelinfo.Info, error) {
	dir := res.Dir
	if res.Path != "" {
		dir = res.Path
	}
	if res.ModelFile != "" {
		// An Ollama weights blob has no .gguf name: show it to FromDir as one.
		tmp, err := os.MkdirTemp("", "citadel-gguf-*")
		if err != nil {
			return modelinfo.Info{}, err
		}
		defer os.RemoveAll(tmp)
		if err := os.Symlink(res.ModelFile, filepath.Join(tmp, "model.gguf")); err != nil {
			return modelinfo.Info{}, err
		}
		dir = tmp
	}
	info, err := modelinfo.FromDir(dir)
	var fe *modelinfo.FormatError
	if errors.As(err, &fe) {
		return info, &Error{Reason: ReasonInvalidModelFiles, Message: fmt.Sprintf("downloaded and verified, but unusable: %v; the repository's files are damaged or hostile: report it to the repository owner", err), Err: err}
	}
	return info, err
}
