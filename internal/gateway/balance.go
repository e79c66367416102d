package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Balancing and passive health.
//
// Pick chooses one replica of a target per attempt; Begin and End bracket the attempt and
// keep the books passive health needs. A replica is usable while it is Healthy (its source or
// the last active probe said so) and not ejected. Failures eject it: a refused connection at
// once, anything else (timeouts, resets, 5xx) after ejectAfter in a row, for a cooldown that
// doubles with each consecutive ejection. Once the cooldown has run out the replica takes
// traffic again; a success resets the count, one more failure ejects it for longer. This
// applies to single-replica targets too: a dead one stops costing every request a timeout,
// and the route's fallback takes over.
const (
	// staleAfter is how old scraped load may be before load-aware balancing ignores it.
	staleAfter = time.Second
	// ejectAfter consecutive failures eject a replica.
	ejectAfter = 3
	// minCooldown is the first ejection's length; each consecutive one doubles it, up to
	// maxCooldown, which also bounds what an upstream's Retry-After can ask for.
	minCooldown = 5 * time.Second
	maxCooldown = 60 * time.Second
)

// Load-aware cost weights, in units of one request: a waiting request weighs queueWeight
// (it tells the engine is saturated, and a new request queues behind it), a full KV cache
// kvWeight (the next long prompt will wait or preempt). Between them they play the part of
// GIE's queue and KV scorers (weights 2 and 2).
const (
	queueWeight = 3
	kvWeight    = 4
)

// Pick chooses a usable replica of t for a request, or returns nil when there is none. It
// skips the replicas in exclude (those already tried), those not Healthy, and those ejected
// at now. Policies (t.Policy; "" is least-outstanding):
//
//   - round-robin: the next replica after t's cursor.
//   - least-outstanding: the fewest requests in flight from this gateway; ties go round-robin.
//   - load-aware: the lowest cost InFlight + Running + 3·Waiting + 4·KVUsage from scraped
//     metrics, when every candidate's are fresh (at most a second old); otherwise, or for
//     engines without metrics, least-outstanding. InFlight moves the instant a request is
//     sent, so the cost reacts between scrapes; the engine's counts add what this gateway
//     does not see (other clients, requests it still runs after we gave up).
//   - prefix-affinity: requests with the same ri.PrefixHash go to the same replica (the
//     engine's prefix cache holds their common prompt), by rendezvous hashing, so losing one
//     replica moves only its own keys. Without a hash, load-aware.
//   - session-affinity: the same, keyed on ri.Session.
//
// Affinity yields to load: when the chosen replica has more than 2×min+4 requests in flight,
// min being the least loaded candidate's, the request goes load-aware instead.
//
// An Ollama target (API ollama) with no policy is sticky per model, hashed on the model
// name, so that a model stays loaded on one server instead of being loaded by each in turn.
// The hash covers the replicas' IDs, so targets sharing servers agree on where a model goes.
//
// Pick does not allocate; it is safe for concurrent use.
func Pick(t *Target, ri RequestInfo, exclude map[*Replica]bool, now time.Time) *Replica {
	switch t.Policy {
	case v1.BalanceRoundRobin:
		return pickRoundRobin(t, exclude, now)
	case v1.BalanceLoadAware:
		return pickLoadAware(t, exclude, now)
	case v1.BalancePrefixAffinity:
		if ri.PrefixHash != 0 {
			return pickAffinity(t, ri.PrefixHash, exclude, now)
		}
		return pickLoadAware(t, exclude, now)
	case v1.BalanceSessionAffinity:
		if ri.Session != "" {
			return pickAffinity(t, hashString(ri.Session), exclude, now)
		}
		return pickLoadAware(t, exclude, now)
	case "":
		if t.API == APIOllama {
			model := t.Model
			if model == "" {
				model = ri.Model
			}
			return pickAffinity(t, hashString(model), exclude, now)
		}
	}
	return pickLeastOutstanding(t, exclude, now)
}

// load is what Pick reads of one replica, under its lock once.
type load struct {
	usable                 bool
	fresh                  bool
	inFlight               int64
	running, waiting, kvUs float64
}

// load reads r at now; metrics scraped before cutoff are stale.
func (r *Replica) load(now, cutoff time.Time) load {
	s := &r.State
	s.mu.Lock()
	l := load{
		usable:  s.Healthy && !now.Before(s.EjectedUntil),
		fresh:   !s.ScrapedAt.IsZero() && !s.ScrapedAt.Before(cutoff),
		running: s.Running, waiting: s.Waiting, kvUs: s.KVUsage,
	}
	s.mu.Unlock()
	l.inFlight = s.InFlight.Load()
	return l
}

// fresh reports whether load scraped at at is recent enough to balance on at now.
func fresh(at, now time.Time) bool {
	return !at.IsZero() && now.Sub(at) <= staleAfter
}

// cost is the load-aware cost of a replica with fresh metrics (finite, not negative: see
// readLoad); lower is better.
func (l *load) cost() float64 {
	return float64(l.inFlight) + l.running + queueWeight*l.waiting + kvWeight*l.kvUs
}

