package mirror

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestModelInfo(t *testing.T) {
	f := newFixture(t, nil, Options{})
	type lfs struct {
		SHA256      string `json:"sha256"`
		Size        int64  `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type sib struct {
		RFilename string `json:"rfilename"`
		Size      *int64 `json:"size"`
		BlobID    string `json:"blobId"`
		LFS       *lfs   `json:"lfs"`
	}
	type info struct {
		ID          string `json:"id"`
		SHA         string `json:"sha"`
		Private     bool   `json:"private"`
		Gated       any    `json:"gated"`
		Tags        []string
		LibraryName string `json:"library_name"`
		Siblings    []sib  `json:"siblings"`
	}
	size := func(b []byte) *int64 { n := int64(len(b)); return &n }
	names := []sib{{RFilename: "hello.txt"}, {RFilename: "model.safetensors"}, {RFilename: "small.bin"}, {RFilename: "sub/config.json"}}
	withBlobs := []sib{
		{RFilename: "hello.txt", Size: size(helloTxt), BlobID: "ce013625030ba8dba906f756967f9e9ca394464a"}, // git hash-object
		{RFilename: "model.safetensors", Size: size(bigWeights), BlobID: gitBlob([]byte(pointer(bigWeights))),
			LFS: &lfs{sha256hex(bigWeights), int64(len(bigWeights)), len(pointer(bigWeights))}},
		{RFilename: "small.bin", Size: size(smallBin), BlobID: gitBlob([]byte(pointer(smallBin))),
			LFS: &lfs{sha256hex(smallBin), int64(len(smallBin)), len(pointer(smallBin))}},
		{RFilename: "sub/config.json", Size: size(configJSON), BlobID: "0187f3b09d66cef7911083ad49f890f5a6589589"},
	}
	tests := []struct {
		url  string
		want info
	}{
		{"/api/models/acme/tiny", info{ID: "acme/tiny", Gated: false, Tags: []string{}, LibraryName: "", Siblings: names}},
		{"/api/models/acme/tiny/revision/main?blobs=true", info{ID: "acme/tiny", Gated: false, Tags: []string{}, Siblings: withBlobs}},
		{"/api/models/acme/tiny/revision/HEAD?blobs=True", info{ID: "acme/tiny", Gated: false, Tags: []string{}, Siblings: withBlobs}},
		{"/api/models/acme/gated", info{ID: "acme/gated", Gated: "manual", Tags: []string{}, Siblings: []sib{{RFilename: "hello.txt"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			var got info
			resp := f.getJSON(t, tt.url, "", &got)
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !hex40.MatchString(got.SHA) {
				t.Errorf("sha = %q, want 40 hex", got.SHA)
			}
			got.SHA = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	var raw map[string]any
	f.getJSON(t, "/api/models/acme/tiny", "", &raw)
	for _, k := range []string{"_id", "id", "sha", "lastModified", "private", "gated", "siblings", "tags"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("model info lacks %q", k)
		}
	}
	if lm, _ := raw["lastModified"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(lm) {
		t.Errorf("lastModified = %q", lm)
	}
}

func TestResolveSmallFile(t *testing.T) {
	f := newFixture(t, nil, Options{})
	commit := f.commit(t, "acme/tiny", "main", "")
	for _, method := range []string{"HEAD", "GET"} {
		t.Run(method, func(t *testing.T) {
			resp, body := f.do(t, method, "/acme/tiny/resolve/main/hello.txt", "", "Accept-Encoding", "identity")
			want := map[string]string{
				"ETag":           `"ce013625030ba8dba906f756967f9e9ca394464a"`,
				"Content-Length": "6",
				"X-Repo-Commit":  commit,
				"Accept-Ranges":  "bytes",
				"Content-Type":   "text/plain; charset=utf-8",
			}
			got := map[string]string{}
			for k := range want {
				got[k] = resp.Header.Get(k)
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d", resp.StatusCode)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("headers (-want +got)\n%s", diff)
			}
			wantBody := ""
			if method == "GET" {
				wantBody = string(helloTxt)
			}
			if string(body) != wantBody {
				t.Errorf("body = %q, want %q", body, wantBody)
			}
		})
	}
	// The JS client probes with Range: bytes=0-0 on resolve.
	resp, body := f.do(t, "GET", "/acme/tiny/resolve/main/sub/config.json", "", "Range", "bytes=0-0")
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 0-0/8" || string(body) != "{" {
		t.Errorf("Range 0-0: %s %q %q", resp.Status, resp.Header.Get("Content-Range"), body)
	}
	// Conditional GET on the ETag.
	resp, _ = f.do(t, "GET", "/acme/tiny/resolve/main/hello.txt", "", "If-None-Match", `"ce013625030ba8dba906f756967f9e9ca394464a"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", resp.StatusCode)
	}
}

