package hub

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFileMeta(t *testing.T) {
	t.Parallel()
	cdn, cdnSeen := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot) // FileMeta must never reach the CDN
	})
	cdnURL := otherHost(t, cdn.URL) + "/repos/blob?X-Amz-Signature=sig"

	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	type answer struct {
		status int
		header http.Header
	}
	tests := []struct {
		name    string
		path    string
		answers map[string]answer // by request URI
		want    func(endpoint string) *FileMeta
		wantErr string // substring of a *MetadataError or other error
		hops    int    // requests the endpoint should see
	}{
		{
			name: "regular file: 200 with ETag and Content-Length",
			path: "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {200, hdr(
				"X-Repo-Commit", commitA, "ETag", `"`+sha1A+`"`, "Content-Length", "1234")}},
			want: func(e string) *FileMeta {
				return &FileMeta{Commit: commitA, ETag: sha1A, Size: 1234, Location: e + "/org/m/resolve/main/config.json"}
			},
			hops: 1,
		},
		{
			name: "weak ETag is normalised",
			path: "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {200, hdr(
				"X-Repo-Commit", commitA, "ETag", `W/"`+sha1A+`"`, "Content-Length", "5")}},
			want: func(e string) *FileMeta {
				return &FileMeta{Commit: commitA, ETag: sha1A, Size: 5, Location: e + "/org/m/resolve/main/config.json"}
			},
			hops: 1,
		},
		{
			name: "LFS file: absolute 302 is recorded, not followed; linked headers win",
			path: "model.safetensors",
			answers: map[string]answer{"/org/m/resolve/main/model.safetensors": {302, hdr(
				"Location", cdnURL, "X-Repo-Commit", commitA, "ETag", `"`+sha1A+`"`,
				"X-Linked-Etag", `"`+sha256A+`"`, "X-Linked-Size", "536063208", "Content-Length", "1")}},
			want: func(string) *FileMeta {
				return &FileMeta{Commit: commitA, ETag: sha256A, Size: 536063208, Location: cdnURL, LFS: true}
			},
			hops: 1,
		},
		{
			name: "relative redirect (renamed repo) is followed with the token",
			path: "sub dir/w.bin",
			answers: map[string]answer{
				"/org/m/resolve/main/sub%20dir/w.bin": {307, hdr("Location", "/org/new/resolve/main/sub%20dir/w.bin")},
				"/org/new/resolve/main/sub%20dir/w.bin": {200, hdr(
					"X-Repo-Commit", commitA, "ETag", `"`+sha1A+`"`, "Content-Length", "7")},
			},
			want: func(e string) *FileMeta {
				return &FileMeta{Commit: commitA, ETag: sha1A, Size: 7, Location: e + "/org/new/resolve/main/sub%20dir/w.bin"}
			},
			hops: 2,
		},
		{
			name: "relative redirect then absolute redirect",
			path: "w.bin",
			answers: map[string]answer{
				"/org/m/resolve/main/w.bin": {301, hdr("Location", "../../../../new/m/resolve/main/w.bin")},
				"/new/m/resolve/main/w.bin": {302, hdr("Location", cdnURL, "X-Repo-Commit", commitA, "X-Linked-Etag", sha256A, "X-Linked-Size", "9")},
			},
			want: func(string) *FileMeta {
				return &FileMeta{Commit: commitA, ETag: sha256A, Size: 9, Location: cdnURL, LFS: true}
			},
			hops: 2,
		},
		{
			name:    "missing X-Repo-Commit",
			path:    "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {200, hdr("ETag", sha1A, "Content-Length", "3")}},
			wantErr: "no X-Repo-Commit header",
			hops:    1,
		},
		{
			name:    "malformed X-Repo-Commit",
			path:    "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {200, hdr("X-Repo-Commit", "main", "ETag", sha1A, "Content-Length", "3")}},
			wantErr: `X-Repo-Commit "main" is not a 40-hex commit`,
			hops:    1,
		},
		{
			name:    "missing ETag",
			path:    "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {200, hdr("X-Repo-Commit", commitA, "Content-Length", "3")}},
			wantErr: "no ETag or X-Linked-Etag header",
			hops:    1,
		},
		{
			name:    "ETag that would escape the blob directory",
			path:    "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {200, hdr("X-Repo-Commit", commitA, "ETag", `"../../etc/x"`, "Content-Length", "3")}},
			wantErr: `ETag "../../etc/x" cannot name a blob`,
			hops:    1,
		},
		{
			name: "redirect without X-Linked-Size: Content-Length of a redirect is not the file's",
			path: "w.bin",
			answers: map[string]answer{"/org/m/resolve/main/w.bin": {302, hdr(
				"Location", cdnURL, "X-Repo-Commit", commitA, "X-Linked-Etag", sha256A, "Content-Length", "130")}},
			wantErr: "no X-Linked-Size or Content-Length header",
			hops:    1,
		},
		{
			name:    "malformed size",
			path:    "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {200, hdr("X-Repo-Commit", commitA, "ETag", sha1A, "X-Linked-Size", "-4")}},
			wantErr: `malformed size "-4"`,
			hops:    1,
		},
		{
			name: "redirect without Location",
			path: "config.json",
			answers: map[string]answer{"/org/m/resolve/main/config.json": {302, hdr(
				"X-Repo-Commit", commitA, "ETag", sha1A, "X-Linked-Size", "3")}},
			wantErr: "302 redirect without a usable Location",
			hops:    1,
		},
		{
			name:    "relative redirect loop is bounded",
			path:    "loop",
			answers: map[string]answer{"/org/m/resolve/main/loop": {302, hdr("Location", "/org/m/resolve/main/loop")}},
			wantErr: "more than 10 redirects",
			hops:    11,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
				a, ok := tt.answers[r.RequestURI]
				if !ok {
					http.Error(w, "unexpected "+r.RequestURI, http.StatusInternalServerError)
					return
				}
				for k, v := range a.header {
					w.Header()[k] = v
				}
				w.WriteHeader(a.status)
			})
			got, err := newClient(srv.URL).FileMeta(t.Context(), "org/m", "", tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FileMeta error = %v, want one containing %q", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("FileMeta: %v", err)
				}
				if diff := cmp.Diff(tt.want(srv.URL), got); diff != "" {
					t.Errorf("FileMeta (-want +got):\n%s", diff)
				}
			}
			reqs := seen.all()
			if len(reqs) != tt.hops {
				t.Errorf("endpoint saw %d requests, want %d: %+v", len(reqs), tt.hops, reqs)
			}
			for _, r := range reqs {
				if r.Method != http.MethodHead || r.Auth != "Bearer "+testToken || r.AcceptEncoding != "identity" {
					t.Errorf("request %+v: want HEAD with the bearer token and Accept-Encoding: identity", r)
				}
			}
		})
	}
	if n := len(cdnSeen.all()); n != 0 {
		t.Errorf("the CDN saw %d requests; FileMeta must not follow absolute redirects", n)
	}
}