// rotation returns the cursor's next start: successive picks begin one replica further on,
// which makes round-robin of round-robin and fair tie-breaking of the others.
func rotation(t *Target) int {
	return int((t.rr.Add(1) - 1) % uint64(len(t.Replicas)))
}

func pickRoundRobin(t *Target, exclude map[*Replica]bool, now time.Time) *Replica {
	n := len(t.Replicas)
	if n == 0 {
		return nil
	}
	i := rotation(t)
	for range n {
		r := t.Replicas[i]
		if i++; i == n {
			i = 0
		}
		if !exclude[r] && r.Usable(now) {
			return r
		}
	}
	return nil
}

func pickLeastOutstanding(t *Target, exclude map[*Replica]bool, now time.Time) *Replica {
	n := len(t.Replicas)
	if n == 0 {
		return nil
	}
	i := rotation(t)
	var best *Replica
	var bestN int64
	for range n {
		r := t.Replicas[i]
		if i++; i == n {
			i = 0
		}
		if exclude[r] || !r.Usable(now) {
			continue
		}
		if f := r.State.InFlight.Load(); best == nil || f < bestN {
			best, bestN = r, f
		}
	}
	return best
}

func pickLoadAware(t *Target, exclude map[*Replica]bool, now time.Time) *Replica {
	n := len(t.Replicas)
	if n == 0 {
		return nil
	}
	i := rotation(t)
	cutoff := now.Add(-staleAfter)
	// One pass keeps both answers: the cheapest by cost (valid when every candidate is
	// fresh) and the least outstanding (otherwise).
	var byCost, byFlight *Replica
	var bestCost float64
	var bestFlight int64
	allFresh := true
	for range n {
		r := t.Replicas[i]
		if i++; i == n {
			i = 0
		}
		if exclude[r] {
			continue
		}
		l := r.load(now, cutoff)
		if !l.usable {
			continue
		}
		allFresh = allFresh && l.fresh
		if c := l.cost(); byCost == nil || c < bestCost {
			byCost, bestCost = r, c
		}
		if byFlight == nil || l.inFlight < bestFlight {
			byFlight, bestFlight = r, l.inFlight
		}
	}
	if allFresh {
		return byCost
	}
	return byFlight
}

// pickAffinity sends key to its rendezvous replica (the usable one whose hash with key is
// highest), unless that one is overloaded next to the least loaded; then load-aware.
func pickAffinity(t *Target, key uint64, exclude map[*Replica]bool, now time.Time) *Replica {
	var best *Replica
	var bestW uint64
	var bestFlight, minFlight int64
	for _, r := range t.Replicas {
		if exclude[r] || !r.Usable(now) {
			continue
		}
		f := r.State.InFlight.Load()
		if best == nil || f < minFlight {
			minFlight = f
		}
		if w := mix(key ^ hashString(r.ID)); best == nil || w > bestW {
			best, bestW, bestFlight = r, w, f
		}
	}
	if best == nil {
		return nil
	}
	if bestFlight > 2*minFlight+4 {
		return pickLoadAware(t, exclude, now)
	}
	return best
}

// pickTarget chooses the first target to try among d's targets: a weighted draw (PickTarget
// with r) names a weight, and among the targets of that weight that have a usable replica
// the least loaded takes the request, the drawn one on a tie. So targets of equal weight
// (the url targets of one model, as citadel gateway -f lists replicas) share traffic by
// load as a target's replicas do, and unequal weights (a canary) still split it by weight.
// A target's load is its least loaded usable replica's: the load-aware cost when every
// compared replica has fresh engine metrics, else the requests in flight. It returns nil
// when no target has a replica (the caller goes to the fallback).
func pickTarget(d *Destination, r uint64, now time.Time) *Target {
	first := PickTarget(d, r)
	if first == nil {
		return nil
	}
	best := first
	bestLoad, ok := targetLoad(first, now)
	for _, t := range d.Targets {
		if t == first || t.Weight != first.Weight {
			continue
		}
		l, usable := targetLoad(t, now)
		if usable && (!ok || l.lighter(bestLoad)) {
			best, bestLoad, ok = t, l, true
		}
	}
	return best
}

// targetLoad is the load of t's least loaded usable replica; false when none is usable.
func targetLoad(t *Target, now time.Time) (load, bool) {
	cutoff := now.Add(-staleAfter)
	var best load
	found := false
	for _, r := range t.Replicas {
		l := r.load(now, cutoff)
		if l.usable && (!found || l.lighter(best)) {
			best, found = l, true
		}
	}
	return best, found
}

// lighter compares two loads: by cost when both are fresh, else by requests in flight.
func (l *load) lighter(o load) bool {
	if l.fresh && o.fresh {
		return l.cost() < o.cost()
	}
	return l.inFlight < o.inFlight
}

// hashString is 64-bit FNV-1a: stable across processes and gateway replicas, so that every
// gateway sends a prefix, a session or a model to the same engine.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finaliser: it spreads the combined key and replica hash evenly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Begin counts an attempt in flight on r; call End when it is over.
func (r *Replica) Begin() { r.State.InFlight.Add(1) }