func TestResolveLFSRedirectsToOtherHost(t *testing.T) {
	f := newFixture(t, nil, Options{})
	port := f.ts.Listener.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	commit := f.commit(t, "acme/tiny", "main", "")
	for _, tt := range []struct{ host, wantHost string }{
		{"127.0.0.1:" + port, "localhost:" + port},
		{"localhost:" + port, "127.0.0.1:" + port},
	} {
		for _, method := range []string{"HEAD", "GET"} {
			t.Run(tt.host+" "+method, func(t *testing.T) {
				resp, _ := f.do(t, method, "http://"+tt.host+"/acme/tiny/resolve/main/model.safetensors", "")
				if resp.StatusCode != http.StatusFound {
					t.Fatalf("status = %d, want 302", resp.StatusCode)
				}
				want := map[string]string{
					"ETag":          `"` + gitBlob([]byte(pointer(bigWeights))) + `"`,
					"X-Linked-Etag": `"` + sha256hex(bigWeights) + `"`,
					"X-Linked-Size": strconv.Itoa(len(bigWeights)),
					"X-Repo-Commit": commit,
				}
				got := map[string]string{}
				for k := range want {
					got[k] = resp.Header.Get(k)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("headers (-want +got)\n%s", diff)
				}
				loc, err := url.Parse(resp.Header.Get("Location"))
				if err != nil || loc.Host != tt.wantHost || loc.Scheme != "http" {
					t.Fatalf("Location = %q, want host %s", resp.Header.Get("Location"), tt.wantHost)
				}
				// The signed URL needs no token and serves the bytes.
				lresp, body := f.do(t, "GET", loc.String(), "")
				if lresp.StatusCode != http.StatusOK || !bytes.Equal(body, bigWeights) {
					t.Fatalf("LFS GET: %s, %d bytes", lresp.Status, len(body))
				}
				wantL := map[string]string{
					"ETag":           `"` + sha256hex(bigWeights) + `"`,
					"Accept-Ranges":  "bytes",
					"Content-Length": strconv.Itoa(len(bigWeights)),
					"Content-Type":   "application/octet-stream",
				}
				gotL := map[string]string{}
				for k := range wantL {
					gotL[k] = lresp.Header.Get(k)
				}
				if diff := cmp.Diff(wantL, gotL); diff != "" {
					t.Errorf("LFS headers (-want +got)\n%s", diff)
				}
			})
		}
	}
}

func TestLFSRange(t *testing.T) {
	f := newFixture(t, nil, Options{})
	resp, _ := f.do(t, "HEAD", "/acme/tiny/resolve/main/model.safetensors", "")
	loc := resp.Header.Get("Location")
	n := len(bigWeights)
	tests := []struct {
		rng          string
		status       int
		contentRange string
		body         []byte
	}{
		{"bytes=0-0", 206, "bytes 0-0/" + strconv.Itoa(n), bigWeights[:1]},
		{"bytes=10-19", 206, "bytes 10-19/" + strconv.Itoa(n), bigWeights[10:20]},
		{"bytes=1000-", 206, "bytes 1000-" + strconv.Itoa(n-1) + "/" + strconv.Itoa(n), bigWeights[1000:]},
		{"bytes=-5", 206, "bytes " + strconv.Itoa(n-5) + "-" + strconv.Itoa(n-1) + "/" + strconv.Itoa(n), bigWeights[n-5:]},
		// hf_transfer's last chunk asks for one byte past the end: clamped.
		{"bytes=" + strconv.Itoa(n-10) + "-" + strconv.Itoa(n), 206, "bytes " + strconv.Itoa(n-10) + "-" + strconv.Itoa(n-1) + "/" + strconv.Itoa(n), bigWeights[n-10:]},
		{"bytes=" + strconv.Itoa(n) + "-", 416, "bytes */" + strconv.Itoa(n), nil},
		{"bytes=" + strconv.Itoa(n+100) + "-" + strconv.Itoa(n+200), 416, "bytes */" + strconv.Itoa(n), nil},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			resp, body := f.do(t, "GET", loc, "", "Range", tt.rng)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range = %q, want %q", got, tt.contentRange)
			}
			if tt.status == 206 {
				if !bytes.Equal(body, tt.body) {
					t.Errorf("body: %d bytes, want %d", len(body), len(tt.body))
				}
				if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(tt.body)) {
					t.Errorf("Content-Length = %s, want %d", cl, len(tt.body))
				}
			}
		})
	}
}

