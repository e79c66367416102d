package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// h1Server is the gateway's own HTTP/1.1 server: one goroutine per connection that reads a
// request, runs the handler and writes the answer, with no other goroutine per request.
// net/http's server starts a background read per request to notice a client that goes away;
// here that watch starts only for a handler still running, its body read, at two ticks of
// one sweeper per server (every watchEvery, while requests are in flight): an LLM request
// that waits on an engine is watched within 2×watchEvery, and a quick answer costs no
// goroutine, no timer (a timer earlier than the others wakes a sleeping thread to say so)
// and no deadline games. A small answer leaves in one write. A connection that opens with
// the HTTP/2 preface (h2c with prior knowledge) is handed to a net/http server.
type h1Server struct {
	handler http.Handler
	log     *slog.Logger
	base    context.Context // every request's context derives from it
	// readHeader bounds the reading of a request's header, idle the wait for a connection's
	// next request; maxHeader is the header size beyond which a request is answered 431.
	readHeader, idle time.Duration
	maxHeader        int
	// watchEvery is the sweeper's tick: a handler that has run, its body read, across two
	// ticks has its connection watched for the client going away (which ends the request's
	// context). Zero: no watch.
	watchEvery time.Duration
	h2         *h2Handoff // nil: a connection with the HTTP/2 preface is answered 400 like any

	mu       sync.Mutex
	conns    map[*h1Conn]struct{}
	closing  atomic.Bool
	wg       sync.WaitGroup // connections and the sweeper
	sweeping atomic.Bool    // the sweeper runs
}

const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 2 * time.Minute
	defaultWatchEvery        = 25 * time.Millisecond
	// maxPostHandlerRead is how much of a body the handler left unread is read and dropped to
	// keep the connection (net/http's figure); beyond it the connection is closed.
	maxPostHandlerRead = 256 << 10
	// maxHeld is how much answer is held, before its header is written, to send a small one
	// with its Content-Length in one write; beyond it the answer is chunked.
	maxHeld = 64 << 10
)

// serve accepts connections on ln until it is closed or shutdown starts.
func (s *h1Server) serve(ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("gateway accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &h1Conn{srv: s, nc: nc}
		if !s.track(c) {
			nc.Close()
			return nil
		}
		go c.serve()
	}
}

func (s *h1Server) track(c *h1Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*h1Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *h1Server) untrack(c *h1Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// setIdle marks c as waiting for its next request (idle) or serving one; false when the
// server is shutting down and c must close instead. (shutdown sets closing, then closes
// the connections it finds idle: one of the two sees the other's write.)
func (s *h1Server) setIdle(c *h1Conn, idle bool) bool {
	c.idle.Store(idle)
	return !s.closing.Load()
}

// shutdown stops new requests: idle connections close now, busy ones after their answer.
// The caller closes the listener and waits (wait).
func (s *h1Server) shutdown() {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.nc.Close()
		}
	}
}

