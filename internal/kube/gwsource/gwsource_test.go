package gwsource_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/cli"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/gwsource"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/sim/simtest"
	"citadel.dev/citadel/test/k8s"
)

const ns = "serving"

// The objects a user applies: an InferenceService (its status as the controller writes it,
// with the pod address it saw), the key, and a Route shaped like examples/seed-001/route.yaml
// with a limited model.
const objects = `apiVersion: v1
kind: Namespace
metadata: {name: serving}
---
apiVersion: ome.io/v1beta1
kind: InferenceService
metadata: {name: qwen, namespace: serving}
spec:
  model: {name: qwen2-5-7b}
  runtime: {name: vllm}
---
apiVersion: v1
kind: Service
metadata:
  name: qwen-engine
  namespace: serving
  labels: {app.kubernetes.io/managed-by: citadel, ome.io/inferenceservice: qwen, component: engine}
spec:
  ports: [{name: http, port: 8000}]
---
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: lab}
spec: {hash: %q, prefix: ck-gwsrc}
---
apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: chat, namespace: serving}
spec:
  balancing: {policy: round-robin}
  retry: {attempts: 2}
  objectives: {availability: "99.9%%", ttftP99: 2s}
  models:
    - name: chat
      aliases: [assistant]
      targets: [{service: qwen}]
    - name: limited
      targets: [{service: qwen}]
      limits: {requestsPerMinute: 6}
---
apiVersion: v1
kind: Namespace
metadata: {name: elsewhere}
---
apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: far, namespace: elsewhere}
spec:
  models:
    - name: far
      targets: [{service: serving/qwen}]
`

const secret = "ck-gwsrc-test-0123456789abcdefghijklmnop"

type cluster struct {
	t   *testing.T
	env *k8s.Env
	dyn dynamic.Interface
	cs  kubernetes.Interface
	ip  string // the engines' address
}

func startCluster(t *testing.T) *cluster {
	e := k8s.Start(t)
	// Before the CRDs: citadel gateway says what to install, and exits.
	var stderr syncBuffer
	code := cli.Run(t.Context(), []string{"gateway", "--kubeconfig", e.Kubeconfig, "--addr", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "install Citadel's CRDs") {
		t.Errorf("citadel gateway without CRDs: exit %d, stderr %q; want a failure saying to install the CRDs", code, stderr.String())
	}

	// The chart's CRDs of the kinds the gateway reads (test/k8s installs them all, with kubectl).
	start := time.Now()
	var paths []string
	for _, f := range []string{"citadel.dev_routes.yaml", "citadel.dev_apikeys.yaml", "ome.io_inferenceservices.yaml"} {
		paths = append(paths, filepath.Join(k8s.RepoRoot(t), "charts/citadel/crds", f))
	}
	if _, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	t.Logf("CRDs installed in %v", time.Since(start).Round(time.Millisecond))
	c := &cluster{t: t, env: e, dyn: dynamic.NewForConfigOrDie(e.Config), cs: kubernetes.NewForConfigOrDie(e.Config), ip: k8s.PodIP(t)}
	return c
}

// The engines listen on pod addresses in the test's own network namespace (k8s.PodIP), as
// in a cluster: the API server refuses loopback addresses in EndpointSlices.
func TestMain(m *testing.M) { os.Exit(k8s.MainInNetNS(m)) }

// simEngine runs a simulated vLLM serving "qwen" on a free port of ip until the test ends;
// it returns the port.
func simEngine(t *testing.T, ip string) int32 {
	s, err := sim.NewOpenAI(sim.Config{Plan: simtest.Plan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096}),
		ServedModelNames: []string{"qwen"}, TimeScale: 0})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// setSlice creates or replaces an EndpointSlice of qwen-engine with one endpoint,
