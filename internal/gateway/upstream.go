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
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// upstream is the proxy path's HTTP/1.1 client for engines at plain http:// addresses: the
// handler's goroutine writes the request on a pooled keep-alive connection (one write) and
// reads the answer itself. net/http's Transport, which it stands in for on this path, hands
// each request to a writer goroutine and each response over from a reader goroutine, which
// then waits for the body's end to pool the connection: four goroutine switches per request,
// about 0.1 ms of each proxied request on a 2-core machine (docs/gateway.md, "Overhead").
// Anything else (https, user info or a query in the base URL, a proxy) goes through the
// Transport as before.
//
// It takes the Transport's settings (dialer, response header timeout, idle connections per
// host and their idle timeout) and keeps its semantics: Content-Length, chunked and
// close-delimited answers; 1xx answers skipped; a body cut short reads io.ErrUnexpectedEOF;
// a connection goes back to the pool only once its answer was read to the end, and not when
// the server said close; a context that ends (per-try timeout, client gone, Close) interrupts
// the request wherever it is and the connection is dropped. A pooled connection that the
// server closed while it was idle (an engine's keep-alive timeout: uvicorn's is 5 s) fails
// before the first byte of an answer; the request is then sent once more on a new connection,
// since the Transport's reader would have seen that close and not pooled the connection.
type upstream struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	header      time.Duration // response header timeout (0: none)
	maxIdle     int           // idle connections per address
	idleTimeout time.Duration // an idle connection is closed after this (0: never)

	mu       sync.Mutex
	idle     map[string][]*upConn // by dial address, most recently used last
	sweeping bool                 // a sweep of idle connections is scheduled
	bases    sync.Map             // base URL → *upBase (nil: not for this client)
	nbases   atomic.Int64
}

// upConn is one connection to an engine.
type upConn struct {
	nc     net.Conn
	cr     *countReader
	br     *bufio.Reader
	addr   string
	reused bool      // it carried an earlier request
	idleAt time.Time // when it last went idle
}

// countReader counts the bytes read from a connection: an answer that failed before its
// first byte is told from one that failed midway.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// upBase is a replica's base URL, taken apart once.
type upBase struct {
	addr   string // host:port to dial
	host   string // Host header
	prefix string // path the request's own path is appended to
}

// upstreams holds each gateway's upstream client, keyed by the gateway's http.Client (whose
// Transport gives the settings) and dropped with it.
var upstreams sync.Map // weak.Pointer[http.Client] → *upstream (nil: the Transport's way only)

// upstreamFor returns the upstream client that goes with c, or nil when c's transport is not
// a plain *http.Transport without a proxy.
func upstreamFor(c *http.Client) *upstream {
	k := weak.Make(c)
	if u, ok := upstreams.Load(k); ok {
		return u.(*upstream)
	}
	var u *upstream
	if tr, ok := c.Transport.(*http.Transport); ok && tr.Proxy == nil && tr.DialTLSContext == nil {
		u = &upstream{dial: tr.DialContext, header: tr.ResponseHeaderTimeout, maxIdle: tr.MaxIdleConnsPerHost,
			idleTimeout: tr.IdleConnTimeout, idle: map[string][]*upConn{}}
		if u.dial == nil {
			u.dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		}
		if u.maxIdle <= 0 {
			u.maxIdle = http.DefaultMaxIdleConnsPerHost
		}
	}
	if v, loaded := upstreams.LoadOrStore(k, u); loaded {
		return v.(*upstream)
	}
	runtime.AddCleanup(c, func(k weak.Pointer[http.Client]) {
		if v, ok := upstreams.LoadAndDelete(k); ok && v.(*upstream) != nil {
			v.(*upstream).closeIdle()
		}
	}, k)
	return u
}

