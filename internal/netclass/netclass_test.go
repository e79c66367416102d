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
	"os"
	"strings"
	"syscall"
	"testing"
)

// timeoutError is a net.Error that says it timed out, like the transport's header and dial timeouts.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// deadlineLike claims to be context.DeadlineExceeded through an Is method without being it, as net's
// timeout errors do.
type deadlineLike struct{}

func (deadlineLike) Error() string        { return "deadline-like" }
func (deadlineLike) Is(target error) bool { return target == context.DeadlineExceeded }

func TestTransient(t *testing.T) {
	t.Parallel()
	urlErr := func(inner error) error { return &url.Error{Op: "Get", URL: "https://h/x", Err: inner} }
	opErr := func(op string, inner error) error { return &net.OpError{Op: op, Net: "tcp", Err: inner} }
	tests := []struct {
		name  string
		err   error
		retry bool
		ok    bool
	}{
		{"nil", nil, false, false},
		{"unknown", errors.New("something else"), false, false},
		{"plain EOF outside a transport error", io.EOF, false, false},
		{"context cancelled", urlErr(context.Canceled), false, true},
		{"context deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), false, true},
		{"cancelled wrapping a reset", errors.Join(context.Canceled, syscall.ECONNRESET), false, true},
		{"timeout that claims to be a deadline", urlErr(timeoutError{}), true, true},
		{"connection refused", urlErr(opErr("dial", os.NewSyscallError("connect", syscall.ECONNREFUSED))), true, true},
		{"connection reset", urlErr(opErr("read", os.NewSyscallError("read", syscall.ECONNRESET))), true, true},
		{"connection aborted", syscall.ECONNABORTED, true, true},
		{"broken pipe", fmt.Errorf("writing: %w", syscall.EPIPE), true, true},
		{"ETIMEDOUT", syscall.ETIMEDOUT, true, true},
		{"host unreachable", syscall.EHOSTUNREACH, true, true},
		{"network unreachable", syscall.ENETUNREACH, true, true},
		{"network down", syscall.ENETDOWN, true, true},
		{"wrapped unexpected EOF", fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), true, true},
		{"EOF before the response", urlErr(io.EOF), true, true},
		{"network timeout", urlErr(opErr("dial", timeoutError{})), true, true},
		{"other net.OpError", opErr("read", errors.New("weird")), true, true},
		{"DNS temporary failure", &net.DNSError{Err: "server misbehaving", Name: "hub", IsTemporary: true}, true, true},
		{"DNS no such host", urlErr(opErr("dial", &net.DNSError{Err: "no such host", Name: "h.invalid", IsNotFound: true})), false, true},
		{"x509 hostname", urlErr(x509.HostnameError{Host: "h", Certificate: &x509.Certificate{}}), false, true},
		{"x509 unknown authority", urlErr(x509.UnknownAuthorityError{}), false, true},
		{"x509 invalid", urlErr(x509.CertificateInvalidError{Reason: x509.Expired}), false, true},
		{"TLS verification", urlErr(&tls.CertificateVerificationError{Err: errors.New("bad")}), false, true},
	}
	for _, tt := range tests {
		if retry, ok := Transient(tt.err); retry != tt.retry || ok != tt.ok {
			t.Errorf("%s: Transient(%v) = %t, %t; want %t, %t", tt.name, tt.err, retry, ok, tt.retry, tt.ok)
		}
	}
}

