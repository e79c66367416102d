package mirror

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// hubError is answered with the Hub's error headers (read by huggingface_hub's hf_raise_for_status;
// docs/mirror.md tables them):
// X-Error-Code, X-Error-Message and {"error": msg}.
type hubError struct {
	status int
	code   string // X-Error-Code; empty for none
	msg    string
	commit string // X-Repo-Commit, for EntryNotFound
}

func (e *hubError) Error() string { return e.msg }

func errRepoNotFound(status int) *hubError {
	return &hubError{status, "RepoNotFound", "Repository not found", ""}
}

func errRevisionNotFound(rev string) *hubError {
	return &hubError{http.StatusNotFound, "RevisionNotFound", "Invalid rev id: " + rev, ""}
}

func errEntryNotFound(p, rev, commit string) *hubError {
	return &hubError{http.StatusNotFound, "EntryNotFound", fmt.Sprintf("Entry not found: %s does not exist at revision %s", p, rev), commit}
}

func errGated(status int, repo string) *hubError {
	msg := "Access to model " + repo + " is restricted. You must have access to it and be authenticated to access it. Please log in."
	if status == http.StatusForbidden {
		msg = "Access to model " + repo + " is restricted and you are not in the authorized list."
	}
	return &hubError{status, "GatedRepo", msg, ""}
}

var errInvalidCredentials = &hubError{http.StatusUnauthorized, "", "Invalid credentials in Authorization header", ""}

// fail answers err: a hubError with its headers, anything else as a 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *hubError
	if !errors.As(err, &he) {
		if errors.Is(err, context.Canceled) {
			return // the client went away
		}
		s.log.Error("mirror request failed", "path", r.URL.Path, "err", err)
		he = &hubError{http.StatusInternalServerError, "", "Mirror error: " + err.Error(), ""}
	}
	h := w.Header()
	if he.code != "" {
		h.Set("X-Error-Code", he.code)
	}
	h.Set("X-Error-Message", he.msg)
	if he.commit != "" {
		h.Set("X-Repo-Commit", he.commit)
	}
	writeJSON(w, he.status, map[string]string{"error": he.msg})
}

// openRepo finds hf/<org>/<name> and reads its settings.
func (s *Server) openRepo(org, name string) (*repo, error) {
	if !validName(org) || !validName(name) {
		return nil, errRepoNotFound(http.StatusNotFound)
	}
	rp := &repo{id: org + "/" + name, dir: path.Join("hf", org, name)}
	fi, err := fs.Stat(s.root.FS(), rp.dir)
	if err != nil || !fi.IsDir() {
		return nil, errRepoNotFound(http.StatusNotFound)
	}
	f, err := s.root.Open(filepath.FromSlash(rp.dir + "/.mirror.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return rp, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s/.mirror.json: %w", rp.dir, err)
	}
	defer f.Close()
	if rp.cfg, err = parseRepoConfig(f); err != nil {
		return nil, fmt.Errorf("%s/.mirror.json: %w", rp.dir, err)
	}
	return rp, nil
}

// bearer is the request's bearer token, if any.
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// authorize decides access to a repo's metadata (files false) or files.
// Private repos need a valid, listed token for everything; gated repos for
// files only (as on the Hub, anyone may read a gated repo's metadata).
// An unknown token on a public repo is ignored, so a client with an
// HF_TOKEN for the real Hub still works here.
func (s *Server) authorize(r *http.Request, rp *repo, files bool) error {
	gated := rp.cfg.Gated != "" && files
	if !rp.cfg.Private && !gated {
		return nil
	}
	tok := bearer(r)
	_, global := s.tokens[tok]
	listed := tok != "" && slices.Contains(rp.cfg.Tokens, tok)
	valid := tok != "" && (global || listed)
	allowed := listed || (valid && len(rp.cfg.Tokens) == 0)
	switch {
	case allowed:
		return nil
	case tok != "" && !valid:
		return errInvalidCredentials
	case rp.cfg.Private && tok == "":
		return errRepoNotFound(http.StatusUnauthorized)
	case rp.cfg.Private:
		return errRepoNotFound(http.StatusNotFound)
	case tok == "":
		return errGated(http.StatusUnauthorized, rp.id)
	default:
		return errGated(http.StatusForbidden, rp.id)
	}
}