// base returns how to reach raw (a replica's base URL), or nil when this client does not
// serve it.
func (u *upstream) base(raw string) *upBase {
	if u == nil {
		return nil
	}
	if b, ok := u.bases.Load(raw); ok {
		return b.(*upBase)
	}
	var b *upBase
	if p, err := url.Parse(raw); err == nil && p.Scheme == "http" && p.User == nil && p.Opaque == "" &&
		p.RawQuery == "" && !p.ForceQuery && p.Fragment == "" && p.Host != "" && validTarget(p.EscapedPath()) {
		addr := p.Host
		if p.Port() == "" {
			addr = net.JoinHostPort(p.Hostname(), "80")
		}
		b = &upBase{addr: addr, host: p.Host, prefix: p.EscapedPath()}
	}
	if u.nbases.Add(1) > 4096 { // replicas come and go: forget them all now and then
		u.bases.Clear()
		u.nbases.Store(1)
	}
	u.bases.Store(raw, b)
	return b
}

// validTarget reports whether s may stand in a request line.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validValue reports whether s may stand as a header value.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// upPost is the request every answer is read for (ReadResponse needs its method).
var upPost = &http.Request{Method: http.MethodPost}

// aLongTimeAgo is a deadline that has passed: a read or write blocked on the connection
// returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// post sends POST path to b with body (JSON) and the request id and Accept headers, and
// returns the answer once its headers are read; its Body reads the rest. ctx governs the
// whole exchange, body included, until the body is read to its end or closed.
func (u *upstream) post(ctx context.Context, b *upBase, path string, body []byte, id, accept string) (*http.Response, error) {
	if !validTarget(path) || !validValue(id) || !validValue(accept) {
		return nil, fmt.Errorf("invalid request line or header for %s%s", b.host, path)
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	uc := u.get(b.addr)
	for {
		if uc == nil {
			var err error
			if uc, err = u.connect(ctx, b.addr); err != nil {
				return nil, fmt.Errorf("POST %s%s: %w", b.host, path, err)
			}
		}
		conn, read := uc, uc.cr.n
		stop := context.AfterFunc(ctx, func() { conn.nc.SetDeadline(aLongTimeAgo) })
		resp, err := u.exchange(ctx, uc, b, path, body, id, accept)
		if err == nil {
			ub := &upBody{body: resp.Body, u: u, uc: uc, ctx: ctx, stop: stop, close: resp.Close}
			if resp.Body == http.NoBody {
				ub.release(true)
			} else {
				resp.Body = ub
			}
			return resp, nil
		}
		stop()
		uc.nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("POST %s%s: %w", b.host, path, context.Cause(ctx))
		}
		var ne net.Error
		if uc.reused && uc.cr.n == read && !(errors.As(err, &ne) && ne.Timeout()) {
			uc = nil // closed while it was idle: once more on a new connection
			continue
		}
		return nil, fmt.Errorf("POST %s%s: %w", b.host, path, err)
	}
}

// connect dials addr.
func (u *upstream) connect(ctx context.Context, addr string) (*upConn, error) {
	nc, err := u.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cr := &countReader{r: nc}
	return &upConn{nc: nc, cr: cr, br: bufio.NewReaderSize(cr, 16<<10), addr: addr}, nil
}

// headBufs holds the buffers requests are written from.
var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// exchange writes the request on uc in one write and reads the answer's headers.
func (u *upstream) exchange(ctx context.Context, uc *upConn, b *upBase, path string, body []byte, id, accept string) (*http.Response, error) {
	hp := headBufs.Get().(*[]byte)
	w := append((*hp)[:0], "POST "...)
	w = append(w, b.prefix...)
	w = append(w, path...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, b.host...)
	w = append(w, "\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: "...)
	w = strconv.AppendInt(w, int64(len(body)), 10)
	w = append(w, "\r\nContent-Type: application/json\r\nX-Request-Id: "...)
	w = append(w, id...)
	if accept != "" {
		w = append(w, "\r\nAccept: "...)
		w = append(w, accept...)
	}
	w = append(w, "\r\n\r\n"...)
	var err error
	if len(w)+len(body) <= 64<<10 {
		w = append(w, body...)
		_, err = uc.nc.Write(w)
	} else { // a large body is not copied: one writev
		bufs := net.Buffers{w, body}
		_, err = bufs.WriteTo(uc.nc)
	}
	if cap(w) <= 80<<10 {
		*hp = w[:0]
		headBufs.Put(hp)
	}
	if err != nil {
		return nil, err
	}
	if u.header > 0 {
		uc.nc.SetReadDeadline(time.Now().Add(u.header))
	}
	for {
		resp, err := http.ReadResponse(uc.br, upPost)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && u.header > 0 && ctx.Err() == nil {
				return nil, &net.OpError{Op: "read", Net: "tcp", Err: timeoutError("timeout awaiting response headers")}
			}
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // 1xx: the answer follows
		}
		if u.header > 0 {
			uc.nc.SetReadDeadline(time.Time{})
			if ctx.Err() != nil { // its watch may have set a deadline that this one undid
				return nil, context.Cause(ctx)
			}
		}
		return resp, nil
	}
}

