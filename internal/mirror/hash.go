package mirror

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
)

// digests are the hashes of one file's content.
type digests struct {
	SHA256 string `json:"sha256"`
	// SHA1 is the git blob id of the content ("blob <size>\0" + content);
	// empty for LFS files, whose blob id is derived from their pointer.
	SHA1 string `json:"sha1,omitempty"`
}

// cacheEntry is one file's digests, valid while size and mtime match.
type cacheEntry struct {
	Size  int64 `json:"size"`
	MTime int64 `json:"mtime"` // UnixNano
	digests
}

// cacheFile is the on-disk form of the hash cache.
type cacheFile struct {
	Version int                   `json:"version"`
	Files   map[string]cacheEntry `json:"files"`
}

const cacheVersion = 1

// hashCache hashes files under a root on demand, once per (path, size,
// mtime), deduplicating concurrent requests for the same file, and persists
// results to a sidecar JSON file.
type hashCache struct {
	root *os.Root
	path string // sidecar file; "" disables persistence
	log  *slog.Logger

	mu       sync.Mutex
	entries  map[string]cacheEntry
	inflight map[string]*hashCall
	dirty    bool
	warned   bool

	writeMu  sync.Mutex // serialises flushes
	computed atomic.Int64
}

type hashCall struct {
	key  cacheEntry // size and mtime being hashed
	done chan struct{}
	d    digests
	err  error
}

func newHashCache(root *os.Root, path string, log *slog.Logger) *hashCache {
	c := &hashCache{root: root, path: path, log: log, entries: map[string]cacheEntry{}, inflight: map[string]*hashCall{}}
	if path == "" {
		return c
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		log.Warn("mirror hash cache unreadable; hashing from scratch", "path", path, "err", err)
	default:
		var f cacheFile
		if err := json.Unmarshal(b, &f); err != nil || f.Version != cacheVersion {
			log.Warn("mirror hash cache invalid; hashing from scratch", "path", path, "err", err)
			break
		}
		for k, e := range f.Files {
			if fs.ValidPath(k) && len(e.SHA256) == 64 {
				c.entries[k] = e
			}
		}
	}
	return c
}

// get returns the digests of the root-relative file name (slash-separated)
// whose stat gave size and mtime. withSHA1 asks for the git blob id too.
func (c *hashCache) get(ctx context.Context, name string, size, mtime int64, withSHA1 bool) (digests, error) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[name]; ok && e.Size == size && e.MTime == mtime && (!withSHA1 || e.SHA1 != "") {
			c.mu.Unlock()
			return e.digests, nil
		}
		if call, ok := c.inflight[name]; ok && call.key.Size == size && call.key.MTime == mtime {
			c.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return digests{}, ctx.Err()
			}
			// The owner gave up (its client went away): try again ourselves.
			if (errors.Is(call.err, context.Canceled) || errors.Is(call.err, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue
			}
			if call.err == nil && withSHA1 && call.d.SHA1 == "" {
				continue
			}
			return call.d, call.err
		}
		call := &hashCall{key: cacheEntry{Size: size, MTime: mtime}, done: make(chan struct{})}
		c.inflight[name] = call
		c.mu.Unlock()

		call.d, call.err = c.compute(ctx, name, size, withSHA1)
		c.mu.Lock()
		delete(c.inflight, name)
		if call.err == nil {
			c.entries[name] = cacheEntry{Size: size, MTime: mtime, digests: call.d}
			c.dirty = true
		}
		c.mu.Unlock()
		close(call.done)
		return call.d, call.err
	}
}

// compute streams the file once through the hashes it needs.
func (c *hashCache) compute(ctx context.Context, name string, size int64, withSHA1 bool) (digests, error) {
	f, err := c.root.Open(filepath.FromSlash(name))
	if err != nil {
		return digests{}, err
	}
	defer f.Close()
	s256 := sha256.New()
	var w io.Writer = s256
	var s1 hash.Hash
	if withSHA1 {
		s1 = sha1.New()
		fmt.Fprintf(s1, "blob %d\x00", size)
		w = io.MultiWriter(s256, s1)
	}
	n, err := io.CopyBuffer(w, ctxReader{ctx, f}, make([]byte, 1<<20))
	if err != nil {
		return digests{}, fmt.Errorf("hashing %s: %w", name, err)
	}
	if n != size {
		return digests{}, fmt.Errorf("hashing %s: file changed while hashing (%d bytes, expected %d)", name, n, size)
	}
	c.computed.Add(1)
	d := digests{SHA256: hex.EncodeToString(s256.Sum(nil))}
	if s1 != nil {
		d.SHA1 = hex.EncodeToString(s1.Sum(nil))
	}
	return d, nil
}

// prune forgets every entry whose name keep does not report.
func (c *hashCache) prune(keep func(name string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep(k) {
			delete(c.entries, k)
			c.dirty = true
		}
	}
}

// flush writes the cache file if anything changed. A failure (a read-only
// mirror) is logged once and otherwise ignored: the cache is an optimisation.
func (c *hashCache) flush() error {
	if c.path == "" {
		return nil
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	f := cacheFile{Version: cacheVersion, Files: make(map[string]cacheEntry, len(c.entries))}
	for k, e := range c.entries {
		f.Files[k] = e
	}
	c.dirty = false
	c.mu.Unlock()

	b, err := json.Marshal(f)
	if err == nil {
		err = writeFileAtomic(c.path, b)
	}
	if err != nil {
		c.mu.Lock()
		c.dirty = true
		warn := !c.warned
		c.warned = true
		c.mu.Unlock()
		if warn {
			c.log.Warn("mirror cannot write its hash cache; hashes will be recomputed after a restart", "path", c.path, "err", err)
		}
		return fmt.Errorf("writing hash cache %s: %w", c.path, err)
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mirror-cache-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, bytes.NewReader(b)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ctxReader stops a long read (hashing a large file) when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// gitBlobID is the git object id of a blob with this content.
func gitBlobID(content []byte) string {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(content)) + "\x00"))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// lfsPointer is the git-lfs pointer file that stands for content with this
// sha256 and size.
func lfsPointer(sha256hex string, size int64) []byte {
	return []byte("version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256hex + "\nsize " + strconv.FormatInt(size, 10) + "\n")
}
