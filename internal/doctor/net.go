package doctor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"citadel.dev/citadel/internal/netclass"
)

// Hub is what the hub checks read: the settings of internal/hub (HF_ENDPOINT, HF_TOKEN …).
type Hub struct {
	Endpoint    string // without trailing /
	Token       string // never printed
	TokenSource string // HF_TOKEN, or the token file
	Offline     bool   // HF_HUB_OFFLINE
}

// unreachable says why a request got no answer, in a few words: the host does not resolve,
// nothing listens, the timeout, a certificate; else the error with its URL redacted
// (netclass.RedactURL: no credentials in a query).
func unreachable(ctx context.Context, timeout time.Duration, err error) string {
	var (
		dns *net.DNSError
		ne  net.Error
		ue  *url.Error
		cve *tls.CertificateVerificationError
	)
	switch {
	case ctx.Err() != nil || netclass.ChainHas(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.As(err, &dns) && dns.IsNotFound:
		return fmt.Sprintf("host %q does not resolve (no DNS here, no network, or a wrong address)", dns.Name)
	case errors.As(err, &dns):
		return fmt.Sprintf("looking up %q failed: %v", dns.Name, dns.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens there"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "network unreachable: " + err.Error()
	case errors.As(err, &cve):
		return "its TLS certificate is not trusted: " + cve.Err.Error()
	case errors.As(err, &ue):
		ue.URL = netclass.RedactURL(ue.URL)
		return ue.Error()
	}
	return err.Error()
}

// HubChecks checks that the hub answers (a HEAD of HF_ENDPOINT) and, when a token is set,
// that the hub accepts it (/api/whoami-v2). An unreachable hub is a warning: models
// already cached, file:// models and a mirror still work. A token the hub rejects fails.
func HubChecks(ctx context.Context, hc *http.Client, h Hub, timeout time.Duration) []Check {
	reach := Check{Name: "hub", Checked: h.Endpoint + " (HF_ENDPOINT)"}
	tok := Check{Name: "hub/token", Checked: "token"}
	if h.TokenSource != "" {
		tok.Checked = "token from " + h.TokenSource
	}
	if h.Offline {
		reach.Status, reach.Finding = Warn, "not checked: HF_HUB_OFFLINE is set, so nothing downloads from the hub"
		reach.Fix = "unset HF_HUB_OFFLINE to download models"
		tok.Status, tok.Finding = OK, "not checked (HF_HUB_OFFLINE)"
		return []Check{reach, tok}
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(rctx, http.MethodHead, h.Endpoint+"/", nil)
	if err == nil && (req.URL.Scheme != "http" && req.URL.Scheme != "https" || req.URL.Host == "") {
		err = errors.New("not an http(s) URL with a host")
	}
	if err != nil {
		reach.Status, reach.Finding, reach.Fix = Fail, "HF_ENDPOINT is not a URL: "+err.Error(), "set HF_ENDPOINT to a URL such as https://huggingface.co"
		tok.Status, tok.Finding = Warn, "not checked: the hub is not reachable"
		return []Check{reach, tok}
	}
	resp, err := hc.Do(req)
	if err != nil {
		reach.Status = Warn
		reach.Finding = "unreachable: " + unreachable(rctx, timeout, err)
		reach.Fix = "models cannot download from it: check the network (proxy: HTTPS_PROXY), or point HF_ENDPOINT at a mirror (citadel mirror serve); models already in the cache and file:// models still work"
		tok.Status, tok.Finding = Warn, "not checked: the hub is not reachable"
		if h.Token == "" {
			tok.Status, tok.Finding = OK, "no token set (HF_TOKEN): public models only"
		}
		tok.Fix = ""
		return []Check{reach, tok}
	}
	resp.Body.Close()
	took := time.Since(start).Round(time.Millisecond)
	if resp.StatusCode >= 500 {
		reach.Status = Warn
		reach.Finding = fmt.Sprintf("answers HTTP %d in %s: the hub has trouble", resp.StatusCode, took)
		reach.Fix = "try again later, or point HF_ENDPOINT at a mirror"
	} else {
		reach.Status = OK
		reach.Finding = fmt.Sprintf("reachable (HTTP %d in %s)", resp.StatusCode, took)
	}
	if h.Token == "" {
		tok.Status, tok.Finding = OK, "no token set (HF_TOKEN): public models only; gated and private ones need one"
		return []Check{reach, tok}
	}
	return []Check{reach, whoami(ctx, hc, h, timeout, tok)}
}

// whoami asks the hub whose token it is.
func whoami(ctx context.Context, hc *http.Client, h Hub, timeout time.Duration, c Check) Check {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, h.Endpoint+"/api/whoami-v2", nil)
	req.Header.Set("Authorization", "Bearer "+h.Token)
	resp, err := hc.Do(req)
	if err != nil {
		c.Status, c.Finding = Warn, "not checked: "+unreachable(rctx, timeout, err)
		return c
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		var who struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(body, &who)
		c.Status, c.Finding = OK, "valid"
		if who.Name != "" {
			c.Finding = "valid, for user " + who.Name
		}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		c.Status = Fail
		c.Finding = fmt.Sprintf("rejected by the hub (HTTP %d)%s", resp.StatusCode, netclass.Said("the hub", hubError(body)))
		c.Fix = "create a new token at " + h.Endpoint + "/settings/tokens and set HF_TOKEN to it, or unset it for public models"
	case resp.StatusCode == http.StatusNotFound:
		c.Status = Warn
		c.Finding = "not checked: this endpoint has no /api/whoami-v2 (a mirror?)"
	default:
		c.Status = Warn
		c.Finding = fmt.Sprintf("not checked: /api/whoami-v2 answered HTTP %d", resp.StatusCode)
		c.Fix = "try again later"
	}
	return c
}

// hubError is the "error" of a hub's JSON answer, else the body.
func hubError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

// Listen opens a listener, as net.Listen; a port check closes it at once.
type Listen func(network, addr string) (net.Listener, error)

// Port checks that citadel serve can listen on addr (flag names the setting: --admin-addr).
// When something holds the port, it asks whether that is a citadel serve (its admin API or
// its gateway, by kind): then the check is ok, since serve already runs; anything else fails.
func Port(ctx context.Context, listen Listen, hc *http.Client, name, flag, addr string, timeout time.Duration) Check {
	c := Check{Name: "port/" + name, Checked: fmt.Sprintf("%s %s (%s)", name, addr, flag)}
	ln, err := listen("tcp", addr)
	if err == nil {
		ln.Close()
		c.Status, c.Finding = OK, "free"
		return c
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		c.Status, c.Finding = Fail, "cannot listen: "+err.Error()
		c.Fix = "pick another address with " + flag
		return c
	}
	if who := identify(ctx, hc, addr, timeout); who != "" {
		c.Status, c.Finding = OK, "in use by "+who+": citadel serve already runs there"
		return c
	}
	c.Status = Fail
	c.Finding = "in use by another program (not a citadel serve)"
	c.Fix = fmt.Sprintf("stop what listens there (ss -ltnp 'sport = :%s' names it), or start citadel serve with another %s", portOf(addr), flag)
	return c
}

// identify says what Citadel server answers on addr: "citadel serve's admin API (version v)",
// "citadel serve's gateway (version v)", or "" for anything else.
func identify(ctx context.Context, hc *http.Client, addr string, timeout time.Duration) string {
	host := dialAddr(addr)
	get := func(path string) (int, []byte) {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+host+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, b
	}
	// The admin API: /version is its build ({"version","goVersion"}), or its 401 when a
	// token is required ({"code","reason":"Unauthorized"}).
	if code, b := get("/version"); code != 0 {
		var v struct {
			Version, GoVersion, Reason string
			Code                       int
		}
		if json.Unmarshal(b, &v) == nil {
			switch {
			case code == http.StatusOK && v.GoVersion != "":
				return "citadel serve's admin API (version " + v.Version + ")"
			case code == http.StatusUnauthorized && v.Code == code && v.Reason != "":
				return "citadel serve's admin API (it needs the admin token)"
			}
		}
	}
	// The gateway: /healthz answers "ok" and /api/version the Ollama-style {"version"};
	// Ollama itself has no /healthz.
	if code, b := get("/healthz"); code == http.StatusOK && strings.TrimSpace(string(b)) == "ok" {
		if code, b := get("/api/version"); code == http.StatusOK {
			var v struct{ Version string }
			if json.Unmarshal(b, &v) == nil && v.Version != "" {
				return "citadel serve's gateway (version " + v.Version + ")"
			}
		}
	}
	return ""
}

// dialAddr is addr with a host to dial: ":8080" and "0.0.0.0:8080" become 127.0.0.1:8080.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}