// closeAll closes every connection, busy or not.
func (s *h1Server) closeAll() {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

func (s *h1Server) wait() { s.wg.Wait() }

// h1Conn is one client connection.
type h1Conn struct {
	srv     *h1Server
	nc      net.Conn
	remote  string
	cr      connReader
	br      *bufio.Reader
	idle    atomic.Bool
	werr    error // the first write error; the connection closes after the request
	wbuf    []byte
	wbufBox *[]byte

	// The watch for the client going away (see h1Server.watchEvery).
	seq      uint64        // the current request's number on the connection, from 1
	armedSeq atomic.Uint64 // seq once the request's body is in; 0: nothing to watch
	seen     uint64        // the armedSeq the sweeper saw at its last tick (under srv.mu)
	wmu      sync.Mutex
	armed    bool               // a watch may start for the current request
	started  bool               // a watch was started for it
	reading  bool               // a watch is in its Read
	aborted  bool               // the request ended: a watch's Read error says nothing
	cancel   context.CancelFunc // the current request's context
	watched  chan struct{}      // a watch that read has finished
	gone     atomic.Bool        // the watch saw the client close (or the connection fail)
	bg       [1]byte
}

// connReader reads the connection with a byte budget (a request header's size limit) and
// first returns the byte a watch read, if it read one.
type connReader struct {
	nc      net.Conn
	remain  int64
	hit     bool
	hasByte bool
	b       byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.remain <= 0 {
		r.hit = true
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	if r.hasByte {
		r.hasByte = false
		p[0] = r.b
		r.remain--
		return 1, nil
	}
	n, err := r.nc.Read(p)
	r.remain -= int64(n)
	return n, err
}

var brPool sync.Pool

func (c *h1Conn) serve() {
	s := c.srv
	defer s.untrack(c)
	handedOff := false
	defer func() {
		if !handedOff {
			c.nc.Close()
		}
	}()
	c.remote = c.nc.RemoteAddr().String()
	c.cr.nc = c.nc
	c.cr.remain = math.MaxInt64
	if v, ok := brPool.Get().(*bufio.Reader); ok {
		v.Reset(&c.cr)
		c.br = v
	} else {
		c.br = bufio.NewReaderSize(&c.cr, 4<<10)
	}
	defer func() {
		if !handedOff {
			c.br.Reset(nil)
			brPool.Put(c.br)
		}
	}()
	c.watched = make(chan struct{}, 1)

	for first := true; ; first = false {
		if !s.setIdle(c, true) {
			return
		}
		// The header's size limit counts from here, what the wait for it reads included.
		c.cr.remain, c.cr.hit = int64(s.maxHeader)+4096, false
		if c.br.Buffered() == 0 && !c.cr.hasByte {
			d := s.idle
			if first {
				d = s.readHeader
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(d))
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		if !s.setIdle(c, false) {
			return
		}
		// The header is to arrive within readHeader of its first byte, unless it is in already.
		if b, _ := c.br.Peek(c.br.Buffered()); !first && !bytes.Contains(b, crlf2) {
			_ = c.nc.SetReadDeadline(time.Now().Add(s.readHeader))
		}
		if first && s.h2 != nil && isH2Preface(c.br) {
			_ = c.nc.SetReadDeadline(time.Time{})
			c.cr.remain = math.MaxInt64
			handedOff = s.h2.handOff(&prereadConn{Conn: c.nc, r: c.br})
			return
		}
		if !c.serveRequest() {
			c.closeGracefully()
			return
		}
	}
}

var crlf2 = []byte("\r\n\r\n")

// h2Preface is how an HTTP/2 connection with prior knowledge opens.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func isH2Preface(br *bufio.Reader) bool {
	if b, _ := br.Peek(4); string(b) != h2Preface[:4] {
		return false
	}
	b, _ := br.Peek(len(h2Preface))
	return string(b) == h2Preface
}

// prereadConn is a connection whose first bytes were read already, into r.
type prereadConn struct {
	net.Conn
	r io.Reader
}

func (c *prereadConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// closeGracefully closes the connection after its last answer without resetting it (which
// could lose the answer): it closes the write side, then reads what the client still sends
// until it closes too, for half a second at most.
func (c *h1Conn) closeGracefully() {
	if c.werr != nil || c.gone.Load() {
		return
	}
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, maxPostHandlerRead))
	}
}

