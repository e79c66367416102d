package daemon

import (
	"context"
	"log/slog"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/objstatus"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// statusReconciler writes the statuses no owner writes. Each kind's status has one writer:
// models the model agent, InferenceServices the serving controller, Routes the gateway. While
// one of them does not run in this server (--agent=false, --engines=false, --gateway-addr
// off), the reconciler writes that kind's status instead, saying what is accepted, what it
// waits for, and that no owner runs. Runtimes have no other writer: their status (Available,
// or Disabled) follows from the spec. It owns one goroutine: a watch on the store marks the
// world dirty, and a resync (debounced) recomputes those statuses and writes the ones that
// changed (objstatus: an event whenever the phase or reason moved).
type statusReconciler struct {
	st       *store.Store
	w        objstatus.Writer
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
			// Each status goes into the world too: the kinds after it read it.
			switch o := o.(type) {
			case *v1.ClusterBaseModel:
				o.Status = modelStatus(wd, kind, &o.ObjectMeta, &o.Spec, o.Status, now)
				status = o.Status
			case *v1.BaseModel:
				o.Status = modelStatus(wd, kind, &o.ObjectMeta, &o.Spec, o.Status, now)
				status = o.Status
			case *v1.ClusterServingRuntime:
				o.Status = runtimeStatus(&o.Spec, o.Generation)
				status = o.Status
			case *v1.ServingRuntime:
				o.Status = runtimeStatus(&o.Spec, o.Generation)
				status = o.Status
			case *v1.InferenceService:
				o.Status = serviceStatus(wd, o, now)
				status = o.Status
			case *v1.Route:
				o.Status = routeStatus(wd, o, now)
				status = o.Status
			}
			// A stale object is left to the next resync, which the watch brings.
			if _, err := r.w.Write(ctx, objstatus.Update{Object: stored[key], Status: status}); err != nil {
				return err
			}
		}
	}
	return nil
}
