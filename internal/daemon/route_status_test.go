package daemon

import (
	"context"
	"net"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/gateway"
)

// Two routes: one to a URL (served as soon as a gateway runs), one naming a service that
// is deleted once applied (apply refuses a route naming a missing one).
var statusRoutes = []string{
	`{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m"},"spec":{"storage":{"storageUri":"hf://org/m"}}}`,
	`{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"nope","namespace":"default"},"spec":{"model":{"name":"m"}}}`,
	`{"apiVersion":"citadel.dev/v1alpha1","kind":"Route","metadata":{"name":"ext","namespace":"default"},` +
		`"spec":{"models":[{"name":"chat","targets":[{"url":"http://127.0.0.1:9/v1"}]}]}}`,
	`{"apiVersion":"citadel.dev/v1alpha1","kind":"Route","metadata":{"name":"broken","namespace":"default"},` +
		`"spec":{"models":[{"name":"coder","targets":[{"service":"nope"}]}]}}`,
}

// TestRouteStatusWriter: with a gateway, the gateway writes each Route's status (what it
// serves, where, and what is missing) and stops writing once it holds; with --gateway-addr
// off, the status reconciler says the route is stored, not served.
func TestRouteStatusWriter(t *testing.T) {
	for _, withGateway := range []bool{true, false} {
		name := "gateway off"
		if withGateway {
			name = "gateway on"
		}
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{DataDir: t.TempDir(), AdminListener: ln}
			var gwAddr string
			if withGateway {
				gln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				gwAddr = gln.Addr().String()
				opts.Gateway, opts.GatewayListener = &gateway.Options{}, gln
			}
			ctx, cancel := context.WithCancel(context.Background())
			ready := make(chan struct{})
			opts.Ready = func(string) { close(ready) }
			done := make(chan error, 1)
			go func() { done <- Run(ctx, opts) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
			<-ready
			c, err := client.New(ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var items []v1.ApplyItem
			for _, o := range statusRoutes {
				items = append(items, v1.ApplyItem{Object: []byte(o)})
			}
			if _, err := c.Apply(t.Context(), v1.ApplyRequest{Items: items}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Delete(t.Context(), v1.KindInferenceService, "default", "nope", ""); err != nil {
				t.Fatal(err)
			}
			type want struct{ phase, reason, message string }
			wants := map[string]want{
				"ext": {gateway.RoutePhaseReady, v1.ReasonServing,
					"serves chat on http://" + gwAddr + "; 1 of 1 targets have ready replicas"},
				"broken": {gateway.RoutePhaseDegraded, v1.ReasonServiceNotFound,
					"serves coder on http://" + gwAddr + "; 0 of 1 targets have ready replicas (none ready: default/nope); problems: models[0].targets[0].service: InferenceService default/nope does not exist; the target has no replicas until it does"},
			}
			if !withGateway {
				wants = map[string]want{
					"ext":    {"Pending", v1.ReasonNoGateway, NoGatewayMessage + "; the route has only url targets"},
					"broken": {"Pending", v1.ReasonServiceNotFound, NoGatewayMessage + "; services not found: default/nope"},
				}
			}
			rvs := map[string]string{}
			for rname, w := range wants {
				var got *v1.Route
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					o, err := c.Get(t.Context(), v1.KindRoute, "default", rname)
					if err != nil {
						t.Fatal(err)
					}
					got = o.(*v1.Route)
					if got.Status.Phase == w.phase && got.Status.Reason == w.reason && got.Status.Message == w.message {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("route %s: status %s/%s %q, want %s/%s %q", rname, got.Status.Phase, got.Status.Reason, got.Status.Message, w.phase, w.reason, w.message)
					}
				}
				rvs[rname] = got.ResourceVersion
			}
			// Once written, a status holds: nothing rewrites it in a loop.
			time.Sleep(300 * time.Millisecond)
			for rname, rv := range rvs {
				o, err := c.Get(t.Context(), v1.KindRoute, "default", rname)
				if err != nil {
					t.Fatal(err)
				}
				if o.GetObjectMeta().ResourceVersion != rv {
					t.Errorf("route %s: resourceVersion moved from %s to %s with nothing changed", rname, rv, o.GetObjectMeta().ResourceVersion)
				}
			}
		})
	}
}
