package pull

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/modelstore"
	"citadel.dev/citadel/internal/registry"
)

// Fetcher opens bytes [start, end] (end inclusive) of one remote file.
type Fetcher func(ctx context.Context, start, end int64) (io.ReadCloser, error)

// fileJob is one file to bring to dest, verified against etag.
type fileJob struct {
	name    string // path in the repository, for messages
	dest    string // final blob path
	partial string // resumable partial file
	size    int64
	etag    string // sha256 or git sha1 (hex)
	fetch   Fetcher

	done      atomic.Int64 // bytes on disk and accounted
	refetched atomic.Int64 // bytes fetched again after a resume or retry
	resumed   atomic.Int64 // bytes found in the partial file when this pull began
	state     atomic.Value // string: queued, downloading, verifying, done, cached, failed
	lastByte  atomic.Int64 // unix nanos of the last byte received
	received  atomic.Int64 // bytes read from the network, written or not yet
	// noRange is set when the source answered a ranged GET with the whole
	// file (200): the file is then fetched in one stream from byte 0.
	noRange atomic.Bool
	warning atomic.Value // string: a one-time warning about this file (a Notice)
	noticed atomic.Bool  // the warning was reported
	// opened is closed (once) when a ranged request of the current
	// downloadPartial has been answered.
	opened *gate
}

// gate is closed once.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// Notice is a one-time warning about one file of a pull (a server that
// ignores Range): reported in exactly one Progress, so that whoever turns
// progress into events makes one event of it.
type Notice struct {
	Reason  string `json:"reason"`
	File    string `json:"file"`
	Message string `json:"message"`
}

// notice returns the file's warning the first time it is asked after the
// warning is set.
func (j *fileJob) notice() (Notice, bool) {
	w, _ := j.warning.Load().(string)
	if w == "" || !j.noticed.CompareAndSwap(false, true) {
		return Notice{}, false
	}
	return Notice{Reason: ReasonRangeIgnored, File: j.name, Message: w}, true
}

// partState is the sidecar of a partial file: which chunks are complete,
// and how far each started chunk got. It is written atomically after each
// chunk and every 250 ms in between, so that a resumed download
// fetches again at most what was in flight.
type partState struct {
	Size      int64   `json:"size"`
	ETag      string  `json:"etag"`
	ChunkSize int64   `json:"chunkSize"`
	Progress  []int64 `json:"progress"` // bytes written from each chunk's start
}

// engine downloads files in parallel ranged chunks with resume, stall
// detection, retries and verification.
type engine struct {
	chunkSize    int64
	chunkWorkers int           // per file
	conns        chan struct{} // global connection slots
	stallTimeout time.Duration
	attemptIdle  time.Duration // a request with no bytes for this long is abandoned and retried
	maxAttempts  int
	backoff      func(attempt int) time.Duration
	now          func() time.Time
	bufs         sync.Pool // *[]byte of 1 MiB
	// cores and cpuUsed let the ramp tell streams held back by this
	// host's CPUs from streams held back by the source: cpuUsed is the CPU
	// time the process has used (nil or not ok: unknown, and the ramp
	// judges by throughput alone).
	cores   int
	cpuUsed func() (time.Duration, bool)
	// lock serialises work on one destination within this process.
	lock func(ctx context.Context, path string) (unlock func(), err error)
}

func (e *engine) chunks(size int64) int {
	if size == 0 {
		return 0
	}
	return int((size + e.chunkSize - 1) / e.chunkSize)
}

