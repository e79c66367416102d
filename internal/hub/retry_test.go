package hub

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

// flakyHub answers every request with fail(n) for the n-th request (from 1) while it returns true, then
// like a hub with one file.
func flakyHub(t *testing.T, fail func(n int, w http.ResponseWriter) bool) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if fail(int(n.Add(1)), w) {
			return
		}
		switch {
		case strings.Contains(r.URL.Path, "/revision/"):
			fmt.Fprintf(w, `{"id":"org/m","sha":%q,"siblings":[{"rfilename":"config.json"}]}`, commitA)
		case strings.Contains(r.URL.Path, "/tree/"):
			fmt.Fprintf(w, `[{"type":"file","path":"config.json","size":2,"oid":%q}]`, sha1A)
		case strings.Contains(r.URL.Path, "/resolve/"):
			w.Header().Set("X-Repo-Commit", commitA)
			w.Header().Set("ETag", `"`+sha1A+`"`)
			w.Header().Set("Content-Length", "2")
		default:
			http.NotFound(w, r)
		}
	})
	return srv.URL, &n
}

var metadataCalls = map[string]func(ctx context.Context, c *Client) error{
	"model info": func(ctx context.Context, c *Client) error { _, err := c.ModelInfo(ctx, "org/m", "main"); return err },
	"tree":       func(ctx context.Context, c *Client) error { _, err := c.ListFiles(ctx, "org/m", commitA); return err },
	"HEAD resolve": func(ctx context.Context, c *Client) error {
		_, err := c.FileMeta(ctx, "org/m", commitA, "config.json")
		return err
	},
}

func status(code int) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) { w.WriteHeader(code) }
}

// hangUp closes the connection without answering.
func hangUp(_ int, w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestMetadataRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	for call, f := range metadataCalls {
		for name, failure := range map[string]func(int, http.ResponseWriter){
			"503": status(503), "500": status(500), "502": status(502), "connection closed": hangUp,
		} {
			t.Run(call+"/"+name, func(t *testing.T) {
				t.Parallel()
				// Four failures, then an answer: huggingface_hub's 5 retries absorb them.
				ep, n := flakyHub(t, func(n int, w http.ResponseWriter) bool {
					if n <= 4 {
						failure(n, w)
						return true
					}
					return false
				})
				w := &netclasstest.Waits{}
				var notices []RetryNotice
				c := New(Options{Endpoint: ep, Retry: Retry{Sleep: w.Sleep, Notify: func(n RetryNotice) { notices = append(notices, n) }}})
				if err := f(t.Context(), c); err != nil {
					t.Fatalf("after 4 failures: %v", err)
				}
				if got := n.Load(); got != 5 {
					t.Errorf("%d requests, want 5", got)
				}
				want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
				if diff := cmp.Diff(want, w.All()); diff != "" {
					t.Errorf("waits (-want +got):\n%s", diff)
				}
				if len(notices) != 4 || notices[3].Attempt != 4 || notices[3].Tries != 6 || !strings.Contains(notices[3].String(), "attempt 5 of 6") {
					t.Errorf("notices: %v", notices)
				}
			})
		}
	}
}

func TestMetadataRetriesGiveUp(t *testing.T) {
	t.Parallel()
	for call, f := range metadataCalls {
		t.Run(call, func(t *testing.T) {
			t.Parallel()
			ep, n := flakyHub(t, func(_ int, w http.ResponseWriter) bool { w.WriteHeader(503); return true })
			w := &netclasstest.Waits{}
			err := f(t.Context(), New(Options{Endpoint: ep, Retry: Retry{Sleep: w.Sleep}}))
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != 503 || !Retryable(err) {
				t.Errorf("error %v, want a retryable 503", err)
			}
			if got := n.Load(); got != 6 {
				t.Errorf("%d requests, want 6 (5 retries)", got)
			}
			want := []time.Duration{1, 2, 4, 8, 8}
			for i := range want {
				want[i] *= time.Second
			}
			if diff := cmp.Diff(want, w.All()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetadataNotRetried(t *testing.T) {
	t.Parallel()
	for call, f := range metadataCalls {
		t.Run(call, func(t *testing.T) {
			t.Parallel()
			ep, n := flakyHub(t, func(_ int, w http.ResponseWriter) bool {
				w.Header().Set("X-Error-Code", "RepoNotFound")
				w.WriteHeader(404)
				return true
			})
			w := &netclasstest.Waits{}
			err := f(t.Context(), New(Options{Endpoint: ep, Retry: Retry{Sleep: w.Sleep}}))
			var nf *RepoNotFoundError
			if !errors.As(err, &nf) || n.Load() != 1 || len(w.All()) != 0 {
				t.Errorf("error %v after %d requests and waits %v; want RepoNotFound after 1, no wait", err, n.Load(), w.All())
			}
		})
	}
}

func TestMetadataHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string
		status     int
		wait       time.Duration
	}{
		{"429 seconds", "3", 429, 3 * time.Second},
		{"429 HTTP date", now.Add(7 * time.Second).Format(http.TimeFormat), 429, 7 * time.Second},
		{"503 seconds", "2", 503, 2 * time.Second},
		{"429 without Retry-After backs off", "", 429, time.Second},
	}
	for call, f := range metadataCalls {
		for _, tt := range tests {
			t.Run(call+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ep, n := flakyHub(t, func(n int, w http.ResponseWriter) bool {
					if n <= 2 {
						if tt.retryAfter != "" {
							w.Header().Set("Retry-After", tt.retryAfter)
						}
						w.WriteHeader(tt.status)
						return true
					}
					return false
				})
				w := &netclasstest.Waits{}
				var notices []string
				c := New(Options{Endpoint: ep, Now: func() time.Time { return now },
					Retry: Retry{Sleep: w.Sleep, Notify: func(n RetryNotice) { notices = append(notices, n.String()) }}})
				if err := f(t.Context(), c); err != nil {
					t.Fatal(err)
				}
				second := tt.wait
				if tt.retryAfter == "" {
					second = 2 * time.Second
				}
				if diff := cmp.Diff([]time.Duration{tt.wait, second}, w.All()); diff != "" || n.Load() != 3 {
					t.Errorf("%d requests; waits (-want +got):\n%s", n.Load(), diff)
				}
				if tt.retryAfter != "" && (len(notices) != 2 || !strings.Contains(notices[0], fmt.Sprintf("retrying in %s (Retry-After)", tt.wait))) {
					t.Errorf("notices %q do not show the Retry-After wait", notices)
				}
			})
		}
	}
}

func TestMetadataLongRetryAfterIsReturned(t *testing.T) {
	t.Parallel()
	ep, n := flakyHub(t, func(_ int, w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(429)
		return true
	})
	w := &netclasstest.Waits{}
	_, err := New(Options{Endpoint: ep, Retry: Retry{Sleep: w.Sleep}}).ModelInfo(t.Context(), "org/m", "main")
	if d, ok := RetryAfter(err); !ok || d != time.Hour || n.Load() != 1 || len(w.All()) != 0 {
		t.Errorf("err %v, RetryAfter %v after %d requests, waits %v; want the 429 at once with its hour", err, d, n.Load(), w.All())
	}
}

func TestMetadataRetryStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ep, n := flakyHub(t, func(_ int, w http.ResponseWriter) bool { w.WriteHeader(503); return true })
	ctx, cancel := context.WithCancel(t.Context())
	c := New(Options{Endpoint: ep, Retry: Retry{Sleep: func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }}})
	_, err := c.ModelInfo(ctx, "org/m", "main")
	if !errors.Is(err, context.Canceled) || Retryable(err) || n.Load() != 1 {
		t.Errorf("err %v after %d requests, want cancelled after 1", err, n.Load())
	}
}