// End closes an attempt Begin opened and records its outcome for passive health. err is the
// upstream error (nil when a response came back), status the response's status (0 without
// one), retryAfter what the response's Retry-After header asked for (0 without one).
//
//   - A connection that could not be made (refused, unreachable, DNS, dial timeout) ejects
//     the replica at once.
//   - Other errors (timeouts, resets, a body cut short) and 5xx other than 501 count as
//     failures; ejectAfter in a row eject it. While it is ejected, further failures (requests
//     that were already in flight) count but do not eject it again.
//   - A 429 or 503 with Retry-After ejects it for that long (at most maxCooldown), whatever
//     the count: the engine said when to come back.
//   - A cancelled context (the client went away, or gave up) says nothing of the replica.
//   - Anything else, 4xx included, is a success: it resets the failure and ejection counts.
//
// Pass only upstream errors: a failure to write to the client is not the replica's.
func (r *Replica) End(err error, status int, retryAfter time.Duration, now time.Time) {
	r.State.InFlight.Add(-1)
	r.record(err, status, retryAfter, now)
}

func (r *Replica) record(err error, status int, retryAfter time.Duration, now time.Time) {
	if err != nil && errors.Is(err, context.Canceled) {
		return
	}
	s := &r.State
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case retryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable):
		d := min(retryAfter, maxCooldown)
		s.LastError = fmt.Sprintf("HTTP %d with Retry-After %s", status, d)
		if until := now.Add(d); until.After(s.EjectedUntil) {
			s.EjectedUntil = until
		}
	case err != nil:
		s.fail(err.Error(), connectError(err), now)
	case status >= 500 && status != http.StatusNotImplemented:
		s.fail("HTTP "+strconv.Itoa(status)+" "+http.StatusText(status), false, now)
	default:
		s.Failures, s.Ejections = 0, 0
	}
}

// fail counts a failure and ejects when due. The caller holds s.mu.
func (s *ReplicaState) fail(reason string, immediate bool, now time.Time) {
	s.Failures++
	s.LastError = reason
	if now.Before(s.EjectedUntil) {
		return // already out: one burst of failures is one ejection
	}
	if immediate || s.Failures >= ejectAfter {
		s.EjectedUntil = now.Add(cooldown(s.Ejections))
		s.Ejections++
	}
}

// cooldown is the length of the ejection that follows n consecutive ones.
func cooldown(n int) time.Duration {
	d := minCooldown
	for range n {
		if d *= 2; d >= maxCooldown {
			return maxCooldown
		}
	}
	return d
}

// connectError reports whether err means no connection could be made at all.
func connectError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// Usable reports whether r may take a request at now: Healthy and not ejected.
func (r *Replica) Usable(now time.Time) bool {
	s := &r.State
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Healthy && !now.Before(s.EjectedUntil)
}

// SetHealthy records r's readiness: from its source when the table is built (a service's
// controller said Ready; a static URL is assumed healthy until a probe fails), then from
// the active health checker. A replica that comes back (false to true) starts afresh: the
// failures and ejections of its outage are forgotten.
func (r *Replica) SetHealthy(ok bool) {
	s := &r.State
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setHealthy(ok)
}

// setHealthy is SetHealthy with s.mu held; it reports whether the state changed.
func (s *ReplicaState) setHealthy(ok bool) bool {
	if s.Healthy == ok {
		return false
	}
	s.Healthy = ok
	if ok {
		s.Failures, s.Ejections, s.EjectedUntil = 0, 0, time.Time{}
	}
	return true
}

// ReplicaSnapshot is a replica's state at one moment, for status pages and metrics.
type ReplicaSnapshot struct {
	ID       string  `json:"id"`
	InFlight int64   `json:"inFlight"`
	Running  float64 `json:"running"`
	Waiting  float64 `json:"waiting"`
	KVUsage  float64 `json:"kvUsage"`
	// Fresh says Running, Waiting and KVUsage were scraped within the last second.
	Fresh     bool   `json:"fresh"`
	Healthy   bool   `json:"healthy"`
	Ejected   bool   `json:"ejected"`
	Failures  int    `json:"failures,omitempty"` // consecutive
	LastError string `json:"lastError,omitempty"`
}

// Snapshot returns r's state now.
func (r *Replica) Snapshot() ReplicaSnapshot { return r.snapshot(time.Now()) }

func (r *Replica) snapshot(now time.Time) ReplicaSnapshot {
	s := &r.State
	s.mu.Lock()
	defer s.mu.Unlock()
	return ReplicaSnapshot{
		ID: r.ID, InFlight: s.InFlight.Load(),
		Running: s.Running, Waiting: s.Waiting, KVUsage: s.KVUsage, Fresh: fresh(s.ScrapedAt, now),
		Healthy: s.Healthy, Ejected: now.Before(s.EjectedUntil),
		Failures: s.Failures, LastError: s.LastError,
	}
}
