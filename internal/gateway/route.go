package gateway

// The routing table: what it holds and how a request resolves (building it: build.go; a
// virtual name's task: classify.go).
//
// Names. A Table maps every public model name to an Entry:
//
//   - Route models and their aliases (Route wins over everything else; two routes claiming
//     one name is an error, and the first route by namespace/name keeps it).
//   - Every InferenceService that has endpoints, by "namespace/name", by "name" and by each
//     name its endpoints serve (Endpoint.Served), below routes. A name
//     two services share goes to the first one (the default namespace first, then by
//     namespace/name): "namespace/name" always reaches a service. A service is listed once
//     the controller has started it (it has endpoints) but only its Ready endpoints become
//     replicas, so a service that is restarting answers 503 (no ready replica) rather than
//     404 (no such model).
//
// Targets. A route target names a service ("name" in the route's namespace, or
// "namespace/name") or a URL. A service target's replicas are the service's Ready endpoints
// (ID "namespace/service/replica", BaseURL http://ADDRESS, API ollama for the ollama engine
// and openai otherwise); a target whose service has none ready is kept with zero replicas so
// that the next target or the fallback takes over; a target naming a missing service is kept
// the same way and reported. Its Model is target.model, else the service's first served
// name, else the service's spec.model.name. A URL target's replica has the URL as ID (a
// trailing "/" or "/v1" is dropped: the proxy adds the API path), the API target.api
// (default openai, or ollama for engine ollama), the engine target.engine (its health path
// and load metrics then apply) and Model target.model, else the public name.
//
// Replicas are shared by every target that reaches them, and a rebuild reuses the *Replica of
// the Previous table with the same identity (ID, BaseURL, API, engine, metrics), so that its
// live state (in-flight count, health, scraped load) survives. New replicas start healthy:
// the controller said the endpoint is Ready, or, for a URL, until a probe says otherwise.
//
// Capabilities (for /v1/models) are known only from a virtual name's task rules: a model a
// vision rule leads to has ["chat", "vision"], one an embedding rule leads to ["embedding"],
// one a general rule leads to ["chat"]. Other names have none, and MaxModelLen is 0: the
// service status does not carry the engine's context length.
//
// Virtual names (a route model with tasks) are classified per request by Classify; see it.
// A task rule's model names another model (or alias) of the same route, resolved when the
// table is built; it may itself be virtual, and a rule that would close a loop is dropped
// and reported.

import (
	"fmt"
	"slices"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
)

// ModelInfo is one public name, for /v1/models and /api/tags.
type ModelInfo struct {
	ID           string   `json:"id"`
	OwnedBy      string   `json:"owned_by"`                // "citadel"
	MaxModelLen  int      `json:"max_model_len,omitempty"` // 0: unknown
	Capabilities []string `json:"capabilities,omitempty"`  // e.g. ["chat", "vision"]; nil: unknown
	Route        string   `json:"route,omitempty"`         // "namespace/name" of the Route declaring it
	Service      string   `json:"service,omitempty"`       // "namespace/name" of the InferenceService, for a service's own names
	AliasOf      string   `json:"alias_of,omitempty"`      // the model an alias names
	Virtual      bool     `json:"virtual,omitempty"`       // classified by task per request
}

// Table is an immutable routing table; build a new one on every change and swap it
// atomically. Its methods are safe for concurrent use, and on a nil *Table.
type Table struct {
	names    map[string]*Entry // every public name and alias
	how      map[string]string // why a name resolves as it does: "exact name", "alias of …"
	local    map[string]*Entry // Route+"\x00"+name: a route's own models, for task rules naming virtual models
	models   []ModelInfo       // sorted by ID
	replicas []*Replica        // distinct, sorted by ID
	avail    []string          // the IDs of models

	// lims are the limiters of the public models with limits; the next table keeps them by name.
	lims map[string]*limiter
}

// BuildInput is everything the table is built from.
type BuildInput struct {
	Routes []*v1.Route
	// Services with status.endpoints; only Ready endpoints become replicas.
	Services []*v1.InferenceService
	// Previous is the table being replaced: its *Replica objects are reused (same identity)
	// so that their live state (in-flight, health, scraped load) survives rebuilds.
	Previous *Table
}

// Resolve finds where a request goes: the entry of its model (a name or alias; for an
// Ollama client, "name:latest" and "name" are the same), then, for a virtual name, the task
// rule Classify picks. An unknown model is a *NotFoundError listing the available names.
func (t *Table) Resolve(ri RequestInfo) (Decision, error) {
	d, _, _, err := t.resolve(ri)
	return d, err
}

