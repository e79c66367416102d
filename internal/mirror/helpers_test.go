package mirror

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// weights is deterministic pseudo-random content of n bytes.
func weights(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// gitBlob is git hash-object, computed independently of the package.
func gitBlob(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// pointer is a git-lfs pointer file (git-lfs spec v1).
func pointer(b []byte) string {
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha256hex(b), len(b))
}

// writeTree creates files (slash paths → content) under dir.
func writeTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Fixture contents.
var (
	helloTxt   = []byte("hello\n")
	configJSON = []byte(`{"a":1}` + "\n")
	bigWeights = weights(2<<20+3, 1) // LFS by size and by extension
	smallBin   = weights(100, 2)     // LFS by extension only
	v1Weights  = weights(1<<20, 3)
)

const (
	goodToken   = "hf_goodtoken"
	otherToken  = "hf_othertoken"
	listedToken = "hf_listedonly"
)

// fixtureFiles is a mirror with public, private, gated and revisioned repos.
func fixtureFiles() map[string][]byte {
	return map[string][]byte{
		"hf/acme/tiny/hello.txt":                           helloTxt,
		"hf/acme/tiny/sub/config.json":                     configJSON,
		"hf/acme/tiny/model.safetensors":                   bigWeights,
		"hf/acme/tiny/small.bin":                           smallBin,
		"hf/acme/tiny/.mirror-notes.txt":                   []byte("never served"),
		"hf/acme/tiny/.mirror.json":                        []byte(`{"revisions": {"v1.0": ".mirror-revs/v1.0", "old": "old"}}`),
		"hf/acme/tiny/.mirror-revs/v1.0/hello.txt":         []byte("hello v1\n"),
		"hf/acme/tiny/.mirror-revs/v1.0/model.safetensors": v1Weights,
		"hf/acme/tiny/old/hello.txt":                       []byte("old\n"),
		"hf/acme/secret/.mirror.json":                      []byte(`{"private": true, "tokens": ["` + goodToken + `", "` + listedToken + `"]}`),
		"hf/acme/secret/hello.txt":                         helloTxt,
		"hf/acme/secret/model.safetensors":                 bigWeights,
		"hf/acme/gated/.mirror.json":                       []byte(`{"gated": "manual", "tokens": ["` + goodToken + `"]}`),
		"hf/acme/gated/hello.txt":                          helloTxt,
		"hf/acme/private-any/.mirror.json":                 []byte(`{"private": true}`),
		"hf/acme/private-any/hello.txt":                    helloTxt,
	}
}

type fixture struct {
	dir string
	srv *Server
	ts  *httptest.Server
	url string // http://127.0.0.1:port
	hc  *http.Client
}

// newFixture serves files (fixtureFiles if nil) on a loopback port.
func newFixture(t testing.TB, files map[string][]byte, opts Options) *fixture {
	t.Helper()
	dir := t.TempDir()
	if files == nil {
		files = fixtureFiles()
	}
	writeTree(t, dir, files)
	return serveDir(t, dir, opts)
}

func serveDir(t testing.TB, dir string, opts Options) *fixture {
	t.Helper()
	opts.Dir = dir
	if opts.Tokens == nil {
		opts.Tokens = []Token{{User: "alice", Value: goodToken}, {User: "bob", Value: otherToken}}
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &fixture{dir: dir, srv: srv, ts: ts, url: ts.URL, hc: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request (no redirects followed) and reads the whole body.
func (f *fixture) do(t testing.TB, method, url, token string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	if strings.HasPrefix(url, "/") {
		url = f.url + url
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}

// getJSON GETs url and decodes a 200 JSON answer into v.
func (f *fixture) getJSON(t testing.TB, url, token string, v any) *http.Response {
	t.Helper()
	resp, body := f.do(t, "GET", url, token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return resp
}

// commit is the sha of a revision, from model info.
func (f *fixture) commit(t testing.TB, repo, rev, token string) string {
	t.Helper()
	var info struct{ SHA string }
	f.getJSON(t, "/api/models/"+repo+"/revision/"+rev, token, &info)
	return info.SHA
}

// rawGet sends target verbatim (no client-side cleaning) and returns the
// status and body.
func (f *fixture) rawGet(t testing.TB, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", f.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, f.ts.Listener.Addr())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
