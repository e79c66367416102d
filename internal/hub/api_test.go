package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestModelInfo(t *testing.T) {
	t.Parallel()
	body := `{"id":"org/m","sha":"` + commitA + `","private":true,"gated":false,"downloads":3,
		"siblings":[
			{"rfilename":"config.json","size":1234,"blobId":"` + sha1A + `"},
			{"rfilename":"model.safetensors","size":536063208,"blobId":"` + sha1A + `","lfs":{"sha256":"` + sha256A + `","size":536063208,"pointerSize":134}}
		]}`
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	})
	got, err := newClient(srv.URL).ModelInfo(t.Context(), "org/m", "refs/pr/1")
	if err != nil {
		t.Fatal(err)
	}
	want := &ModelInfo{ID: "org/m", SHA: commitA, Private: true, Siblings: []Sibling{
		{RFilename: "config.json", Size: 1234, BlobID: sha1A},
		{RFilename: "model.safetensors", Size: 536063208, BlobID: sha1A, LFS: &LFSInfo{SHA256: sha256A, Size: 536063208}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ModelInfo (-want +got):\n%s", diff)
	}
	r := seen.all()[0]
	if r.URI != "/api/models/org/m/revision/refs%2Fpr%2F1?blobs=true" || r.Auth != "Bearer "+testToken {
		t.Errorf("request %+v: want /api/models/org/m/revision/refs%%2Fpr%%2F1?blobs=true with the token", r)
	}
}

func TestModelInfoFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		revision  string
		body      string
		wantGated string
		wantErr   string
	}{
		{name: "gated false", body: `{"sha":"` + commitA + `","gated":false}`},
		{name: "gated absent", body: `{"sha":"` + commitA + `"}`},
		{name: "gated auto", body: `{"sha":"` + commitA + `","gated":"auto"}`, wantGated: "auto"},
		{name: "gated manual", body: `{"sha":"` + commitA + `","gated":"manual"}`, wantGated: "manual"},
		{name: "gated true", body: `{"sha":"` + commitA + `","gated":true}`, wantGated: "true"},
		{name: "commit asked, commit answered", revision: commitA, body: `{"sha":"` + commitA + `"}`},
		{name: "no sha", body: `{"id":"org/m"}`, wantErr: `model info has no valid commit sha (got "")`},
		{name: "short sha", body: `{"sha":"abc123"}`, wantErr: `model info has no valid commit sha (got "abc123")`},
		{name: "commit asked, other commit answered", revision: commitA, body: `{"sha":"` + commitB + `"}`, wantErr: "asked for commit " + commitA + ", model info answered for commit " + commitB},
		{name: "not JSON", body: `<html>captive portal</html>`, wantErr: "malformed JSON"},
		{name: "LFS without sha256", body: `{"sha":"` + commitA + `","siblings":[{"rfilename":"a","lfs":{"size":3}}]}`, wantErr: `file "a" has malformed LFS info`},
		{name: "bad blob id", body: `{"sha":"` + commitA + `","siblings":[{"rfilename":"a","blobId":"../x"}]}`, wantErr: `file "a" has malformed object id "../x"`},
		{name: "duplicate sibling", body: `{"sha":"` + commitA + `","siblings":[{"rfilename":"a"},{"rfilename":"a"}]}`, wantErr: `file "a" is listed twice`},
		{name: "hostile sibling", body: `{"sha":"` + commitA + `","siblings":[{"rfilename":"../../.bashrc"}]}`, wantErr: `unsafe file path "../../.bashrc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tt.body) })
			got, err := New(Options{Endpoint: srv.URL}).ModelInfo(t.Context(), "org/m", tt.revision)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if Retryable(err) {
					t.Errorf("Retryable(%v) = true, want false", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Gated != tt.wantGated {
				t.Errorf("Gated = %q, want %q", got.Gated, tt.wantGated)
			}
		})
	}
}

func TestModelInfoRejectsBadRepoIDWithoutRequest(t *testing.T) {
	t.Parallel()
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {})
	c := New(Options{Endpoint: srv.URL})
	for _, repo := range []string{"", "a/b/c", "../x", "org/..", "org--x/m", "org/m?x", "/m"} {
		if _, err := c.ModelInfo(t.Context(), repo, "main"); err == nil || !strings.Contains(err.Error(), "invalid repository id") {
			t.Errorf("ModelInfo(%q) error = %v, want invalid repository id", repo, err)
		}
	}
	if n := len(seen.all()); n != 0 {
		t.Errorf("%d requests sent for invalid repository ids", n)
	}
}

type treeEntry struct {
	Type string         `json:"type"`
	Path string         `json:"path"`
	Size int64          `json:"size"`
	OID  string         `json:"oid"`
	LFS  map[string]any `json:"lfs,omitempty"`
}

func TestListFilesPaginates(t *testing.T) {
	t.Parallel()
	pages := map[string][]treeEntry{
		"": {
			{Type: "directory", Path: "onnx", OID: sha1A},
			{Type: "file", Path: "config.json", Size: 10, OID: sha1A},
		},
		"2": {
			{Type: "file", Path: "onnx/model.onnx", Size: 20, OID: sha1A, LFS: map[string]any{"oid": sha256A, "size": 20, "pointerSize": 134}},
		},
		"3": {
			{Type: "file", Path: "model.safetensors", Size: 30, OID: sha1A, LFS: map[string]any{"oid": sha256B, "size": 30}},
		},
	}
	var srvURL string
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		cursor := r.URL.Query().Get("cursor")
		switch cursor {
		case "": // relative next link
			w.Header().Set("Link", `</api/models/org/m/tree/`+commitA+`?recursive=true&cursor=2>; rel="next"`)
		case "2": // absolute next link among other links
			w.Header().Add("Link", `<`+srvURL+`/api/models/org/m/tree/`+commitA+`?recursive=true>; rel="first", <`+srvURL+`/api/models/org/m/tree/`+commitA+`?recursive=true&cursor=3>; rel="next"`)
		}
		json.NewEncoder(w).Encode(pages[cursor])
	})
	srvURL = srv.URL
	got, err := newClient(srv.URL).ListFiles(t.Context(), "org/m", commitA)
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Path: "config.json", Size: 10, OID: sha1A},
		{Path: "onnx/model.onnx", Size: 20, OID: sha1A, LFS: &LFSInfo{SHA256: sha256A, Size: 20}},
		{Path: "model.safetensors", Size: 30, OID: sha1A, LFS: &LFSInfo{SHA256: sha256B, Size: 30}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListFiles (-want +got):\n%s", diff)
	}
	var uris []string
	for _, r := range seen.all() {
		uris = append(uris, r.URI)
		if r.Auth != "Bearer "+testToken {
			t.Errorf("%s sent without the token", r.URI)
		}
	}
	wantURIs := []string{
		"/api/models/org/m/tree/" + commitA + "?recursive=true",
		"/api/models/org/m/tree/" + commitA + "?recursive=true&cursor=2",
		"/api/models/org/m/tree/" + commitA + "?recursive=true&cursor=3",
	}
	if diff := cmp.Diff(wantURIs, uris); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestListFilesPaginationLoop(t *testing.T) {
	t.Parallel()
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<?recursive=true&cursor=x>; rel="next"`)
		fmt.Fprint(w, `[]`)
	})
	_, err := New(Options{Endpoint: srv.URL}).ListFiles(t.Context(), "org/m", "main")
	var me *MetadataError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "loops back") {
		t.Fatalf("error = %v, want a pagination loop *MetadataError", err)
	}
	if n := len(seen.all()); n != 2 {
		t.Errorf("%d pages fetched, want 2", n)
	}
}