// c.ip:port, labelled as the EndpointSlice controller labels the slices of the
// controller's Service.
func (c *cluster) setSlice(name string, port int32, ready bool) {
	c.t.Helper()
	ctx := c.t.Context()
	httpName := kube.EnginePortName
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			kube.ServiceNameLabel: kube.EngineName("qwen"), kube.ManagedByLabel: kube.ManagedBy,
			"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &httpName, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{c.ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	api := c.cs.DiscoveryV1().EndpointSlices(ns)
	old, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, sl, metav1.CreateOptions{})
	case err == nil:
		sl.ResourceVersion = old.ResourceVersion
		_, err = api.Update(ctx, sl, metav1.UpdateOptions{})
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) route() *unstructured.Unstructured {
	c.t.Helper()
	gvr, _ := kube.GVR(v1.KindRoute)
	u, err := c.dyn.Resource(gvr).Namespace(ns).Get(c.t.Context(), "chat", metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return u
}

// waitRoute waits until the Route's status in the API server has phase and reason.
func (c *cluster) waitRoute(phase, reason string) v1.Status {
	c.t.Helper()
	var st v1.Status
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		o, err := kube.Decode(c.route())
		if err != nil {
			c.t.Fatal(err)
		}
		st = o.(*v1.Route).Status
		if st.Phase == phase && st.Reason == reason {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("route status %s/%s (%s), want %s/%s", st.Phase, st.Reason, st.Message, phase, reason)
		}
	}
}

// runGateway runs a gateway with a Source on the cluster, on a loopback port.
func runGateway(t *testing.T, c *cluster, share int) string {
	src, err := gwsource.New(c.env.Config, gwsource.Options{Instance: fmt.Sprintf("gw-%d", share)})
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(gateway.Options{Source: src, LimitShare: share, HealthInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- gw.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = gw.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
		<-served
	})
	return "http://" + ln.Addr().String()
}

var client = &http.Client{Timeout: 10 * time.Second}

