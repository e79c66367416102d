package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownGrace is how long requests in flight may run once Serve's context ends.
const shutdownGrace = 10 * time.Second

// Serve serves Handler on ln until ctx ends, then stops taking requests and lets those in
// flight finish, for 10 s at most; it closes ln. HTTP/1.1 is served by the gateway's own
// server (net/http's with Options.StdlibHTTP), and a connection that opens with the
// HTTP/2 preface (h2c with prior knowledge) by net/http's. A request's context carries
// ctx's values but ends only with the request (or the grace period), not with ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	h := s.Handler()
	std := s.stdServer(h, base)
	var lean *h1Server
	if !s.opts.StdlibHTTP {
		lean = &h1Server{handler: h, log: s.log, base: base, readHeader: defaultReadHeaderTimeout, idle: defaultIdleTimeout,
			maxHeader: http.DefaultMaxHeaderBytes, watchEvery: defaultWatchEvery, h2: newH2Handoff(std, ln.Addr())}
	}
	errc := make(chan error, 1)
	go func() {
		if lean != nil {
			errc <- lean.serve(ln)
			return
		}
		errc <- std.Serve(ln)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	sctx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer stop()
	ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = std.Shutdown(sctx) // also closes the h2c listener
	}()
	if lean != nil {
		lean.h2.Close()
		lean.shutdown()
		idle := make(chan struct{})
		go func() { lean.wait(); close(idle) }()
		select {
		case <-idle:
		case <-sctx.Done():
			cancelBase()
			lean.closeAll()
			select {
			case <-idle:
			case <-time.After(time.Second): // a handler that ignores its context is left, as net/http's Close leaves it
			}
		}
	}
	<-done
	if sctx.Err() != nil {
		cancelBase()
		_ = std.Close()
	}
	return err
}

// stdServer is net/http's server for the gateway: all of HTTP/1.1 and h2c with
// StdlibHTTP, else the h2c connections the gateway's own server hands it.
func (s *Server) stdServer(h http.Handler, base context.Context) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, ReadHeaderTimeout: defaultReadHeaderTimeout, IdleTimeout: defaultIdleTimeout, Protocols: &p,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn), BaseContext: func(net.Listener) context.Context { return base }}
}