// A server that accepts and never answers is named after the header timeout, and not tried again within
// the call: it has had its time.
func TestNoAnswerIsNamedAfterHeaderTimeout(t *testing.T) {
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
	w := &netclasstest.Waits{}
	c := New(Options{Endpoint: srv.URL, HeaderTimeout: 100 * time.Millisecond, Retry: Retry{Sleep: w.Sleep}})
	_, err := c.ModelInfo(t.Context(), "org/m", "main")
	var na *NoAnswerError
	if !errors.As(err, &na) || na.After != 100*time.Millisecond || !na.Endpoint {
		t.Fatalf("error %v (%T), want a NoAnswerError after 100ms on the endpoint", err, err)
	}
	if n.Load() != 1 || len(w.All()) != 0 || !Retryable(err) {
		t.Errorf("%d requests, waits %v, retryable %t; want 1, none, true (later, by the caller)", n.Load(), w.All(), Retryable(err))
	}
	for _, s := range []string{"GET " + srv.URL + "/api/models/org/m/revision/main?…", "sent no answer within 100ms", "HF_ENDPOINT", "--stall-timeout"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q lacks %q", err, s)
		}
	}
}

// unresolvable is an HTTP client whose resolver knows no host but 127.0.0.1.
func unresolvable() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if host != "127.0.0.1" {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
}

func TestUnresolvedDownloadHostIsTransient(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://cdn-lfs.example:8443/blob?X-Amz-Signature=SECRET", http.StatusFound)
	})
	c := New(Options{Endpoint: srv.URL, HTTPClient: unresolvable()})
	_, _, err := c.Get(t.Context(), c.ResolveURL("org/m", commitA, "model.safetensors"), 0, -1)
	var uh *UnresolvedHostError
	if !errors.As(err, &uh) || uh.Host != "cdn-lfs.example" || !Retryable(err) {
		t.Fatalf("error %v (%T), retryable %t; want a retryable UnresolvedHostError for cdn-lfs.example", err, err, Retryable(err))
	}
	msg := err.Error()
	if strings.Contains(msg, "HF_ENDPOINT") || strings.Contains(msg, "SECRET") || !strings.Contains(msg, `download host "cdn-lfs.example"`) {
		t.Errorf("message %q should name the download host, not HF_ENDPOINT, without the signature", msg)
	}

	// The endpoint itself not resolving stays a configuration error.
	bad := New(Options{Endpoint: "http://hub-mirror.example:8090", HTTPClient: unresolvable(), Retry: Retry{Sleep: noWait}})
	_, err = bad.ModelInfo(t.Context(), "org/m", "main")
	if errors.As(err, &uh) || Retryable(err) || !strings.Contains(err.Error(), "HF_ENDPOINT") {
		t.Errorf("unresolvable endpoint: %v, retryable %t; want a configuration error naming HF_ENDPOINT", err, Retryable(err))
	}
}

// With a budget (a pull's stall timeout), a call stops retrying before its waits would pass it.
func TestMetadataRetryBudget(t *testing.T) {
	t.Parallel()
	ep, n := flakyHub(t, func(_ int, w http.ResponseWriter) bool { w.WriteHeader(503); return true })
	w := &netclasstest.Waits{}
	_, err := New(Options{Endpoint: ep, Retry: Retry{Sleep: w.Sleep, Budget: 7 * time.Second}}).ModelInfo(t.Context(), "org/m", "main")
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} // 1+2+4 = 7; +8 would pass 7 s
	if diff := cmp.Diff(want, w.All()); diff != "" || n.Load() != 4 || !Retryable(err) {
		t.Errorf("err %v after %d requests; waits (-want +got):\n%s", err, n.Load(), diff)
	}
}