// post sends a chat request for model to gw with the key (if any) and returns the status,
// the replica that answered (from x-citadel-route) and the body.
func post(t *testing.T, gw, model, key string, stream bool) (int, string, string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":%v}`, model, stream)
	req, _ := http.NewRequest(http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	replica := ""
	for _, f := range strings.Fields(resp.Header.Get("X-Citadel-Route")) {
		if r, ok := strings.CutPrefix(f, "replica="); ok {
			replica = r
		}
	}
	return resp.StatusCode, replica, string(b)
}

// replicaOf is the gateway's replica id of the engine at port among ports: the index of
// its address in sorted order.
func replicaOf(port int32, ports ...int32) string {
	slices.SortFunc(ports, func(a, b int32) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return fmt.Sprintf("%s/qwen/%d", ns, slices.Index(ports, port))
}

// TestGatewayInCluster runs two gateways on a Source over a real API server, in front of two
// simulated engines that EndpointSlices list, as a user would meet them: keys, routing,
// endpoints turning unready or going away, Route status and events, and a limit shared by
// the two replicas.
func TestGatewayInCluster(t *testing.T) {
	c := startCluster(t)
	ctx := t.Context()
	p1, p2 := simEngine(t, c.ip), simEngine(t, c.ip)
	c.env.MustKubectl([]byte(fmt.Sprintf(objects, hex.EncodeToString(sha256Sum(secret)))), "apply", "-f", "-")

	// The status the controller writes: the runtime, and the engine at the pod address it
	// saw (not reachable from here: the gateway must use the slices' addresses).
	isvcGVR, _ := kube.GVR(v1.KindInferenceService)
	isvc, err := c.dyn.Resource(isvcGVR).Namespace(ns).Get(ctx, "qwen", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	isvc.Object["status"] = map[string]any{"phase": "Ready", "reason": "EngineReady", "runtime": "vllm", "endpoints": []any{
		map[string]any{"replica": 0, "address": "10.244.0.250:8000", "engine": "vllm", "ready": true, "phase": "Ready", "served": []any{"qwen"},
			"metrics": "/metrics", "runningMetric": "vllm:num_requests_running", "waitingMetric": "vllm:num_requests_waiting"}}}
	if _, err := c.dyn.Resource(isvcGVR).Namespace(ns).UpdateStatus(ctx, isvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.setSlice("qwen-engine-a", p1, true)
	c.setSlice("qwen-engine-b", p2, true)

	start := time.Now()
	gw1, gw2 := runGateway(t, c, 2), runGateway(t, c, 2)
	st := c.waitRoute(gateway.RoutePhaseReady, v1.ReasonServing)
	t.Logf("route Ready in the API server %v after the gateways started: %s", time.Since(start).Round(time.Millisecond), st.Message)
	if !strings.Contains(st.Message, "1 of 1 targets have ready replicas") || !strings.Contains(st.Message, "chat") {
		t.Errorf("route status message %q", st.Message)
	}

	t.Run("keys", func(t *testing.T) {
		for _, key := range []string{"", "ck-wrong-key-0123456789abcdefghij"} {
			code, _, body := post(t, gw1, "chat", key, false)
			if code != http.StatusUnauthorized || !strings.Contains(body, `"invalid_api_key"`) {
				t.Errorf("key %q: %d %s, want 401 invalid_api_key", key, code, body)
			}
		}
		code, _, body := post(t, gw1, "assistant", secret, false)
		if code != 200 || !strings.Contains(body, `"chat.completion"`) {
			t.Errorf("with the key: %d %s", code, body)
		}
		// A key disabled in the API server is refused, and accepted again once enabled.
		for _, disabled := range []bool{true, false} {
			c.env.MustKubectl(nil, "patch", "apikey", "lab", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"disabled":%v}}`, disabled))
			want := http.StatusOK
			if disabled {
				want = http.StatusUnauthorized
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				code, _, body := post(t, gw1, "chat", secret, false)
				if code == want {
					if disabled && !strings.Contains(body, "is disabled") {
						t.Errorf("disabled key: %s", body)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("key disabled=%v in the API server: %d %s, want %d", disabled, code, body, want)
				}
			}
		}
	})

	t.Run("stream", func(t *testing.T) {
		code, _, body := post(t, gw2, "chat", secret, true)
		if code != 200 || !strings.Contains(body, "data: {") || !strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]") {
			t.Errorf("stream: %d %q", code, body)
		}
		if n := strings.Count(body, "chat.completion.chunk"); n < 2 {
			t.Errorf("stream has %d chunks: %q", n, body)
		}
	})

	r1, r2 := replicaOf(p1, p1, p2), replicaOf(p2, p1, p2)
	// used sends n requests and counts them per replica.
	used := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			code, rep, body := post(t, gw1, "chat", secret, false)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			got[rep]++
		}
		return got
	}
	// until sends requests until the last n went to want only, and returns how long that
	// took from since, counted to the last request another replica answered.
	until := func(want string, since time.Time) time.Duration {
		t.Helper()
		last, run := since, 0
		for deadline := time.Now().Add(5 * time.Second); run < 20; {
			if time.Now().After(deadline) {
				t.Fatalf("requests still reach other replicas than %s after 5 s", want)
			}
			code, rep, body := post(t, gw1, "chat", secret, false)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			if rep == want {
				run++
			} else {
				run, last = 0, time.Now()
			}
		}
		return last.Sub(since)
	}
	if got := used(10); got[r1] == 0 || got[r2] == 0 {
		t.Fatalf("round robin over two ready endpoints: %v, want both %s and %s", got, r1, r2)
	}

	t.Run("unready endpoint", func(t *testing.T) {
		at := time.Now()
		c.setSlice("qwen-engine-a", p1, false)
		t.Logf("requests left the unready endpoint %v after the slice changed", until(r2, at).Round(time.Millisecond))
		if got := used(10); got[r2] != 10 {
			t.Errorf("with %s unready: %v, want all on %s", r1, got, r2)
		}
		c.setSlice("qwen-engine-a", p1, true)
		for deadline := time.Now().Add(5 * time.Second); used(4)[r1] == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%s ready again but unused", r1)
			}
		}
	})

	t.Run("slice deleted", func(t *testing.T) {
		at := time.Now()
		if err := c.cs.DiscoveryV1().EndpointSlices(ns).Delete(ctx, "qwen-engine-b", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		only := replicaOf(p1, p1)
		took := until(only, at)
		t.Logf("requests left the deleted slice's endpoint %v after the delete", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("the gateway used a deleted slice's endpoint %v after the delete, want under 1 s", took)
		}
		if st := c.waitRoute(gateway.RoutePhaseReady, v1.ReasonServing); !strings.Contains(st.Message, "1 of 1 targets") {
			t.Errorf("route status %q", st.Message)
		}
	})

	t.Run("limit shared by two replicas", func(t *testing.T) {
		// limits.requestsPerMinute 6 on "limited", --limit-share 2: 3 per replica.
		total := 0
		for _, gw := range []string{gw1, gw2} {
			n := 0
			for i := range 5 {
				code, _, body := post(t, gw, "limited", secret, false)
				if code == 429 {
					if !strings.Contains(body, "Limit 3") || !strings.Contains(body, "1/2 share") {
						t.Errorf("429 %s", body)
					}
					break
				}
				if code != 200 {
					t.Fatalf("request %d: %d %s", i+1, code, body)
				}
				n++
			}
			if n != 3 {
				t.Errorf("gateway %s admitted %d of the route's 6 per minute, want 3", gw, n)
			}
			total += n
		}
		if total != 6 {
			t.Errorf("the two replicas admitted %d, want the route's 6", total)
		}
	})

	t.Run("status and events", func(t *testing.T) {
		// No ready endpoint: Degraded, and a Warning event, written once by either replica.
		c.setSlice("qwen-engine-a", p1, false)
		st := c.waitRoute(gateway.RoutePhaseDegraded, v1.ReasonNoReadyTargets)
		if !strings.Contains(st.Message, "serving/qwen (Ready)") {
			t.Errorf("degraded message %q names no waiting service", st.Message)
		}
		code, _, body := post(t, gw2, "chat", secret, false)
		if code != http.StatusServiceUnavailable {
			t.Errorf("no ready endpoint: %d %s, want 503", code, body)
		}
		c.setSlice("qwen-engine-a", p1, true)
		c.waitRoute(gateway.RoutePhaseReady, v1.ReasonServing)

		// Both replicas compute the same status: it settles, with no write back and forth.
		rv := c.route().GetResourceVersion()
		time.Sleep(500 * time.Millisecond)
		if now := c.route().GetResourceVersion(); now != rv {
			t.Errorf("route written again with nothing changed (resourceVersion %s, then %s)", rv, now)
		}

		evs, err := c.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=chat"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs.Items {
			got = append(got, e.Type+" "+e.Reason)
		}
		// Ready (first status), Degraded, Ready again: one event each, whichever replica
		// wrote (listed by name, not in time order).
		slices.Sort(got)
		want := []string{"Normal Serving", "Normal Serving", "Warning NoReadyTargets"}
		if !slices.Equal(got, want) {
			t.Errorf("route events %v, want %v", got, want)
		}
		out := c.env.MustKubectl(nil, "-n", ns, "describe", "route", "chat")
		if !strings.Contains(out, "NoReadyTargets") || !strings.Contains(out, "citadel-gateway") {
			t.Errorf("kubectl describe route shows no gateway event:\n%s", out)
		}
	})

	t.Run("citadel gateway --kubeconfig", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var stderr syncBuffer
		exited := make(chan int, 1)
		go func() {
			exited <- cli.Run(ctx, []string{"gateway", "--kubeconfig", c.env.Kubeconfig, "--namespace", ns, "--addr", addr, "--limit-share", "2"},
				strings.NewReader(""), io.Discard, &stderr)
		}()
		defer func() {
			cancel()
			if code := <-exited; code != 0 {
				t.Errorf("citadel gateway exited %d: %s", code, stderr.String())
			}
		}()
		// Up once its table has the route: the models it lists.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/models", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			if resp, err := client.Do(req); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), `"chat"`) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("citadel gateway --kubeconfig lists no model chat after 10 s:\n%s", stderr.String())
			}
		}
		if code, _, body := post(t, "http://"+addr, "chat", secret, false); code != 200 {
			t.Errorf("through citadel gateway --kubeconfig: %d %s", code, body)
		}
		// --namespace serving: the Route of namespace elsewhere is not this gateway's; the
		// gateways watching every namespace serve it (its target is serving/qwen).
		if code, _, body := post(t, "http://"+addr, "far", secret, false); code != http.StatusNotFound {
			t.Errorf("model far of namespace elsewhere through the gateway of namespace %s: %d %s, want 404", ns, code, body)
		}
		if code, _, body := post(t, gw2, "far", secret, false); code != 200 {
			t.Errorf("model far through a gateway of every namespace: %d %s", code, body)
		}
		if !strings.Contains(stderr.String(), "from the API server at https://127.0.0.1:") || !strings.Contains(stderr.String(), "namespace "+ns) {
			t.Errorf("stderr does not say where the routes come from:\n%s", stderr.String())
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := client.Get(gw1 + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		found := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "citadel_gateway_requests_total{") && strings.Contains(sc.Text(), `model="chat"`) {
				found = true
			}
		}
		if !found {
			t.Error("/metrics has no citadel_gateway_requests_total of model chat")
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
