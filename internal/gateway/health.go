package gateway

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	engines "citadel.dev/citadel/internal/engine" // "engine" is a test type of this package
)

// Health is the active health checker: every Interval it sends GET to each replica's health
// path (probeTarget) and records the answer as the replica's Healthy. A failed probe also
// counts as a passive failure (see End; a refused connection ejects at once). The first good
// probe after bad ones ends the outage: its failures and ejection are forgotten, so that a
// replica that comes back takes traffic at once.
type Health struct {
	Interval time.Duration // between probes of a replica; default 2 s
	Timeout  time.Duration // of one probe; default 1 s
	Client   *http.Client  // default http.DefaultClient
	Logger   *slog.Logger  // transitions (healthy, unhealthy); default none
}

// Run probes the replicas returns (asked afresh each round, so that the table may change)
// until ctx ends, and returns once its probes have.
func (h *Health) Run(ctx context.Context, replicas func() []*Replica) {
	client := cmp.Or(h.Client, http.DefaultClient)
	timeout := cmp.Or(h.Timeout, time.Second)
	log := cmp.Or(h.Logger, slog.New(slog.DiscardHandler))
	poll(ctx, cmp.Or(h.Interval, 2*time.Second), replicas, func(*Replica) bool { return true }, func(r *Replica) {
		probe(ctx, client, timeout, log, r)
	})
}

// probeTarget is where a replica says it is up, and whether any answer below 5xx counts:
//   - an Ollama API: / ("Ollama is running"), which must answer 2xx;
//   - a known engine: its adapter's health path (engine.Adapter.HealthPath: /health for
//     vLLM, SGLang and llama.cpp, which answers 503 while it loads), which must answer 2xx;
//   - a URL whose engine is unknown: /v1/models, where anything but 5xx will do, since a
//     hosted API may want a key the probe does not send (401) and still be up.
func probeTarget(r *Replica) (path string, lenient bool) {
	if r.API == APIOllama {
		return "/", false
	}
	if a, ok := engines.Lookup(r.Engine); ok {
		return a.HealthPath(), false
	}
	return "/v1/models", true
}

// probe checks r once at its probeTarget.
func probe(ctx context.Context, client *http.Client, timeout time.Duration, log *slog.Logger, r *Replica) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path, lenient := probeTarget(r)
	var (
		problem string
		connect bool
	)
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, r.BaseURL+path, nil)
	if err != nil {
		problem = fmt.Sprintf("health check: %v", err)
	} else {
		resp, err := client.Do(req)
		switch {
		case ctx.Err() != nil:
			return // the checker is stopping: the replica did nothing wrong
		case err != nil:
			problem, connect = fmt.Sprintf("health check: %v", err), connectError(err)
		default:
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
			ok := resp.StatusCode/100 == 2 || lenient && resp.StatusCode < 500
			if !ok {
				problem = fmt.Sprintf("health check: GET %s answered %s", path, resp.Status)
			}
		}
	}
	s := &r.State
	s.mu.Lock()
	changed := s.setHealthy(problem == "")
	if problem != "" {
		s.fail(problem, connect, time.Now())
	}
	s.mu.Unlock()
	switch {
	case changed && problem == "":
		log.Info("replica healthy", "replica", r.ID, "service", r.Service)
	case changed:
		log.Warn("replica unhealthy", "replica", r.ID, "service", r.Service, "err", problem)
	}
}

// poll calls check on each replica that wants it, now and every interval, until ctx ends; a
// replica whose previous check is still running is skipped (a slow engine gets one check at
// a time). It returns once every check has.
func poll(ctx context.Context, interval time.Duration, replicas func() []*Replica, wants func(*Replica) bool, check func(*Replica)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	busy := map[*Replica]bool{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		for _, r := range replicas() {
			if !wants(r) {
				continue
			}
			mu.Lock()
			skip := busy[r]
			busy[r] = true
			mu.Unlock()
			if skip {
				continue
			}
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(busy, r)
					mu.Unlock()
				}()
				check(r)
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
