package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// answerProbe answers by path, to exercise what a handler may do to its answer.
var answerProbe = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/echo":
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	case "/noread":
		_, _ = io.WriteString(w, "n")
	case "/flush": // a stream that sends its header first
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "data: x\n\n")
	case "/204":
		w.WriteHeader(http.StatusNoContent)
		_, _ = io.WriteString(w, "never")
	case "/304":
		w.WriteHeader(http.StatusNotModified)
	case "/close":
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "c")
	case "/cl-short":
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "abc")
	case "/cl-over": // the second write fails: the client is owed 2 bytes
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "abc")
		_, _ = io.WriteString(w, "defgh")
	case "/trailer":
		w.Header().Set("Trailer", "X-T")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-T", "done")
	case "/late-header":
		w.WriteHeader(http.StatusOK)
		w.Header().Set("X-Late", "1")
		_, _ = io.WriteString(w, "l")
	case "/103":
		w.Header().Set("Link", "</a>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "ok")
	case "/continue": // a handler that answers Expect itself
		w.WriteHeader(http.StatusContinue)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s", b)
	case "/keep": // says keep-alive to a request that asked to close
		w.Header().Set("Connection", "keep-alive")
		_, _ = io.WriteString(w, "k")
	case "/badname": // a field name that is not a token is dropped, not sent to split the header
		w.Header()["X-Bad\r\nInjected"] = []string{"1"}
		w.Header()["X-Bad: y"] = []string{"1"}
		_, _ = io.WriteString(w, "b")
	case "/gzip": // no sniffing of an encoded body
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = io.WriteString(w, "<html>")
	default:
		http.NotFound(w, r)
	}
})

// startStd serves h on net/http's server, as the gateway's Options.StdlibHTTP does.
func startStd(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// exchange sends raw on a new connection and describes the answers to methods that come back
// (one line each: status, the framing fields, the body, trailers), and whether the server
// closed the connection.
func exchange(t *testing.T, addr, raw string, methods []string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, raw); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	closed := false
	buf := make([]byte, 4096)
	for {
		_ = nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := nc.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			closed = !isTimeout(err)
			break
		}
	}
	var sb strings.Builder
	br := bufio.NewReader(&out)
	for i := 0; ; {
		if _, err := br.Peek(1); err != nil {
			break
		}
		m := "GET"
		if i < len(methods) {
			m = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			fmt.Fprintf(&sb, "unparsable: %v\n", err)
			break
		}
		if resp.StatusCode < 200 {
			fmt.Fprintf(&sb, "%d\n", resp.StatusCode)
			continue
		}
		if resp.StatusCode >= 400 && resp.StatusCode != http.StatusNotFound { // refused: the wording may differ
			fmt.Fprintf(&sb, "%d close=%v\n", resp.StatusCode, resp.Close)
			break
		}
		i++
		b, err := io.ReadAll(resp.Body)
		fmt.Fprintf(&sb, "%d cl=%q te=%v close=%v late=%q injected=%q body=%q trailer=%v err=%v\n", resp.StatusCode,
			resp.Header.Get("Content-Length"), resp.TransferEncoding, resp.Close, resp.Header.Get("X-Late"), resp.Header.Get("Injected"), b, resp.Trailer, err)
	}
	fmt.Fprintf(&sb, "server closed: %v", closed)
	return sb.String()
}

