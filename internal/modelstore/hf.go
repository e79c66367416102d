// Package modelstore is the on-disk layout of models: the Hugging Face hub
// cache (models--org--name/{blobs,refs,snapshots}, as huggingface_hub writes
// it, so vLLM, SGLang and transformers load from it offline) and Ollama's
// models directory (manifests + sha256-… blobs, so a real Ollama sees the
// model). It knows nothing about HTTP: partial files, atomic placement,
// links and verification only.
package modelstore

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// HFCache is a Hugging Face hub cache directory ($HF_HUB_CACHE).
type HFCache struct{ Root string }

// RepoDir is models--{org}--{name}.
func (c HFCache) RepoDir(repo string) string {
	return filepath.Join(c.Root, "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// BlobPath is where a file with this etag (sha256 or git sha1) lives.
func (c HFCache) BlobPath(repo, etag string) string {
	return filepath.Join(c.RepoDir(repo), "blobs", etag)
}

// IncompletePath is the partial download of a blob. Unlike huggingface_hub
// 1.x, the name is stable so a download resumes after a crash or kill.
func (c HFCache) IncompletePath(repo, etag string) string {
	return c.BlobPath(repo, etag) + ".incomplete"
}

// SnapshotDir is snapshots/{commit}.
func (c HFCache) SnapshotDir(repo, commit string) string {
	return filepath.Join(c.RepoDir(repo), "snapshots", commit)
}

// WriteRef records that revision rev is at commit, atomically (tmp + rename),
// without a trailing newline, as huggingface_hub does. Commits need no ref.
func (c HFCache) WriteRef(repo, rev, commit string) error {
	if rev == commit {
		return nil
	}
	p := filepath.Join(c.RepoDir(repo), "refs", filepath.FromSlash(rev))
	return WriteFileAtomic(p, []byte(commit), 0o644)
}

// ReadRef returns the commit a revision points at.
func (c HFCache) ReadRef(repo, rev string) (string, error) {
	b, err := os.ReadFile(filepath.Join(c.RepoDir(repo), "refs", filepath.FromSlash(rev)))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// LinkSnapshot makes snapshots/{commit}/{path} a relative symlink to the
// blob (../../blobs/{etag}, deeper for files in subdirectories), replacing
// what was there atomically.
func (c HFCache) LinkSnapshot(repo, commit, path, etag string) error {
	if !filepath.IsLocal(filepath.FromSlash(path)) {
		return fmt.Errorf("refusing file name %q: not a relative path inside the repository", path)
	}
	link := filepath.Join(c.SnapshotDir(repo, commit), filepath.FromSlash(path))
	depth := strings.Count(path, "/")
	target := strings.Repeat("../", depth+2) + "blobs/" + etag
	return SymlinkAtomic(target, link)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers never see a half-written file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// SymlinkAtomic points link at target, replacing an existing link or file.
func SymlinkAtomic(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := link + ".tmp-link-" + hex.EncodeToString(rnd[:]) // unique per call: concurrent pulls link the same paths
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Materialize makes dir a view of the snapshot: one symlink per file, to
// the snapshot's entry (which links on to the blob), so that a runtime's
// $MODEL_PATH (OME's storage.path) holds the model. Entries of dir that are
// not in files are left alone, except stale links into the same cache.
func Materialize(dir, snapshot string, files []string) error {
	for _, f := range files {
		if !filepath.IsLocal(filepath.FromSlash(f)) {
			return fmt.Errorf("refusing file name %q: not a relative path inside the repository", f)
		}
		dst := filepath.Join(dir, filepath.FromSlash(f))
		src := filepath.Join(snapshot, filepath.FromSlash(f))
		if st, err := os.Lstat(dst); err == nil && st.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("%s exists and is not a link Citadel made: move it away, or point storage.path at an empty directory", dst)
		}
		if err := SymlinkAtomic(src, dst); err != nil {
			return err
		}
	}
	return nil
}

// Hasher returns the hash that an etag of this form names: sha256 for 64
// hex digits (LFS files), git blob sha1 for 40 (regular files), seeded with
// the "blob <size>\0" header. ok is false for an etag that names neither.
func Hasher(etag string, size int64) (h hash.Hash, ok bool) {
	switch {
	case len(etag) == 64 && isHex(etag):
		return sha256.New(), true
	case len(etag) == 40 && isHex(etag):
		h := sha1.New()
		fmt.Fprintf(h, "blob %d\x00", size)
		return h, true
	}
	return nil, false
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// ErrChecksum is a content that does not match its etag or digest.
var ErrChecksum = errors.New("checksum mismatch")

// VerifyFile hashes the file at path and compares it with etag.
func VerifyFile(path, etag string, size int64) error {
	h, ok := Hasher(etag, size)
	if !ok {
		return fmt.Errorf("cannot verify %s: etag %q is neither a sha256 nor a git sha1", path, etag)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%w: %s has %d bytes, want %d", ErrChecksum, path, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != etag {
		return fmt.Errorf("%w: %s hashes to %s, want %s", ErrChecksum, path, got, etag)
	}
	return nil
}
