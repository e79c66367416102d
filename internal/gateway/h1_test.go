package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// startH1 serves h on the gateway's HTTP/1.1 server on a free port until the test ends.
func startH1(t *testing.T, h http.Handler, tune func(*h1Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &h1Server{handler: h, log: slog.New(slog.DiscardHandler), base: context.Background(), readHeader: 5 * time.Second,
		idle: 5 * time.Second, maxHeader: http.DefaultMaxHeaderBytes, watchEvery: defaultWatchEvery}
	if tune != nil {
		tune(s)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.serve(ln) }()
	t.Cleanup(func() {
		s.shutdown()
		ln.Close()
		<-done
		s.closeAll()
		s.wait()
	})
	return ln.Addr().String()
}

// echo answers "METHOD PATH BODY" (and the Host it saw in X-Host).
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("X-Host", r.Host)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
})

type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one answer to a request of method, whole.
func (c *rawClient) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection (within the conn's deadline).
func (c *rawClient) closed() bool {
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err != nil && strings.Contains(err.Error(), "reset")
}

func TestH1KeepAliveBodiesHeadAndClose(t *testing.T) {
	c := dial(t, startH1(t, echo, nil))
	c.send("POST /a HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello")
	resp, body := c.read("POST")
	if resp.StatusCode != 200 || body != "POST /a hello" || resp.Header.Get("X-Host") != "gw.test" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("Content-Length body: %d %q host %q length %d", resp.StatusCode, body, resp.Header.Get("X-Host"), resp.ContentLength)
	}
	if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("header %v: want a Date and the sniffed Content-Type", resp.Header)
	}
	c.send("POST /b HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	if resp, body = c.read("POST"); body != "POST /b hello world" {
		t.Fatalf("chunked body on the same connection: %d %q", resp.StatusCode, body)
	}
	c.send("HEAD /c HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	if resp, body = c.read("HEAD"); resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("HEAD /c ")) ||
		resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("HEAD: %d %q length %d type %q", resp.StatusCode, body, resp.ContentLength, resp.Header.Get("Content-Type"))
	}
	c.send("GET /d HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
	if resp, body = c.read("GET"); body != "GET /d " || !resp.Close {
		t.Fatalf("Connection: close: %q, close %v", body, resp.Close)
	}
	if !c.closed() {
		t.Fatal("the server kept the connection after Connection: close")
	}
}

func TestH1HTTP10(t *testing.T) {
	addr := startH1(t, echo, nil)
	c := dial(t, addr)
	c.send("GET /x HTTP/1.0\r\n\r\n")
	if resp, body := c.read("GET"); resp.Proto != "HTTP/1.0" || body != "GET /x " || !resp.Close {
		t.Fatalf("HTTP/1.0: %s %q close %v", resp.Proto, body, resp.Close)
	}
	if !c.closed() {
		t.Fatal("an HTTP/1.0 connection without keep-alive stayed open")
	}
	c = dial(t, addr)
	for range 2 {
		c.send("GET /y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		if resp, body := c.read("GET"); body != "GET /y " || resp.Close {
			t.Fatalf("HTTP/1.0 keep-alive: %q close %v", body, resp.Close)
		}
	}
}

func TestH1Pipelined(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		time.Sleep(30 * time.Millisecond) // past two ticks: the connection is watched
		if r.Context().Err() != nil {
			t.Errorf("%s: the context ended while the client waited", r.URL.Path)
		}
		fmt.Fprintf(w, "%s %s", r.URL.Path, b)
	})
	c := dial(t, startH1(t, slow, func(s *h1Server) { s.watchEvery = 2 * time.Millisecond }))
	c.send("POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
	time.Sleep(10 * time.Millisecond) // the watch reads, and gets the next request's first byte
	c.send("POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\ndefGET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"/1 abc", "/2 def", "/3 "} {
		if _, body := c.read("POST"); body != want {
			t.Fatalf("pipelined answer %q, want %q", body, want)
		}
	}
	c.send("GET /4 HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("GET"); body != "/4 " {
		t.Fatalf("after a wait: %q", body)
	}
}

func TestH1Expect100Continue(t *testing.T) {
	reject := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		echo(w, r)
	})
	addr := startH1(t, reject, nil)
	c := dial(t, addr)
	c.send("POST /ok HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("before the body: %v %v, want 100 Continue", resp, err)
	}
	c.send("body")
	if _, body := c.read("POST"); body != "POST /ok body" {
		t.Fatalf("after 100 Continue: %q", body)
	}

	c = dial(t, addr)
	c.send("POST /reject HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	if resp, _ := c.read("POST"); resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Fatalf("a body never asked for: %d close %v, want 401 and the connection closed", resp.StatusCode, resp.Close)
	}

	// net/http's client sends the body after 100 Continue.
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/client", strings.NewReader("data"))
	req.Header.Set("Expect", "100-continue")
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST /client data" {
		t.Fatalf("net/http client with Expect: %q", b)
	}
}