func TestFileMetaEscapesRevisionAndPath(t *testing.T) {
	t.Parallel()
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Repo-Commit", commitA)
		w.Header().Set("ETag", sha1A)
		w.Header().Set("Content-Length", "1")
	})
	if _, err := newClient(srv.URL).FileMeta(t.Context(), "org/m", "refs/pr/1", "a b/c#d?.json"); err != nil {
		t.Fatal(err)
	}
	want := "/org/m/resolve/refs%2Fpr%2F1/a%20b/c%23d%3F.json"
	if got := seen.all()[0].URI; got != want {
		t.Errorf("request URI = %s, want %s", got, want)
	}
}

func TestFileMetaRejectsHostilePathWithoutRequest(t *testing.T) {
	t.Parallel()
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {})
	_, err := newClient(srv.URL).FileMeta(t.Context(), "org/m", "main", "../../etc/passwd")
	var he *HostileFileError
	if !errors.As(err, &he) || he.Path != "../../etc/passwd" {
		t.Fatalf("error = %v, want *HostileFileError", err)
	}
	if len(seen.all()) != 0 {
		t.Error("a request was sent for a hostile path")
	}
}

// TestGetDropsTokenAcrossHosts follows the real Hub's LFS flow: HEAD on the endpoint, GET of the CDN
// Location. The endpoint must see the token; the CDN (another host) never.
func TestGetDropsTokenAcrossHosts(t *testing.T) {
	t.Parallel()
	content := []byte("0123456789abcdefghij")
	cdn, cdnSeen := server(t, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(content))
	})
	cdnBase := otherHost(t, cdn.URL)
	var hub *recorder
	srv, hub := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/org/m/resolve/main/model.safetensors":
			w.Header().Set("X-Repo-Commit", commitA)
			w.Header().Set("X-Linked-Etag", `"`+sha256A+`"`)
			w.Header().Set("X-Linked-Size", "20")
			http.Redirect(w, r, cdnBase+"/blob?sig=1", http.StatusFound)
		case "/same-server-other-host":
			// Same listener, reached as "localhost": a different origin for the client.
			http.Redirect(w, r, otherHost(t, "http://"+r.Host)+"/final", http.StatusFound)
		case "/final":
			http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(content))
		}
	})
	c := newClient(srv.URL)
	meta, err := c.FileMeta(t.Context(), "org/m", "main", "model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	// Through the resolve URL (endpoint → 302 → CDN) and directly at the CDN Location.
	for _, u := range []string{c.ResolveURL("org/m", "main", "model.safetensors"), meta.Location} {
		body, rng, err := c.Get(t.Context(), u, 5, 9)
		if err != nil {
			t.Fatalf("Get(%s): %v", u, err)
		}
		got, _ := io.ReadAll(body)
		body.Close()
		if string(got) != "56789" || rng != (Range{Start: 5, End: 9, Total: 20}) {
			t.Errorf("Get(%s) = %q %+v, want \"56789\" {5 9 20}", u, got, rng)
		}
	}
	body, _, err := c.Get(t.Context(), srv.URL+"/same-server-other-host", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	body.Close()

	for _, r := range cdnSeen.all() {
		if r.Auth != "" {
			t.Errorf("the CDN received Authorization %q on %s", r.Auth, r.URI)
		}
	}
	if n := len(cdnSeen.all()); n != 2 {
		t.Errorf("CDN saw %d requests, want 2", n)
	}
	for _, r := range hub.all() {
		wantAuth := "Bearer " + testToken
		if strings.HasPrefix(r.Host, "localhost") {
			wantAuth = ""
		}
		if r.Auth != wantAuth {
			t.Errorf("%s %s (Host %s): Authorization %q, want %q", r.Method, r.URI, r.Host, r.Auth, wantAuth)
		}
	}
}

func TestGetRanges(t *testing.T) {
	t.Parallel()
	content := []byte("0123456789")
	tests := []struct {
		name       string
		start, end int64
		handler    http.HandlerFunc // nil: http.ServeContent
		wantRange  string           // Range header sent
		wantBody   string
		want       Range
		wantErr    any    // pointer to the wanted error type
		errText    string // substring
	}{
		{name: "whole file sends no Range", start: 0, end: -1, wantBody: "0123456789", want: Range{0, 9, 10}},
		{name: "closed range", start: 2, end: 4, wantRange: "bytes=2-4", wantBody: "234", want: Range{2, 4, 10}},
		{name: "open range", start: 7, end: -1, wantRange: "bytes=7-", wantBody: "789", want: Range{7, 9, 10}},
		{name: "first byte probe", start: 0, end: 0, wantRange: "bytes=0-0", wantBody: "0", want: Range{0, 0, 10}},
		{name: "range past the end is clamped by the server", start: 8, end: 10, wantRange: "bytes=8-10", wantBody: "89", want: Range{8, 9, 10}},
		{
			name: "200 to a ranged request", start: 3, end: -1, wantRange: "bytes=3-",
			handler: func(w http.ResponseWriter, r *http.Request) { w.Write(content) },
			wantErr: new(*RangeIgnoredError), errText: "ignored the Range header",
		},
		{
			name: "Content-Range for other bytes", start: 3, end: 5, wantRange: "bytes=3-5",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-2/10")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(content[:3])
			},
			wantErr: new(*MetadataError), errText: `asked for bytes 3-5, got Content-Range "bytes 0-2/10"`,
		},
		{
			name: "malformed Content-Range", start: 3, end: 5, wantRange: "bytes=3-5",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 3-5")
				w.WriteHeader(http.StatusPartialContent)
			},
			wantErr: new(*MetadataError), errText: `206 with malformed Content-Range "bytes 3-5"`,
		},
		{
			name: "Content-Length disagrees with Content-Range", start: 3, end: 5, wantRange: "bytes=3-5",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 3-5/10")
				w.Header().Set("Content-Length", "2")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(content[3:5])
			},
			wantErr: new(*MetadataError), errText: "Content-Length 2 does not match",
		},
		{
			name: "compressed despite identity", start: 0, end: -1,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				w.Write([]byte("\x1f\x8b"))
			},
			wantErr: new(*MetadataError), errText: `Content-Encoding "gzip"`,
		},
		{name: "range not satisfiable", start: 10, end: -1, wantRange: "bytes=10-", wantErr: new(*HTTPError), errText: "416 Requested Range Not Satisfiable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.handler
			if h == nil {
				h = func(w http.ResponseWriter, r *http.Request) {
					http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(content))
				}
			}
			srv, seen := server(t, h)
			body, got, err := New(Options{}).Get(t.Context(), srv.URL+"/f", tt.start, tt.end)
			if r := seen.all()[0]; r.Range != tt.wantRange || r.AcceptEncoding != "identity" {
				t.Errorf("sent Range %q Accept-Encoding %q, want %q and identity", r.Range, r.AcceptEncoding, tt.wantRange)
			}
			if tt.wantErr != nil {
				if err == nil || !errors.As(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("error = %v (%T), want %T containing %q", err, err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.wantBody || got != tt.want {
				t.Errorf("Get = %q %+v, want %q %+v", b, got, tt.wantBody, tt.want)
			}
		})
	}
}