// resolveRevision maps a branch ("main", alias "HEAD"), a revision name from
// .mirror.json or a revision's 40-hex commit to its snapshot.
func (s *Server) resolveRevision(ctx context.Context, rp *repo, rev string) (*snapshot, error) {
	switch _, named := rp.cfg.Revisions[rev]; {
	case rev == "main" || rev == "HEAD":
		return s.snapshot(ctx, rp, "main")
	case named:
		return s.snapshot(ctx, rp, rev)
	case isCommitHash(rev):
		for _, name := range rp.revisionNames() {
			snap, err := s.snapshot(ctx, rp, name)
			if err != nil {
				return nil, err
			}
			if snap.commit == rev {
				return snap, nil
			}
		}
	}
	return nil, errRevisionNotFound(rev)
}

// hubRepo opens, authorizes and resolves the repo and revision of a request.
func (s *Server) hubRepo(r *http.Request, rev string, files bool) (*repo, *snapshot, error) {
	rp, err := s.openRepo(r.PathValue("org"), r.PathValue("name"))
	if err != nil {
		return nil, nil, err
	}
	if err := s.authorize(r, rp, files); err != nil {
		return nil, nil, err
	}
	if rev == "" {
		rev = "main"
	}
	snap, err := s.resolveRevision(r.Context(), rp, rev)
	if err != nil {
		return nil, nil, err
	}
	return rp, snap, nil
}