func TestH1BadRequests(t *testing.T) {
	addr := startH1(t, echo, func(s *h1Server) { s.maxHeader = 1 << 10 })
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"garbage", "HELLO\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"bad header name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400},
		{"bad Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400},
		{"bad chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 8<<10) + "\r\n\r\n", 431},
		{"HTTP/3", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505},
		{"unknown Expect", "POST / HTTP/1.1\r\nHost: a\r\nExpect: later\r\nContent-Length: 1\r\n\r\nx", 417},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(tc.req)
			resp, _ := c.read("GET")
			if resp.StatusCode != tc.want || !resp.Close {
				t.Fatalf("%d (close %v), want %d and the connection closed", resp.StatusCode, resp.Close, tc.want)
			}
		})
	}
}

func TestH1Timeouts(t *testing.T) {
	addr := startH1(t, echo, func(s *h1Server) { s.readHeader, s.idle = 100*time.Millisecond, 200*time.Millisecond })
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n")
	t0 := time.Now()
	if !c.closed() || time.Since(t0) > 3*time.Second {
		t.Fatalf("a header that never ends: closed after %s, want the read-header timeout", time.Since(t0))
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.read("GET")
	t0 = time.Now()
	if !c.closed() || time.Since(t0) < 100*time.Millisecond || time.Since(t0) > 3*time.Second {
		t.Fatalf("an idle connection closed after %s, want the idle timeout", time.Since(t0))
	}
}

// countConn counts the writes to a connection.
type countConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

type countListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countConn{c, &l.writes}, nil
}

func TestH1SmallAnswerIsOneWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countListener{Listener: ln}
	s := &h1Server{handler: echo, log: slog.New(slog.DiscardHandler), base: context.Background(), readHeader: time.Second,
		idle: time.Second, maxHeader: 1 << 20, watchEvery: time.Second}
	go func() { _ = s.serve(cl) }()
	defer func() { s.shutdown(); ln.Close(); s.closeAll(); s.wait() }()
	c := dial(t, ln.Addr().String())
	for i := range 3 {
		c.send("POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
		if _, body := c.read("POST"); body != "POST /one hi" {
			t.Fatalf("%q", body)
		}
		if n := cl.writes.Load(); n != int64(i+1) {
			t.Fatalf("%d writes for %d answers, want one each", n, i+1)
		}
	}
}

func TestH1StreamFlushesEachEvent(t *testing.T) {
	next := make(chan struct{})
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			if i < 2 {
				select {
				case <-next:
				case <-time.After(5 * time.Second):
					return
				}
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	addr := startH1(t, sse, nil)
	resp, err := http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding %v, want chunked", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v (an event held until the next one?)", i, line, err)
		}
		_, _ = br.ReadString('\n')
		if i < 2 {
			next <- struct{}{}
		}
	}
	if rest, _ := io.ReadAll(br); string(rest) != "data: [DONE]\n\n" {
		t.Fatalf("the stream's end: %q", rest)
	}
}

// TestH1ClientGoneCancelsContext: a client that goes away while the handler waits (for a
// slow engine, or between a stream's events) ends the request's context.
func TestH1ClientGoneCancelsContext(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			started := make(chan struct{})
			ended := make(chan time.Duration, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				if stream {
					fmt.Fprint(w, "data: 0\n\n")
					w.(http.Flusher).Flush()
				}
				close(started)
				t0 := time.Now()
				select {
				case <-r.Context().Done():
					ended <- time.Since(t0)
				case <-time.After(10 * time.Second):
					ended <- -1
				}
			})
			c := dial(t, startH1(t, h, nil))
			c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
			<-started
			if stream {
				if line, err := c.br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
					t.Fatalf("the stream's header: %q %v", line, err)
				}
			}
			time.Sleep(20 * time.Millisecond)
			c.nc.Close()
			if d := <-ended; d < 0 || d > 2*time.Second {
				t.Fatalf("the context ended %s after the client went away (-1: not within 10 s)", d)
			}
		})
	}
}

func TestH1HandlerPanicClosesConnection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		echo(w, r)
	})
	c := dial(t, startH1(t, h, nil))
	c.send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	if !c.closed() {
		t.Fatal("the connection stayed open after a handler panic")
	}
}

// routeTo is a gateway route of model m to one URL target.
func routeTo(m, url string) *v1.Route {
	return &v1.Route{ObjectMeta: v1.ObjectMeta{Name: "r"}, Spec: v1.RouteSpec{Models: []v1.RouteModel{{Name: m, Targets: []v1.RouteTarget{{URL: url}}}}}}
}

