package gwsource_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/gwsource"
)

type ep struct {
	addr                string
	ready, term, noCond bool
}

func slice(name, service string, typ discoveryv1.AddressType, ports map[string]int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
		Labels: map[string]string{kube.ServiceNameLabel: service}}, AddressType: typ}
	for n, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: &n, Port: &p})
	}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.addr}}
		if !e.noCond {
			x.Conditions.Ready = &e.ready
			x.Conditions.Terminating = &e.term
		}
		s.Endpoints = append(s.Endpoints, x)
	}
	return s
}

func TestEndpoints(t *testing.T) {
	svc := &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Namespace: "ns", Name: "qwen"}}
	svc.Status.Runtime = "vllm"
	svc.Status.Endpoints = []v1.Endpoint{
		// What the controller wrote: the engine of the service, and one instance's details.
		{Replica: 3, Address: "10.0.0.2:8000", Engine: "vllm", Served: []string{"Qwen/Qwen2.5-7B-Instruct"}, Metrics: "/metrics",
			RunningMetric: "vllm:num_requests_running", PID: 42, Restarts: 1},
	}
	http := map[string]int32{"http": 8000, "metrics": 9000}
	got := gwsource.Endpoints(svc, []*discoveryv1.EndpointSlice{
		slice("qwen-engine-v4", "qwen-engine", discoveryv1.AddressTypeIPv4, http,
			ep{addr: "10.0.0.2", ready: true}, ep{addr: "10.0.0.1", noCond: true}, ep{addr: "10.0.0.3", term: true}),
		slice("qwen-engine-v6", "qwen-engine", discoveryv1.AddressTypeIPv6, map[string]int32{"": 8000}, ep{addr: "fd00::1", ready: false}),
		// The same address in a second slice (one being replaced): ready if either says so.
		slice("qwen-engine-old", "qwen-engine", discoveryv1.AddressTypeIPv4, http, ep{addr: "10.0.0.3", ready: true}),
		// Another Service's slice, and a slice without the engine port.
		slice("other-engine-x", "other-engine", discoveryv1.AddressTypeIPv4, http, ep{addr: "10.0.9.9", ready: true}),
		slice("qwen-engine-noport", "qwen-engine", discoveryv1.AddressTypeIPv4, map[string]int32{"a": 1, "b": 2}, ep{addr: "10.0.8.8", ready: true}),
	})
	tmpl := v1.Endpoint{Engine: "vllm", Served: []string{"Qwen/Qwen2.5-7B-Instruct"}, Metrics: "/metrics", RunningMetric: "vllm:num_requests_running"}
	with := func(e v1.Endpoint, replica int, addr string, ready bool, phase string) v1.Endpoint {
		e.Replica, e.Address, e.Ready, e.Phase = replica, addr, ready, phase
		return e
	}
	want := []v1.Endpoint{
		with(tmpl, 0, "10.0.0.1:8000", true, "Ready"), // no condition: ready, as kube-proxy counts it
		with(svc.Status.Endpoints[0], 1, "10.0.0.2:8000", true, "Ready"),
		with(tmpl, 2, "10.0.0.3:8000", true, "Ready"),
		with(tmpl, 3, "[fd00::1]:8000", false, "Starting"),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("endpoints (-want +got):\n%s", d)
	}

	// No endpoints in the status yet: the engine is the built-in runtime's, with its metrics.
	svc.Status.Endpoints = nil
	got = gwsource.Endpoints(svc, []*discoveryv1.EndpointSlice{slice("qwen-engine-v4", "qwen-engine", discoveryv1.AddressTypeIPv4, http, ep{addr: "10.0.0.3", term: true})})
	want = []v1.Endpoint{{Address: "10.0.0.3:8000", Engine: "vllm", Metrics: "/metrics", RunningMetric: "vllm:num_requests_running",
		WaitingMetric: "vllm:num_requests_waiting", KVUsageMetric: "vllm:kv_cache_usage_perc", Phase: "Stopping"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("endpoints from the runtime (-want +got):\n%s", d)
	}
	if got := gwsource.Endpoints(svc, nil); got != nil {
		t.Errorf("no slices: %v, want none", got)
	}
}
