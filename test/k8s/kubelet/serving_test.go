package kubelet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/gwsource"
	"citadel.dev/citadel/internal/kube/serving"
	"citadel.dev/citadel/test/k8s"
)

// TestServingDeployments runs the engine Deployments Citadel's InferenceService controller
// (internal/kube/serving, in this process) writes for OME's MiMo-VL runtime (a bash script
// running SGLang) and for Citadel's vllm runtime (the engine adapter's command line), on
// the test kubelet's nodes: both services become Ready with endpoints that answer a chat
// request, and through the gateway in the cluster (internal/kube/gwsource). The agents'
// and the model controller's part (the model Ready on both nodes, the
// node labels, the metadata the files give) is written by the test.
func TestServingDeployments(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	root := k8s.RepoRoot(t)
	c.kubectl(t, "", "apply", "-f", filepath.Join(root, "charts/citadel/crds/"))
	for i := 0; ; i++ { // kubectl wait fails on a CRD whose status has no conditions yet
		_, err := c.env.Kubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
		if err == nil {
			break
		}
		if i == 20 {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	skip := true
	mgr, err := ctrl.NewManager(c.env.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: &skip}})
	if err != nil {
		t.Fatal(err)
	}
	if err := serving.Setup(mgr, serving.Options{}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	c.kubectl(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: mimo-vl-7b-rl}\n", "apply", "-f", "-")
	for _, f := range []string{
		"test/k8s/testdata/ome/models/XiaomiMiMo/MiMo-VL-7B-RL.yaml", "test/k8s/testdata/ome/runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml",
		"test/k8s/testdata/ome/samples/isvc/XiaomiMiMo/mimo-vl-7b-rl.yaml", "examples/runtimes/vllm.yaml",
	} {
		c.kubectl(t, "", "apply", "-f", filepath.Join(root, f))
	}
	c.kubectl(t, `apiVersion: ome.io/v1beta1
kind: InferenceService
metadata: {name: mimo-vllm, namespace: default}
spec: {model: {name: mimo-vl-7b-rl}, runtime: {name: vllm}}
`, "apply", "-f", "-")

	// The agents' part: the model's files are on both nodes, which carry its label, and
	// their metadata is in the spec.
	const path = "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL"
	label := kube.ModelLabel(v1.KindClusterBaseModel, "", "mimo-vl-7b-rl")
	for _, n := range []string{"gpu-a", "gpu-b"} {
		c.kubectl(t, "", "label", "node", n, label+"=Ready")
	}
	c.kubectl(t, "", "patch", "clusterbasemodel", "mimo-vl-7b-rl", "--type=merge", "-p",
		`{"spec":{"modelFormat":{"name":"safetensors","version":"1.0.0"},"modelFramework":{"name":"transformers","version":"4.41.2"},"modelArchitecture":"Qwen2_5_VLForConditionalGeneration","modelParameterSize":"7B"}}`)
	st := v1.ModelStatus{Status: v1.Status{Phase: v1.ModelReady, Reason: v1.ReasonReady, Message: "ready on gpu-a, gpu-b"},
		Nodes:      []v1.NodeModelStatus{{Node: "gpu-a", Phase: v1.ModelReady, Path: path}, {Node: "gpu-b", Phase: v1.ModelReady, Path: path}},
		NodesReady: []string{"gpu-a", "gpu-b"}, State: "Ready"}
	kc, err := client.New(c.env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		u, _ := kube.NewObject(v1.KindClusterBaseModel)
		if err := kc.Get(ctx, types.NamespacedName{Name: "mimo-vl-7b-rl"}, u); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		u.Object["status"] = m
		if err = kc.Status().Update(ctx, u); err == nil {
			break
		} else if i == 10 {
			t.Fatal(err)
		}
	}

	for _, s := range []struct{ ns, name, model string }{{"mimo-vl-7b-rl", "mimo-vl-7b-rl", "XiaomiMiMo/MiMo-VL-7B-RL"}, {"default", "mimo-vllm", "mimo-vl-7b-rl"}} {
		var addr string
		eventually(t, "InferenceService "+s.ns+"/"+s.name+" Ready with an endpoint", 60*time.Second, func() (bool, string) {
			u, _ := kube.NewObject(v1.KindInferenceService)
			if err := kc.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: s.name}, u); err != nil {
				return false, err.Error()
			}
			phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
			eps, _, _ := unstructured.NestedSlice(u.Object, "status", "endpoints")
			b, _ := json.Marshal(u.Object["status"])
			if phase != "Ready" || len(eps) != 1 {
				return false, string(b)
			}
			addr, _ = eps[0].(map[string]any)["address"].(string)
			return addr != "", string(b)
		})
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}],"max_tokens":8}`, s.model)
		resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: chat at its endpoint %s: %v", s.name, addr, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"choices"`) {
			t.Errorf("%s: chat at %s: %d %s", s.name, addr, resp.StatusCode, b)
		}
		t.Logf("%s/%s Ready at %s; a chat request answered", s.ns, s.name, addr)
	}
	t.Logf("kubectl get pods -A -o wide:\n%s", c.kubectl(t, "", "get", "pods", "-A", "-o", "wide"))

	// The gateway in the cluster (internal/kube/gwsource) reaches the engine at the address
	// and port of its EndpointSlice.
	c.kubectl(t, `apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: lab, namespace: default}
spec:
  models: [{name: mimo, targets: [{service: mimo-vllm}]}]
`, "apply", "-f", "-")
	src, err := gwsource.New(c.env.Config, gwsource.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(gateway.Options{Source: src, HealthInterval: 100 * time.Millisecond})
	ran := make(chan error, 1)
	go func() { ran <- gw.Run(mctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = gw.Serve(mctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("gateway: %v", err)
		}
		<-served
	})
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"mimo","messages":[{"role":"user","content":"hello"}],"max_tokens":8}`))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			route := resp.Header.Get("X-Citadel-Route")
			if resp.StatusCode == http.StatusOK && strings.Contains(route, "mimo-vllm") {
				t.Logf("through the gateway: 200 from %s", route)
				break
			}
			last = fmt.Sprintf("%d %s %s", resp.StatusCode, route, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("chat through the gateway: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