func truthy(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

func hubTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type lfsInfo struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

type sibling struct {
	RFilename string   `json:"rfilename"`
	Size      *int64   `json:"size,omitempty"`
	BlobID    string   `json:"blobId,omitempty"`
	LFS       *lfsInfo `json:"lfs,omitempty"`
}

type modelInfo struct {
	MongoID      string    `json:"_id"`
	ID           string    `json:"id"`
	ModelID      string    `json:"modelId"`
	Author       string    `json:"author"`
	SHA          string    `json:"sha"`
	LastModified string    `json:"lastModified"`
	CreatedAt    string    `json:"createdAt"`
	Private      bool      `json:"private"`
	Gated        any       `json:"gated"` // false, "auto" or "manual"
	Disabled     bool      `json:"disabled"`
	Downloads    int       `json:"downloads"`
	Likes        int       `json:"likes"`
	LibraryName  string    `json:"library_name,omitempty"`
	Tags         []string  `json:"tags"`
	Siblings     []sibling `json:"siblings"`
	Spaces       []string  `json:"spaces"`
	UsedStorage  int64     `json:"usedStorage"`
}

// modelInfo serves GET /api/models/{org}/{name}[/revision/{rev}].
func (s *Server) modelInfo(w http.ResponseWriter, r *http.Request) {
	rp, snap, err := s.hubRepo(r, r.PathValue("rev"), false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	blobs := truthy(r.URL.Query().Get("blobs"))
	org, _, _ := strings.Cut(rp.id, "/")
	id := sha1.Sum([]byte(rp.id))
	info := modelInfo{
		MongoID: hex.EncodeToString(id[:12]), ID: rp.id, ModelID: rp.id, Author: org, SHA: snap.commit,
		LastModified: hubTime(snap.lastModified), CreatedAt: hubTime(snap.lastModified),
		Private: rp.cfg.Private, Gated: false, Tags: []string{}, Siblings: []sibling{}, Spaces: []string{},
	}
	if rp.cfg.Gated != "" {
		info.Gated = rp.cfg.Gated
	}
	for _, e := range snap.files {
		sib := sibling{RFilename: e.path}
		if blobs {
			sib.Size = &e.size
			sib.BlobID = e.blobID()
			if e.lfs {
				sib.LFS = &lfsInfo{SHA256: e.SHA256, Size: e.size, PointerSize: e.pointerSize()}
			}
		}
		info.Siblings = append(info.Siblings, sib)
		info.UsedStorage += e.size
		switch {
		case strings.HasSuffix(e.path, ".gguf"):
			info.LibraryName = "gguf"
		case e.path == "config.json" && info.LibraryName == "":
			info.LibraryName = "transformers"
		}
	}
	w, finish, ok := s.faultsFor(w, r, rp.id, OnAPI, "", rp.cfg.Faults)
	if !ok {
		return
	}
	defer finish()
	writeJSON(w, http.StatusOK, info)
}

type treeLFS struct {
	OID         string `json:"oid"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

type lastCommit struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Date  string `json:"date"`
}

type treeEntry struct {
	Type               string             `json:"type"`
	OID                string             `json:"oid"`
	Size               int64              `json:"size"`
	Path               string             `json:"path"`
	LFS                *treeLFS           `json:"lfs,omitempty"`
	LastCommit         *lastCommit        `json:"lastCommit,omitempty"`
	SecurityFileStatus *map[string]string `json:"securityFileStatus,omitempty"`
}

// entryFor describes a file or directory of snap; false if p is neither.
func entryFor(rp *repo, snap *snapshot, p string, expand bool) (treeEntry, bool) {
	var te treeEntry
	if e, ok := snap.byPath[p]; ok {
		te = treeEntry{Type: "file", OID: e.blobID(), Size: e.size, Path: p}
		if e.lfs {
			te.LFS = &treeLFS{OID: e.SHA256, Size: e.size, PointerSize: e.pointerSize()}
		}
	} else if id, ok := snap.trees[p]; ok && p != "" {
		te = treeEntry{Type: "directory", OID: id, Size: 0, Path: p}
	} else {
		return te, false
	}
	if expand {
		te.LastCommit = &lastCommit{ID: snap.commit, Title: "Mirror of " + rp.id + " at " + snap.revision, Date: hubTime(snap.lastModified)}
		if te.Type == "file" {
			te.SecurityFileStatus = &map[string]string{"status": "safe"}
		}
	}
	return te, true
}

// tree serves GET /api/models/{org}/{name}/tree/{rev}[/{path}], paginated
// with a Link: <…>; rel="next" header.
func (s *Server) tree(w http.ResponseWriter, r *http.Request) {
	rp, snap, err := s.hubRepo(r, r.PathValue("rev"), false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	base := strings.Trim(r.PathValue("path"), "/")
	if _, isDir := snap.trees[base]; !isDir {
		s.fail(w, r, errEntryNotFound(base, r.PathValue("rev"), snap.commit))
		return
	}
	recursive, expand := truthy(q.Get("recursive")), truthy(q.Get("expand"))
	var paths []string
	under := func(p string) bool {
		if base != "" && !strings.HasPrefix(p, base+"/") {
			return false
		}
		if recursive {
			return true
		}
		parent := path.Dir(p)
		return parent == base || (parent == "." && base == "")
	}
	for d := range snap.trees {
		if d != "" && under(d) {
			paths = append(paths, d)
		}
	}
	for _, e := range snap.files {
		if under(e.path) {
			paths = append(paths, e.path)
		}
	}
	sort.Strings(paths)

	offset := 0
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "o:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "o:") || n < 0 || n > len(paths) {
			s.fail(w, r, &hubError{http.StatusBadRequest, "", "Invalid cursor", ""})
			return
		}
		offset = n
	}
	end := min(offset+s.pageSize, len(paths))
	out := make([]treeEntry, 0, end-offset)
	for _, p := range paths[offset:end] {
		te, _ := entryFor(rp, snap, p, expand)
		out = append(out, te)
	}
	if end < len(paths) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte("o:"+strconv.Itoa(end))))
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, baseURL(r), r.URL.EscapedPath(), next.Encode()))
	}
	w, finish, ok := s.faultsFor(w, r, rp.id, OnAPI, "", rp.cfg.Faults)
	if !ok {
		return
	}
	defer finish()
	writeJSON(w, http.StatusOK, out)
}

// pathsInfo serves POST /api/models/{org}/{name}/paths-info/{rev}, with the
// paths as a JSON body (huggingface.js) or form fields (huggingface_hub).
func (s *Server) pathsInfo(w http.ResponseWriter, r *http.Request) {
	rp, snap, err := s.hubRepo(r, r.PathValue("rev"), false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
	var req struct {
		Paths  []string `json:"paths"`
		Expand any      `json:"expand"`
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		err = json.NewDecoder(r.Body).Decode(&req)
	} else if err = r.ParseForm(); err == nil {
		req.Paths, req.Expand = r.PostForm["paths"], r.PostForm.Get("expand")
	}
	if err != nil {
		s.fail(w, r, &hubError{http.StatusBadRequest, "", "Invalid paths-info request: " + err.Error(), ""})
		return
	}
	expand := false
	switch v := req.Expand.(type) {
	case bool:
		expand = v
	case string:
		expand = truthy(v)
	}
	out := []treeEntry{}
	seen := map[string]bool{}
	for _, p := range req.Paths {
		p = strings.Trim(p, "/")
		if seen[p] {
			continue
		}
		seen[p] = true
		if te, ok := entryFor(rp, snap, p, expand); ok {
			out = append(out, te)
		}
	}
	w, finish, ok := s.faultsFor(w, r, rp.id, OnAPI, "", rp.cfg.Faults)
	if !ok {
		return
	}
	defer finish()
	writeJSON(w, http.StatusOK, out)
}

// whoami serves GET /api/whoami-v2 for the tokens of Options.Tokens.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	user, ok := s.tokens[bearer(r)]
	if !ok || bearer(r) == "" {
		s.fail(w, r, errInvalidCredentials)
		return
	}
	id := sha1.Sum([]byte("user\x00" + user))
	writeJSON(w, http.StatusOK, map[string]any{
		"type": "user", "id": hex.EncodeToString(id[:12]), "name": user, "fullname": user,
		"isPro": false, "canPay": false, "emailVerified": false, "orgs": []any{},
		"auth": map[string]any{"type": "access_token", "accessToken": map[string]any{"displayName": "citadel mirror", "role": "read"}},
	})
}

// resolve serves HEAD|GET /{org}/{name}/resolve/{rev}/{path}: small files
// directly, LFS files as a 302 to the signed LFS URL on the other host.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	rev, p := r.PathValue("rev"), r.PathValue("path")
	rp, snap, err := s.hubRepo(r, rev, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, ok := snap.byPath[p]
	if !ok {
		s.fail(w, r, errEntryNotFound(p, rev, snap.commit))
		return
	}
	class := OnAPI
	if r.Method == http.MethodGet && !e.lfs {
		class = OnDownload
		countFile(w, e.file)
	}
	w, finish, ok := s.faultsFor(w, r, rp.id, class, e.path, rp.cfg.Faults)
	if !ok {
		return
	}
	defer finish()
	h := w.Header()
	h.Set("X-Repo-Commit", snap.commit)
	if !e.lfs {
		s.serveFile(w, r, e.file, e.size, `"`+e.SHA1+`"`, "")
		return
	}
	h.Set("ETag", `"`+e.blobID()+`"`)
	h.Set("X-Linked-Etag", `"`+e.SHA256+`"`)
	h.Set("X-Linked-Size", strconv.FormatInt(e.size, 10))
	h.Set("Location", s.otherHost(r)+"/__lfs/"+rp.id+"/"+snap.commit+"/"+escapePath(e.path)+"?"+s.sign("lfs", rp.id, snap.commit, e.path))
	w.WriteHeader(http.StatusFound)
}

// lfs serves the signed LFS URL: no auth, Range, ETag = sha256.
func (s *Server) lfs(w http.ResponseWriter, r *http.Request) {
	org, name, commit, p := r.PathValue("org"), r.PathValue("name"), r.PathValue("commit"), r.PathValue("path")
	if err := s.verify(r, "lfs", org+"/"+name, commit, p); err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
		return
	}
	rp, err := s.openRepo(org, name)
	var snap *snapshot
	if err == nil {
		snap, err = s.resolveRevision(r.Context(), rp, commit)
	}
	var e *entry
	if err == nil {
		if e = snap.byPath[p]; e == nil || !e.lfs {
			err = errEntryNotFound(p, commit, "")
		}
	}
	if err != nil {
		var he *hubError
		if errors.As(err, &he) { // the revision changed since the URL was signed
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "The file is no longer in the mirror at this commit: " + he.msg})
			return
		}
		s.fail(w, r, err)
		return
	}
	countFile(w, e.file)
	w, finish, ok := s.faultsFor(w, r, rp.id, OnDownload, e.path, rp.cfg.Faults)
	if !ok {
		return
	}
	defer finish()
	w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename*=UTF-8''%s; filename="%s";`, url.PathEscape(path.Base(p)), strings.ReplaceAll(path.Base(p), `"`, "")))
	s.serveFile(w, r, e.file, e.size, `"`+e.SHA256+`"`, "application/octet-stream")
}

// serveFile sends a file of the root with Range support (http.ServeContent:
// 206 + Content-Range, an end past EOF clamped, 416 when unsatisfiable,
// conditional requests on the ETag). contentType "" picks text/plain for
// UTF-8 text and application/octet-stream otherwise.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, file string, size int64, etag, contentType string) {
	f, err := s.root.Open(filepath.FromSlash(file))
	if err != nil {
		s.fail(w, r, fmt.Errorf("opening %s: %w", file, err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if fi.Size() != size {
		s.fail(w, r, &hubError{http.StatusServiceUnavailable, "", "The file changed while being served; retry", ""})
		return
	}
	if contentType == "" {
		head := make([]byte, 512)
		n, _ := io.ReadFull(f, head)
		contentType = "application/octet-stream"
		if utf8.Valid(head[:n]) || (n == len(head) && utf8.Valid(trimRune(head[:n]))) {
			contentType = "text/plain; charset=utf-8"
		}
	}
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Content-Type", contentType)
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// trimRune drops a rune cut at the end of a sniffed prefix.
func trimRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}