// serveRequest reads one request and answers it; false when the connection must close.
func (c *h1Conn) serveRequest() bool {
	s := c.srv
	req, err := http.ReadRequest(c.br)
	c.cr.remain = math.MaxInt64
	if err != nil {
		switch {
		case c.cr.hit:
			c.fail(http.StatusRequestHeaderFieldsTooLarge, "")
		case errors.Is(err, io.EOF):
		case isTimeout(err):
		case strings.HasPrefix(err.Error(), "unsupported transfer encoding"), strings.HasPrefix(err.Error(), "too many transfer encodings"):
			c.fail(http.StatusNotImplemented, err.Error()) // as net/http answers it
		default:
			c.fail(http.StatusBadRequest, badRequestReason(err))
		}
		return false
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if why := checkRequest(req); why != "" {
		code := http.StatusBadRequest
		if why == "unsupported protocol version" {
			code = http.StatusHTTPVersionNotSupported
		}
		c.fail(code, why)
		return false
	}
	req.RemoteAddr = c.remote

	w := &h1Response{c: c, req: req, header: make(http.Header), cl: -1}
	w.body = h1Body{rc: req.Body, w: w, remain: req.ContentLength}
	body := &w.body
	if e := req.Header["Expect"]; len(e) > 0 {
		if len(e) != 1 || !strings.EqualFold(e[0], "100-continue") {
			c.fail(http.StatusExpectationFailed, "")
			return false
		}
		body.expect = req.ProtoAtLeast(1, 1) && req.ContentLength != 0
	}
	if req.ContentLength == 0 {
		body.eof = true
	}
	ctx, cancel := context.WithCancel(s.base)
	req = req.WithContext(ctx)
	req.Body = body

	c.seq++
	c.wmu.Lock()
	c.cancel, c.aborted, c.armed = cancel, false, true
	c.wmu.Unlock()
	if body.eof {
		c.arm()
	}
	ok := c.run(w, req)
	c.unwatch()
	cancel()
	if !ok {
		return false
	}
	w.finish()
	w.release()
	return !w.closeAfter && c.werr == nil && !c.gone.Load()
}

// run calls the handler; false when it panicked (the connection closes, as net/http does).
func (c *h1Conn) run(w *h1Response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.srv.log.Error("gateway handler panic", "remote", c.remote, "method", req.Method, "path", req.URL.Path, "panic", v, "stack", string(debug.Stack()))
			}
			w.release()
			ok = false
		}
	}()
	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		w.Header().Set("Content-Length", "0") // net/http's answer to OPTIONS *: not a path to route
		return true
	}
	c.srv.handler.ServeHTTP(w, req)
	return true
}

// watch, started by the sweeper, reads the connection while the handler runs: the client
// has sent its whole request, so a read that fails means it went away (or reset), and the
// request's context is cancelled. A byte read is the next request's, kept for it.
func (c *h1Conn) watch() {
	c.wmu.Lock()
	if !c.armed {
		c.wmu.Unlock()
		c.watched <- struct{}{}
		return
	}
	c.reading = true
	c.wmu.Unlock()
	n, err := c.nc.Read(c.bg[:])
	c.wmu.Lock()
	if n == 1 {
		c.cr.b, c.cr.hasByte = c.bg[0], true
	}
	if err != nil && !c.aborted {
		c.gone.Store(true)
		c.cancel()
	}
	c.reading = false
	c.wmu.Unlock()
	c.watched <- struct{}{}
}

// arm offers the current request to the sweeper (once its body is in), and starts the
// sweeper if it does not run.
func (c *h1Conn) arm() {
	if c.srv.watchEvery <= 0 {
		return // no watch (tests)
	}
	c.armedSeq.Store(c.seq)
	if s := c.srv; !s.sweeping.Load() && s.sweeping.CompareAndSwap(false, true) {
		s.wg.Add(1) // c's own count is in: wait waits for the sweeper too
		go s.sweep()
	}
}

// unwatch ends the watch of the current request: if one was started, it waits for it to
// return, ending a Read it is in.
func (c *h1Conn) unwatch() {
	c.armedSeq.Store(0)
	c.wmu.Lock()
	c.armed = false
	reading, started := c.reading, c.started
	c.started = false
	c.aborted = true
	c.wmu.Unlock()
	if !started {
		return
	}
	if reading {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
	<-c.watched
	if reading {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// sweep starts the watch of every request that was armed at its last tick already; it runs
// while there are armed requests.
func (s *h1Server) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(s.watchEvery)
	defer t.Stop()
	for idle := 0; ; {
		<-t.C
		if s.tick() {
			idle = 0
			continue
		}
		if idle++; idle < 2 {
			continue
		}
		// arm stores armedSeq, then reads sweeping; here the reverse: one of the two sees
		// the other's write, so no request is left without a sweeper.
		s.sweeping.Store(false)
		if !s.tick() || !s.sweeping.CompareAndSwap(false, true) {
			return
		}
		idle = 0
	}
}

// tick is one sweep; whether any request is armed.
func (s *h1Server) tick() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	armed := false
	for c := range s.conns {
		seq := c.armedSeq.Load()
		if seq == 0 {
			continue
		}
		armed = true
		if c.seen != seq {
			c.seen = seq
			continue
		}
		c.wmu.Lock()
		if c.armed && !c.started && c.armedSeq.Load() == seq {
			c.started = true
			go c.watch()
		}
		c.wmu.Unlock()
	}
	return armed
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// badRequestReason is what a 400 says of a request http.ReadRequest refused.
func badRequestReason(err error) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "malformed HTTP request"), strings.HasPrefix(msg, "malformed HTTP version"),
		strings.HasPrefix(msg, "unsupported transfer encoding"), strings.HasPrefix(msg, "invalid header"), msg == "too many Host headers",
		strings.Contains(msg, "Content-Length"), strings.HasPrefix(msg, "malformed MIME header"):
		return msg
	}
	return ""
}

