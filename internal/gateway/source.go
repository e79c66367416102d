package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/objstatus"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// Source is where a gateway reads what it serves and says how it serves it: the Routes, the
// InferenceServices they name (with their ready endpoints) and the APIKeys, and each Route's
// status. The gateway needs nothing else from the world, so the same gateway runs from the
// embedded store ([StoreSource]) or from another home of the same objects (Kubernetes).
type Source interface {
	// Run calls pass once, then again after every change of a route, service or key (changes
	// may be batched), until ctx ends; an error of pass is retried by the next change.
	Run(ctx context.Context, pass func(context.Context) error) error
	// Snapshot returns every route, service and key as they are now. Objects that cannot be
	// read are left out.
	Snapshot(ctx context.Context) (Snapshot, error)
	// SetRouteStatus makes st the status of r, the route as Snapshot returned it (its
	// ResourceVersion and Status are what the write compares against). A route that changed
	// or went away since is no error: the change brings another pass.
	SetRouteStatus(ctx context.Context, r *v1.Route, st v1.Status) error
}

// Snapshot is everything a gateway's table is built from.
type Snapshot struct {
	Routes   []*v1.Route
	Services []*v1.InferenceService
	Keys     []*v1.APIKey
}

// StoreSource is the Source of citadel serve: the embedded store, watched for the three kinds.
type StoreSource struct {
	Store *store.Store
	// Log gets the status events it records and the objects it cannot decode; nil: none.
	Log *slog.Logger
}

var _ Source = StoreSource{}

// sourceKinds are the kinds a gateway reads.
var sourceKinds = []string{v1.KindRoute, v1.KindInferenceService, v1.KindAPIKey}

func (s StoreSource) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Run reconciles on the store's watch, debounced by 20 ms.
func (s StoreSource) Run(ctx context.Context, pass func(context.Context) error) error {
	return s.Store.Reconcile(ctx, store.ReconcileOptions{Name: "gateway", Logger: s.log(), Debounce: 20 * time.Millisecond,
		Filter: func(ev store.WatchEvent) bool {
			return slices.Contains(sourceKinds, ev.Object.Kind)
		}}, pass)
}

// Snapshot lists the three kinds.
func (s StoreSource) Snapshot(ctx context.Context) (Snapshot, error) {
	var snap Snapshot
	for _, kind := range sourceKinds {
		objs, _, err := s.Store.List(ctx, kind, store.ListOptions{})
		if err != nil {
			return Snapshot{}, err
		}
		for _, so := range objs {
			o, err := resource.FromStore(so)
			if err != nil {
				s.log().Warn("gateway: skipping a stored object", "kind", so.Kind, "namespace", so.Namespace, "name", so.Name, "err", err)
				continue
			}
			switch o := o.(type) {
			case *v1.Route:
				snap.Routes = append(snap.Routes, o)
			case *v1.InferenceService:
				snap.Services = append(snap.Services, o)
			case *v1.APIKey:
				snap.Keys = append(snap.Keys, o)
			}
		}
	}
	return snap, nil
}

// SetRouteStatus writes st through objstatus: stored when it differs, an event when the
// phase or reason moved.
func (s StoreSource) SetRouteStatus(ctx context.Context, r *v1.Route, st v1.Status) error {
	old, err := json.Marshal(r.Status)
	if err != nil {
		return err
	}
	rv, err := strconv.ParseInt(r.ResourceVersion, 10, 64)
	if err != nil {
		return fmt.Errorf("route %s/%s: resourceVersion %q: %w", r.Namespace, r.Name, r.ResourceVersion, err)
	}
	so := store.Object{Kind: v1.KindRoute, Namespace: r.Namespace, Name: r.Name, UID: r.UID, ResourceVersion: rv, Status: old}
	_, err = objstatus.Writer{Store: s.Store, Log: s.Log}.Write(ctx, objstatus.Update{Object: so, Status: st})
	return err
}