// download brings one file to job.dest. A file already at dest with the
// right size is trusted here (verification of existing blobs is the
// caller's choice: see Options.Reverify).
func (e *engine) download(ctx context.Context, job *fileJob) error {
	// Two pulls of the same blob (two models of one repository) take turns:
	// the second finds the blob placed by the first.
	if e.lock != nil {
		unlock, err := e.lock(ctx, job.dest)
		if err != nil {
			return err
		}
		defer unlock()
	}
	job.lastByte.Store(e.now().UnixNano())
	if st, err := os.Stat(job.dest); err == nil && st.Size() == job.size {
		job.done.Store(job.size)
		job.state.Store("cached")
		return nil
	}
	job.state.Store("downloading")
	if err := os.MkdirAll(filepath.Dir(job.partial), 0o755); err != nil {
		return classify(err, job.name)
	}
	for round := 0; ; round++ {
		var sum string
		var err error
		if !job.noRange.Load() {
			sum, err = e.downloadPartial(ctx, job)
			if rangeIgnored(err) {
				job.noRange.Store(true)
				job.warning.Store(fmt.Sprintf("the server ignores Range requests for %s (it answered 200 with the whole file): downloading it in one stream from the start, without splitting; an interrupted transfer of this file starts over", job.name))
				job.refetched.Add(job.done.Load() - job.resumed.Load())
				job.resumed.Store(0)
			}
		}
		if job.noRange.Load() {
			sum, err = e.downloadStream(ctx, job)
		}
		if err == nil && sum != job.etag {
			err = fmt.Errorf("%w: %s hashes to %s, want %s", modelstore.ErrChecksum, job.name, sum, job.etag)
		}
		if err != nil {
			if errors.Is(err, modelstore.ErrChecksum) {
				// Start over once: a corrupted byte on the wire or a
				// partial file damaged by a crash. Twice is the source.
				os.Remove(job.partial)
				os.Remove(job.partial + ".state")
				job.refetched.Add(job.done.Load())
				job.done.Store(0)
				if round == 0 {
					job.state.Store("downloading")
					continue
				}
				return &Error{Reason: ReasonChecksumMismatch, File: job.name, Err: err,
					Message: fmt.Sprintf("%s was downloaded twice and both times its content did not match the expected hash %s (%v); the source serves corrupt data: report it to the repository owner or mirror operator", job.name, job.etag, err)}
			}
		}
		if err != nil {
			job.state.Store("failed")
			return err
		}
		if err := os.Rename(job.partial, job.dest); err != nil {
			return classify(err, job.name)
		}
		os.Remove(job.partial + ".state")
		job.state.Store("done")
		return nil
	}
}

