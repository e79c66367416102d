package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testUpstream(header time.Duration) *upstream {
	return upstreamFor(&http.Client{Transport: &http.Transport{ResponseHeaderTimeout: header, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}})
}

// rawServer answers each connection with answer(conn, request number on it); it counts the
// connections it accepted.
func rawServer(t *testing.T, answer func(c net.Conn, br *bufio.Reader, n int) bool) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if !answer(c, br, n) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

func sendUp(t *testing.T, u *upstream, ctx context.Context, base string) (*http.Response, error) {
	t.Helper()
	b := u.base(base)
	if b == nil {
		t.Fatalf("base %s not served", base)
	}
	return u.post(ctx, b, "/v1/chat/completions", []byte(`{"model":"m"}`), "req-1", "text/event-stream")
}

func readUp(t *testing.T, resp *http.Response) (string, error) {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b), err
}

// Content-Length and chunked answers, one connection for all (keep-alive), and the request
// as the engine sees it.
func TestUpstreamKeepAlive(t *testing.T) {
	var seen atomic.Value
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(fmt.Sprintf("%s %s host=%s ct=%s id=%s accept=%s len=%d body=%s", r.Method, r.URL.Path, r.Host,
			r.Header.Get("Content-Type"), r.Header.Get("X-Request-Id"), r.Header.Get("Accept"), r.ContentLength, b))
		if r.URL.Query().Has("x") {
			return
		}
		w.Write([]byte("part one "))
		w.(http.Flusher).Flush() // chunked
		w.Write([]byte("part two"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	u := testUpstream(0)
	for i := range 5 {
		resp, err := sendUp(t, u, t.Context(), srv.URL+"/prefix")
		if err != nil {
			t.Fatal(err)
		}
		got, err := readUp(t, resp)
		if err != nil || got != "part one part two" || resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, got, err)
		}
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if want := "POST /prefix/v1/chat/completions host=" + host + ` ct=application/json id=req-1 accept=text/event-stream len=13 body={"model":"m"}`; seen.Load() != want {
		t.Errorf("the engine saw %q, want %q", seen.Load(), want)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 requests, want 1", n)
	}
}

// A pooled connection the engine closed while it was idle fails before any byte of the
// answer: the request goes once more on a new connection, and the caller sees no error.
func TestUpstreamIdleCloseRetried(t *testing.T) {
	addr, conns := rawServer(t, func(c net.Conn, _ *bufio.Reader, n int) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false // close after one answer, without saying so
	})
	u := testUpstream(0)
	for i := range 3 {
		resp, err := sendUp(t, u, t.Context(), "http://"+addr)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got, err := readUp(t, resp); got != "ok" || err != nil {
			t.Fatalf("request %d: %q %v", i, got, err)
		}
		time.Sleep(20 * time.Millisecond) // the close arrives
	}
	if n := conns.Load(); n < 3 {
		t.Errorf("%d connections, want a new one for each request", n)
	}
}

// A body cut short of its Content-Length reads io.ErrUnexpectedEOF, and the connection is
// not pooled; 1xx answers are skipped; an answer that ends with the connection is read to
// its close.
func TestUpstreamBodies(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
		err                error
	}{
		{"truncated", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "abc", io.ErrUnexpectedEOF},
		{"truncated chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "abc", io.ErrUnexpectedEOF},
		{"early hints", "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", nil},
		{"to the close", "HTTP/1.1 200 OK\r\n\r\nuntil the end", "until the end", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawServer(t, func(c net.Conn, _ *bufio.Reader, _ int) bool {
				io.WriteString(c, tc.answer)
				return false
			})
			u := testUpstream(0)
			resp, err := sendUp(t, u, t.Context(), "http://"+addr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readUp(t, resp)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("read %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			if n := len(u.idle[addr]); tc.err != nil && n != 0 {
				t.Errorf("a connection whose answer was cut short was pooled")
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("%d connections, want 1", n)
			}
		})
	}
}

// The context governs the whole exchange: a stream that stops sending is interrupted when
// it ends, and Close does not drain a stream that never ends. An engine that accepts and
// never answers is a header timeout, and is not tried again even on a reused connection.
func TestUpstreamCancelAndTimeouts(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var reqs atomic.Int64
	const ok, stream = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:\r\n"
	addr, conns := rawServer(t, func(c net.Conn, _ *bufio.Reader, _ int) bool {
		switch reqs.Add(1) {
		case 1, 4:
			io.WriteString(c, ok) // pooled
			return true
		case 2, 3:
			io.WriteString(c, stream)
		}
		<-release // 5: never answers
		return false
	})
	u := testUpstream(200 * time.Millisecond)
	resp, err := sendUp(t, u, t.Context(), "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	readUp(t, resp)

	ctx, cancel := context.WithCancel(t.Context())
	resp, err = sendUp(t, u, ctx, "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); n == 0 || err != nil {
		t.Fatalf("first bytes of the stream: %d %v", n, err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Errorf("a cancelled stream read %v after %s, want context.Canceled at once", err, time.Since(start))
	}
	resp.Body.Close()

	resp, err = sendUp(t, u, t.Context(), "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	resp.Body.Close()
	if time.Since(start) > time.Second {
		t.Error("Close drained a stream")
	}

	resp, err = sendUp(t, u, t.Context(), "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	readUp(t, resp) // pooled
	before := conns.Load()
	start = time.Now()
	_, err = sendUp(t, u, t.Context(), "http://"+addr)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "timeout awaiting response headers") || time.Since(start) > 2*time.Second {
		t.Errorf("an engine that never answers: %v after %s, want a header timeout after 200ms", err, time.Since(start))
	}
	if n := conns.Load() - before; n != 0 {
		t.Errorf("a header timeout on a reused connection took %d new connections, want none (no retry)", n)
	}
}

// Base URLs the upstream does not take go through the Transport.
func TestUpstreamBases(t *testing.T) {
	u := testUpstream(0)
	for base, ok := range map[string]bool{
		"http://127.0.0.1:8000": true, "http://engine": true, "http://[::1]:9/v": true,
		"https://engine:443": false, "http://user:pw@engine": false, "http://engine?x=1": false, "unix:///tmp/s": false,
	} {
		if got := u.base(base) != nil; got != ok {
			t.Errorf("base(%q) taken: %v, want %v", base, got, ok)
		}
	}
	if b := u.base("http://engine"); b.addr != "engine:80" || b.host != "engine" {
		t.Errorf("http://engine: dial %s, Host %s", b.addr, b.host)
	}
	if upstreamFor(&http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}) != nil {
		t.Error("a Transport with a proxy is bypassed")
	}
}