func TestListFilesRejectsHostilePaths(t *testing.T) {
	t.Parallel()
	hostile := []string{
		"/etc/passwd", "../escape", "a/../../b", "..", ".", "a/./b", `a\b`, `..\..\x`, "a\x00b", "a//b", "a/", "",
		"line\nbreak", "tab\there", "del\x7f",
	}
	for _, p := range hostile {
		t.Run(fmt.Sprintf("%q", p), func(t *testing.T) {
			t.Parallel()
			srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode([]treeEntry{{Type: "file", Path: "ok.json", OID: sha1A}, {Type: "file", Path: p, OID: sha1A}})
			})
			files, err := New(Options{Endpoint: srv.URL}).ListFiles(t.Context(), "org/m", "main")
			var he *HostileFileError
			if !errors.As(err, &he) || he.Path != p || he.Repo != "org/m" {
				t.Fatalf("ListFiles error = %v, want *HostileFileError{org/m, %q}", err, p)
			}
			if files != nil {
				t.Errorf("ListFiles returned files with a hostile listing: %v", files)
			}
		})
	}
	if safePath("bad\xffutf8") { // JSON decoding already replaces invalid UTF-8; FileMeta's argument does not
		t.Error(`safePath("bad\xffutf8") = true, want false`)
	}
	for _, p := range []string{"config.json", "a/b/c.safetensors", "..a", "a..", ".gitattributes", "dir/.hidden", "ünïcode/名前.txt", "a b/c:d"} {
		if !safePath(p) {
			t.Errorf("safePath(%q) = false, want true", p)
		}
	}
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("X-Error-Message", invalidCredentials)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"type":"user","name":"alice","orgs":[{"name":"acme"},{"name":"labs"}]}`)
	})
	got, err := newClient(srv.URL).WhoAmI(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&User{Name: "alice", Type: "user", Orgs: []string{"acme", "labs"}}, got); diff != "" {
		t.Errorf("WhoAmI (-want +got):\n%s", diff)
	}
	if uri := seen.all()[0].URI; uri != "/api/whoami-v2" {
		t.Errorf("request URI %s, want /api/whoami-v2", uri)
	}

	_, err = New(Options{Endpoint: srv.URL, Token: "hf_expired"}).WhoAmI(t.Context())
	var ue *UnauthorizedError
	if !errors.As(err, &ue) || ue.Message != invalidCredentials {
		t.Errorf("bad token: error = %v, want *UnauthorizedError", err)
	}

	before := len(seen.all())
	_, err = New(Options{Endpoint: srv.URL}).WhoAmI(t.Context())
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no token configured") {
		t.Errorf("no token: error = %v, want *UnauthorizedError", err)
	}
	if len(seen.all()) != before {
		t.Error("WhoAmI without a token sent a request")
	}
}

func TestLinkNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		values []string
		want   string
	}{
		{nil, ""},
		{[]string{`<https://h/a?cursor=2>; rel="next"`}, "https://h/a?cursor=2"},
		{[]string{`<https://h/1>; rel="prev", <https://h/3>; rel="next"`}, "https://h/3"},
		{[]string{`<https://h/1>; rel="first"`, `<https://h/3>; rel=next`}, "https://h/3"},
		{[]string{`<https://h/3>; title="x"; rel="prev next"`}, "https://h/3"},
		{[]string{`<https://h/3>; rel="nextish"`}, ""},
		{[]string{`garbage`, `<unterminated`}, ""},
	}
	for _, tt := range tests {
		if got := linkNext(tt.values); got != tt.want {
			t.Errorf("linkNext(%q) = %q, want %q", tt.values, got, tt.want)
		}
	}
}

