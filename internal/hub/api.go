package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"citadel.dev/citadel/internal/netclass"
)

// ModelInfo is the part of GET /api/models/{repo}/revision/{rev}?blobs=true that a download needs.
type ModelInfo struct {
	ID       string
	SHA      string // the revision's full commit hash (validated: 40 lower-case hex)
	Private  bool
	Gated    string // "" (not gated), "auto" or "manual"; JSON true becomes "true"
	Siblings []Sibling
}

// Sibling is one file of a ModelInfo; paths are validated like ListFiles'.
type Sibling struct {
	RFilename string
	Size      int64
	BlobID    string // git blob sha1
	LFS       *LFSInfo
}

// LFSInfo describes an LFS (or Xet) file: the sha256 of its content and its size.
// Model info calls the hash lfs.sha256, the tree lfs.oid; both land here.
type LFSInfo struct {
	SHA256 string // 64 lower-case hex (validated)
	Size   int64
}

// File is one file of a revision's tree.
type File struct {
	Path string
	Size int64
	OID  string // git blob sha1
	LFS  *LFSInfo
}

// User is the account a token belongs to.
type User struct {
	Name string
	Type string // "user" or "org"
	Orgs []string
}

// ModelInfo fetches the model's info at revision ("" means "main") with file metadata (?blobs=true).
// A branch or tag is resolved to its commit in SHA; asking for a full commit hash and getting a different
// one back is an error.
func (c *Client) ModelInfo(ctx context.Context, repo, revision string) (*ModelInfo, error) {
	if revision == "" {
		revision = DefaultRevision
	}
	if err := ValidateRepoID(repo); err != nil {
		return nil, err
	}
	u, err := c.apiURL("/api/models/" + escapeRepo(repo) + "/revision/" + url.PathEscape(revision) + "?blobs=true")
	if err != nil {
		return nil, err
	}
	var raw struct {
		ID       string          `json:"id"`
		SHA      string          `json:"sha"`
		Private  bool            `json:"private"`
		Gated    json.RawMessage `json:"gated"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
			Size      int64  `json:"size"`
			BlobID    string `json:"blobId"`
			LFS       *struct {
				SHA256 string `json:"sha256"`
				Size   int64  `json:"size"`
			} `json:"lfs"`
		} `json:"siblings"`
	}
	if _, err := c.getJSON(ctx, u, target{repo: repo, revision: revision}, &raw); err != nil {
		return nil, err
	}
	if !IsCommit(raw.SHA) {
		return nil, &MetadataError{URL: u.String(), Problem: fmt.Sprintf("model info has no valid commit sha (got %q)", raw.SHA)}
	}
	if IsCommit(revision) && raw.SHA != revision {
		return nil, &MetadataError{URL: u.String(), Problem: fmt.Sprintf("asked for commit %s, model info answered for commit %s", revision, raw.SHA)}
	}
	info := &ModelInfo{ID: raw.ID, SHA: raw.SHA, Private: raw.Private, Gated: gatedValue(raw.Gated)}
	seen := make(map[string]bool, len(raw.Siblings))
	for _, s := range raw.Siblings {
		sib := Sibling{RFilename: s.RFilename, Size: s.Size, BlobID: s.BlobID}
		if s.LFS != nil {
			sib.LFS = &LFSInfo{SHA256: s.LFS.SHA256, Size: s.LFS.Size}
		}
		if err := checkFile(u, repo, sib.RFilename, sib.Size, sib.BlobID, sib.LFS, seen); err != nil {
			return nil, err
		}
		info.Siblings = append(info.Siblings, sib)
	}
	return info, nil
}

func gatedValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil && b {
		return "true"
	}
	return ""
}

// maxTreePages bounds tree pagination (the Hub pages by 1000 entries; 10000 pages is ten million files).
const maxTreePages = 10000

// ListFiles lists every file of the revision ("" means "main"; pass ModelInfo's SHA for a consistent view)
// through the recursive tree endpoint, following Link rel="next" pagination. Directories are dropped.
// An unsafe path fails the whole listing with a [*HostileFileError]; a malformed hash or a duplicate path
// with a [*MetadataError].
func (c *Client) ListFiles(ctx context.Context, repo, revision string) ([]File, error) {
	if revision == "" {
		revision = DefaultRevision
	}
	if err := ValidateRepoID(repo); err != nil {
		return nil, err
	}
	u, err := c.apiURL("/api/models/" + escapeRepo(repo) + "/tree/" + url.PathEscape(revision) + "?recursive=true")
	if err != nil {
		return nil, err
	}
	t := target{repo: repo, revision: revision}
	var files []File
	seen := map[string]bool{}
	visited := map[string]bool{}
	for page := 0; ; page++ {
		if page == maxTreePages {
			return nil, &MetadataError{URL: u.String(), Problem: fmt.Sprintf("tree pagination exceeds %d pages", maxTreePages)}
		}
		visited[u.String()] = true
		var entries []struct {
			Type string `json:"type"`
			Path string `json:"path"`
			Size int64  `json:"size"`
			OID  string `json:"oid"`
			LFS  *struct {
				OID  string `json:"oid"`
				Size int64  `json:"size"`
			} `json:"lfs"`
		}
		resp, err := c.getJSON(ctx, u, t, &entries)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type != "file" {
				continue
			}
			f := File{Path: e.Path, Size: e.Size, OID: e.OID}
			if e.LFS != nil {
				f.LFS = &LFSInfo{SHA256: e.LFS.OID, Size: e.LFS.Size}
			}
			if err := checkFile(u, repo, f.Path, f.Size, f.OID, f.LFS, seen); err != nil {
				return nil, err
			}
			files = append(files, f)
		}
		next := linkNext(resp.Header.Values("Link"))
		if next == "" {
			return files, nil
		}
		nu, err := resp.Request.URL.Parse(next)
		if err != nil || (nu.Scheme != "http" && nu.Scheme != "https") {
			return nil, &MetadataError{URL: u.String(), Problem: fmt.Sprintf("unusable Link rel=\"next\" %q", netclass.RedactURL(next))}
		}
		if visited[nu.String()] {
			return nil, &MetadataError{URL: u.String(), Problem: "tree pagination loops back to a page already read"}
		}
		u = nu
	}
}

// checkFile validates one listed file and records its path in seen.
func checkFile(u *url.URL, repo, path string, size int64, oid string, lfs *LFSInfo, seen map[string]bool) error {
	if !safePath(path) {
		return &HostileFileError{Repo: repo, Path: path}
	}
	if seen[path] {
		return &MetadataError{URL: u.String(), Problem: fmt.Sprintf("file %q is listed twice", path)}
	}
	seen[path] = true
	if size < 0 {
		return &MetadataError{URL: u.String(), Problem: fmt.Sprintf("file %q has negative size %d", path, size)}
	}
	if oid != "" && !isHex(oid, 40) && !isHex(oid, 64) {
		return &MetadataError{URL: u.String(), Problem: fmt.Sprintf("file %q has malformed object id %q", path, oid)}
	}
	if lfs != nil && (!isHex(lfs.SHA256, 64) || lfs.Size < 0) {
		return &MetadataError{URL: u.String(), Problem: fmt.Sprintf("file %q has malformed LFS info (sha256 %q, size %d)", path, lfs.SHA256, lfs.Size)}
	}
	return nil
}

// WhoAmI returns the token's account (GET /api/whoami-v2). Without a token, or with one the hub rejects,
// it returns an [*UnauthorizedError].
func (c *Client) WhoAmI(ctx context.Context) (*User, error) {
	if c.token == "" {
		return nil, &UnauthorizedError{Endpoint: c.endpoint, Message: "no token configured"}
	}
	u, err := c.apiURL("/api/whoami-v2")
	if err != nil {
		return nil, err
	}
	var raw struct {
		Name string `json:"name"`
		Type string `json:"type"`
		Orgs []struct {
			Name string `json:"name"`
		} `json:"orgs"`
	}
	if _, err := c.getJSON(ctx, u, target{whoami: true}, &raw); err != nil {
		return nil, err
	}
	user := &User{Name: raw.Name, Type: raw.Type}
	for _, o := range raw.Orgs {
		user.Orgs = append(user.Orgs, o.Name)
	}
	return user, nil
}

// apiURL joins the endpoint and an already-escaped path with query.
func (c *Client) apiURL(pathAndQuery string) (*url.URL, error) {
	if c.err != nil {
		return nil, c.err
	}
	return url.Parse(c.endpoint + pathAndQuery)
}

// escapeRepo escapes each segment of "namespace/name".
func escapeRepo(repo string) string {
	segs := strings.Split(repo, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// getJSON GETs u (following redirects), requires 200 and decodes at most maxJSONBody bytes of JSON into v.
// The returned response's body is closed; its headers remain readable.
// 5xx, 429 and connection failures are retried (see [Retry]); a body cut short is read again too.
func (c *Client) getJSON(ctx context.Context, u *url.URL, t target, v any) (*http.Response, error) {
	var resp *http.Response
	var body []byte
	err := c.withRetry(ctx, func() error {
		var err error
		resp, err = c.send(ctx, http.MethodGet, u, http.Header{"Accept": {"application/json"}}, false)
		if err != nil {
			return err
		}
		if resp.StatusCode >= 400 {
			return c.responseError(resp, t)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &HTTPError{Method: http.MethodGet, Status: resp.StatusCode, URL: resp.Request.URL.String(), Message: "expected 200 with a JSON body"}
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
		if err != nil {
			return fmt.Errorf("reading %s: %w", netclass.RedactURL(resp.Request.URL.String()), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.decodeJSON(resp, body, v); err != nil {
		return nil, err
	}
	return resp, nil
}

// decodeJSON decodes a JSON body read by getJSON into v.
func (c *Client) decodeJSON(resp *http.Response, body []byte, v any) error {
	if len(body) > maxJSONBody {
		return &MetadataError{URL: resp.Request.URL.String(), Problem: fmt.Sprintf("JSON answer larger than %d MiB", maxJSONBody>>20)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &MetadataError{URL: resp.Request.URL.String(), Problem: fmt.Sprintf("malformed JSON: %v", err)}
		}
		return fmt.Errorf("decoding %s: %w", netclass.RedactURL(resp.Request.URL.String()), err)
	}
	return nil
}

// linkNext returns the target of the rel="next" link in RFC 8288 Link header values, or "".
func linkNext(values []string) string {
	for _, v := range values {
		for v != "" {
			lt := strings.IndexByte(v, '<')
			if lt < 0 {
				break
			}
			gt := strings.IndexByte(v[lt:], '>')
			if gt < 0 {
				break
			}
			target := v[lt+1 : lt+gt]
			rest := v[lt+gt+1:]
			params := rest
			if i := strings.IndexByte(rest, ','); i >= 0 {
				params, rest = rest[:i], rest[i+1:]
			} else {
				rest = ""
			}
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
			v = rest
		}
	}
	return ""
}
