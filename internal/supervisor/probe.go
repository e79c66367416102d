package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// probeKind names a probe.
type probeKind int

const (
	startupProbe probeKind = iota
	readinessProbe
	livenessProbe
)

func (k probeKind) String() string {
	return [...]string{"startup", "readiness", "liveness"}[k]
}

// probeResult is one attempt of a probe, reported to the run loop.
type probeResult struct {
	attempt int // which process it probed (attempt.n)
	kind    probeKind
	err     error // nil: success
}

// newProbeClient returns the client of an instance's probes. It keeps no
// idle connections (so no goroutines outlive a probe), follows no redirects
// (a 3xx is a success, as in Kubernetes) and uses no proxy.
func newProbeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:       (&net.Dialer{}).DialContext,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func probeURL(port int, p *Probe) string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + p.Path
}

// probeOnce runs one attempt of a probe.
func probeOnce(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "citadel-probe/1")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: HTTP %s", url, resp.Status)
	}
	return nil
}

// runProbe probes url after delay, then every p.Period, and sends each
// result to out, until ctx ends.
func runProbe(ctx context.Context, client *http.Client, url string, p *Probe, delay time.Duration, attempt int, kind probeKind, out chan<- probeResult) {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := probeOnce(ctx, client, url, p.Timeout)
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- probeResult{attempt: attempt, kind: kind, err: err}:
		case <-ctx.Done():
			return
		}
		t.Reset(p.Period)
	}
}