// checkRequest applies what net/http's server checks of a request beyond its syntax; the
// reason a request is refused, or "".
func checkRequest(req *http.Request) string {
	if req.ProtoMajor != 1 {
		return "unsupported protocol version"
	}
	// http.ReadRequest took the Host header into req.Host (and refused two).
	switch {
	case req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect:
		return "missing required Host header"
	case !validHost(req.Host):
		return "malformed Host header"
	}
	for k, vv := range req.Header {
		if !validFieldName(k) {
			return "invalid header name"
		}
		for _, v := range vv {
			if !validFieldValue(v) {
				return "invalid header value"
			}
		}
	}
	return ""
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenByte(k[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// validHost is net/http's check of a Host header: the bytes a host[:port] may hold.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		b := h[i]
		switch {
		case b >= 0x80, 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// fail answers a request that never reached the handler, and the connection closes.
func (c *h1Conn) fail(code int, why string) {
	msg := strconv.Itoa(code) + " " + http.StatusText(code)
	if why != "" {
		msg += ": " + why
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(c.nc, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
	c.closeGracefully()
}

// h1Body is a request's body as the handler reads it: it sends 100 Continue before the
// first read when the client asked for it, counts what is left, and starts the watch for the
// client going away once it reaches its end.
type h1Body struct {
	rc     io.ReadCloser
	w      *h1Response
	remain int64 // of a Content-Length; -1: chunked
	expect bool  // 100 Continue is still to be sent
	eof    bool
	err    error // a read error other than EOF: what is left on the wire is unknown
	closed bool
	// settling: the server reads what the handler left, after the handler (no watch then).
	settling bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.expect {
		b.expect = false
		if !b.w.committed {
			c := b.w.c
			if _, err := io.WriteString(c.nc, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
				c.werr = err
				return 0, err
			}
		}
	}
	n, err := b.rc.Read(p)
	if b.remain > 0 {
		b.remain -= int64(n)
	}
	if err == io.EOF {
		b.eof = true
		if !b.settling {
			b.w.c.arm()
		}
	} else if err != nil {
		b.err = err
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.closed = true
	return nil
}

// settle readies the connection for its next request before an answer's header goes out:
// what the handler left of the body is read and dropped, up to maxPostHandlerRead; beyond,
// or when the client still waits for 100 Continue, the connection closes after the answer.
func (b *h1Body) settle(afterHandler bool) (keep bool) {
	switch {
	case b.eof:
		return true
	case b.err != nil, b.expect:
		return false
	case b.remain > maxPostHandlerRead:
		return false
	}
	b.closed, b.settling = false, afterHandler
	_, err := io.CopyN(io.Discard, b, maxPostHandlerRead+1)
	b.closed = true
	return err == io.EOF
}

// h1Response is the http.ResponseWriter (and http.Flusher, and the read and write deadlines
// of http.ResponseController) of one request. The answer is held until the handler returns,
// flushes or writes more than maxHeld, so that a small one goes out in one write with its
// Content-Length.
type h1Response struct {
	c      *h1Conn
	req    *http.Request
	body   h1Body
	header http.Header

	status      int
	wroteHeader bool
	committed   bool // the header is written (to wbuf)
	chunked     bool
	closeAfter  bool
	cl          int64  // the Content-Length the handler set; -1: none
	written     int64  // body bytes the handler wrote
	head        []byte // status line and the handler's header fields, as WriteHeader found them
	held        []byte // body not yet written
	headBox     *[]byte
	heldBox     *[]byte
	hasType     bool
	hasDate     bool
	conn        []string // the handler's Connection field, sent unless the connection closes
	// trailers are the fields the handler declared in its Trailer header; hasTrailers: it
	// declared some or set a field with http.TrailerPrefix, so the answer is chunked.
	trailers    []string
	hasTrailers bool
}

// h1Bufs holds the buffers of answers being written: one per request in flight, none per
// idle connection. A buffer is taken with its box (the pointer the pool holds), so that
// giving it back allocates nothing.
var h1Bufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func getBuf(box **[]byte) []byte {
	*box = h1Bufs.Get().(*[]byte)
	return (**box)[:0]
}

// putBuf gives back the buffer taken into box, b being what it became (grown, maybe).
func putBuf(box **[]byte, b []byte) {
	if *box == nil {
		return
	}
	if cap(b) <= maxHeld+8<<10 {
		**box = b[:0]
	}
	h1Bufs.Put(*box)
	*box = nil
}

func (w *h1Response) Header() http.Header { return w.header }

func (w *h1Response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		if code == http.StatusContinue {
			w.body.expect = false // sent now: the body's first read does not send another
		}
		if w.c.werr == nil { // an informational answer goes now; the final one is still to come
			w.c.wbuf = appendStatusLine(w.c.buf(), w.req, code)
			w.c.wbuf = appendHeader(w.c.wbuf, w.header)
			w.c.wbuf = append(w.c.wbuf, "\r\n"...)
			w.c.flush()
		}
		return
	}
	w.wroteHeader = true
	w.status = code
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(strings.TrimSpace(v[0]), 10, 64); err == nil && n >= 0 {
			w.cl = n
		}
	}
	_, w.hasType = w.header["Content-Type"]
	_, w.hasDate = w.header["Date"]
	w.conn = slices.Clone(w.header["Connection"])
	if headerHasToken(w.conn, "close") {
		w.closeAfter = true
	}
	for _, v := range w.header["Trailer"] {
		for f := range strings.SplitSeq(v, ",") {
			switch f = http.CanonicalHeaderKey(strings.TrimSpace(f)); f {
			case "", "Content-Length", "Transfer-Encoding", "Trailer":
			default:
				w.trailers = append(w.trailers, f)
			}
		}
	}
	w.hasTrailers = len(w.trailers) > 0
	for k := range w.header {
		w.hasTrailers = w.hasTrailers || strings.HasPrefix(k, http.TrailerPrefix)
	}
	w.head = appendStatusLine(getBuf(&w.headBox), w.req, code)
	w.head = appendHeader(w.head, w.header)
}

// buf is wbuf, taken from the pool if need be.
func (c *h1Conn) buf() []byte {
	if c.wbufBox == nil {
		c.wbuf = getBuf(&c.wbufBox)
	}
	return c.wbuf
}

func headerHasToken(vv []string, token string) bool {
	for _, v := range vv {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

func appendStatusLine(dst []byte, req *http.Request, code int) []byte {
	if req.ProtoAtLeast(1, 1) {
		dst = append(dst, "HTTP/1.1 "...)
	} else {
		dst = append(dst, "HTTP/1.0 "...)
	}
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	if text := http.StatusText(code); text != "" {
		dst = append(dst, text...)
	} else {
		dst = append(dst, "status code "...)
		dst = strconv.AppendInt(dst, int64(code), 10)
	}
	return append(dst, "\r\n"...)
}

// appendHeader appends h's fields but the framing ones and Connection (the server's), the
// trailers set with http.TrailerPrefix and those whose name is not a token (net/http drops
// them too), sorted, each value trimmed and its line breaks made spaces, as http.Header.Write
// does.
func appendHeader(dst []byte, h http.Header) []byte {
	var arr [32]string
	keys := arr[:0]
	for k := range h {
		switch {
		case k == "Content-Length", k == "Transfer-Encoding", k == "Connection":
		case strings.HasPrefix(k, http.TrailerPrefix), !validFieldName(k):
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			dst = appendField(dst, k, v)
		}
	}
	return dst
}

// appendField appends the field k: v, v trimmed and its line breaks made spaces.
func appendField(dst []byte, k, v string) []byte {
	dst = append(dst, k...)
	dst = append(dst, ": "...)
	v = strings.Trim(v, " \t")
	for i := 0; i < len(v); i++ {
		if b := v[i]; b == '\r' || b == '\n' {
			dst = append(dst, ' ')
		} else {
			dst = append(dst, b)
		}
	}
	return append(dst, "\r\n"...)
}

func (w *h1Response) bodyAllowed() bool {
	return w.status >= 200 && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *h1Response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl >= 0 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	if w.req.Method == http.MethodHead {
		if !w.committed && !w.hasType && len(w.held) < 512 { // to sniff its Content-Type
			if w.heldBox == nil {
				w.held = getBuf(&w.heldBox)
			}
			w.held = append(w.held, p[:min(len(p), 512-len(w.held))]...)
		}
		return len(p), nil
	}
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	if !w.committed {
		if len(w.held)+len(p) <= maxHeld {
			if w.heldBox == nil {
				w.held = getBuf(&w.heldBox)
			}
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	w.writeBody(p)
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	return len(p), nil
}

// writeBody writes p after the header, as a chunk when the answer is chunked.
func (w *h1Response) writeBody(p []byte) {
	c := w.c
	if len(p) == 0 || c.werr != nil {
		return
	}
	if w.chunked {
		c.wbuf = strconv.AppendInt(c.wbuf, int64(len(p)), 16)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if len(c.wbuf)+len(p)+2 <= cap(c.wbuf) {
		c.wbuf = append(c.wbuf, p...)
	} else {
		bufs := net.Buffers{c.wbuf, p}
		if _, err := bufs.WriteTo(c.nc); err != nil {
			c.werr = err
		}
		c.wbuf = c.wbuf[:0]
	}
	if w.chunked {
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
}

// commit writes the header into wbuf, and what was held after it; final: the handler has
// returned, so a held answer's length is its Content-Length.
func (w *h1Response) commit(final bool) {
	w.committed = true
	c := w.c
	if !w.body.settle(final) {
		w.closeAfter = true
	}
	c.wbuf = append(c.buf(), w.head...)
	putBuf(&w.headBox, w.head)
	w.head = nil
	if w.bodyAllowed() {
		switch {
		case w.cl >= 0:
			c.wbuf = append(c.wbuf, "Content-Length: "...)
			c.wbuf = strconv.AppendInt(c.wbuf, w.cl, 10)
			c.wbuf = append(c.wbuf, "\r\n"...)
		case w.req.Method == http.MethodHead && !final:
			// No body follows, whatever its length: no framing, and the connection lives on.
		case w.hasTrailers && w.req.ProtoAtLeast(1, 1) && w.req.Method != http.MethodHead:
			w.chunked = true // trailers follow the last chunk
			c.wbuf = append(c.wbuf, "Transfer-Encoding: chunked\r\n"...)
		case final && (w.req.Method != http.MethodHead || w.written > 0):
			c.wbuf = append(c.wbuf, "Content-Length: "...)
			c.wbuf = strconv.AppendInt(c.wbuf, w.written, 10)
			c.wbuf = append(c.wbuf, "\r\n"...)
		case final:
		case w.req.ProtoAtLeast(1, 1):
			w.chunked = true
			c.wbuf = append(c.wbuf, "Transfer-Encoding: chunked\r\n"...)
		default:
			w.closeAfter = true
		}
		if !w.hasType && len(w.held) > 0 {
			c.wbuf = append(c.wbuf, "Content-Type: "...)
			c.wbuf = append(c.wbuf, http.DetectContentType(w.held[:min(len(w.held), 512)])...)
			c.wbuf = append(c.wbuf, "\r\n"...)
		}
	}
	if !w.hasDate {
		c.wbuf = append(c.wbuf, "Date: "...)
		c.wbuf = time.Now().UTC().AppendFormat(c.wbuf, http.TimeFormat)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if w.req.Close || c.gone.Load() || c.srv.closing.Load() {
		w.closeAfter = true
	}
	switch {
	case w.closeAfter: // whatever the handler said: the client must not send another request
		c.wbuf = append(c.wbuf, "Connection: close\r\n"...)
	case len(w.conn) > 0:
		for _, v := range w.conn {
			c.wbuf = appendField(c.wbuf, "Connection", v)
		}
	case !w.req.ProtoAtLeast(1, 1):
		c.wbuf = append(c.wbuf, "Connection: keep-alive\r\n"...)
	}
	c.wbuf = append(c.wbuf, "\r\n"...)
	if w.req.Method != http.MethodHead {
		w.writeBody(w.held)
	}
	putBuf(&w.heldBox, w.held)
	w.held = nil
}

// finish completes the answer once the handler has returned, and writes it.
func (w *h1Response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		w.c.wbuf = append(w.c.wbuf, "0\r\n"...)
		if t := w.finalTrailers(); t != nil {
			w.c.wbuf = appendHeader(w.c.wbuf, t)
		}
		w.c.wbuf = append(w.c.wbuf, "\r\n"...)
	}
	if w.cl >= 0 && w.written != w.cl && w.req.Method != http.MethodHead && w.bodyAllowed() {
		// Short: the client waits for bytes that will not come. Over: the write that went
		// past cl failed, and the client may be owed bytes of it.
		w.closeAfter = true
	}
	w.c.flush()
}

// finalTrailers are the trailers to send: the declared fields and those set with
// http.TrailerPrefix, as the handler left them (net/http's rule); nil: none.
func (w *h1Response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.header {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			if t == nil {
				t = make(http.Header)
			}
			t.Add(k, v)
		}
	}
	return t
}

// release returns the response's buffers (also after a panic).
func (w *h1Response) release() {
	putBuf(&w.headBox, w.head)
	putBuf(&w.heldBox, w.held)
	w.head, w.held = nil, nil
	putBuf(&w.c.wbufBox, w.c.wbuf)
	w.c.wbuf = nil
}

// flush writes wbuf to the connection.
func (c *h1Conn) flush() {
	if len(c.wbuf) == 0 || c.werr != nil {
		return
	}
	if _, err := c.nc.Write(c.wbuf); err != nil {
		c.werr = err
	}
	c.wbuf = c.wbuf[:0]
}

// FlushError writes what the handler wrote so far (with the header) to the client.
func (w *h1Response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	w.c.flush()
	return w.c.werr
}

// Flush is http.Flusher's.
func (w *h1Response) Flush() { _ = w.FlushError() }

// SetReadDeadline is http.ResponseController's: for the request body.
func (w *h1Response) SetReadDeadline(t time.Time) error { return w.c.nc.SetReadDeadline(t) }

// SetWriteDeadline is http.ResponseController's.
func (w *h1Response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// h2Handoff passes connections that open with the HTTP/2 preface to a net/http server that
// speaks h2c, through a listener that yields them.
type h2Handoff struct {
	srv   *http.Server
	conns chan net.Conn
	done  chan struct{}
	addr  net.Addr
	once  sync.Once // starts srv
	close sync.Once
}

func newH2Handoff(srv *http.Server, addr net.Addr) *h2Handoff {
	return &h2Handoff{srv: srv, conns: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

// handOff gives c to the HTTP/2 server; false when that server is closed.
func (h *h2Handoff) handOff(c net.Conn) bool {
	h.once.Do(func() { go func() { _ = h.srv.Serve(h) }() })
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *h2Handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *h2Handoff) Close() error {
	h.close.Do(func() { close(h.done) })
	return nil
}

func (h *h2Handoff) Addr() net.Addr { return h.addr }