// resolve is Resolve, also returning, for a virtual name, its entry and how the request was
// first classified (nil and the zero Verdict otherwise).
func (t *Table) resolve(ri RequestInfo) (Decision, *Entry, Verdict, error) {
	if t == nil {
		return Decision{}, nil, Verdict{}, &NotFoundError{Model: ri.Model}
	}
	name, e := t.lookup(ri.Model)
	if e == nil {
		return Decision{}, nil, Verdict{}, &NotFoundError{Model: ri.Model, Available: slices.Clone(t.avail)}
	}
	d := Decision{Public: e.Public, Reason: t.how[name], Dest: e.Dest}
	var first *Entry
	var firstV Verdict
	for depth := 0; e.Dest == nil; depth++ {
		cv := Classify(ri, e)
		task, reason, te := cv.Task, cv.Reason, cv.Entry
		if te == nil || depth > 8 {
			return Decision{}, nil, Verdict{}, fmt.Errorf("model %q: no task rule applies", ri.Model)
		}
		if depth == 0 {
			d.Reason, d.How = reason, cv.How
			first, firstV = e, cv
		} else {
			d.Reason += ", then " + e.Public + ": " + reason
		}
		d.Task, d.Public = task, te.Public
		if te.Dest != nil {
			d.Dest = te.Dest
			break
		}
		if e = t.local[e.Route+"\x00"+te.Public]; e == nil {
			return Decision{}, nil, Verdict{}, fmt.Errorf("model %q: task %s leads to %q, which is not served", ri.Model, task, te.Public)
		}
	}
	return d, first, firstV, nil
}

// lookup finds a model's entry by name or alias; for an Ollama client, "name:latest" and
// "name" are the same. It returns the name as the table knows it.
func (t *Table) lookup(model string) (string, *Entry) {
	if e := t.names[model]; e != nil {
		return model, e
	}
	if trimmed, ok := strings.CutSuffix(model, ":latest"); ok && t.names[trimmed] != nil {
		return trimmed, t.names[trimmed]
	}
	if !strings.Contains(model, ":") && t.names[model+":latest"] != nil {
		return model + ":latest", t.names[model+":latest"]
	}
	return model, nil
}

// Models lists every public name (aliases included; a service's "namespace/name" only when
// its bare name reaches another model), sorted by ID.
func (t *Table) Models() []ModelInfo {
	if t == nil {
		return nil
	}
	return slices.Clone(t.models)
}

// Replicas returns every distinct replica the table's names reach, sorted by ID.
func (t *Table) Replicas() []*Replica {
	if t == nil {
		return nil
	}
	return slices.Clone(t.replicas)
}

// PickTarget makes the weighted choice among d's targets: r (a random number) falls in one
// target's share of the total weight of the targets with at least one replica; weight 0
// takes none. It returns nil when no target qualifies (the caller goes to the fallback).
func PickTarget(d *Destination, r uint64) *Target {
	if d == nil {
		return nil
	}
	var total uint64
	for _, t := range d.Targets {
		if t.Weight > 0 && len(t.Replicas) > 0 {
			total += uint64(t.Weight)
		}
	}
	if total == 0 {
		return nil
	}
	n := r % total
	for _, t := range d.Targets {
		if t.Weight <= 0 || len(t.Replicas) == 0 {
			continue
		}
		if n < uint64(t.Weight) {
			return t
		}
		n -= uint64(t.Weight)
	}
	return nil
}

// Header is the value of x-citadel-route before any replica answered: `task=vision
// model=mimo-vl service=default/mimo-vl-7b-rl reason=image_url` (task only for a virtual
// name; service is the first target's name, or the first fallback's when there is no
// target). The reason is last and may contain spaces.
func (d Decision) Header() string { return d.headerVia(nil) }

// headerVia is Header naming t, the target that answered, as the service (the first
// target's when t is nil).
func (d Decision) headerVia(t *Target) string {
	var sb strings.Builder
	if d.Task != "" {
		sb.WriteString("task=" + d.Task + " ")
	}
	sb.WriteString("model=" + d.Public)
	if t == nil {
		t = d.Dest.first()
	}
	if t != nil {
		sb.WriteString(" service=" + t.Name)
	}
	if d.Reason != "" {
		sb.WriteString(" reason=" + d.Reason)
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, sb.String())
}

// first is the target a destination tries first: its first target, else its first fallback
// (nil for a nil destination or one with neither).
func (d *Destination) first() *Target {
	switch {
	case d == nil:
		return nil
	case len(d.Targets) > 0:
		return d.Targets[0]
	case len(d.Fallback) > 0:
		return d.Fallback[0]
	}
	return nil
}