// downloadPartial fills job.partial, resuming from its sidecar state, and
// returns the hash of its content (hex, in the etag's algorithm). Hashing
// runs alongside the download: bytes that continue the hashed prefix are
// hashed from the buffer they arrived in, and the rest from the page cache
// as soon as the prefix reaches them, so verification costs no extra pass
// at the end.
func (e *engine) downloadPartial(ctx context.Context, job *fileJob) (string, error) {
	h, ok := modelstore.Hasher(job.etag, job.size)
	if !ok {
		return "", &Error{Reason: ReasonUpstreamError, File: job.name, Message: fmt.Sprintf("etag %q is neither a sha256 nor a git sha1: %s cannot be verified", job.etag, job.name)}
	}
	f, err := os.OpenFile(job.partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", classify(err, job.name)
	}
	defer f.Close()
	st := e.loadState(job)
	if fi, err := f.Stat(); err != nil {
		return "", classify(err, job.name)
	} else if fi.Size() != job.size {
		if err := f.Truncate(job.size); err != nil {
			return "", classify(err, job.name)
		}
	}
	var resumed int64
	for _, p := range st.Progress {
		resumed += p
	}
	job.done.Store(resumed)
	job.resumed.CompareAndSwap(0, resumed)
	if job.size == 0 {
		return hex.EncodeToString(h.Sum(nil)), nil
	}

	// The hasher consumes chunks in file order as they complete.
	completed := make(chan int, len(st.Progress))
	for i := range st.Progress {
		if st.Progress[i] >= e.chunkLen(job.size, i) {
			completed <- i
		}
	}
	var mu sync.Mutex // guards st and its saving
	written := func(i int) int64 {
		mu.Lock()
		defer mu.Unlock()
		return st.Progress[i]
	}
	hashDone := make(chan error, 1)
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	front := newHashFront(h, &e.bufs)
	defer front.close()
	go func() {
		hashDone <- e.hashInOrder(hctx, f, front, job.size, len(st.Progress), completed, written)
	}()

	lastSave := time.Time{}
	save := func(force bool) {
		mu.Lock()
		defer mu.Unlock()
		if !force && e.now().Sub(lastSave) < 250*time.Millisecond {
			return
		}
		lastSave = e.now()
		b, _ := json.Marshal(st)
		_ = modelstore.WriteFileAtomic(job.partial+".state", b, 0o644)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	workers := min(e.chunkWorkers, len(st.Progress))
	// active holds a token per chunk in flight and per stream the ramp
	// holds back: the file starts with one stream, and more are added
	// while they raise its throughput (see ramp).
	active := make(chan struct{}, workers)
	for range workers - 1 {
		active <- struct{}{}
	}
	opened := &gate{ch: make(chan struct{})}
	job.opened = opened
	rampDone := make(chan struct{})
	defer close(rampDone)
	go e.ramp(job, opened, active, workers, rampDone)
	for range workers {
		wg.Go(func() {
			for i := range next {
				err := e.fetchChunk(ctx, job, f, front, st, i, &mu, save)
				<-active
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
					return
				}
				completed <- i
			}
		})
	}
feed:
	for i := range st.Progress {
		mu.Lock()
		complete := st.Progress[i] >= e.chunkLen(job.size, i)
		mu.Unlock()
		if complete {
			continue
		}
		select {
		case active <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	front.close() // nothing is offered any more
	save(true)
	select {
	case err := <-errc:
		return "", err
	default:
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	job.state.Store("verifying")
	if err := <-hashDone; err != nil {
		return "", classify(err, job.name)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// rampEvery is how often the ramp measures a file's throughput.
const rampEvery = 250 * time.Millisecond

// ramp sets how many of a file's chunks are fetched at once. It holds all
// but one stream back until a ranged request has been answered (a server
// that ignores Range is asked once, not once per chunk), then adds one
// stream at a time: it lets the new stream settle for rampEvery (a
// connection to a distant CDN takes a few round trips to send its first
// byte), measures the file's throughput, and keeps the stream when it grew
// by at least half of what one of the n streams before carried (n=1: 1.5×,
// n=2: 1.25×, …); otherwise it gives the stream back and stops. One
// stream is enough when it already runs at the source's or the disk's
// speed, and every stream more costs CPU and kernel time for nothing (two
// writers of one file also take turns on its lock); a CDN that caps each
// connection gets them all. The first choice, one stream or more, is the
// one that matters on a fast link, and a single window of rampEvery is
// noisy there (a new stream's first window also carries what its socket
// buffered while it settled): one stream and two are each measured over
// rampWindows windows. Before it adds a stream, the ramp asks whether the
// CPUs can carry one: when the process already uses more CPU than the
// cores would have for one stream more (the streams' reads and writes and
// the hashing), the streams run at this host's speed, not the source's,
// and another would take its time from them.
func (e *engine) ramp(job *fileJob, opened *gate, active chan struct{}, workers int, done <-chan struct{}) {
	if workers <= 1 {
		return
	}
	select {
	case <-opened.ch:
	case <-done:
		return
	}
	t := time.NewTicker(rampEvery)
	defer t.Stop()
	n, prev, settling := 1, 0.0, true // the first stream settles too
	last, lastAt := job.received.Load(), e.now()
	windows := 0 // measured since the stream settled
	from, fromAt := last, lastAt
	cpuFrom, cpuOK := e.cpu()
	for {
		select {
		case <-t.C:
		case <-done:
			return
		}
		now := e.now()
		d := job.received.Load()
		dt := now.Sub(lastAt).Seconds()
		if settling || dt <= 0 || d == last {
			settling = settling && d == last // nothing moved yet: keep waiting
			last, lastAt = d, now
			from, fromAt, windows = d, now, 0
			cpuFrom, cpuOK = e.cpu()
			continue
		}
		last, lastAt = d, now
		if windows++; n <= 2 && windows < rampWindows {
			continue
		}
		rate := float64(d-from) / now.Sub(fromAt).Seconds()
		if prev > 0 && rate < prev*(1+0.5/float64(n-1)) {
			select { // the last stream added too little: take it back
			case active <- struct{}{}:
			case <-done:
			}
			return
		}
		if n == workers {
			return
		}
		if cpu, ok := e.cpu(); ok && cpuOK {
			busy := float64(cpu-cpuFrom) / float64(now.Sub(fromAt)) // CPUs the process kept busy
			if busy*float64(n+1)/float64(n) > float64(e.cores) {
				return // no core is free for another stream
			}
		}
		select { // one more stream
		case <-active:
		case <-done:
			return
		}
		n, prev, settling = n+1, rate, true
	}
}

// rampWindows is how many windows of rampEvery measure one stream and two.
const rampWindows = 2

// cpu is the CPU time the process has used, when known.
func (e *engine) cpu() (time.Duration, bool) {
	if e.cpuUsed == nil || e.cores <= 0 {
		return 0, false
	}
	return e.cpuUsed()
}

// hashInOrder hashes the file in order until its n chunks are hashed: a
// chunk once it arrives on completed (chunks complete in any order), and,
// when a stream wrote past the hashed prefix (hf.behind), what is written
// in order beyond it (written(i) is how many bytes of chunk i, from its
// start, are on disk; nil: only completed chunks are hashed).
func (e *engine) hashInOrder(ctx context.Context, f *os.File, hf *hashFront, size int64, n int, completed <-chan int, written func(i int) int64) error {
	ready := make([]bool, n)
	var buf []byte
	next := 0
	for next < n {
		select {
		case i := <-completed:
			ready[i] = true
		case <-hf.behind:
		case <-ctx.Done():
			return ctx.Err()
		}
		for next < n {
			length := e.chunkLen(size, next)
			w := length
			if !ready[next] {
				if written == nil {
					break
				}
				w = written(next)
			}
			if err := hf.readBack(f, int64(next)*e.chunkSize+w, &buf); err != nil {
				return err
			}
			if w < length {
				break
			}
			next++
		}
	}
	return nil
}

// partialBytes is how much of job a resumable partial file already holds,
// per its sidecar (0 when there is none or it belongs to another file).
func partialBytes(job *fileJob) int64 {
	b, err := os.ReadFile(job.partial + ".state")
	if err != nil {
		return 0
	}
	var st partState
	if json.Unmarshal(b, &st) != nil || st.Size != job.size || st.ETag != job.etag {
		return 0
	}
	var n int64
	for _, p := range st.Progress {
		n += max(p, 0)
	}
	return min(n, job.size)
}

func (e *engine) chunkLen(size int64, i int) int64 {
	return min(e.chunkSize, size-int64(i)*e.chunkSize)
}

// loadState reads the sidecar, or starts afresh when it is missing or was
// written for another file or chunk size.
func (e *engine) loadState(job *fileJob) *partState {
	fresh := &partState{Size: job.size, ETag: job.etag, ChunkSize: e.chunkSize, Progress: make([]int64, e.chunks(job.size))}
	b, err := os.ReadFile(job.partial + ".state")
	if err != nil {
		return fresh
	}
	var st partState
	if json.Unmarshal(b, &st) != nil || st.Size != job.size || st.ETag != job.etag || st.ChunkSize != e.chunkSize || len(st.Progress) != len(fresh.Progress) {
		return fresh
	}
	for i, p := range st.Progress {
		if p < 0 || p > e.chunkLen(job.size, i) {
			return fresh
		}
	}
	return &st
}

// fetchChunk fetches what is missing of chunk i, retrying transient
// failures with backoff until the file has made no progress for the stall
// timeout or the attempts run out.
func (e *engine) fetchChunk(ctx context.Context, job *fileJob, f *os.File, front *hashFront, st *partState, i int, mu *sync.Mutex, save func(bool)) error {
	start := int64(i) * e.chunkSize
	length := e.chunkLen(job.size, i)
	return e.retry(ctx, job, func() (bool, error) {
		mu.Lock()
		got := st.Progress[i]
		mu.Unlock()
		if got >= length {
			save(true)
			return true, nil
		}
		return false, e.fetchRange(ctx, job, f, start+got, start+length-1, front, func(n int64) {
			mu.Lock()
			st.Progress[i] += n
			mu.Unlock()
			save(false)
		})
	})
}

// downloadStream fetches the whole of job in one request from byte 0, for a
// source that ignores Range: nothing to split and nothing to resume, so
// every attempt starts over. The bytes are hashed as they are written.
func (e *engine) downloadStream(ctx context.Context, job *fileJob) (string, error) {
	h, ok := modelstore.Hasher(job.etag, job.size)
	if !ok {
		return "", &Error{Reason: ReasonUpstreamError, File: job.name, Message: fmt.Sprintf("etag %q is neither a sha256 nor a git sha1: %s cannot be verified", job.etag, job.name)}
	}
	os.Remove(job.partial + ".state") // a chunk map means nothing without Range
	f, err := os.OpenFile(job.partial, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", classify(err, job.name)
	}
	defer f.Close()
	var got int64
	front := newHashFront(h, &e.bufs)
	defer func() { front.close() }()
	err = e.retry(ctx, job, func() (bool, error) {
		if job.size == 0 || got >= job.size {
			return true, nil
		}
		if got > 0 { // an earlier attempt broke off: start over
			job.refetched.Add(got)
			job.done.Add(-got)
			got = 0
		}
		front.close() // its hasher is done with h
		front = newHashFront(hashReset(front.h, job), &e.bufs)
		return false, e.fetchRange(ctx, job, f, 0, job.size-1, front, func(n int64) { got += n })
	})
	front.close()
	if err != nil {
		return "", err
	}
	job.state.Store("verifying")
	var buf []byte
	if err := front.readBack(f, job.size, &buf); err != nil { // nothing left, unless a write was not in order
		return "", classify(err, job.name)
	}
	return hex.EncodeToString(front.h.Sum(nil)), nil
}

// hashReset returns h emptied (a git sha1 hasher carries its header, so it
// is made anew).
func hashReset(h hash.Hash, job *fileJob) hash.Hash {
	if n, ok := modelstore.Hasher(job.etag, job.size); ok {
		return n
	}
	h.Reset()
	return h
}

// retry runs try until it reports the work complete, retrying transient
// failures with backoff until the file has made no progress for the stall
// timeout, the attempts run out, or the source closes the body at the same
// byte several times in a row (TruncatedBody).
func (e *engine) retry(ctx context.Context, job *fileJob, try func() (complete bool, err error)) error {
	var lastErr *Error
	var silent time.Duration // this chunk's requests spent silent since a range last completed
	truncAt, truncSame := int64(-1), 0
	for attempt := 1; ; attempt++ {
		complete, err := try()
		if complete {
			return nil
		}
		if err == nil {
			silent = 0 // a whole range arrived: the source is healthy
			continue   // the loop re-checks completeness
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if rangeIgnored(err) && !job.noRange.Load() {
			return err // download switches to one stream
		}
		lastErr = classify(err, job.name)
		var metaErr *hub.MetadataError
		if errors.As(err, &metaErr) {
			// Headers that contradict themselves mid-download (a length
			// that does not match the range) are a glitch of this response.
			lastErr.Reason, lastErr.Retryable = ReasonDownloadIncomplete, true
		}
		if lastErr.Reason == ReasonDownloadStalled || lastErr.Reason == ReasonDownloadIncomplete {
			lastErr.Retryable = true
		}
		if !lastErr.Retryable || lastErr.Reason == ReasonInsufficientStorage || lastErr.Reason == ReasonStorageNotWritable {
			return lastErr // the disk will not fix itself within this pull
		}
		var tr *truncatedError
		if errors.As(err, &tr) {
			if tr.at == truncAt {
				truncSame++
			} else {
				truncAt, truncSame = tr.at, 1
			}
			if truncSame >= truncatedRepeats {
				return &Error{Reason: ReasonTruncatedBody, File: job.name, Retryable: true, Err: err, FileBytesReceived: tr.at, FileBytesTotal: job.size,
					Message: fmt.Sprintf("the body of %s closed at byte %d of %d, attempt %d (at the same byte %d times in a row): the source sends less than it announces, so retrying now will not help; the file is cut short by the hub, the mirror or a proxy in between: report it to its operator or use another endpoint", job.name, tr.at, job.size, attempt, truncSame)}
			}
		} else {
			truncAt, truncSame = -1, 0
		}
		idle := e.now().Sub(time.Unix(0, job.lastByte.Load()))
		if lastErr.Reason == ReasonDownloadStalled {
			// Silence counts even when each retry trickles a few bytes:
			// a source that keeps going quiet has stalled.
			silent += e.attemptIdle
		}
		if max(idle, silent) >= e.stallTimeout {
			return e.stalled(job, lastErr, idle, silent)
		}
		if attempt >= e.maxAttempts {
			lastErr.Message = fmt.Sprintf("%s (gave up after %d attempts)", lastErr.Message, attempt)
			return lastErr
		}
		wait := e.backoff(attempt)
		if ra, ok := hub.RetryAfter(lastErr.Err); ok {
			wait = ra
		}
		// Never wait past the stall deadline: fail in time instead.
		if left := e.stallTimeout - max(idle, silent); wait > left {
			wait = max(left, 0)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// truncatedRepeats is how many attempts in a row must end at the same byte
// before the body is called truncated at the source.
const truncatedRepeats = 3

// truncatedError is a body that ended (EOF) before its range did.
type truncatedError struct {
	at  int64 // file offset where it ended
	err error
}

func (t *truncatedError) Error() string {
	return fmt.Sprintf("the connection ended at byte %d: %v", t.at, t.err)
}
func (t *truncatedError) Unwrap() error { return t.err }

func rangeIgnored(err error) bool {
	var a *hub.RangeIgnoredError
	var b *registry.RangeIgnoredError
	return err != nil && (errors.As(err, &a) || errors.As(err, &b))
}

// stalled names a file that made no progress for the stall timeout. idle is
// the time since its last byte; silent the time its requests spent
// abandoned for silence. "No bytes" is said only when none came.
func (e *engine) stalled(job *fileJob, last *Error, idle, silent time.Duration) *Error {
	var msg string
	if idle >= e.stallTimeout {
		msg = fmt.Sprintf("no bytes of %s for %s (received %d of %d bytes)", job.name, idle.Round(time.Second), job.done.Load(), job.size)
	} else {
		msg = fmt.Sprintf("%s keeps going silent: its requests were abandoned after %s without a byte, %s in all, and the few bytes between did not complete a range (received %d of %d bytes, the last %s ago)",
			job.name, e.attemptIdle, silent.Round(time.Second), job.done.Load(), job.size, idle.Round(time.Millisecond))
	}
	reason := ReasonDownloadStalled
	if last != nil && last.Reason != ReasonDownloadStalled && last.Reason != ReasonDownloadIncomplete {
		// The file stopped moving because every attempt failed: name that.
		reason = last.Reason
		msg += "; last error: " + last.Message
	} else {
		msg += "; the source stopped sending: check the network path to the hub or mirror, or raise --stall-timeout for a slow link"
	}
	return (&Error{Reason: reason, File: job.name, Message: msg, Retryable: true, Err: last, FileBytesReceived: job.done.Load(), FileBytesTotal: job.size, Idle: idle}).answeredAs(last)
}

// errStall marks a request abandoned for silence.
var errStall = errors.New("no bytes received")

// fetchRange streams [from, to] into f at from, calling progress for every
// write and offering what it writes to hf (which may be nil). A request silent for
// attemptIdle is abandoned with errStall; the watchdog sees every byte as it
// arrives, so a slow link is never taken for a silent one.
func (e *engine) fetchRange(ctx context.Context, job *fileJob, f *os.File, from, to int64, hf *hashFront, progress func(int64)) error {
	select {
	case e.conns <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.conns }()
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The watchdog cancels a silent request and closes its body, so that a
	// read blocked in any transport returns. It wakes once per attemptIdle
	// and re-arms for what is left when a byte came meanwhile.
	var bodyMu sync.Mutex
	var body io.ReadCloser
	var lastRead atomic.Int64
	lastRead.Store(e.now().UnixNano())
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTimer(e.attemptIdle)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if quiet := e.now().Sub(time.Unix(0, lastRead.Load())); quiet < e.attemptIdle {
				t.Reset(e.attemptIdle - quiet)
				continue
			}
			cancel(errStall)
			bodyMu.Lock()
			if body != nil {
				body.Close()
			}
			bodyMu.Unlock()
			return
		}
	}()

	fetchFrom, fetchTo := from, to
	if job.noRange.Load() {
		fetchFrom, fetchTo = 0, -1 // no Range header at all
	}
	b, err := job.fetch(rctx, fetchFrom, fetchTo)
	if err != nil {
		if context.Cause(rctx) == errStall {
			return &Error{Reason: ReasonDownloadStalled, File: job.name, Message: fmt.Sprintf("the server accepted the request but sent nothing for %s", e.attemptIdle), Retryable: true, Err: err}
		}
		return err
	}
	bodyMu.Lock()
	body = b
	bodyMu.Unlock()
	defer b.Close()
	if job.opened != nil {
		job.opened.open()
	}
	r := &watchedReader{r: b, last: &lastRead, job: job, now: e.now}
	buf := e.bufs.Get().(*[]byte)
	defer func() { e.bufs.Put(buf) }()
	off := from
	for off <= to {
		// Fill the buffer before writing: one write per megabyte instead
		// of one per network read, unless the link is slow.
		n, rerr := readSome(r, (*buf)[:min(int64(len(*buf)), to-off+1)], 64<<10, e.now)
		if n > 0 {
			if werr := writePieces(f, (*buf)[:n], off); werr != nil {
				return classify(werr, job.name)
			}
			job.done.Add(int64(n))
			progress(int64(n))
			if hf.offer(buf, n, off) { // hashed meanwhile on another core
				buf = e.bufs.Get().(*[]byte)
			}
			off += int64(n)
		}
		if rerr != nil {
			if off > to {
				return nil
			}
			if context.Cause(rctx) == errStall {
				return &Error{Reason: ReasonDownloadStalled, File: job.name, Retryable: true, Err: rerr,
					Message: fmt.Sprintf("no bytes for %s at byte %d", e.attemptIdle, off)}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF) {
				return &Error{Reason: ReasonDownloadIncomplete, File: job.name, Retryable: true, Err: &truncatedError{at: off, err: rerr},
					Message: fmt.Sprintf("the connection ended at byte %d of %d (truncated body)", off, job.size)}
			}
			return rerr
		}
	}
	return nil
}

// writePiece is the most writePieces hands the kernel at once. The page
// cache takes a write's bytes in folios as large as the write: a 1 MiB
// write, in 1 MiB folios, which on a VM whose balloon hands free memory
// back to its host come from memory the host must fault in again. 1 GiB
// written in 1 MiB writes cost 1.7-2.2 s of system CPU there, in 128 KiB
// writes 0.2-0.25 s (and as little either way where memory is warm).
const writePiece = 128 << 10

// writePieces writes p at off in writes of at most writePiece bytes.
func writePieces(f *os.File, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := f.WriteAt(p[:min(len(p), writePiece)], off)
		if err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// watchedReader records the time of every read that brings bytes.
type watchedReader struct {
	r    io.Reader
	last *atomic.Int64
	job  *fileJob
	now  func() time.Time
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		t := w.now().UnixNano()
		w.job.received.Add(int64(n))
		w.last.Store(t)
		w.job.lastByte.Store(t)
	}
	return n, err
}

// defaultBackoff is exponential with jitter: 0.5 s, 1 s, 2 s … capped at 10 s.
func defaultBackoff(attempt int) time.Duration {
	d := min(500*time.Millisecond<<min(attempt-1, 5), 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

// flushAfter is how long readSome holds bytes of a slow stream before
// handing them on.
const flushAfter = 250 * time.Millisecond

// readSome reads into p until it is full, the reader fails, or a read
// returns less than small bytes while at least small are buffered or the
// buffer has been filling for flushAfter (so a slow stream still reports
// progress promptly).
func readSome(r io.Reader, p []byte, small int, now func() time.Time) (int, error) {
	n := 0
	began := now()
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, nil
		}
		if m < small && (n >= small || now().Sub(began) >= flushAfter) {
			return n, nil
		}
	}
	return n, nil
}
