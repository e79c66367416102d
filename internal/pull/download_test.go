package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testEngine() *engine {
	return &engine{
		chunkSize: 64 << 10, chunkWorkers: 4, conns: make(chan struct{}, 8),
		stallTimeout: 600 * time.Millisecond, attemptIdle: 150 * time.Millisecond, maxAttempts: 50,
		backoff: func(int) time.Duration { return 5 * time.Millisecond }, now: time.Now,
		bufs: sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }},
	}
}

func blob(n int, seed uint64) ([]byte, string) {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// source serves data with optional faults and counts the bytes it sent.
type source struct {
	data []byte
	sent atomic.Int64
	mu   sync.Mutex
	// fault, when set, may replace a request's body; it sees the request count.
	fault func(ctx context.Context, n int, start, end int64) io.ReadCloser
	n     int
}

func (s *source) fetch(ctx context.Context, start, end int64) (io.ReadCloser, error) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if s.fault != nil {
		if rc := s.fault(ctx, n, start, end); rc != nil {
			return rc, nil
		}
	}
	return &countingReader{r: bytes.NewReader(s.data[start : end+1]), n: &s.sent}, nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
func (c *countingReader) Close() error { return nil }

// blockingReader sends head, then nothing until closed or ctx ends.
type blockingReader struct {
	head []byte
	ctx  context.Context
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}
func (b *blockingReader) Close() error { return nil }

func job(dir string, src *source, etag string) *fileJob {
	j := &fileJob{name: "model.safetensors", dest: filepath.Join(dir, etag), partial: filepath.Join(dir, etag+".incomplete"), size: int64(len(src.data)), etag: etag, fetch: src.fetch}
	j.state.Store("queued")
	return j
}

func TestDownloadChunkedVerified(t *testing.T) {
	dir := t.TempDir()
	data, etag := blob(1<<20+123, 1)
	src := &source{data: data}
	j := job(dir, src, etag)
	if err := testEngine().download(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(j.dest)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("placed file differs (err %v)", err)
	}
	for _, p := range []string{j.partial, j.partial + ".state"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
	if src.sent.Load() != int64(len(data)) {
		t.Errorf("sent %d bytes for a %d-byte file", src.sent.Load(), len(data))
	}
	// A second download finds the blob and fetches nothing.
	j2 := job(dir, src, etag)
	if err := testEngine().download(t.Context(), j2); err != nil || j2.state.Load() != "cached" {
		t.Fatalf("second download: %v, state %v", err, j2.state.Load())
	}
}

func TestDownloadResumesAfterKill(t *testing.T) {
	dir := t.TempDir()
	data, etag := blob(1<<20, 2)
	// First run: cancel once about half the bytes are in, as a kill would.
	src := &source{data: data}
	ctx, cancel := context.WithCancel(t.Context())
	src.fault = func(ctx context.Context, n int, start, end int64) io.ReadCloser {
		if src.sent.Load() > int64(len(data))/2 {
			cancel()
		}
		return nil
	}
	e := testEngine()
	if err := e.download(ctx, job(dir, src, etag)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted download: %v", err)
	}
	first := src.sent.Load()
	// Second run resumes.
	src2 := &source{data: data}
	j := job(dir, src2, etag)
	if err := testEngine().download(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	again := first + src2.sent.Load() - int64(len(data))
	// At most the chunks that were in flight are fetched again.
	if limit := int64(e.chunkWorkers) * e.chunkSize; again > limit {
		t.Errorf("resume fetched %d bytes again, more than the %d in flight", again, limit)
	}
	if got, _ := os.ReadFile(j.dest); !bytes.Equal(got, data) {
		t.Fatal("resumed file differs")
	}
	t.Logf("first run %d bytes, resumed run %d bytes, fetched again %d", first, src2.sent.Load(), again)
}

func TestDownloadStall(t *testing.T) {
	dir := t.TempDir()
	data, etag := blob(300<<10, 3)
	src := &source{data: data}
	src.fault = func(ctx context.Context, n int, start, end int64) io.ReadCloser {
		if start >= 128<<10 { // every request past 128 KiB stalls after 1000 bytes
			return &blockingReader{head: data[start:min(start+1000, end+1)], ctx: ctx}
		}
		return nil
	}
	e := testEngine()
	began := time.Now()
	err := e.download(t.Context(), job(dir, src, etag))
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason != ReasonDownloadStalled {
		t.Fatalf("got %v, want DownloadStalled", err)
	}
	if took := time.Since(began); took > e.stallTimeout+2*time.Second {
		t.Errorf("took %s to notice a stall of %s", took, e.stallTimeout)
	}
	if pe.File != "model.safetensors" || !bytes.Contains([]byte(pe.Message), []byte("received")) {
		t.Errorf("message does not name the file and bytes received: %v", pe)
	}
}

func TestDownloadRetriesTruncatedBodies(t *testing.T) {
	dir := t.TempDir()
	data, etag := blob(256<<10, 4)
	src := &source{data: data}
	src.fault = func(ctx context.Context, n int, start, end int64) io.ReadCloser {
		if n <= 3 { // the first requests end early
			return io.NopCloser(bytes.NewReader(data[start : start+100]))
		}
		return nil
	}
	j := job(dir, src, etag)
	if err := testEngine().download(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(j.dest); !bytes.Equal(got, data) {
		t.Fatal("file differs after truncated bodies")
	}
}

func TestDownloadChecksum(t *testing.T) {
	data, etag := blob(200<<10, 5)
	corrupt := func(times int) func(ctx context.Context, n int, start, end int64) io.ReadCloser {
		var count atomic.Int32
		return func(ctx context.Context, n int, start, end int64) io.ReadCloser {
			if start == 0 && int(count.Add(1)) <= times {
				b := append([]byte(nil), data[start:end+1]...)
				b[10] ^= 0xff
				return io.NopCloser(bytes.NewReader(b))
			}
			return nil
		}
	}
	t.Run("corrupt once is fetched again", func(t *testing.T) {
		src := &source{data: data, fault: corrupt(1)}
		j := job(t.TempDir(), src, etag)
		if err := testEngine().download(t.Context(), j); err != nil {
			t.Fatal(err)
		}
		if j.refetched.Load() == 0 {
			t.Error("refetched bytes not counted")
		}
	})
	t.Run("corrupt twice fails", func(t *testing.T) {
		src := &source{data: data, fault: corrupt(2)}
		j := job(t.TempDir(), src, etag)
		err := testEngine().download(t.Context(), j)
		var pe *Error
		if !errors.As(err, &pe) || pe.Reason != ReasonChecksumMismatch {
			t.Fatalf("got %v, want ChecksumMismatch", err)
		}
		if _, err := os.Stat(j.dest); !os.IsNotExist(err) {
			t.Error("a corrupt file was placed")
		}
	})
}

func TestDownloadPermanentErrorFailsAtOnce(t *testing.T) {
	data, etag := blob(100<<10, 6)
	src := &source{data: data}
	j := job(t.TempDir(), src, etag)
	j.fetch = func(ctx context.Context, start, end int64) (io.ReadCloser, error) {
		return nil, &Error{Reason: ReasonUnauthorized, Message: "401", Retryable: false}
	}
	began := time.Now()
	err := testEngine().download(t.Context(), j)
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason != ReasonUnauthorized {
		t.Fatalf("got %v", err)
	}
	if time.Since(began) > 200*time.Millisecond {
		t.Error("a permanent error was retried")
	}
}