func TestGetRejectsBadArguments(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	for _, tt := range []struct {
		url        string
		start, end int64
	}{
		{"http://h/x", -1, -1},
		{"http://h/x", 5, 4},
		{"/relative", 0, -1},
		{"ftp://h/x", 0, -1},
	} {
		if _, _, err := c.Get(t.Context(), tt.url, tt.start, tt.end); err == nil {
			t.Errorf("Get(%q, %d, %d) succeeded, want an error", tt.url, tt.start, tt.end)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Range
		ok   bool
	}{
		{"bytes 0-0/10", Range{0, 0, 10}, true},
		{"bytes 5-9/10", Range{5, 9, 10}, true},
		{"BYTES 5-9/10", Range{5, 9, 10}, true},
		{"bytes 5-9/*", Range{5, 9, -1}, true},
		{"bytes */10", Range{}, false},
		{"bytes 5-9/9", Range{}, false},
		{"bytes 9-5/10", Range{}, false},
		{"bytes -5/10", Range{}, false},
		{"bytes 5-9", Range{}, false},
		{"items 5-9/10", Range{}, false},
		{"", Range{}, false},
	}
	for _, tt := range tests {
		got, ok := parseContentRange(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %+v, %t; want %+v, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNormalizeETag(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`"` + sha1A + `"`:   sha1A,
		`W/"` + sha1A + `"`: sha1A,
		sha256A:             sha256A,
		` "abc" `:           "abc",
		`""`:                "",
		`W/""`:              "",
	} {
		if got := normalizeETag(in); got != want {
			t.Errorf("normalizeETag(%q) = %q, want %q", in, got, want)
		}
	}
}