func TestInvalidEndpoint(t *testing.T) {
	t.Parallel()
	for _, ep := range []string{"huggingface.co", "ftp://h", "http://", "http://h/?q=1"} {
		c := New(Options{Endpoint: ep})
		if _, err := c.ModelInfo(t.Context(), "org/m", "main"); err == nil || !strings.Contains(err.Error(), "HF_ENDPOINT") {
			t.Errorf("endpoint %q: error = %v, want one naming HF_ENDPOINT", ep, err)
		}
	}
	if got := New(Options{Endpoint: "https://hub.example/mirror/"}).Endpoint(); got != "https://hub.example/mirror" {
		t.Errorf("Endpoint() = %q, want the trailing slash stripped", got)
	}
	if got := New(Options{}).Endpoint(); got != DefaultEndpoint {
		t.Errorf("default Endpoint() = %q, want %q", got, DefaultEndpoint)
	}
}

func TestOffline(t *testing.T) {
	t.Parallel()
	srv, seen := server(t, func(w http.ResponseWriter, r *http.Request) {})
	c := New(Options{Endpoint: srv.URL, Offline: true})
	_, err := c.ModelInfo(t.Context(), "org/m", "main")
	if !errors.Is(err, ErrOffline) || Retryable(err) {
		t.Errorf("offline ModelInfo error = %v, want ErrOffline (not retryable)", err)
	}
	if _, _, err := c.Get(t.Context(), srv.URL+"/x", 0, -1); !errors.Is(err, ErrOffline) {
		t.Errorf("offline Get error = %v, want ErrOffline", err)
	}
	if len(seen.all()) != 0 {
		t.Error("an offline client sent a request")
	}
}
