package pull

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Streams that write chunks in pieces, in any order, and offer every piece
// to the front: the front hashes the file's bytes in order whichever way
// each byte got there (handed over or read back).
func TestHashFrontInAnyOrder(t *testing.T) {
	const chunk, chunks = 64 << 10, 24
	data := make([]byte, chunk*chunks-1000) // a short last chunk
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	want := sha256.Sum256(data)
	for _, streams := range []int{1, 2, 5} {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"))
		if err != nil {
			t.Fatal(err)
		}
		e := &engine{chunkSize: chunk, bufs: sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}}
		front := newHashFront(sha256.New(), &e.bufs)
		completed := make(chan int, chunks)
		var mu sync.Mutex
		progress := make([]int64, chunks)
		written := func(i int) int64 {
			mu.Lock()
			defer mu.Unlock()
			return progress[i]
		}
		hashed := make(chan error, 1)
		go func() {
			hashed <- e.hashInOrder(t.Context(), f, front, int64(len(data)), chunks, completed, written)
		}()
		next := make(chan int, chunks)
		for i := range chunks {
			next <- i
		}
		close(next)
		var wg sync.WaitGroup
		for range streams {
			wg.Go(func() {
				for i := range next {
					off, end := int64(i)*chunk, min(int64(i+1)*chunk, int64(len(data)))
					for off < end {
						buf := e.bufs.Get().(*[]byte)
						n := copy((*buf)[:rand.N(len(*buf))+1], data[off:end])
						if _, err := f.WriteAt((*buf)[:n], off); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						progress[i] += int64(n)
						mu.Unlock()
						if !front.offer(buf, n, off) {
							e.bufs.Put(buf)
						}
						off += int64(n)
					}
					completed <- i
				}
			})
		}
		wg.Wait()
		front.close()
		if err := <-hashed; err != nil {
			t.Fatal(err)
		}
		if got := front.h.Sum(nil); hex.EncodeToString(got) != hex.EncodeToString(want[:]) {
			t.Errorf("%d streams: hash %x, want %x", streams, got, want)
		}
		f.Close()
	}
}

// A stream whose first buffers were written past the hashed prefix (as
// when a stream tried alongside held the chunk before) is caught up with:
// its later buffers are handed over again instead of read back.
func TestHashFrontCatchesUp(t *testing.T) {
	const chunk, chunks, piece = 256 << 10, 4, 16 << 10
	data := make([]byte, chunk*chunks)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	want := sha256.Sum256(data)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := &engine{chunkSize: chunk, bufs: sync.Pool{New: func() any { b := make([]byte, piece); return &b }}}
	front := newHashFront(sha256.New(), &e.bufs)
	completed := make(chan int, chunks)
	var mu sync.Mutex
	progress := make([]int64, chunks)
	written := func(i int) int64 {
		mu.Lock()
		defer mu.Unlock()
		return progress[i]
	}
	hashed := make(chan error, 1)
	go func() { hashed <- e.hashInOrder(t.Context(), f, front, int64(len(data)), chunks, completed, written) }()
	// Chunk 0 is written by another stream, whose buffers are not handed
	// over and which reports it complete only at the end; one stream writes
	// chunks 1 to 3 in order meanwhile.
	if _, err := f.WriteAt(data[:chunk], 0); err != nil {
		t.Fatal(err)
	}
	progress[0] = chunk
	handed := 0
	for i := 1; i < chunks; i++ {
		for off := int64(i) * chunk; off < int64(i+1)*chunk; off += piece {
			buf := e.bufs.Get().(*[]byte)
			copy(*buf, data[off:off+piece])
			if _, err := f.WriteAt(*buf, off); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			progress[i] += piece
			mu.Unlock()
			if front.offer(buf, piece, off) {
				handed++
			} else {
				e.bufs.Put(buf)
				time.Sleep(time.Millisecond) // a network read's time: the read-back catches up
			}
		}
		completed <- i
	}
	completed <- 0
	if err := <-hashed; err != nil {
		t.Fatal(err)
	}
	front.close()
	if got := front.h.Sum(nil); hex.EncodeToString(got) != hex.EncodeToString(want[:]) {
		t.Errorf("hash %x, want %x", got, want)
	}
	if total := (chunks - 1) * chunk / piece; handed < total/2 {
		t.Errorf("%d of the stream's %d buffers handed over, want most: the read-back did not catch up with it", handed, total)
	}
}