// TestServe runs the gateway's Serve on each server: HTTP/1.1 and h2c clients, a request in
// flight that finishes after the context ends, and no new connection after.
func TestServe(t *testing.T) {
	for _, stdlib := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdlib=%v", stdlib), func(t *testing.T) {
			release := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if strings.Contains(r.Header.Get("Accept"), "slow") {
					<-release
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
			}))
			defer up.Close()
			gw := New(Options{Routes: []*v1.Route{routeTo("m", up.URL)}, StdlibHTTP: stdlib})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- gw.Serve(ctx, ln) }()
			base := "http://" + ln.Addr().String()
			chat := func(c *http.Client, accept string) (*http.Response, string, error) {
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("Accept", accept)
				resp, err := c.Do(req)
				if err != nil {
					return nil, "", err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return resp, string(b), err
			}

			h1 := &http.Client{Transport: &http.Transport{}}
			var h2p http.Protocols
			h2p.SetUnencryptedHTTP2(true)
			h2 := &http.Client{Transport: &http.Transport{Protocols: &h2p}}
			for name, c := range map[string]*http.Client{"HTTP/1.1": h1, "HTTP/2.0": h2} {
				resp, body, err := chat(c, "application/json")
				if err != nil || resp.StatusCode != 200 || resp.Proto != name || !strings.Contains(body, `"content":"hi"`) {
					t.Fatalf("%s client: %v %v %q", name, resp, err, body)
				}
			}

			type result struct {
				status int
				err    error
			}
			inFlight := make(chan result, 1)
			go func() {
				resp, _, err := chat(h1, "application/json, slow")
				if err != nil {
					inFlight <- result{0, err}
					return
				}
				inFlight <- result{resp.StatusCode, nil}
			}()
			deadline := time.Now().Add(5 * time.Second)
			for gw.Table().Replicas()[0].Snapshot().InFlight == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			time.Sleep(50 * time.Millisecond)
			if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
				t.Error("a new connection was accepted after the context ended")
			}
			close(release)
			if r := <-inFlight; r.err != nil || r.status != 200 {
				t.Fatalf("the request in flight at shutdown: %d %v, want it to finish", r.status, r.err)
			}
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after its requests finished")
			}
		})
	}
}

// memConn is a connection that reads a fixed input and records what is written.
type memConn struct {
	mu  sync.Mutex
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in.Read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzH1Conn feeds arbitrary bytes to a connection of the HTTP/1.1 server: it must not
// panic or hang, and whatever it writes is a sequence of well-formed HTTP/1.1 answers.
func FuzzH1Conn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y", 600) + "\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusNoContent) // no body: the answers parse as GET's
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/stream" {
			fmt.Fprintf(w, "data: %d\n\n", len(b))
			w.(http.Flusher).Flush()
		}
		w.Write(b)
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &h1Server{handler: h, log: slog.New(slog.DiscardHandler), base: context.Background(), readHeader: time.Second,
			idle: time.Second, maxHeader: 512, watchEvery: 0}
		mc := &memConn{in: bytes.NewReader(in)}
		c := &h1Conn{srv: s, nc: mc}
		if !s.track(c) {
			t.Fatal("not tracked")
		}
		c.serve()
		br := bufio.NewReader(bytes.NewReader(mc.out.Bytes()))
		for n := 0; ; n++ {
			if _, err := br.Peek(1); err != nil {
				break
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
			if err != nil {
				t.Fatalf("answer %d: %v in %q", n, err, mc.out.Bytes())
			}
			if resp.StatusCode == http.StatusContinue {
				continue
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatalf("answer %d's body: %v in %q", n, err, mc.out.Bytes())
			}
			if resp.StatusCode >= 400 && !resp.Close {
				t.Fatalf("answer %d: %d kept the connection open", n, resp.StatusCode)
			}
			if resp.Header.Get("Content-Length") != "" {
				if _, err := strconv.Atoi(resp.Header.Get("Content-Length")); err != nil {
					t.Fatalf("answer %d: Content-Length %q", n, resp.Header.Get("Content-Length"))
				}
			}
		}
	})
}

// TestH1WatchKeepsLiveClients: handlers that wait past watchEvery, on many keep-alive
// connections at once, never see their context end while their clients wait.
func TestH1WatchKeepsLiveClients(t *testing.T) {
	var cancelled atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-time.After(5 * time.Millisecond):
		}
		_, _ = w.Write(b)
	})
	addr := startH1(t, h, func(s *h1Server) { s.watchEvery = time.Millisecond })
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 32 {
		wg.Go(func() {
			for j := range 20 {
				want := fmt.Sprintf("%d-%d", i, j)
				resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader(want))
				if err != nil {
					failed.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != want {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n, f := cancelled.Load(), failed.Load(); n > 0 || f > 0 {
		t.Fatalf("%d contexts ended while their clients waited; %d requests failed", n, f)
	}
}