func TestChainHas(t *testing.T) {
	t.Parallel()
	target := errors.New("target")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"itself", target, true},
		{"wrapped", fmt.Errorf("a: %w", fmt.Errorf("b: %w", target)), true},
		{"joined", errors.Join(errors.New("x"), fmt.Errorf("y: %w", target)), true},
		{"several %w", fmt.Errorf("%w and %w", errors.New("x"), target), true},
		{"absent", fmt.Errorf("a: %w", errors.New("target")), false},
		{"only formatted", fmt.Errorf("a: %v", target), false},
	}
	for _, tt := range tests {
		if got := ChainHas(tt.err, target); got != tt.want {
			t.Errorf("%s: ChainHas(%v) = %t, want %t", tt.name, tt.err, got, tt.want)
		}
	}
	if err := fmt.Errorf("a: %w", deadlineLike{}); !errors.Is(err, context.DeadlineExceeded) || ChainHas(err, context.DeadlineExceeded) {
		t.Errorf("ChainHas follows an Is method: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://cdn/x?X-Amz-Signature=SECRET":      "https://cdn/x?…",
		"https://user:pass@hub/x":                   "https://hub/x",
		"https://hub/x#frag":                        "https://hub/x",
		"https://hub/a%2Fb":                         "https://hub/a%2Fb",
		"https://hub/x":                             "https://hub/x",
		"http://[::1:bad/x?sig=SECRET":              "http://[::1:bad/x",
		"%zz#SECRET":                                "%zz",
		"https://u:p@h:8080/p?q=1&r=2#f":            "https://h:8080/p?…",
		"relative/path?token=SECRET":                "relative/path?…",
		"":                                          "",
		"https://hub/x?":                            "https://hub/x?", // an empty query carries nothing
		"https://hub/x?" + strings.Repeat("s", 100): "https://hub/x?…",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	advice := Advice{Unresolved: "check the address and this host's DNS", Refused: "check the address and that it is up"}
	refused := &url.Error{Op: "Get", URL: "https://u:p@h/x?sig=SECRET", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	got := Explain(refused, advice)
	if !errors.Is(got, syscall.ECONNREFUSED) || !errors.Is(got, refused) {
		t.Errorf("Explain lost the chain: %v", got)
	}
	if s := got.Error(); strings.Contains(s, "SECRET") || strings.Contains(s, "u:p") ||
		!strings.HasSuffix(s, ": nothing accepts connections there; check the address and that it is up") {
		t.Errorf("connection refused explained as %q", s)
	}

	unresolved := &url.Error{Op: "Get", URL: "https://h.invalid/x", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "h.invalid", IsNotFound: true}}}
	want := `Get "https://h.invalid/x": dial tcp: lookup h.invalid: no such host: host "h.invalid" does not resolve; ` +
		`this is a configuration error and is not retried: check the address and this host's DNS`
	if s := Explain(unresolved, advice).Error(); s != want {
		t.Errorf("no such host explained as\n%q, want\n%q", s, want)
	}
	if retry, ok := Transient(Explain(unresolved, advice)); retry || !ok {
		t.Errorf("an explained unresolved host is Transient = %t, %t; want false, true", retry, ok)
	}

	reset := &url.Error{Op: "Get", URL: "https://h/x?sig=SECRET", Err: syscall.ECONNRESET}
	if got := Explain(reset, advice); got != reset || strings.Contains(got.Error(), "SECRET") {
		t.Errorf("Explain(reset) = %v, want the same error, redacted", got)
	}
	other := errors.New("other")
	if got := Explain(other, advice); got != other {
		t.Errorf("Explain(other) = %v, want it unchanged", got)
	}
}

func TestSaid(t *testing.T) {
	t.Parallel()
	tests := []struct{ who, msg, want string }{
		{"server", "", ""},
		{"server", "busy", ` (server said "busy")`},
		{"registry", "line1\nline2\x00", ` (registry said "line1\nline2\x00")`},
		{"server", strings.Repeat("x", 300), ` (server said "` + strings.Repeat("x", 300) + `")`},
		{"server", strings.Repeat("x", 301), ` (server said "` + strings.Repeat("x", 300) + `…")`},
		{"server", strings.Repeat("x", 299) + "é", ` (server said "` + strings.Repeat("x", 299) + `…")`},
	}
	for _, tt := range tests {
		if got := Said(tt.who, tt.msg); got != tt.want {
			t.Errorf("Said(%q, %q) = %q, want %q", tt.who, tt.msg, got, tt.want)
		}
	}
}
