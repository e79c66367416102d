// Package residency keeps on-demand services resident on the GPUs only
// while they are used: it loads a service when a request asks for it,
// evicts idle ones under pressure with each engine's cheapest mechanism, and
// holds requests while a load runs. docs/design/0006-residency.md.
//
// This file is the contract between the manager and the gateway: the
// gateway asks Acquire before it sends a request to an on-demand service and
// calls the release function when the request ends; it reads States for
// /v1/models, /api/ps and metrics.
package residency

import (
	"context"
	"fmt"
	"time"
)

// States of an on-demand service.
const (
	StateLoaded   = "loaded"
	StateLoading  = "loading"
	StateSleeping = "sleeping"
	StateUnloaded = "unloaded"
	StateFailed   = "failed"
)

// State is where one on-demand service is.
type State struct {
	// Service is namespace/name of the InferenceService.
	Service string
	// Model is the name clients ask for.
	Model string
	// Value is one of the State* constants.
	Value string
	// Progress is 0–1 while loading.
	Progress float64
	// ETA is the expected time left while loading.
	ETA time.Duration
	// Reason says why it is in this state (reason code and words).
	Reason string
	// SizeVRAM is the GPU memory it holds while resident, in bytes.
	SizeVRAM int64
	// ExpiresAt is when it is evicted if idle (zero: not resident, or no TTL).
	ExpiresAt time.Time
	// InFlight and Queued count requests admitted and held.
	InFlight, Queued int
}

// Progress is reported to a held request while its service loads.
type Progress struct {
	Model    string
	Progress float64
	ETA      time.Duration
	Queued   int // requests ahead of this one
}

// Refusal is the error of a request that is not held: its queue is full
// (429) or its wait ran out (503). RetryAfter is the estimated load time.
type Refusal struct {
	Status     int
	RetryAfter time.Duration
	Reason     string
	Message    string
}

func (r *Refusal) Error() string { return fmt.Sprintf("%s: %s", r.Reason, r.Message) }

// Admitter is what the gateway needs from the residency manager.
type Admitter interface {
	// OnDemand says whether service (namespace/name) is managed; a request
	// to a service that is not goes straight through.
	OnDemand(service string) bool
	// Acquire returns once service is resident and the request is admitted
	// on it; release must be called when the request ends (also on error).
	// While it waits, progress (may be nil) is called at least every second.
	// The error is a *Refusal, or ctx's error.
	Acquire(ctx context.Context, service string, progress func(Progress)) (release func(), err error)
	// Load makes service resident without a request (Ollama's empty
	// /api/generate); Unload evicts it once idle (keep_alive: 0).
	Load(ctx context.Context, service string) error
	Unload(ctx context.Context, service string) error
	// States lists every on-demand service.
	States() []State
}