func TestTree(t *testing.T) {
	f := newFixture(t, nil, Options{TreePageSize: 2})
	type lfs struct {
		OID         string `json:"oid"`
		Size        int64  `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type ent struct {
		Type string `json:"type"`
		Path string `json:"path"`
		OID  string `json:"oid"`
		Size int64  `json:"size"`
		LFS  *lfs   `json:"lfs"`
	}
	hello := ent{"file", "hello.txt", "ce013625030ba8dba906f756967f9e9ca394464a", 6, nil}
	model := ent{"file", "model.safetensors", gitBlob([]byte(pointer(bigWeights))), int64(len(bigWeights)),
		&lfs{sha256hex(bigWeights), int64(len(bigWeights)), len(pointer(bigWeights))}}
	small := ent{"file", "small.bin", gitBlob([]byte(pointer(smallBin))), int64(len(smallBin)),
		&lfs{sha256hex(smallBin), int64(len(smallBin)), len(pointer(smallBin))}}
	sub := ent{"directory", "sub", "5aa3213ea85d99a4a1e1d1b5bf1762bed873e093", 0, nil} // git ls-tree
	config := ent{"file", "sub/config.json", "0187f3b09d66cef7911083ad49f890f5a6589589", 8, nil}

	// list follows Link: rel="next" like the clients do and counts pages.
	list := func(t *testing.T, u string) ([]ent, int) {
		var all []ent
		pages := 0
		for u != "" {
			var page []ent
			resp := f.getJSON(t, u, "", &page)
			pages++
			if len(page) > 2 {
				t.Errorf("page of %d entries, page size is 2", len(page))
			}
			all = append(all, page...)
			u = ""
			if link := resp.Header.Get("Link"); link != "" {
				m := regexp.MustCompile(`^<(http://[^>]+)>; rel="next"$`).FindStringSubmatch(link)
				if m == nil {
					t.Fatalf("Link = %q, want <absolute URL>; rel=\"next\"", link)
				}
				u = m[1]
			}
		}
		return all, pages
	}
	tests := []struct {
		url   string
		want  []ent
		pages int
	}{
		{"/api/models/acme/tiny/tree/main?recursive=true", []ent{hello, model, small, sub, config}, 3},
		{"/api/models/acme/tiny/tree/main?recursive=false", []ent{hello, model, small, sub}, 2},
		{"/api/models/acme/tiny/tree/main", []ent{hello, model, small, sub}, 2},
		{"/api/models/acme/tiny/tree/main/sub?recursive=true", []ent{config}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, pages := list(t, tt.url)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if pages != tt.pages {
				t.Errorf("%d pages, want %d", pages, tt.pages)
			}
		})
	}
	t.Run("missing path", func(t *testing.T) {
		resp, _ := f.do(t, "GET", "/api/models/acme/tiny/tree/main/nope", "")
		if resp.StatusCode != 404 || resp.Header.Get("X-Error-Code") != "EntryNotFound" {
			t.Errorf("%s %q", resp.Status, resp.Header.Get("X-Error-Code"))
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		resp, _ := f.do(t, "GET", "/api/models/acme/tiny/tree/main?cursor=zzz", "")
		if resp.StatusCode != 400 {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("expand", func(t *testing.T) {
		var got []struct {
			Path       string
			LastCommit struct{ ID string }
		}
		f.getJSON(t, "/api/models/acme/tiny/tree/main/sub?expand=true", "", &got)
		if len(got) != 1 || got[0].LastCommit.ID != f.commit(t, "acme/tiny", "main", "") {
			t.Errorf("expand: %+v", got)
		}
	})
}

func TestPathsInfo(t *testing.T) {
	f := newFixture(t, nil, Options{})
	commit := f.commit(t, "acme/tiny", "main", "")
	for _, tt := range []struct {
		name, contentType, body string
	}{
		{"json", "application/json", `{"paths": ["hello.txt", "sub", "nope", "model.safetensors"], "expand": true}`},
		{"form", "application/x-www-form-urlencoded", "paths=hello.txt&paths=sub&paths=nope&paths=model.safetensors&expand=True"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", f.url+"/api/models/acme/tiny/paths-info/"+commit, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			resp, err := f.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got []struct {
				Type, Path string
				LFS        *struct{ OID string }
				LastCommit *struct{ ID string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %v", resp.Status, err)
			}
			var paths []string
			for _, e := range got {
				paths = append(paths, e.Type+":"+e.Path)
				if e.LastCommit == nil || e.LastCommit.ID != commit {
					t.Errorf("%s: lastCommit %+v, want %s", e.Path, e.LastCommit, commit)
				}
			}
			if diff := cmp.Diff([]string{"file:hello.txt", "directory:sub", "file:model.safetensors"}, paths); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if got[2].LFS == nil || got[2].LFS.OID != sha256hex(bigWeights) {
				t.Errorf("lfs = %+v", got[2].LFS)
			}
		})
	}
}

func TestWhoami(t *testing.T) {
	f := newFixture(t, nil, Options{})
	tests := []struct {
		token  string
		status int
		body   string
	}{
		{goodToken, 200, `"name":"alice"`},
		{otherToken, 200, `"name":"bob"`},
		{"", 401, `{"error":"Invalid credentials in Authorization header"}`},
		{"hf_bogus", 401, `{"error":"Invalid credentials in Authorization header"}`},
		{listedToken, 401, `{"error":"Invalid credentials in Authorization header"}`}, // valid for one repo only
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			resp, body := f.do(t, "GET", "/api/whoami-v2", tt.token)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
				t.Errorf("%d %s, want %d with %s", resp.StatusCode, body, tt.status, tt.body)
			}
			if tt.status == 200 && !strings.Contains(string(body), `"type":"user"`) {
				t.Errorf("body %s lacks type user", body)
			}
		})
	}
}

