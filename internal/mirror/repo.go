package mirror

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// lfsThreshold is the size from which a file is stored in LFS.
const lfsThreshold = 1 << 20

// weightExts are extensions always stored in LFS (the Hub's .gitattributes).
var weightExts = map[string]bool{
	".safetensors": true, ".bin": true, ".gguf": true, ".pt": true, ".pth": true,
	".onnx": true, ".h5": true, ".msgpack": true,
}

func isLFS(name string, size int64) bool {
	return size >= lfsThreshold || weightExts[strings.ToLower(path.Ext(name))]
}

// nameRE matches an org, repo, namespace or model name.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)

func validName(s string) bool {
	return nameRE.MatchString(s) && !strings.Contains(s, "..")
}

// hidden reports whether a file or directory name is never served.
func hidden(name string, dir bool) bool {
	return strings.HasPrefix(name, ".mirror") || (dir && name == ".git")
}

// repoConfig is .mirror.json.
type repoConfig struct {
	Private   bool              `json:"private"`
	Gated     string            `json:"gated"`
	Tokens    []string          `json:"tokens"`
	Revisions map[string]string `json:"revisions"`
	Faults    []Fault           `json:"faults"`
}

// parseRepoConfig decodes .mirror.json strictly and reports every problem
// with its field path.
func parseRepoConfig(r io.Reader) (repoConfig, error) {
	var c repoConfig
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return repoConfig{}, err
	}
	if dec.More() {
		return repoConfig{}, errors.New("unexpected data after the JSON object")
	}
	var errs []error
	switch c.Gated {
	case "", "auto", "manual":
	default:
		errs = append(errs, fmt.Errorf("gated: %q is not \"auto\", \"manual\" or \"\"", c.Gated))
	}
	for i, t := range c.Tokens {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			errs = append(errs, fmt.Errorf("tokens[%d]: empty or contains white space", i))
		}
	}
	revs := make([]string, 0, len(c.Revisions))
	for name := range c.Revisions {
		revs = append(revs, name)
	}
	sort.Strings(revs)
	for _, name := range revs {
		dir := c.Revisions[name]
		switch {
		case name == "" || name == "main" || name == "HEAD" || strings.ContainsAny(name, "/\\") || isCommitHash(name):
			errs = append(errs, fmt.Errorf("revisions[%q]: a revision name must not be empty, main, HEAD, a 40-hex commit, or contain a slash", name))
		case dir == "" || !filepath.IsLocal(dir) || strings.Contains(dir, `\`):
			errs = append(errs, fmt.Errorf("revisions[%q]: %q must be a relative subdirectory of the repo", name, dir))
		}
	}
	for i, f := range c.Faults {
		err := f.Validate()
		problems := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = j.Unwrap()
		}
		for _, e := range problems {
			if e != nil {
				errs = append(errs, fmt.Errorf("faults[%d].%w", i, e))
			}
		}
	}
	return c, errors.Join(errs...)
}

func isCommitHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// repo is one hf/<org>/<name> directory with its settings.
type repo struct {
	id  string // org/name
	dir string // root-relative, slash-separated: hf/org/name
	cfg repoConfig
}

// entry is one file of a revision.
type entry struct {
	path  string // in the repo, slash-separated
	file  string // root-relative, slash-separated
	size  int64
	mtime time.Time
	lfs   bool
	digests
}

// blobID is the file's git blob id: of its content, or of its LFS pointer.
func (e *entry) blobID() string {
	if e.lfs {
		return gitBlobID(lfsPointer(e.SHA256, e.size))
	}
	return e.SHA1
}

func (e *entry) pointerSize() int { return len(lfsPointer(e.SHA256, e.size)) }

// snapshot is one revision's file list with every hash resolved.
type snapshot struct {
	revision     string // "main" or a name from .mirror.json
	commit       string
	files        []*entry // sorted by path
	byPath       map[string]*entry
	trees        map[string]string // directory path ("" = root) → git tree id
	lastModified time.Time
}

// revisionDir is the root-relative directory holding revision rev.
func (rp *repo) revisionDir(rev string) string {
	if rev == "main" {
		return rp.dir
	}
	return path.Join(rp.dir, filepath.ToSlash(rp.cfg.Revisions[rev]))
}

// revisionNames lists main and the named revisions, sorted after main.
func (rp *repo) revisionNames() []string {
	names := []string{"main"}
	for n := range rp.cfg.Revisions {
		names = append(names, n)
	}
	sort.Strings(names[1:])
	return names
}

// snapshot lists and hashes revision rev (which must exist).
func (s *Server) snapshot(ctx context.Context, rp *repo, rev string) (*snapshot, error) {
	dir := rp.revisionDir(rev)
	skip := map[string]bool{}
	for _, n := range rp.revisionNames()[1:] {
		if d := rp.revisionDir(n); d != dir {
			skip[d] = true
		}
	}
	snap := &snapshot{revision: rev, byPath: map[string]*entry{}, trees: map[string]string{}}
	dirs := []string{""}
	fsys := s.root.FS()
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if hidden(d.Name(), d.IsDir()) || (d.IsDir() && skip[p]) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel := strings.TrimPrefix(p, dir+"/")
		if d.IsDir() {
			dirs = append(dirs, rel)
			return nil
		}
		fi, err := fs.Stat(fsys, p) // follows symlinks that stay inside DIR
		if err != nil || !fi.Mode().IsRegular() {
			return nil // dangling, escaping or special: not served
		}
		e := &entry{path: rel, file: p, size: fi.Size(), mtime: fi.ModTime()}
		e.lfs = isLFS(rel, e.size)
		snap.files = append(snap.files, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing revision %q of %s in %s (check .mirror.json \"revisions\"): %w", rev, rp.id, dir, err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, e := range snap.files {
		g.Go(func() error {
			d, err := s.hashes.get(gctx, e.file, e.size, e.mtime.UnixNano(), !e.lfs)
			e.digests = d
			return err
		})
	}
	err = g.Wait()
	if ferr := s.hashes.flush(); ferr != nil {
		s.log.Debug("hash cache not written", "err", ferr)
	}
	if err != nil {
		return nil, err
	}

	sort.Slice(snap.files, func(i, j int) bool { return snap.files[i].path < snap.files[j].path })
	h := sha1.New()
	io.WriteString(h, "citadel-mirror-commit v1\n")
	for _, e := range snap.files {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", e.path, e.size, e.SHA256)
		snap.byPath[e.path] = e
		if e.mtime.After(snap.lastModified) {
			snap.lastModified = e.mtime
		}
	}
	snap.commit = hex.EncodeToString(h.Sum(nil))
	if snap.lastModified.IsZero() {
		snap.lastModified = time.Unix(0, 0)
	}
	// Like git, a directory exists only if it holds a file.
	used := map[string]bool{"": true}
	for _, e := range snap.files {
		for d := path.Dir(e.path); d != "."; d = path.Dir(d) {
			used[d] = true
		}
	}
	dirs = slices.DeleteFunc(dirs, func(d string) bool { return !used[d] })
	snap.trees = gitTrees(dirs, snap.files)
	return snap, nil
}

// gitTrees computes the git tree id of every directory, as git would for
// this file list (LFS files stored as their pointers).
func gitTrees(dirs []string, files []*entry) map[string]string {
	type child struct {
		name string
		dir  bool
		id   string
	}
	children := map[string][]child{}
	for _, e := range files {
		children[path.Dir("/" + e.path)[1:]] = append(children[path.Dir("/" + e.path)[1:]], child{name: path.Base(e.path), id: e.blobID()})
	}
	// Deepest first, so a directory's id is known before its parent's.
	depth := func(d string) int {
		if d == "" {
			return -1
		}
		return strings.Count(d, "/")
	}
	sorted := append([]string(nil), dirs...)
	sort.Slice(sorted, func(i, j int) bool {
		if di, dj := depth(sorted[i]), depth(sorted[j]); di != dj {
			return di > dj
		}
		return sorted[i] < sorted[j]
	})
	trees := map[string]string{}
	for _, d := range sorted {
		cs := children[d]
		sort.Slice(cs, func(i, j int) bool {
			ni, nj := cs[i].name, cs[j].name
			if cs[i].dir {
				ni += "/"
			}
			if cs[j].dir {
				nj += "/"
			}
			return ni < nj
		})
		var buf bytes.Buffer
		for _, c := range cs {
			mode := "100644"
			if c.dir {
				mode = "40000"
			}
			raw, _ := hex.DecodeString(c.id)
			buf.WriteString(mode + " " + c.name + "\x00")
			buf.Write(raw)
		}
		h := sha1.New()
		fmt.Fprintf(h, "tree %d\x00", buf.Len())
		h.Write(buf.Bytes())
		trees[d] = hex.EncodeToString(h.Sum(nil))
		if d != "" {
			parent := path.Dir("/" + d)[1:]
			children[parent] = append(children[parent], child{name: path.Base(d), dir: true, id: trees[d]})
		}
	}
	return trees
}
