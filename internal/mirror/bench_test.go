package mirror

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

const benchSize = 64 << 20

// benchGet downloads url b.N times (following redirects) and checks the size.
func benchGet(b *testing.B, url string) {
	b.Helper()
	c := &http.Client{}
	get := func() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != benchSize || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s, %d bytes, %v", url, resp.Status, n, err)
		}
	}
	get() // warm up: hashes the file, opens a connection
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		get()
	}
}

// BenchmarkServeLFS downloads a 64 MiB LFS file through the mirror: resolve,
// 302 to the other host name, signed LFS URL.
// Compare with BenchmarkServeBaselineFileServer, run in the same invocation:
//
//	go test -run '^$' -bench 'BenchmarkServe' ./internal/mirror/
func BenchmarkServeLFS(b *testing.B) {
	dir := b.TempDir()
	writeTree(b, dir, map[string][]byte{"hf/bench/model/model.safetensors": weights(benchSize, 5)})
	f := serveDir(b, dir, Options{})
	benchGet(b, f.url+"/bench/model/resolve/main/model.safetensors")
}

// BenchmarkServeBaselineFileServer downloads the same file from a plain
// http.FileServer.
func BenchmarkServeBaselineFileServer(b *testing.B) {
	dir := b.TempDir()
	writeTree(b, dir, map[string][]byte{"model.safetensors": weights(benchSize, 5)})
	ts := httptest.NewServer(http.FileServer(http.Dir(filepath.Clean(dir))))
	b.Cleanup(ts.Close)
	benchGet(b, ts.URL+"/model.safetensors")
}
