package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// statusReconciler keeps every object's status saying why it waits. It owns
// one goroutine: a watch on the store marks the world dirty, and a resync
// (debounced) recomputes every status and writes the ones that changed,
// recording an event whenever an object's phase or reason changes.
type statusReconciler struct {
	st       *store.Store
	log      *slog.Logger
	now      func() time.Time
	debounce time.Duration
	// agentRuns: the model agent owns model status; this only reads it.
	agentRuns bool
	// servingRuns: the serving controller owns InferenceService status.
	servingRuns bool
	// gatewayRuns: the gateway, which serves the routes, owns Route status.
	gatewayRuns bool
}

func (r *statusReconciler) run(ctx context.Context) error {
	return r.st.Reconcile(ctx, store.ReconcileOptions{Name: "status reconciler", Logger: r.log, Debounce: r.debounce}, r.resync)
}

// resync recomputes every status once.
func (r *statusReconciler) resync(ctx context.Context) error {
	wd := &world{objects: map[v1.Key]v1.Object{}}
	stored := map[v1.Key]store.Object{}
	for _, k := range v1.Kinds {
		objs, _, err := r.st.List(ctx, k.Kind, store.ListOptions{})
		if err != nil {
			return err
		}
		for _, so := range objs {
			o, err := resource.FromStore(so)
			if err != nil {
				r.log.Error("decoding stored object", "kind", so.Kind, "name", so.Name, "err", err)
				continue
			}
			key := v1.Key{Kind: so.Kind, Namespace: so.Namespace, Name: so.Name}
			wd.objects[key], stored[key] = o, so
		}
	}
	now := r.now()
	// Models first, services next, routes last: each reads the one before.
	for _, kind := range []string{v1.KindClusterBaseModel, v1.KindBaseModel, v1.KindClusterServingRuntime, v1.KindServingRuntime, v1.KindInferenceService, v1.KindRoute} {
		if r.agentRuns && (kind == v1.KindClusterBaseModel || kind == v1.KindBaseModel) {
			continue
		}
		if r.servingRuns && kind == v1.KindInferenceService {
			continue
		}
		if r.gatewayRuns && kind == v1.KindRoute {
			continue
		}
		for key, o := range wd.objects {
			if key.Kind != kind {
				continue
			}
			var status any
			var phase, reason, msg string
			switch o := o.(type) {
			case *v1.ClusterBaseModel:
				o.Status = modelStatus(wd, kind, &o.ObjectMeta, &o.Spec, o.Status, now)
				status, phase, reason, msg = o.Status, o.Status.Phase, o.Status.Reason, o.Status.Message
			case *v1.BaseModel:
				o.Status = modelStatus(wd, kind, &o.ObjectMeta, &o.Spec, o.Status, now)
				status, phase, reason, msg = o.Status, o.Status.Phase, o.Status.Reason, o.Status.Message
			case *v1.ClusterServingRuntime:
				o.Status = runtimeStatus(&o.Spec, o.Generation)
				status, phase = o.Status, o.Status.Phase
			case *v1.ServingRuntime:
				o.Status = runtimeStatus(&o.Spec, o.Generation)
				status, phase = o.Status, o.Status.Phase
			case *v1.InferenceService:
				o.Status = serviceStatus(wd, o, now)
				status, phase, reason, msg = o.Status, o.Status.Phase, o.Status.Reason, o.Status.Message
			case *v1.Route:
				o.Status = routeStatus(wd, o, now)
				status, phase, reason, msg = o.Status, o.Status.Phase, o.Status.Reason, o.Status.Message
			}
			if err := r.write(ctx, stored[key], status, phase, reason, msg); err != nil {
				return err
			}
		}
	}
	return nil
}

// write stores a status if it changed, and records an event when the
// phase or reason moved. A conflict means someone else wrote first: the
// watch will bring the change and the next resync retries.
func (r *statusReconciler) write(ctx context.Context, so store.Object, status any, phase, reason, msg string) error {
	b, err := json.Marshal(status)
	if err != nil {
		return err
	}
	var old struct{ Phase, Reason string }
	_ = json.Unmarshal(so.Status, &old)
	if _, err := r.st.UpdateStatus(ctx, so.Kind, so.Namespace, so.Name, so.ResourceVersion, b); err != nil {
		var cf *store.ConflictError
		var nf *store.NotFoundError
		if errors.As(err, &cf) || errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if old.Phase == phase && old.Reason == reason {
		return nil
	}
	typ := v1.EventNormal
	if reason == ReasonModelNotFound || reason == ReasonRuntimeNotFound || reason == ReasonServiceNotFound {
		typ = v1.EventWarning
	}
	evReason := reason
	if evReason == "" {
		evReason = phase
		msg = "phase " + phase
	}
	if err := r.st.RecordEvent(ctx, store.Event{Kind: so.Kind, Namespace: so.Namespace, Name: so.Name, UID: so.UID, Type: typ, Reason: evReason, Message: msg}); err != nil {
		return err
	}
	r.log.Info("status", "kind", so.Kind, "namespace", so.Namespace, "name", so.Name, "phase", phase, "reason", reason)
	return nil
}
