package gwsource

import (
	"net"
	"slices"
	"strconv"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/kube"
)

// Endpoints are svc's engine instances as the EndpointSlices of its engine Service list
// them (slices of other Services are ignored), for the gateway:
//
//   - Address is the endpoint's first address and the slice's port named "http"
//     (kube.EnginePortName; a slice's only port when none has that name), IPv6 in brackets.
//   - Ready is the endpoint's ready condition; unset counts as ready, as kube-proxy counts
//     it. An address in several slices (a slice being replaced) is ready when any says so.
//     Phase is Ready, Stopping (terminating), else the controller's phase of the address
//     when it wrote one that is not Ready, else Starting.
//   - Replica is the index of the address in sorted order, over ready and not-ready
//     endpoints, so that an endpoint turning unready does not renumber the others.
//   - What the engine is (Engine, Served, the metrics path and series) comes from the
//     endpoints the controller wrote in svc's status: the one of the same address, else
//     the first. Without any, Engine is svc's runtime when that is a built-in engine name
//     (status.runtime, else spec.runtime.name), with that engine's metrics.
func Endpoints(svc *v1.InferenceService, eps []*discoveryv1.EndpointSlice) []v1.Endpoint {
	service := kube.EngineName(svc.Name)
	byAddr := map[string]v1.Endpoint{}
	for _, ep := range svc.Status.Endpoints {
		if ep.Address != "" {
			byAddr[ep.Address] = ep
		}
	}
	def := engineOf(svc)

	found := map[string]*v1.Endpoint{}
	for _, sl := range eps {
		if sl == nil || sl.Labels[kube.ServiceNameLabel] != service || sl.Namespace != svc.Namespace && svc.Namespace != "" {
			continue
		}
		port, ok := httpPort(sl)
		if !ok {
			continue
		}
		for _, e := range sl.Endpoints {
			if len(e.Addresses) == 0 || e.Addresses[0] == "" {
				continue
			}
			addr := net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port)))
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if prev := found[addr]; prev != nil {
				if ready && !prev.Ready {
					prev.Ready, prev.Phase = true, v1.EnginePhaseReady
				}
				continue
			}
			ep, known := byAddr[addr]
			if !known {
				ep = def
			}
			switch {
			case ready:
				ep.Phase = v1.EnginePhaseReady
			case e.Conditions.Terminating != nil && *e.Conditions.Terminating:
				ep.Phase = v1.EnginePhaseStopping
			case !known || ep.Phase == v1.EnginePhaseReady || ep.Phase == "":
				ep.Phase = v1.EnginePhaseStarting // else the controller's word (CrashLoopBackOff, …)
			}
			ep.Address, ep.Ready = addr, ready
			found[addr] = &ep
		}
	}
	addrs := make([]string, 0, len(found))
	for a := range found {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	out := make([]v1.Endpoint, 0, len(addrs))
	for i, a := range addrs {
		ep := *found[a]
		ep.Replica = i
		out = append(out, ep)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// httpPort is the slice's port named "http", else its only port.
func httpPort(sl *discoveryv1.EndpointSlice) (int32, bool) {
	for _, p := range sl.Ports {
		if p.Port != nil && p.Name != nil && *p.Name == kube.EnginePortName {
			return *p.Port, true
		}
	}
	if len(sl.Ports) == 1 && sl.Ports[0].Port != nil {
		return *sl.Ports[0].Port, true
	}
	return 0, false
}

// engineOf is what svc's status says its engine is, without the per-instance fields.
func engineOf(svc *v1.InferenceService) v1.Endpoint {
	for _, ep := range svc.Status.Endpoints {
		if ep.Engine != "" {
			return v1.Endpoint{Engine: ep.Engine, Served: ep.Served, Metrics: ep.Metrics,
				RunningMetric: ep.RunningMetric, WaitingMetric: ep.WaitingMetric, KVUsageMetric: ep.KVUsageMetric}
		}
	}
	var def v1.Endpoint
	runtime := svc.Status.Runtime
	if runtime == "" && svc.Spec.Runtime != nil {
		runtime = svc.Spec.Runtime.Name
	}
	name := strings.ToLower(runtime)
	if _, ok := engine.Lookup(name); !ok {
		return def
	}
	def.Engine = name
	if path, m, ok := engine.Metrics(name); ok {
		def.Metrics, def.RunningMetric, def.WaitingMetric, def.KVUsageMetric = path, m.Running, m.Waiting, m.KVUsage
	}
	if len(svc.Status.Endpoints) > 0 {
		def.Served = svc.Status.Endpoints[0].Served
	}
	return def
}
