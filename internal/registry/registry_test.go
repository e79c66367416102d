package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Name
		wantErr string
	}{
		{in: "qwen2.5:7b", want: Name{DefaultHost, "library", "qwen2.5", "7b"}},
		{in: "llama3", want: Name{DefaultHost, "library", "llama3", "latest"}},
		{in: "jmorgan/llama3:8b-q4_K_M", want: Name{DefaultHost, "jmorgan", "llama3", "8b-q4_K_M"}},
		{in: "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M", want: Name{"hf.co", "bartowski", "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M"}},
		{in: "localhost:5000/ns/model", want: Name{"localhost:5000", "ns", "model", "latest"}},
		{in: "127.0.0.1:5000/ns/model:v1.2", want: Name{"127.0.0.1:5000", "ns", "model", "v1.2"}},
		{in: "https://registry.ollama.ai/library/gemma:2b", want: Name{DefaultHost, "library", "gemma", "2b"}},
		{in: "_x/_y:_z", want: Name{DefaultHost, "_x", "_y", "_z"}},
		{in: "", wantErr: "model is empty"},
		{in: "model:", wantErr: "empty tag"},
		{in: ":tag", wantErr: "model is empty"},
		{in: "/model", wantErr: "namespace is empty"},
		{in: "host//model", wantErr: "namespace is empty"},
		{in: "a/b/c/d", wantErr: `too many "/"`},
		{in: "model@sha256:abc", wantErr: "digests"},
		{in: "http://localhost/ns/m", wantErr: `scheme "http" is not supported`},
		{in: "ns.x/model", wantErr: `namespace contains '.'`},
		{in: "-model", wantErr: "model must start with"},
		{in: "model:-tag", wantErr: "tag must start with"},
		{in: "mo del", wantErr: `model contains ' '`},
		{in: "model:a:b", wantErr: `model contains ':'`},
		{in: "../etc/passwd", wantErr: "host must start with"},
		{in: "../passwd", wantErr: "namespace must start with"},
		{in: strings.Repeat("m", 81), wantErr: "model is longer than 80 characters"},
		{in: "ns/" + strings.Repeat("m", 80) + ":" + strings.Repeat("t", 80), want: Name{DefaultHost, "ns", strings.Repeat("m", 80), strings.Repeat("t", 80)}},
	}
	for _, tt := range tests {
		got, err := ParseName(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseName(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseName(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseName(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if s := (Name{DefaultHost, "library", "qwen2.5", "7b"}).String(); s != "registry.ollama.ai/library/qwen2.5:7b" {
		t.Errorf("String() = %q", s)
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"qwen2.5:7b", "ns/m", "h:1/ns/m:t", "https://h/ns/m", "a/b/c/d", "m@sha256:x", ":", "/", "m:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if n.Host == "" || n.Namespace == "" || n.Model == "" || n.Tag == "" {
			t.Fatalf("ParseName(%q) = %+v with an empty part", s, n)
		}
		back, err := ParseName(n.String())
		if err != nil || back != n {
			t.Fatalf("ParseName(%q) = %+v; its String %q parses to %+v, %v", s, n, n.String(), back, err)
		}
		for _, part := range []string{n.Namespace, n.Model, n.Tag} {
			if strings.ContainsAny(part, "/\\") || part == "." || part == ".." {
				t.Fatalf("ParseName(%q) = %+v: part %q is unsafe in a path", s, n, part)
			}
		}
	})
}

const (
	digestCfg   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digestModel = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var manifestJSON = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
	`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + digestCfg + `","size":485},` +
	`"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"` + digestModel + `","size":4683073184},` +
	`{"mediaType":"application/vnd.ollama.image.template","digest":"` + digestCfg + `","size":1429,"from":"x","name":"y"}]}`

type seenRequest struct{ Method, Host, URI, Auth, Accept, Range string }

type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (r *recorder) all() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.reqs...)
}

func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seenRequest{r.Method, r.Host, r.RequestURI, r.Header.Get("Authorization"), r.Header.Get("Accept"), r.Header.Get("Range")})
		rec.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func otherHost(t *testing.T, srvURL string) string {
	t.Helper()
	if _, err := net.LookupHost("localhost"); err != nil {
		t.Skipf("localhost does not resolve: %v", err)
	}
	return strings.Replace(srvURL, "127.0.0.1", "localhost", 1)
}