// hubErr is what a Hub error response carries.
type hubErr struct {
	Status              int
	Code, Message, Body string
	Commit              bool // X-Repo-Commit present
}

func readHubErr(resp *http.Response, body []byte) hubErr {
	return hubErr{resp.StatusCode, resp.Header.Get("X-Error-Code"), resp.Header.Get("X-Error-Message"), string(body), resp.Header.Get("X-Repo-Commit") != ""}
}

func TestErrors(t *testing.T) {
	f := newFixture(t, nil, Options{})
	body := func(msg string) string { return `{"error":"` + msg + `"}` + "\n" }
	const repoNF = "Repository not found"
	tests := []struct {
		name, url, token string
		want             hubErr
	}{
		{"repo missing", "/api/models/acme/nope", "", hubErr{404, "RepoNotFound", repoNF, body(repoNF), false}},
		{"repo missing resolve", "/acme/nope/resolve/main/x", "", hubErr{404, "RepoNotFound", repoNF, body(repoNF), false}},
		{"repo name invalid", "/api/models/acme/.mirror", "", hubErr{404, "RepoNotFound", repoNF, body(repoNF), false}},
		{"private anonymous", "/api/models/acme/secret", "", hubErr{401, "RepoNotFound", repoNF, body(repoNF), false}},
		{"private unknown token", "/api/models/acme/secret", "hf_bogus", hubErr{401, "", "Invalid credentials in Authorization header", body("Invalid credentials in Authorization header"), false}},
		{"private unlisted token", "/api/models/acme/secret", otherToken, hubErr{404, "RepoNotFound", repoNF, body(repoNF), false}},
		{"revision", "/api/models/acme/tiny/revision/v9", "", hubErr{404, "RevisionNotFound", "Invalid rev id: v9", body("Invalid rev id: v9"), false}},
		{"revision commit", "/acme/tiny/resolve/" + strings.Repeat("ab", 20) + "/hello.txt", "", hubErr{404, "RevisionNotFound", "Invalid rev id: " + strings.Repeat("ab", 20), body("Invalid rev id: " + strings.Repeat("ab", 20)), false}},
		{"entry", "/acme/tiny/resolve/main/nope.txt", "", hubErr{404, "EntryNotFound", "Entry not found: nope.txt does not exist at revision main", body("Entry not found: nope.txt does not exist at revision main"), true}},
		{"gated anonymous", "/acme/gated/resolve/main/hello.txt", "", hubErr{401, "GatedRepo",
			"Access to model acme/gated is restricted. You must have access to it and be authenticated to access it. Please log in.",
			body("Access to model acme/gated is restricted. You must have access to it and be authenticated to access it. Please log in."), false}},
		{"gated without access", "/acme/gated/resolve/main/hello.txt", otherToken, hubErr{403, "GatedRepo",
			"Access to model acme/gated is restricted and you are not in the authorized list.",
			body("Access to model acme/gated is restricted and you are not in the authorized list."), false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := f.do(t, "GET", tt.url, tt.token)
			if diff := cmp.Diff(tt.want, readHubErr(resp, b)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			// A HEAD carries the same headers (huggingface_hub reads them there).
			hresp, _ := f.do(t, "HEAD", tt.url, tt.token)
			if got := readHubErr(hresp, nil); got.Status != tt.want.Status || got.Code != tt.want.Code || got.Message != tt.want.Message {
				t.Errorf("HEAD: %+v", got)
			}
		})
	}
}

func TestAccessMatrix(t *testing.T) {
	f := newFixture(t, nil, Options{})
	// want: status of model info (meta) and of a file (resolve).
	tests := []struct {
		repo, token string
		meta, file  int
	}{
		{"acme/tiny", "", 200, 200},
		{"acme/tiny", "hf_bogus", 200, 200}, // unknown tokens are ignored on public repos
		{"acme/tiny", goodToken, 200, 200},
		{"acme/secret", "", 401, 401},
		{"acme/secret", "hf_bogus", 401, 401},
		{"acme/secret", otherToken, 404, 404},  // valid, not listed
		{"acme/secret", goodToken, 200, 200},   // valid and listed
		{"acme/secret", listedToken, 200, 200}, // listed only in .mirror.json
		{"acme/private-any", "", 401, 401},
		{"acme/private-any", otherToken, 200, 200}, // no list: every valid token
		{"acme/private-any", listedToken, 401, 401},
		{"acme/gated", "", 200, 401}, // metadata of gated repos is public
		{"acme/gated", "hf_bogus", 200, 401},
		{"acme/gated", otherToken, 200, 403},
		{"acme/gated", goodToken, 200, 200},
	}
	for _, tt := range tests {
		t.Run(tt.repo+"/"+tt.token, func(t *testing.T) {
			resp, _ := f.do(t, "GET", "/api/models/"+tt.repo, tt.token)
			tree, _ := f.do(t, "GET", "/api/models/"+tt.repo+"/tree/main", tt.token)
			file, _ := f.do(t, "GET", "/"+tt.repo+"/resolve/main/hello.txt", tt.token)
			got := []int{resp.StatusCode, tree.StatusCode, file.StatusCode}
			if diff := cmp.Diff([]int{tt.meta, tt.meta, tt.file}, got); diff != "" {
				t.Errorf("[info tree resolve] (-want +got)\n%s", diff)
			}
		})
	}
}

func TestRevisions(t *testing.T) {
	f := newFixture(t, nil, Options{})
	mainSHA := f.commit(t, "acme/tiny", "main", "")
	v1SHA := f.commit(t, "acme/tiny", "v1.0", "")
	oldSHA := f.commit(t, "acme/tiny", "old", "")
	if mainSHA == v1SHA || v1SHA == oldSHA || mainSHA == oldSHA {
		t.Fatalf("revisions share a commit: main %s v1.0 %s old %s", mainSHA, v1SHA, oldSHA)
	}
	tests := []struct {
		rev, file string
		body      string
		commit    string
	}{
		{"main", "hello.txt", "hello\n", mainSHA},
		{"HEAD", "hello.txt", "hello\n", mainSHA},
		{mainSHA, "hello.txt", "hello\n", mainSHA},
		{"v1.0", "hello.txt", "hello v1\n", v1SHA},
		{v1SHA, "hello.txt", "hello v1\n", v1SHA},
		{"old", "hello.txt", "old\n", oldSHA},
		{url.PathEscape(oldSHA), "hello.txt", "old\n", oldSHA},
	}
	for _, tt := range tests {
		t.Run(tt.rev, func(t *testing.T) {
			resp, body := f.do(t, "GET", "/acme/tiny/resolve/"+tt.rev+"/"+tt.file, "")
			if resp.StatusCode != 200 || string(body) != tt.body || resp.Header.Get("X-Repo-Commit") != tt.commit {
				t.Errorf("%s %q commit %s; want %q commit %s", resp.Status, body, resp.Header.Get("X-Repo-Commit"), tt.body, tt.commit)
			}
		})
	}
	// Revision subdirectories are not part of main, nor are .mirror files.
	var sibs struct{ Siblings []struct{ RFilename string } }
	f.getJSON(t, "/api/models/acme/tiny", "", &sibs)
	for _, s := range sibs.Siblings {
		if strings.HasPrefix(s.RFilename, "old/") || strings.Contains(s.RFilename, ".mirror") {
			t.Errorf("main lists %s", s.RFilename)
		}
	}
	// The LFS file of v1.0 redirects to its own commit.
	resp, _ := f.do(t, "HEAD", "/acme/tiny/resolve/v1.0/model.safetensors", "")
	if !strings.Contains(resp.Header.Get("Location"), "/__lfs/acme/tiny/"+v1SHA+"/model.safetensors?") ||
		resp.Header.Get("X-Linked-Etag") != `"`+sha256hex(v1Weights)+`"` {
		t.Errorf("v1.0 LFS: %v", resp.Header)
	}
}

func TestCommitDeterministic(t *testing.T) {
	files := map[string][]byte{"hf/a/b/x.txt": helloTxt, "hf/a/b/w.bin": smallBin}
	f1 := newFixture(t, files, Options{CacheFile: "-"})
	f2 := newFixture(t, files, Options{CacheFile: "-"}) // another directory, same content
	c1 := f1.commit(t, "a/b", "main", "")
	if c2 := f2.commit(t, "a/b", "main", ""); c1 != c2 {
		t.Errorf("same content, different commits: %s %s", c1, c2)
	}
	restarted := serveDir(t, f1.dir, Options{CacheFile: "-"})
	if c := restarted.commit(t, "a/b", "main", ""); c != c1 {
		t.Errorf("after restart: %s, want %s", c, c1)
	}
	writeTree(t, f1.dir, map[string][]byte{"hf/a/b/x.txt": []byte("changed\n")})
	if c := f1.commit(t, "a/b", "main", ""); c == c1 {
		t.Errorf("commit unchanged after a file changed: %s", c)
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	tok := Token{User: "alice", Value: "hf_supersecret"}
	var text, js bytes.Buffer
	for _, log := range []*slog.Logger{slog.New(slog.NewTextHandler(&text, nil)), slog.New(slog.NewJSONHandler(&js, nil))} {
		log.Info("token", "token", tok, "tokens", []Token{tok}, "opts", Options{Tokens: []Token{tok}})
	}
	for _, s := range []string{text.String(), js.String(), fmt.Sprint(tok), fmt.Sprintf("%+v %#v", tok, []Token{tok})} {
		if strings.Contains(s, "supersecret") {
			t.Errorf("secret printed: %s", s)
		}
		if !strings.Contains(s, "alice") {
			t.Errorf("user not printed: %s", s)
		}
	}
}
