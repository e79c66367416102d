package pull

import (
	"hash"
	"os"
	"sync"
	"sync/atomic"
)

// frontQueue is how many buffers may wait for the front's hasher.
const frontQueue = 4

// hashFront is the hash of the file's completed prefix [0, off). A buffer
// just written exactly at the end of what is hashed or queued is handed,
// buffer and all, to the front's own goroutine, so the stream goes on
// reading while it is hashed (one stream in order hashes everything so, on
// the other core, with no second read and no copy); the rest is read back
// from the page cache by hashInOrder. A buffer written past the end of the
// prefix wakes hashInOrder (behind), which reads back what is written in
// order beyond the prefix: a stream that got ahead of the prefix (another
// stream held the chunk before its own) is caught up with, and its next
// buffers are handed over again. Whatever took a byte to the hash, it was at
// off: the hash is the file's prefix.
type hashFront struct {
	mu  sync.Mutex // held while hashing
	h   hash.Hash
	off atomic.Int64 // end of the hashed prefix

	qmu     sync.Mutex   // keeps the queue in the order of the claims
	claimed atomic.Int64 // end of the hashed prefix and the buffers queued after it
	queue   chan frontPiece
	pool    *sync.Pool    // where hashed buffers go back
	behind  chan struct{} // a buffer was written past the prefix
	done    chan struct{}
	once    sync.Once
}

type frontPiece struct {
	buf *[]byte
	n   int
	off int64
}

// newHashFront starts the hashing goroutine; close stops it.
func newHashFront(h hash.Hash, pool *sync.Pool) *hashFront {
	hf := &hashFront{h: h, pool: pool, queue: make(chan frontPiece, frontQueue), behind: make(chan struct{}, 1), done: make(chan struct{})}
	go hf.run()
	return hf
}

func (hf *hashFront) run() {
	defer close(hf.done)
	for p := range hf.queue {
		hf.mu.Lock()
		if hf.off.Load() == p.off { // else read back meanwhile
			hf.h.Write((*p.buf)[:p.n])
			hf.off.Add(int64(p.n))
		}
		hf.mu.Unlock()
		hf.pool.Put(p.buf)
	}
}

// offer hands over buf, whose first n bytes were just written at off, when
// they continue the prefix. It reports whether it took buf: the caller
// then takes another buffer, as buf goes back to the pool once hashed.
func (hf *hashFront) offer(buf *[]byte, n int, off int64) bool {
	if hf == nil {
		return false
	}
	if hf.claimed.Load() == off {
		hf.qmu.Lock()
		defer hf.qmu.Unlock()
		if hf.claimed.CompareAndSwap(off, off+int64(n)) {
			hf.queue <- frontPiece{buf: buf, n: n, off: off}
			return true
		}
	}
	select {
	case hf.behind <- struct{}{}:
	default:
	}
	return false
}

// close waits until every buffer handed over is hashed (or passed over)
// and stops the goroutine. Nothing may be offered after it.
func (hf *hashFront) close() {
	hf.once.Do(func() {
		close(hf.queue)
		<-hf.done
	})
}

// readBack hashes what is not yet hashed of the file below end, reading it
// from f (bytes still queued were written before they were offered).
func (hf *hashFront) readBack(f *os.File, end int64, buf *[]byte) error {
	hf.mu.Lock()
	defer hf.mu.Unlock()
	off := hf.off.Load()
	if off < end && *buf == nil {
		*buf = make([]byte, 1<<20)
	}
	for off < end {
		m, err := f.ReadAt((*buf)[:min(int64(len(*buf)), end-off)], off)
		hf.h.Write((*buf)[:m])
		off += int64(m)
		hf.off.Store(off)
		if err != nil && off < end {
			return err
		}
	}
	for { // later offers continue from here
		c := hf.claimed.Load()
		if c >= off || hf.claimed.CompareAndSwap(c, off) {
			return nil
		}
	}
}