// fakeRegistry serves one model behind an anonymous bearer-token challenge, redirecting blob GETs with a
// 307 to a CDN on another host, as registry.ollama.ai does.
type fakeRegistry struct {
	srv, cdn       *httptest.Server
	seen, cdnSeen  *recorder
	blob           []byte
	sameHostHop    bool // redirect blobs once within the registry host first
	serveBlobsHere bool // answer blob GETs with 200 instead of a redirect
}

const anonToken = "anon-token-123"

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{blob: []byte("GGUF0123456789")}
	f.cdn, f.cdnSeen = server(t, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(f.blob))
	})
	cdnBase := otherHost(t, f.cdn.URL)
	f.srv, f.seen = server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if r.URL.Query().Get("service") != "ollama.test" || r.URL.Query().Get("scope") != "repository:library/qwen2.5:pull" {
				http.Error(w, "bad scope", http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, `{"token":%q}`, anonToken)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+anonToken {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="ollama.test",scope="repository:library/qwen2.5:pull"`, f.srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/v2/library/qwen2.5/manifests/7b":
			w.Header().Set("Content-Type", ManifestMediaType)
			fmt.Fprint(w, manifestJSON)
		case r.URL.Path == "/v2/library/qwen2.5/blobs/"+digestModel:
			switch {
			case f.serveBlobsHere:
				http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(f.blob))
			case f.sameHostHop:
				http.Redirect(w, r, "/store/"+digestModel, http.StatusTemporaryRedirect)
			default:
				http.Redirect(w, r, cdnBase+"/blobs/x?sig=SIGNED", http.StatusTemporaryRedirect)
			}
		case r.URL.Path == "/store/"+digestModel:
			http.Redirect(w, r, cdnBase+"/blobs/x?sig=SIGNED", http.StatusTemporaryRedirect)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
		}
	})
	return f
}

func (f *fakeRegistry) client() *Client {
	return New(Options{Registry: strings.TrimPrefix(f.srv.URL, "http://"), Insecure: true})
}

func qwen(t *testing.T) Name {
	n, err := ParseName("qwen2.5:7b")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestManifestWithBearerChallenge(t *testing.T) {
	t.Parallel()
	f := newFakeRegistry(t)
	c := f.client()
	m, raw, err := c.Manifest(t.Context(), qwen(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != manifestJSON {
		t.Errorf("raw manifest differs from what was served:\n%s", raw)
	}
	want := &Manifest{SchemaVersion: 2, MediaType: ManifestMediaType,
		Config: Layer{MediaType: "application/vnd.docker.container.image.v1+json", Digest: digestCfg, Size: 485},
		Layers: []Layer{
			{MediaType: "application/vnd.ollama.image.model", Digest: digestModel, Size: 4683073184},
			{MediaType: "application/vnd.ollama.image.template", Digest: digestCfg, Size: 1429, From: "x", Name: "y"},
		}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Manifest (-want +got):\n%s", diff)
	}
	// A second call reuses the cached token: no new challenge.
	if _, _, err := c.Manifest(t.Context(), qwen(t)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range f.seen.all() {
		got = append(got, fmt.Sprintf("%s %s auth=%q accept=%q", r.Method, r.URI, r.Auth, r.Accept))
	}
	wantReqs := []string{
		`GET /v2/library/qwen2.5/manifests/7b auth="" accept="` + ManifestMediaType + `"`,
		`GET /token?scope=repository%3Alibrary%2Fqwen2.5%3Apull&service=ollama.test auth="" accept=""`,
		`GET /v2/library/qwen2.5/manifests/7b auth="Bearer anon-token-123" accept="` + ManifestMediaType + `"`,
		`GET /v2/library/qwen2.5/manifests/7b auth="Bearer anon-token-123" accept="` + ManifestMediaType + `"`,
	}
	if diff := cmp.Diff(wantReqs, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestManifestNotFound(t *testing.T) {
	t.Parallel()
	f := newFakeRegistry(t)
	n, _ := ParseName("nosuch:1b")
	_, _, err := f.client().Manifest(t.Context(), n)
	want := &NotFoundError{Name: "registry.ollama.ai/library/nosuch:1b", Code: "MANIFEST_UNKNOWN", Message: "manifest unknown"}
	if diff := cmp.Diff(want, err); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if Retryable(err) {
		t.Error("a missing model is retryable")
	}
	if msg := err.Error(); !strings.Contains(msg, "check the name and tag") {
		t.Errorf("message %q does not say what to do", msg)
	}
}

func TestManifestValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, wantErr string
	}{
		{"not JSON", `<html>`, "not a JSON manifest"},
		{"schema 1", `{"schemaVersion":1,"layers":[{"digest":"` + digestModel + `"}],"config":{"digest":"` + digestCfg + `"}}`, "schemaVersion 1, want 2"},
		{"no layers", `{"schemaVersion":2,"config":{"digest":"` + digestCfg + `"}}`, "no layers"},
		{"bad config digest", `{"schemaVersion":2,"config":{"digest":"sha256:abc"},"layers":[{"digest":"` + digestModel + `"}]}`, `config has digest "sha256:abc"`},
		{"path in a layer digest", `{"schemaVersion":2,"config":{"digest":"` + digestCfg + `"},"layers":[{"digest":"sha256:../../../../etc/passwd"}]}`, `layer 0 has digest "sha256:../../../../etc/passwd"`},
		{"upper-case digest", `{"schemaVersion":2,"config":{"digest":"` + digestCfg + `"},"layers":[{"digest":"` + strings.ToUpper(digestModel) + `"}]}`, "layer 0 has digest"},
		{"negative size", `{"schemaVersion":2,"config":{"digest":"` + digestCfg + `"},"layers":[{"digest":"` + digestModel + `","size":-1}]}`, "layer 0 has negative size -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tt.body) })
			_, _, err := New(Options{Registry: srv.URL}).Manifest(t.Context(), qwen(t))
			var me *ManifestError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want a *ManifestError containing %q", err, tt.wantErr)
			}
			if Retryable(err) {
				t.Error("an unusable manifest is retryable")
			}
		})
	}
}

func TestBlobURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                     string
		sameHostHop, serveHere   bool
		wantDirectOnCDN          bool
		wantRegistryBlobRequests int
	}{
		{name: "307 to the CDN", wantDirectOnCDN: true, wantRegistryBlobRequests: 2},
		{name: "same-host redirect first", sameHostHop: true, wantDirectOnCDN: true, wantRegistryBlobRequests: 2},
		{name: "blob served by the registry", serveHere: true, wantRegistryBlobRequests: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeRegistry(t)
			f.sameHostHop, f.serveBlobsHere = tc.sameHostHop, tc.serveHere
			c := f.client()
			direct, size, err := c.BlobURL(t.Context(), qwen(t), digestModel)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(f.blob)) {
				t.Errorf("size = %d, want %d", size, len(f.blob))
			}
			wantDirect := f.srv.URL + "/v2/library/qwen2.5/blobs/" + digestModel
			if tc.wantDirectOnCDN {
				wantDirect = otherHost(t, f.cdn.URL) + "/blobs/x?sig=SIGNED"
			}
			if direct != wantDirect {
				t.Errorf("direct URL = %s, want %s", direct, wantDirect)
			}
			// BlobURL never GETs the CDN; the HEAD for the size may end there.
			for _, r := range f.cdnSeen.all() {
				if r.Method != http.MethodHead {
					t.Errorf("BlobURL sent %s %s to the CDN", r.Method, r.URI)
				}
			}

			body, err := c.Get(t.Context(), direct, 4, 7)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(body)
			body.Close()
			if string(got) != "0123" {
				t.Errorf("Get(4-7) = %q, want %q", got, "0123")
			}
			for _, r := range f.cdnSeen.all() {
				if r.Auth != "" {
					t.Errorf("the CDN received Authorization %q on %s %s", r.Auth, r.Method, r.URI)
				}
			}
		})
	}
}

func TestBlobNotFound(t *testing.T) {
	t.Parallel()
	f := newFakeRegistry(t)
	missing := "sha256:" + strings.Repeat("9", 64)
	_, _, err := f.client().BlobURL(t.Context(), qwen(t), missing)
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.Digest != missing || nf.Name != "registry.ollama.ai/library/qwen2.5:7b" {
		t.Fatalf("error = %v, want *NotFoundError for the blob", err)
	}
	if _, _, err := f.client().BlobURL(t.Context(), qwen(t), "sha256:../x"); err == nil || !strings.Contains(err.Error(), "invalid blob digest") {
		t.Errorf("malformed digest: error = %v", err)
	}
}

func TestGetRanges(t *testing.T) {
	t.Parallel()
	content := []byte("0123456789")
	tests := []struct {
		name       string
		start, end int64
		handler    http.HandlerFunc
		wantRange  string
		wantBody   string
		wantErr    string
	}{
		{name: "whole blob", start: 0, end: -1, wantBody: "0123456789"},
		{name: "part", start: 2, end: 5, wantRange: "bytes=2-5", wantBody: "2345"},
		{name: "resume to the end", start: 8, end: -1, wantRange: "bytes=8-", wantBody: "89"},
		{name: "range ignored", start: 2, end: 5, wantRange: "bytes=2-5",
			handler: func(w http.ResponseWriter, r *http.Request) { w.Write(content) }, wantErr: "ignored the Range header"},
		{name: "wrong start", start: 2, end: 5, wantRange: "bytes=2-5",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-3/10")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(content[:4])
			}, wantErr: `asked for bytes from 2, got Content-Range "bytes 0-3/10"`},
		{name: "416", start: 10, end: -1, wantRange: "bytes=10-", wantErr: "416 Requested Range Not Satisfiable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.handler
			if h == nil {
				h = func(w http.ResponseWriter, r *http.Request) {
					http.ServeContent(w, r, "b", time.Time{}, bytes.NewReader(content))
				}
			}
			srv, seen := server(t, h)
			body, err := New(Options{}).Get(t.Context(), srv.URL+"/b", tt.start, tt.end)
			if r := seen.all()[0].Range; r != tt.wantRange {
				t.Errorf("sent Range %q, want %q", r, tt.wantRange)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(body)
			body.Close()
			if string(got) != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts Options
		name string
		want string
	}{
		{Options{}, "qwen2.5:7b", "https://registry.ollama.ai"},
		{Options{Registry: "127.0.0.1:8080", Insecure: true}, "qwen2.5:7b", "http://127.0.0.1:8080"},
		{Options{Registry: "127.0.0.1:8080", Insecure: true}, "127.0.0.1:8080/library/qwen2.5:7b", "http://127.0.0.1:8080"},
		{Options{Registry: "https://mirror.example/"}, "qwen2.5:7b", "https://mirror.example"},
		{Options{Registry: "mirror.example"}, "hf.co/org/model:Q4", "https://hf.co"},
		{Options{Insecure: true}, "localhost:5000/ns/m", "http://localhost:5000"},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := New(tt.opts).base(n); got != tt.want {
			t.Errorf("New(%+v).base(%s) = %s, want %s", tt.opts, tt.name, got, tt.want)
		}
	}
}

func TestParseBearerChallenge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want challenge
		ok   bool
	}{
		{`Bearer realm="https://ollama.com/token",service="ollama.com",scope="repository:library/x:pull"`,
			challenge{"https://ollama.com/token", "ollama.com", "repository:library/x:pull"}, true},
		{`bearer realm="https://a/t", service="s"`, challenge{realm: "https://a/t", service: "s"}, true},
		{`Bearer realm=https://a/t,scope=x`, challenge{realm: "https://a/t", scope: "x"}, true},
		{`Basic realm="x"`, challenge{}, false},
		{`Bearer service="s"`, challenge{}, false},
		{`Bearer realm="unterminated`, challenge{}, false},
		{``, challenge{}, false},
	}
	for _, tt := range tests {
		got, ok := parseBearerChallenge(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseBearerChallenge(%q) = %+v, %t; want %+v, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTokenRealmMustBeHTTPS(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://evil.example/token"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	// A secure client talking to a registry given as an http URL still refuses a plain-http realm.
	_, _, err := New(Options{Registry: srv.URL}).Manifest(t.Context(), qwen(t))
	if err == nil || !strings.Contains(err.Error(), "not an https URL") {
		t.Fatalf("error = %v, want the realm refused", err)
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := New(Options{}).Get(t.Context(), "http://"+addr+"/b?sig=SECRET", 0, -1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, cancelled := New(Options{}).Get(ctx, "http://"+addr+"/b", 0, -1)

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", refused, true},
		{"cancelled", cancelled, false},
		{"DNS no such host", transportError(&url.Error{Op: "Get", URL: "u", Err: &net.DNSError{Name: "x.invalid", IsNotFound: true}}), false},
		{"range ignored", &RangeIgnoredError{}, true},
		{"500", &HTTPError{Status: 500}, true},
		{"429", &HTTPError{Status: 429}, true},
		{"408", &HTTPError{Status: 408}, true},
		{"401", &HTTPError{Status: 401}, false},
		{"404 typed", &NotFoundError{}, false},
		{"manifest", &ManifestError{}, false},
		{"unknown", errors.New("x"), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable(%v) = %t, want %t", tt.name, tt.err, got, tt.want)
		}
	}
	if strings.Contains(refused.Error(), "SECRET") {
		t.Errorf("error leaks the signed query: %v", refused)
	}
	if !strings.Contains(refused.Error(), "nothing accepts connections there; check the registry address") {
		t.Errorf("connection refused error %q does not name the registry address", refused)
	}
}
