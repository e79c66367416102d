package pull

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
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
		hashed := make(chan error, 1)
		go func() { hashed <- e.hashInOrder(t.Context(), f, front, int64(len(data)), chunks, completed) }()
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
