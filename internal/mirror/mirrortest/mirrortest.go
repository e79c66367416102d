// Package mirrortest starts a mirror on a loopback port for tests of the
// packages that download from it (pull, agent, cli).
package mirrortest

import (
	"net"
	"net/http"
	"testing"

	"citadel.dev/citadel/internal/mirror"
)

// Start serves opts.Dir until the test ends and returns the server and its
// base URL (http://127.0.0.1:PORT). wrap, when not nil, may intercept requests.
func Start(t testing.TB, opts mirror.Options, wrap func(http.Handler) http.Handler) (*mirror.Server, string) {
	t.Helper()
	if opts.CacheFile == "" {
		opts.CacheFile = "-"
	}
	m, err := mirror.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		m.Close()
	})
	return m, "http://" + ln.Addr().String()
}
