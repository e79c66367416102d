package hub

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"citadel.dev/citadel/internal/netclass"
)

// FileMeta is what HEAD on a file's resolve URL says about it.
type FileMeta struct {
	Commit   string // X-Repo-Commit: the commit the revision resolved to (40 hex)
	ETag     string // X-Linked-Etag, else ETag, without W/ and quotes: sha256 for LFS files, git sha1 otherwise
	Size     int64  // X-Linked-Size, else Content-Length of a non-redirect answer
	Location string // absolute URL to GET: the redirect target (CDN) or the resolve URL itself
	LFS      bool   // ETag is a sha256 (64 hex)
}

// FileMeta sends HEAD {endpoint}/{repo}/resolve/{revision}/{path} with Accept-Encoding: identity, as
// huggingface_hub's get_hf_file_metadata does. Relative redirects (renamed repositories) are followed, at
// most 10; an absolute redirect (CDN) is not followed: its Location is recorded. The ETag must be safe as a
// file name ([A-Za-z0-9._-]) and the commit a full hash; a missing or malformed X-Repo-Commit, ETag or size
// is a [*MetadataError]. 5xx, 429 and connection failures are retried (see [Retry]).
func (c *Client) FileMeta(ctx context.Context, repo, revision, path string) (*FileMeta, error) {
	if revision == "" {
		revision = DefaultRevision
	}
	if err := ValidateRepoID(repo); err != nil {
		return nil, err
	}
	if !safePath(path) {
		return nil, &HostileFileError{Repo: repo, Path: path}
	}
	u, err := c.apiURL(c.resolvePath(repo, revision, path))
	if err != nil {
		return nil, err
	}
	var resp *http.Response
	if err := c.withRetry(ctx, func() error {
		var err error
		resp, err = c.send(ctx, http.MethodHead, u, http.Header{"Accept-Encoding": {"identity"}}, true)
		if err != nil {
			return err
		}
		if resp.StatusCode >= 400 {
			return c.responseError(resp, target{repo: repo, revision: revision, path: path})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	reqURL := resp.Request.URL
	meta := &FileMeta{Location: reqURL.String()}
	redirect := isRedirect(resp.StatusCode)
	if redirect {
		loc, err := resp.Location() // resolved against the request URL
		if err != nil {
			return nil, &MetadataError{URL: reqURL.String(), Problem: fmt.Sprintf("%d redirect without a usable Location", resp.StatusCode)}
		}
		meta.Location = loc.String()
	} else if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &HTTPError{Method: http.MethodHead, Status: resp.StatusCode, URL: reqURL.String(), Message: "expected 2xx or a redirect"}
	}
	h := resp.Header
	meta.Commit = h.Get("X-Repo-Commit")
	if meta.Commit == "" {
		return nil, &MetadataError{URL: reqURL.String(), Problem: "no X-Repo-Commit header"}
	}
	if !IsCommit(meta.Commit) {
		return nil, &MetadataError{URL: reqURL.String(), Problem: fmt.Sprintf("X-Repo-Commit %q is not a 40-hex commit", meta.Commit)}
	}
	etag := h.Get("X-Linked-Etag")
	if etag == "" {
		etag = h.Get("ETag")
	}
	meta.ETag = normalizeETag(etag)
	if meta.ETag == "" {
		return nil, &MetadataError{URL: reqURL.String(), Problem: "no ETag or X-Linked-Etag header"}
	}
	if !safeETag(meta.ETag) {
		return nil, &MetadataError{URL: reqURL.String(), Problem: fmt.Sprintf("ETag %q cannot name a blob (expected a sha1 or sha256)", meta.ETag)}
	}
	meta.LFS = isHex(meta.ETag, 64)
	size := h.Get("X-Linked-Size")
	if size == "" && !redirect {
		size = h.Get("Content-Length")
	}
	if size == "" {
		return nil, &MetadataError{URL: reqURL.String(), Problem: "no X-Linked-Size or Content-Length header: the file size is unknown"}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
	if err != nil || n < 0 {
		return nil, &MetadataError{URL: reqURL.String(), Problem: fmt.Sprintf("malformed size %q", size)}
	}
	meta.Size = n
	return meta, nil
}

// ResolveURL is {endpoint}/{repo}/resolve/{revision}/{path}, as huggingface_hub's hf_hub_url builds it:
// the revision escaped whole ("refs/pr/1" → "refs%2Fpr%2F1"), the path segment by segment.
func (c *Client) ResolveURL(repo, revision, path string) string {
	return c.endpoint + c.resolvePath(repo, revision, path)
}

func (c *Client) resolvePath(repo, revision, path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/" + escapeRepo(repo) + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(segs, "/")
}

// normalizeETag strips a weak-validator prefix and the quotes.
func normalizeETag(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	return strings.Trim(s, `"`)
}

// Range is the byte range a Get answered: bytes Start through End inclusive of a Total-byte file.
// Total is -1 when the server did not say; End is -1 for an unranged answer of unknown length.
type Range struct{ Start, End, Total int64 }

// Get GETs rawURL (typically FileMeta's Location) with Range bytes=start-end (end inclusive; end < 0 means to
// the end; start == 0 && end < 0 sends no Range) and Accept-Encoding: identity. Redirects are followed, at
// most 10, each hop carrying the token only if it goes to the endpoint's origin, so a signed CDN URL never
// sees it.
//
// A ranged request must be answered 206 with a Content-Range starting at start (and ending at end, or at
// the last byte when the file is shorter); a 200 instead is a [*RangeIgnoredError] (body closed). The
// returned body is the caller's to close; its length is End-Start+1 bytes (Content-Length is checked).
func (c *Client) Get(ctx context.Context, rawURL string, start, end int64) (io.ReadCloser, Range, error) {
	if start < 0 || (end >= 0 && end < start) {
		return nil, Range{}, fmt.Errorf("invalid byte range %d-%d", start, end)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, Range{}, fmt.Errorf("GET %q: not an absolute http(s) URL", netclass.RedactURL(rawURL))
	}
	header := http.Header{"Accept-Encoding": {"identity"}}
	ranged := start > 0 || end >= 0
	if ranged {
		if end >= 0 {
			header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
		} else {
			header.Set("Range", fmt.Sprintf("bytes=%d-", start))
		}
	}
	resp, err := c.send(ctx, http.MethodGet, u, header, false)
	if err != nil {
		return nil, Range{}, err
	}
	final := resp.Request.URL.String()
	if resp.StatusCode >= 400 {
		return nil, Range{}, c.responseError(resp, c.targetOf(resp.Request.URL))
	}
	fail := func(err error) (io.ReadCloser, Range, error) {
		discard(resp)
		return nil, Range{}, err
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return fail(&MetadataError{URL: final, Problem: fmt.Sprintf("Content-Encoding %q despite Accept-Encoding: identity; the size and ranges would not match the file", ce)})
	}
	switch {
	case resp.StatusCode == http.StatusOK && ranged:
		_ = resp.Body.Close()
		return nil, Range{}, &RangeIgnoredError{URL: final}
	case resp.StatusCode == http.StatusOK:
		r := Range{Start: 0, End: -1, Total: resp.ContentLength}
		if r.Total >= 0 {
			r.End = r.Total - 1
		}
		return resp.Body, r, nil
	case resp.StatusCode == http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		r, ok := parseContentRange(cr)
		if !ok {
			return fail(&MetadataError{URL: final, Problem: fmt.Sprintf("206 with malformed Content-Range %q", cr)})
		}
		good := r.Start == start
		switch {
		case end >= 0 && r.Total >= 0 && end >= r.Total:
			good = good && r.End == r.Total-1 // the server clamps a range past the end (hf_transfer asks for one byte too many)
		case end >= 0:
			good = good && r.End == end
		case r.Total >= 0:
			good = good && r.End == r.Total-1
		}
		if !good {
			return fail(&MetadataError{URL: final, Problem: fmt.Sprintf("asked for bytes %d-%s, got Content-Range %q", start, endString(end), cr)})
		}
		if resp.ContentLength >= 0 && resp.ContentLength != r.End-r.Start+1 {
			return fail(&MetadataError{URL: final, Problem: fmt.Sprintf("Content-Length %d does not match Content-Range %q", resp.ContentLength, cr)})
		}
		return resp.Body, r, nil
	case isRedirect(resp.StatusCode):
		return fail(&MetadataError{URL: final, Problem: fmt.Sprintf("%d redirect without a Location", resp.StatusCode)})
	}
	return fail(&HTTPError{Method: http.MethodGet, Status: resp.StatusCode, URL: final, Message: "expected 200 or 206"})
}

func endString(end int64) string {
	if end < 0 {
		return ""
	}
	return strconv.FormatInt(end, 10)
}

// parseContentRange parses "bytes a-b/N" (N may be "*": Total -1).
func parseContentRange(s string) (Range, bool) {
	unit, spec, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return Range{}, false
	}
	rng, total, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return Range{}, false
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return Range{}, false
	}
	var r Range
	var err error
	if r.Start, err = strconv.ParseInt(a, 10, 64); err != nil || r.Start < 0 {
		return Range{}, false
	}
	if r.End, err = strconv.ParseInt(b, 10, 64); err != nil || r.End < r.Start {
		return Range{}, false
	}
	if total == "*" {
		r.Total = -1
		return r, true
	}
	if r.Total, err = strconv.ParseInt(total, 10, 64); err != nil || r.Total <= r.End {
		return Range{}, false
	}
	return r, true
}

// targetOf recovers repo, revision and path from a resolve URL on the endpoint, for error messages of Get.
func (c *Client) targetOf(u *url.URL) target {
	if !sameOrigin(u, c.base) {
		return target{}
	}
	p := strings.TrimPrefix(u.EscapedPath(), strings.TrimRight(c.base.EscapedPath(), "/"))
	repo, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/resolve/")
	if !ok {
		return target{}
	}
	rev, file, _ := strings.Cut(rest, "/")
	unescape := func(s string) string {
		if v, err := url.PathUnescape(s); err == nil {
			return v
		}
		return s
	}
	return target{repo: unescape(repo), revision: unescape(rev), path: unescape(file)}
}
