package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// Bounds of the output an instance keeps in memory.
const (
	ringLines    = 2000    // lines kept by the ring
	ringBytes    = 1 << 20 // bytes kept by the ring (line contents)
	maxLineBytes = 16 << 10
	tailLines    = 20 // State.LogTail
	followBuffer = 256
)

// truncatedMark ends a line that was cut at maxLineBytes.
const truncatedMark = " …[line truncated]"

// ring keeps the last lines of an engine's output, bounded in lines and
// bytes, and passes new lines to followers. It is safe for concurrent use.
type ring struct {
	maxLines, maxBytes int

	mu    sync.Mutex
	buf   []string // circular, len(buf) == maxLines once full
	start int      // index of the oldest line in buf
	n     int      // lines held
	bytes int      // bytes held
	seq   uint64   // lines ever added
	subs  map[chan string]struct{}
}

func newRing(maxLines, maxBytes int) *ring {
	return &ring{maxLines: maxLines, maxBytes: maxBytes, subs: make(map[chan string]struct{})}
}

func (r *ring) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < r.maxLines {
		r.buf = append(r.buf, "")
	}
	if r.n == r.maxLines {
		r.drop()
	}
	r.buf[(r.start+r.n)%len(r.buf)] = line
	r.n++
	r.bytes += len(line)
	for r.bytes > r.maxBytes && r.n > 1 {
		r.drop()
	}
	r.seq++
	for ch := range r.subs {
		select {
		case ch <- line:
		default: // a slow follower misses lines; Logs still has them
		}
	}
}

// drop forgets the oldest line; r.mu is held.
func (r *ring) drop() {
	r.bytes -= len(r.buf[r.start])
	r.buf[r.start] = ""
	r.start = (r.start + 1) % len(r.buf)
	r.n--
}

// last returns the last n lines held, oldest first; all of them when n <= 0.
func (r *ring) last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= 0 {
		n = r.n
	}
	return r.lastLocked(n)
}

// since returns the last lines, up to n, of those added from sequence
// number seq (see next) on.
func (r *ring) since(seq uint64, n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if added := r.seq - seq; added < uint64(n) {
		n = int(added)
	}
	return r.lastLocked(n)
}

// lastLocked returns the last min(n, r.n) lines; r.mu is held.
func (r *ring) lastLocked(n int) []string {
	n = min(n, r.n)
	out := make([]string, n)
	for i := range out {
		out[i] = r.buf[(r.start+r.n-n+i)%len(r.buf)]
	}
	return out
}

// next is the sequence number the next line will get.
func (r *ring) next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

func (r *ring) subscribe() chan string {
	ch := make(chan string, followBuffer)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch
}

// unsubscribe stops sending to ch and closes it.
func (r *ring) unsubscribe(ch chan string) {
	r.mu.Lock()
	delete(r.subs, ch)
	r.mu.Unlock()
	close(ch)
}

// readLines splits r into lines and passes each to emit, without its line
// ending ("\n" or "\r\n"). A line longer than maxLen bytes is cut to maxLen
// bytes and marked; the rest of it is skipped. Invalid UTF-8 is replaced.
// It returns nil at EOF, or the read error.
func readLines(r io.Reader, maxLen int, emit func(string)) error {
	// Room for the '\n' of a line of maxLen bytes.
	br := bufio.NewReaderSize(r, maxLen+1)
	skipping := false // inside the rest of a cut line
	for {
		b, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				emit(strings.ToValidUTF8(string(b[:maxLen]), "\uFFFD") + truncatedMark)
				skipping = true
			}
			continue
		case skipping:
			skipping = false // the cut line ends here
		case len(b) > 0:
			s := strings.TrimSuffix(string(b), "\n")
			s = strings.TrimSuffix(s, "\r")
			emit(strings.ToValidUTF8(s, "\uFFFD"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// rotatingFile is a log file that is rotated when a write would grow it past
// maxBytes: path → path.1 → path.2 … path.<keep>; the oldest is dropped.
// It is safe for concurrent use.
type rotatingFile struct {
	path     string
	maxBytes int64
	keep     int

	mu   sync.Mutex
	f    *os.File
	size int64
	err  error // the first write error, reported once
}

func openRotating(path string, maxBytes int64, keep int) (*rotatingFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening engine log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening engine log: %w", err)
	}
	return &rotatingFile{path: path, maxBytes: maxBytes, keep: keep, f: f, size: st.Size()}, nil
}

// writeLine appends line and a newline. It returns an error only for the
// first failure, so that a full disk is reported once, not per line.
func (w *rotatingFile) writeLine(line string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	n := int64(len(line) + 1)
	var err error
	if w.size > 0 && w.size+n > w.maxBytes {
		err = w.rotate()
	}
	if err == nil {
		_, err = w.f.WriteString(line + "\n")
		w.size += n
	}
	if err != nil && w.err == nil {
		w.err = err
		return fmt.Errorf("writing engine log %s: %w", w.path, err)
	}
	return nil
}

// rotate shifts the files by one; w.mu is held.
func (w *rotatingFile) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	for i := w.keep; i >= 1; i-- {
		from := w.path
		if i > 1 {
			from = fmt.Sprintf("%s.%d", w.path, i-1)
		}
		if err := os.Rename(from, fmt.Sprintf("%s.%d", w.path, i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return nil
}

func (w *rotatingFile) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
