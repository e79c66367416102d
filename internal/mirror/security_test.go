package mirror

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// marker is the content of a file outside DIR that must never be served.
const marker = "TOP-SECRET-OUTSIDE-THE-MIRROR"

func TestHiddenAndTraversal(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "mirror")
	writeTree(t, parent, map[string][]byte{"secret.txt": []byte(marker)})
	files := fixtureFiles()
	files["hf/acme/tiny/.mirror-private/key.txt"] = []byte(marker)
	files["hf/acme/tiny/.git/config"] = []byte(marker)
	files["ollama/manifests/registry.ollama.ai/library/x/.mirror-tag"] = []byte(marker)
	writeTree(t, dir, files)
	// A symlink leaving DIR is neither listed nor served.
	if err := os.Symlink(filepath.Join(parent, "secret.txt"), filepath.Join(dir, "hf/acme/tiny/escape.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".mirror-cache.json"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	f := serveDir(t, dir, Options{CacheFile: "-"})

	targets := []string{
		"/acme/tiny/resolve/main/.mirror.json",
		"/acme/tiny/resolve/main/.mirror-notes.txt",
		"/acme/tiny/resolve/main/.mirror-private/key.txt",
		"/acme/tiny/resolve/main/.mirror-revs/v1.0/hello.txt",
		"/acme/tiny/resolve/main/.git/config",
		"/acme/tiny/resolve/main/escape.txt",
		"/acme/tiny/resolve/main/../../../../secret.txt",
		"/acme/tiny/resolve/main/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
		"/acme/tiny/resolve/main/..%2F..%2F..%2F..%2Fsecret.txt",
		"/acme/tiny/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
		"/acme/tiny/resolve/main//" + filepath.ToSlash(filepath.Join(parent, "secret.txt")),
		"/acme/tiny/resolve/main/%2F" + url.PathEscape(filepath.Join(parent, "secret.txt")),
		"/acme/tiny/resolve/main/..\\..\\..\\..\\secret.txt",
		"/acme/tiny/resolve/..%2F..%2F..%2F..%2F/secret.txt",
		"/acme/..%2F..%2F..%2F/resolve/main/secret.txt",
		"/../secret.txt",
		"/%2e%2e/secret.txt",
		"/api/models/acme/..%2F..%2F..%2F",
		"/api/models/acme/tiny/tree/main/..%2F..%2F..",
		"/api/models/acme/tiny/tree/main/.mirror-private",
		"/v2/library/x/manifests/.mirror-tag",
		"/v2/library/..%2F..%2F..%2F..%2F/manifests/secret.txt",
		"/v2/library/tiny/blobs/sha256:..%2F..%2F..%2Fsecret.txt",
		"/.mirror-cache.json",
		"/mirror/secret.txt",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			status, body := f.rawGet(t, target)
			if strings.Contains(body, marker) {
				t.Fatalf("served the secret: %d %s", status, body)
			}
			if status != http.StatusNotFound && status != http.StatusBadRequest {
				t.Errorf("status %d, want 404 or 400 (%s)", status, body)
			}
		})
	}
	// Nothing hidden is listed either.
	var tree []struct{ Path string }
	f.getJSON(t, "/api/models/acme/tiny/tree/main?recursive=true", "", &tree)
	for _, e := range tree {
		if strings.Contains(e.Path, ".mirror") || strings.HasPrefix(e.Path, ".git") || e.Path == "escape.txt" {
			t.Errorf("tree lists %s", e.Path)
		}
	}
}

// A symlink that stays inside DIR is served (a mirror built from an HF cache
// snapshot is all symlinks into blobs/).
func TestSymlinkInsideDir(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"blobs/abc": helloTxt, "hf/a/b/.keep-dir": nil})
	if err := os.Remove(filepath.Join(dir, "hf/a/b/.keep-dir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../blobs/abc", filepath.Join(dir, "hf/a/b/hello.txt")); err != nil {
		t.Fatal(err)
	}
	f := serveDir(t, dir, Options{})
	resp, body := f.do(t, "GET", "/a/b/resolve/main/hello.txt", "")
	if resp.StatusCode != 200 || string(body) != "hello\n" {
		t.Errorf("%s %q", resp.Status, body)
	}
}

func TestSignedURLs(t *testing.T) {
	var now atomic.Int64 // Unix seconds; requests run on other goroutines
	now.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	f := newFixture(t, nil, Options{Now: func() time.Time { return time.Unix(now.Load(), 0) }, URLTTL: time.Minute})
	good := f.lfsURL(t, "acme/tiny", "model.safetensors")
	u, _ := url.Parse(good)
	tamper := func(fn func(u *url.URL)) string {
		c := *u
		fn(&c)
		return c.String()
	}
	tests := []struct {
		name, url string
		status    int
	}{
		{"good", good, 200},
		{"forged signature", tamper(func(u *url.URL) {
			q := u.Query()
			q.Set("signature", strings.Repeat("0", 64))
			u.RawQuery = q.Encode()
		}), 403},
		{"no signature", tamper(func(u *url.URL) { u.RawQuery = "" }), 403},
		{"other file", tamper(func(u *url.URL) { u.Path = strings.Replace(u.Path, "model.safetensors", "small.bin", 1) }), 403},
		{"later expiry", tamper(func(u *url.URL) {
			q := u.Query()
			q.Set("expires", "99999999999")
			u.RawQuery = q.Encode()
		}), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(t, "HEAD", tt.url, "")
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
		})
	}
	// A signed URL expires.
	now.Add(120)
	if resp, body := f.do(t, "GET", good, ""); resp.StatusCode != 403 || !strings.Contains(string(body), "expired") {
		t.Errorf("expired URL: %s %s", resp.Status, body)
	}
}

func FuzzCleanURLPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/a/../b", "/a//b", "/a/./b", "/a/b/", "/..", "a", "/a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !cleanURLPath(p) {
			return
		}
		segs := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
		for i, s := range segs {
			if s == "." || s == ".." || (s == "" && !(len(segs) == 1 && i == 0)) {
				t.Fatalf("cleanURLPath(%q) accepted segment %q", p, s)
			}
		}
	})
}

func FuzzParseRepoConfig(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"private": true, "tokens": ["hf_x"]}`, `{"gated": "auto"}`,
		`{"revisions": {"v1": ".mirror-revs/v1"}}`, `{"revisions": {"v1": "../x"}}`,
		`{"faults": [{"kind": "stall", "bytes": 5, "files": "*.bin"}]}`, `{"x": 1}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseRepoConfig(strings.NewReader(s))
		if err != nil {
			return
		}
		for name, dir := range c.Revisions {
			if !filepath.IsLocal(dir) || name == "main" || strings.Contains(name, "/") {
				t.Fatalf("accepted revision %q → %q", name, dir)
			}
		}
		for _, fl := range c.Faults {
			if fl.Validate() != nil {
				t.Fatalf("accepted invalid fault %+v", fl)
			}
		}
	})
}