// timeoutError is a net.Error that timed out.
type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

// upBody is an answer's body: read to its end, it puts the connection back in the pool;
// closed before, it drops it (nothing is drained: a stream may never end).
type upBody struct {
	body  io.ReadCloser
	u     *upstream
	uc    *upConn
	ctx   context.Context
	stop  func() bool // unregisters the context's watch
	close bool        // the server said the connection ends with this answer
	done  atomic.Bool
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.release(true)
	case err != nil && b.ctx.Err() != nil:
		err = context.Cause(b.ctx)
	}
	return n, err
}

func (b *upBody) Close() error {
	b.release(false)
	return nil
}

// release gives up the connection: back to the pool when reuse and nothing stands against
// it, else closed.
func (b *upBody) release(reuse bool) {
	if b.done.Swap(true) {
		return
	}
	if b.stop() && reuse && !b.close && b.uc.br.Buffered() == 0 {
		b.uc.reused = true
		b.u.put(b.uc)
		return
	}
	b.uc.nc.Close()
}

// get takes the most recently used idle connection to addr, or nil.
func (u *upstream) get(addr string) *upConn {
	var stale []*upConn
	defer func() {
		for _, uc := range stale {
			uc.nc.Close()
		}
	}()
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.idle[addr]
	for len(l) > 0 {
		uc := l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
		u.idle[addr] = l
		if u.idleTimeout > 0 && time.Since(uc.idleAt) >= u.idleTimeout {
			stale = append(stale, uc)
			continue
		}
		return uc
	}
	return nil
}

// put pools an idle connection, unless addr has its fill of them.
func (u *upstream) put(uc *upConn) {
	uc.idleAt = time.Now()
	u.mu.Lock()
	l := u.idle[uc.addr]
	if len(l) >= u.maxIdle {
		u.mu.Unlock()
		uc.nc.Close()
		return
	}
	u.idle[uc.addr] = append(l, uc)
	arm := !u.sweeping && u.idleTimeout > 0
	u.sweeping = u.sweeping || arm
	u.mu.Unlock()
	if arm {
		time.AfterFunc(u.idleTimeout, u.sweep)
	}
}

// sweep closes connections idle for the idle timeout, and comes back while some are left.
func (u *upstream) sweep() {
	now := time.Now()
	var old []*upConn
	u.mu.Lock()
	for addr, l := range u.idle {
		keep := l[:0]
		for _, uc := range l {
			if now.Sub(uc.idleAt) >= u.idleTimeout {
				old = append(old, uc)
			} else {
				keep = append(keep, uc)
			}
		}
		clear(l[len(keep):])
		if len(keep) == 0 {
			delete(u.idle, addr)
		} else {
			u.idle[addr] = keep
		}
	}
	again := len(u.idle) > 0
	u.sweeping = again
	u.mu.Unlock()
	for _, uc := range old {
		uc.nc.Close()
	}
	if again {
		time.AfterFunc(u.idleTimeout/2, u.sweep)
	}
}

// closeIdle closes every idle connection.
func (u *upstream) closeIdle() {
	u.mu.Lock()
	idle := u.idle
	u.idle = map[string][]*upConn{}
	u.mu.Unlock()
	for _, l := range idle {
		for _, uc := range l {
			uc.nc.Close()
		}
	}
}

// send POSTs body (JSON) to an engine at base (url is base+path) with the request id and
// Accept: on the handler's goroutine (upstream) when base is plain http, else through the
// gateway's http.Client.
func (s *Server) send(ctx context.Context, url, base, path string, body []byte, id, accept string) (*http.Response, error) {
	up := upstreamFor(s.client)
	if b := up.base(base); b != nil {
		return up.post(ctx, b, path, body, id, accept)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", id)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return s.client.Do(req)
}
