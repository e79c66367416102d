package hub

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "hf_SECRETtoken123"

// seenRequest is what a test server records of each request.
type seenRequest struct {
	Method, Host, URI, Auth, Range, AcceptEncoding string
}

type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (r *recorder) all() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.reqs...)
}

// server starts an httptest server on 127.0.0.1 that records every request before calling h.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seenRequest{
			Method: r.Method, Host: r.Host, URI: r.RequestURI, Auth: r.Header.Get("Authorization"),
			Range: r.Header.Get("Range"), AcceptEncoding: r.Header.Get("Accept-Encoding"),
		})
		rec.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

// otherHost rewrites a 127.0.0.1 server URL to the same port on "localhost": another origin for the
// client, the same listener for the test.
func otherHost(t *testing.T, srvURL string) string {
	t.Helper()
	if _, err := net.LookupHost("localhost"); err != nil {
		t.Skipf("localhost does not resolve: %v", err)
	}
	return strings.Replace(srvURL, "127.0.0.1", "localhost", 1)
}

// newClient retries without waiting.
func newClient(srvURL string) *Client {
	return New(Options{Endpoint: srvURL + "/", Token: testToken, Retry: Retry{Sleep: noWait}})
}

// noWait is a Retry.Sleep that returns at once (unless ctx has ended), so tests count tries.
func noWait(ctx context.Context, _ time.Duration) error { return ctx.Err() }

const (
	commitA = "0123456789abcdef0123456789abcdef01234567"
	commitB = "89abcdef0123456789abcdef0123456789abcdef"
	sha1A   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha256A = "a7a17d6d844b5de815ccab5f42cad6d24496db3850a2a43d8258221018ce87d2"
	sha256B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)
