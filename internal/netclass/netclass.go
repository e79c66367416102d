// Package netclass classifies the network and transport errors an HTTP client meets, for retry decisions,
// keeps what such errors show safe to print (URLs without their credentials, server text bounded and
// quoted), and holds the one retry policy the hub and registry clients share (Retry). It knows nothing of any protocol: each client keeps its own typed errors, HTTP status rules and
// wording, and asks netclass only about what lies below HTTP.
package netclass

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// Transient classifies err by the network-level failure in its chain. ok is false when it finds none it
// knows (an HTTP status, a client's typed error, anything else): those are the caller's to decide, and a
// client classifies its own errors first and asks Transient about the rest.
//
// retry is false, with ok, for context cancellation or deadline (context.Canceled or
// context.DeadlineExceeded itself in the chain: the caller gave up), a host that does not resolve ("no such
// host": a configuration error) and TLS certificate failures.
//
// retry is true, with ok, for temporary DNS failures, connection refused, reset or aborted, broken pipe,
// unreachable or down networks, network timeouts, a connection closed during a response (unexpected EOF),
// an EOF inside a *url.Error (closed before answering) and any other *net.OpError.
func Transient(err error) (retry, ok bool) {
	if err == nil {
		return false, false
	}
	if ChainHas(err, context.Canceled) || ChainHas(err, context.DeadlineExceeded) {
		return false, true
	}
	var (
		dns *net.DNSError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
		ne  net.Error
		ue  *url.Error
		oe  *net.OpError
	)
	switch {
	case errors.As(err, &dns):
		return !dns.IsNotFound, true
	case errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci), errors.As(err, &cve):
		return false, true
	case errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ENETDOWN):
		return true, true
	case errors.As(err, &ne) && ne.Timeout():
		return true, true
	case errors.As(err, &ue) && errors.Is(err, io.EOF):
		return true, true // the server closed the connection before answering
	case errors.As(err, &oe):
		return true, true
	}
	return false, false
}

// AwaitingHeaders reports whether err is a transport's response-header timeout: the server
// accepted the request and did not answer in time (a timeout that is neither the dial's nor
// the caller's context deadline).
func AwaitingHeaders(err error) bool {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || ChainHas(err, context.DeadlineExceeded) {
		return false
	}
	var oe *net.OpError
	return !errors.As(err, &oe) || oe.Op != "dial"
}

// ChainHas reports whether target itself (not something that merely claims to be it via an Is method, as
// net's timeout errors claim to be context.DeadlineExceeded) is in err's chain.
func ChainHas(err, target error) bool {
	for err != nil {
		if err == target {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if ChainHas(e, target) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// Advice is what a client tells its user to check after the two transport failures that are a mistake in
// its configuration rather than bad luck; it names the client's own settings.
type Advice struct {
	Unresolved string // the host does not resolve, e.g. "check the registry address and this host's DNS"
	Refused    string // nothing accepts connections, e.g. "check the registry address and that it is up"
}

// Explain redacts the URL of the *url.Error in err's chain (in place) and, when the host does not resolve
// or nothing accepts connections there, says so and adds the advice. The chain is kept, so [Transient]
// still sees the cause.
func Explain(err error, a Advice) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		return &explained{err, fmt.Sprintf("%v: host %q does not resolve; this is a configuration error and is not retried: %s", err, dns.Name, a.Unresolved)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &explained{err, fmt.Sprintf("%v: nothing accepts connections there; %s", err, a.Refused)}
	}
	return err
}

// explained is an error Explain has already given its meaning and advice.
type explained struct {
	err error
	msg string
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// Explained reports whether Explain has already said what err means and what to do, so that a
// caller does not say it again.
func Explained(err error) bool {
	var x *explained
	return errors.As(err, &x)
}

// RedactURL drops the query and fragment (signed CDN URLs carry credentials there) and any user info. A
// query is replaced by "…" so that the reader sees there was one; a string that does not parse is cut at
// its first '?' or '#'.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			return s[:i]
		}
		return s
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// Said formats a server's message for inclusion in an error, as " (who said "…")": quoted, control
// characters escaped, cut to 300 bytes. It is "" for an empty message.
func Said(who, msg string) string {
	if msg == "" {
		return ""
	}
	if len(msg) > 300 {
		msg = strings.ToValidUTF8(msg[:300], "") + "…"
	}
	return fmt.Sprintf(" (%s said %q)", who, msg)
}
