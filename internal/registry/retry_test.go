package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/netclass/netclasstest"
)

// flakyRegistry fails the n-th request (from 1) with fail while it returns true, then serves qwen2.5:7b's
// manifest and its blob in place.
func flakyRegistry(t *testing.T, fail func(n int, w http.ResponseWriter) bool) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if fail(int(n.Add(1)), w) {
			return
		}
		switch r.URL.Path {
		case "/v2/library/qwen2.5/manifests/7b":
			fmt.Fprint(w, manifestJSON)
		case "/v2/library/qwen2.5/blobs/" + digestModel:
			w.Header().Set("Content-Length", "4")
			if r.Method == http.MethodGet {
				fmt.Fprint(w, "GGUF")
			}
		default:
			http.NotFound(w, r)
		}
	})
	return strings.TrimPrefix(srv.URL, "http://"), &n
}

var registryCalls = map[string]func(ctx context.Context, c *Client, n Name) error{
	"manifest": func(ctx context.Context, c *Client, n Name) error { _, _, err := c.Manifest(ctx, n); return err },
	"blob URL": func(ctx context.Context, c *Client, n Name) error {
		_, _, err := c.BlobURL(ctx, n, digestModel)
		return err
	},
}

func TestManifestAndBlobURLRetry(t *testing.T) {
	t.Parallel()
	for call, f := range registryCalls {
		for name, fail := range map[string]func(http.ResponseWriter){
			"503": func(w http.ResponseWriter) { w.WriteHeader(503) },
			"connection closed": func(w http.ResponseWriter) {
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
			},
		} {
			t.Run(call+"/"+name, func(t *testing.T) {
				t.Parallel()
				reg, n := flakyRegistry(t, func(n int, w http.ResponseWriter) bool {
					if n <= 4 {
						fail(w)
						return true
					}
					return false
				})
				w := &netclasstest.Waits{}
				c := New(Options{Registry: reg, Insecure: true, Retry: Retry{Sleep: w.Sleep}})
				if err := f(t.Context(), c, qwen(t)); err != nil {
					t.Fatalf("after 4 failures: %v", err)
				}
				want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
				if diff := cmp.Diff(want, w.All()); diff != "" {
					t.Errorf("waits (-want +got):\n%s", diff)
				}
				if n.Load() < 5 {
					t.Errorf("%d requests, want at least 5", n.Load())
				}
			})
		}
	}
}

func TestManifestHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, ra := range map[string]string{"seconds": "3", "HTTP date": now.Add(3 * time.Second).Format(http.TimeFormat)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg, n := flakyRegistry(t, func(n int, w http.ResponseWriter) bool {
				if n <= 2 {
					w.Header().Set("Retry-After", ra)
					w.WriteHeader(http.StatusTooManyRequests)
					return true
				}
				return false
			})
			w := &netclasstest.Waits{}
			var notices []string
			c := New(Options{Registry: reg, Insecure: true, Now: func() time.Time { return now },
				Retry: Retry{Sleep: w.Sleep, Notify: func(n RetryNotice) { notices = append(notices, n.String()) }}})
			if _, _, err := c.Manifest(t.Context(), qwen(t)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]time.Duration{3 * time.Second, 3 * time.Second}, w.All()); diff != "" || n.Load() != 3 {
				t.Errorf("%d requests; waits (-want +got):\n%s", n.Load(), diff)
			}
			if len(notices) != 2 || !strings.Contains(notices[0], "retrying in 3s (Retry-After)") {
				t.Errorf("notices: %q", notices)
			}
		})
	}

	// Longer than the cap: returned at once, with the wait for the caller's schedule.
	reg, n := flakyRegistry(t, func(_ int, w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	_, _, err := New(Options{Registry: reg, Insecure: true, Retry: Retry{Sleep: (&netclasstest.Waits{}).Sleep}}).Manifest(t.Context(), qwen(t))
	if d, ok := RetryAfter(err); !ok || d != 10*time.Minute || n.Load() != 1 || !Retryable(err) {
		t.Errorf("err %v, RetryAfter %v after %d requests", err, d, n.Load())
	}
}

func TestManifestNotFoundIsNotRetried(t *testing.T) {
	t.Parallel()
	reg, n := flakyRegistry(t, func(int, http.ResponseWriter) bool { return false })
	w := &netclasstest.Waits{}
	name, _ := ParseName("nosuch:1b")
	_, _, err := New(Options{Registry: reg, Insecure: true, Retry: Retry{Sleep: w.Sleep}}).Manifest(t.Context(), name)
	var nf *NotFoundError
	if !errors.As(err, &nf) || n.Load() != 1 || len(w.All()) != 0 {
		t.Errorf("err %v after %d requests, waits %v", err, n.Load(), w.All())
	}
}

func TestManifestNoAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var n atomic.Int32
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	c := New(Options{Registry: strings.TrimPrefix(srv.URL, "http://"), Insecure: true, HeaderTimeout: 100 * time.Millisecond, Retry: Retry{Sleep: (&netclasstest.Waits{}).Sleep}})
	_, _, err := c.Manifest(t.Context(), qwen(t))
	var na *NoAnswerError
	if !errors.As(err, &na) || n.Load() != 1 || !strings.Contains(err.Error(), "sent no answer within 100ms") {
		t.Errorf("err %v (%T) after %d requests; want NoAnswerError after 1", err, err, n.Load())
	}
}

func TestUnresolvedBlobHostIsTransient(t *testing.T) {
	t.Parallel()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}}}
	c := New(Options{Registry: "registry.example", HTTPClient: hc, Retry: Retry{Sleep: (&netclasstest.Waits{}).Sleep}})
	_, err := c.Get(t.Context(), "https://r2.cdn.example/blob?sig=SECRET", 0, -1)
	var uh *UnresolvedHostError
	if !errors.As(err, &uh) || uh.Host != "r2.cdn.example" || !Retryable(err) || strings.Contains(err.Error(), "SECRET") ||
		strings.Contains(err.Error(), "not retried") {
		t.Errorf("blob host: %v (retryable %t)", err, Retryable(err))
	}
	_, _, err = c.Manifest(t.Context(), qwen(t))
	if errors.As(err, &uh) || Retryable(err) || !strings.Contains(err.Error(), "registry address") {
		t.Errorf("registry host: %v (retryable %t); want a configuration error", err, Retryable(err))
	}
}

func TestManifestRetryBudget(t *testing.T) {
	t.Parallel()
	reg, n := flakyRegistry(t, func(_ int, w http.ResponseWriter) bool { w.WriteHeader(502); return true })
	w := &netclasstest.Waits{}
	_, _, err := New(Options{Registry: reg, Insecure: true, Retry: Retry{Sleep: w.Sleep, Budget: 3 * time.Second}}).Manifest(t.Context(), qwen(t))
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second}, w.All()); diff != "" || n.Load() != 3 || !Retryable(err) {
		t.Errorf("err %v after %d requests; waits (-want +got):\n%s", err, n.Load(), diff)
	}
}