// TestH1MatchesStdlib sends the same raw requests to the gateway's server and to net/http's
// and wants the same answers: framing, status, bodies and whether the connection lives on.
func TestH1MatchesStdlib(t *testing.T) {
	h1 := startH1(t, answerProbe, nil)
	std := startStd(t, answerProbe)
	const get = "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, tc := range []struct {
		name, raw string
		methods   []string
	}{
		{"CL and TE", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get, nil},
		{"CL and TE, CL first body", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"same CL twice", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + get, nil},
		{"conflicting CL", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd" + get, nil},
		{"CL list", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd" + get, nil},
		{"TE gzip", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc" + get, nil},
		{"TE gzip, chunked", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + get, nil},
		{"TE identity", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc" + get, nil},
		{"TE chunked twice", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, nil},
		{"TE on HTTP/1.0", "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc" + get, nil},
		{"unread body", "POST /noread HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789" + get, nil},
		{"unread chunked body", "POST /noread HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get, nil},
		{"HTTP/1.0 keep-alive", "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", nil},
		{"HTTP/1.0 keep-alive stream", "GET /flush HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get, nil},
		{"HEAD", "HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\n" + get, []string{"HEAD"}},
		{"HEAD of a stream", "HEAD /flush HTTP/1.1\r\nHost: a\r\n\r\n" + get, []string{"HEAD"}},
		{"HEAD of a stream, HTTP/1.0", "HEAD /flush HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get, []string{"HEAD"}},
		{"204", "GET /204 HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"304", "GET /304 HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"Connection: close", "GET /close HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"short Content-Length", "GET /cl-short HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"Content-Length overrun", "GET /cl-over HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"trailer", "GET /trailer HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"header after WriteHeader", "GET /late-header HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"103", "GET /103 HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"103 to HTTP/1.0", "GET /103 HTTP/1.0\r\n\r\n", nil},
		{"handler's 100 Continue", "POST /continue HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", nil},
		{"Expect on HTTP/1.0", "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", nil},
		{"unread body too large", "POST /noread HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\nabc", nil},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"leading CRLF", "\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"LF line ends", "GET /echo HTTP/1.1\nHost: a\n\n" + get, nil},
		{"obs-fold", "GET /echo HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", nil},
		{"space before colon", "GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\n", nil},
		{"handler says keep-alive to a close", "GET /keep HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + get, nil},
		{"handler says keep-alive", "GET /keep HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"invalid field name", "GET /badname HTTP/1.1\r\nHost: a\r\n\r\n" + get, nil},
		{"Content-Encoding", "GET /gzip HTTP/1.1\r\nHost: a\r\n\r\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, want := exchange(t, h1, tc.raw, tc.methods), exchange(t, std, tc.raw, tc.methods)
			if got != want {
				t.Errorf("gateway's server:\n%s\nnet/http's:\n%s", got, want)
			}
		})
	}
}

// TestH1HeadOfStreamKeepsFraming: a HEAD answered by a handler that flushes (a stream) has
// no body, so the next answer on the connection is read from the right place.
func TestH1HeadOfStreamKeepsFraming(t *testing.T) {
	c := dial(t, startH1(t, answerProbe, nil))
	c.send("HEAD /flush HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.read("HEAD"); resp.StatusCode != 200 || body != "" || len(resp.TransferEncoding) > 0 {
		t.Fatalf("HEAD: %d %q te %v", resp.StatusCode, body, resp.TransferEncoding)
	}
	if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "GET " {
		t.Fatalf("the answer after a HEAD: %d %q", resp.StatusCode, body)
	}
}

// TestH1ContentLengthOverrunCloses: a handler that declares 5 bytes and writes 3, then a
// write the declared length refuses, leaves the client owed bytes: the connection closes
// rather than leaving it waiting for the idle timeout.
func TestH1ContentLengthOverrunCloses(t *testing.T) {
	c := dial(t, startH1(t, answerProbe, nil))
	_ = c.nc.SetDeadline(time.Now().Add(3 * time.Second))
	c.send("GET /cl-over HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(b) != "abc" {
		t.Fatalf("body %q, %v: want abc and the connection closed", b, err)
	}
}

// TestH1Trailers: trailers a handler declares are sent, after a chunked body.
func TestH1Trailers(t *testing.T) {
	c := dial(t, startH1(t, answerProbe, nil))
	c.send("GET /trailer HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body := c.read("GET")
	if body != "body" || resp.Trailer.Get("X-T") != "done" || len(resp.TransferEncoding) == 0 {
		t.Fatalf("body %q trailer %v te %v: want the X-T trailer after a chunked body", body, resp.Trailer, resp.TransferEncoding)
	}
}

// TestH1NoLeaks: no goroutine outlives the server once its connections ended every way:
// client gone mid-request, handler panic, idle keep-alive at shutdown, request in flight at
// shutdown (through Serve, as `citadel serve` runs it).
func TestH1NoLeaks(t *testing.T) {
	noLeaks(t)
	inHandler := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		inHandler <- struct{}{}
		<-r.Context().Done()
	})
	addr := startH1(t, h, func(s *h1Server) { s.watchEvery = 2 * time.Millisecond })
	gone := dial(t, addr)
	gone.send("GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
	<-inHandler
	gone.nc.Close()
	p := dial(t, addr)
	p.send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	if !p.closed() {
		t.Fatal("the connection stayed open after a panic")
	}

	release := make(chan struct{})
	upIn := make(chan struct{}, 1)
	up := startStd(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.Contains(r.Header.Get("Accept"), "slow") {
			upIn <- struct{}{}
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
	}))
	gw := New(Options{Routes: []*v1.Route{routeTo("m", "http://"+up)}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()
	const body = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	chat := func(accept string) string {
		return fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAccept: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", accept, len(body), body)
	}
	idle := dial(t, ln.Addr().String())
	idle.send(chat("application/json"))
	if resp, _ := idle.read("POST"); resp.StatusCode != 200 {
		t.Fatalf("chat: %d", resp.StatusCode)
	}
	busy := dial(t, ln.Addr().String())
	busy.send(chat("application/json, slow"))
	<-upIn

	cancel()
	t0 := time.Now()
	if !idle.closed() || time.Since(t0) > 2*time.Second {
		t.Fatalf("an idle connection closed %s after shutdown began, want at once", time.Since(t0))
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	if resp, b := busy.read("POST"); resp.StatusCode != 200 || !resp.Close || !strings.Contains(b, "hi") {
		t.Fatalf("the request in flight at shutdown: %d %q close %v, want 200 and Connection: close", resp.StatusCode, b, resp.Close)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestH1HalfCloseMatchesStdlib: a client that closes its write side after its request (some
// do; curl does not) sees what net/http's server does: the request's context ends (its
// background read sees EOF), and the answer still comes.
func TestH1HalfCloseMatchesStdlib(t *testing.T) {
	results := make(chan string, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			results <- "context ended"
		case <-time.After(time.Second):
			results <- "context lived"
		}
		_, _ = io.WriteString(w, "answer")
	})
	for _, addr := range []string{startH1(t, h, func(s *h1Server) { s.watchEvery = 2 * time.Millisecond }), startStd(t, h)} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(nc, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
		_ = nc.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(nc)
		results <- fmt.Sprintf("answered %v", bytes.Contains(b, []byte("answer")))
	}
	got := []string{<-results, <-results, <-results, <-results}
	if got[0] != got[2] || got[1] != got[3] {
		t.Fatalf("gateway's server %q, net/http's %q", got[:2], got[2:])
	}
}

// TestH1SlowHeaderOnKeepAlive: a later request's header trickled a byte at a time is cut at
// the read-header timeout, also when its first byte came while the previous request ran
// (the client-gone watch read it).
func TestH1SlowHeaderOnKeepAlive(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond) // past two ticks: the watch reads
		_, _ = io.WriteString(w, "ok")
	})
	addr := startH1(t, slow, func(s *h1Server) { s.readHeader, s.watchEvery = 200*time.Millisecond, 2*time.Millisecond })
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("first byte during the handler=%v", early), func(t *testing.T) {
			c := dial(t, addr)
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if early {
				time.Sleep(15 * time.Millisecond)
				c.send("G")
			}
			c.read("GET")
			t0 := time.Now()
			stop := make(chan struct{})
			trickled := make(chan struct{})
			go func() {
				defer close(trickled)
				trickle := "ET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("x", 100)
				for i := range len(trickle) {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					if _, err := io.WriteString(c.nc, trickle[i:i+1]); err != nil {
						return
					}
				}
			}()
			_, err := io.ReadAll(c.br) // a 400 may come first, for the partial line
			closed := !isTimeout(err)
			close(stop)
			<-trickled
			if !closed || time.Since(t0) > time.Second {
				t.Fatalf("a trickled header held the connection %s, want the 200ms read-header timeout", time.Since(t0))
			}
		})
	}
}

// TestH1ManyPipelined: thousands of tiny pipelined requests in one write are all answered, in
// order, on one connection.
func TestH1ManyPipelined(t *testing.T) {
	c := dial(t, startH1(t, echo, nil))
	const n = 2000
	var req bytes.Buffer
	for i := range n {
		fmt.Fprintf(&req, "GET /%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
	}
	go func() { _, _ = c.nc.Write(req.Bytes()) }()
	for i := range n {
		if _, body := c.read("GET"); body != fmt.Sprintf("GET /%d ", i) {
			t.Fatalf("answer %d: %q", i, body)
		}
	}
}
