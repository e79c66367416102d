package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/sim/simtest"
	"citadel.dev/citadel/test/k8s"
	"citadel.dev/citadel/test/k8s/kubelet"
)

// The OME fixtures (OME's own files, unchanged) and the seed-001 example.
var (
	omeModel   = "test/k8s/testdata/ome/models/XiaomiMiMo/MiMo-VL-7B-RL.yaml"
	omeRuntime = "test/k8s/testdata/ome/runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml"
	omeISVC    = "test/k8s/testdata/ome/samples/isvc/XiaomiMiMo/mimo-vl-7b-rl.yaml"
	seedDir    = "examples/seed-001"
)

// missingSecret is a BaseModel whose token Secret does not exist.
const missingSecret = `apiVersion: ome.io/v1beta1
kind: BaseModel
metadata: {name: gated, namespace: team}
spec:
  modelCapabilities: [TEXT_GENERATION]
  storage:
    storageUri: hf://XiaomiMiMo/MiMo-VL-7B-RL
    key: team-hf-token
`

// nowhere is a model that no node with an agent may hold.
const nowhere = `apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: nowhere}
spec:
  modelCapabilities: [TEXT_GENERATION]
  storage:
    storageUri: ollama://qwen2.5:7b
    nodeSelector: {pool: cpu-only}
`

// late is a model applied once the agents have stopped.
const late = `apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: late}
spec:
  modelCapabilities: [TEXT_GENERATION]
  storage: {storageUri: "ollama://qwen2.5:7b"}
`

// setup starts everything a cluster runs: the API server with the CRDs, the stand-in Hub,
// two fake nodes with four GPUs each, the controller, an agent per node and the gateway.
func setup(t *testing.T) (*cluster, string) {
	c := &cluster{t: t, root: k8s.RepoRoot(t), logDir: t.TempDir(), nodes: map[string]string{}, procs: map[string]*exec.Cmd{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.printLogs()
		}
	})
	k8s.InNetNS(t)
	c.bin = simtest.Citadel(t)
	c.env = k8s.Start(t)
	start := time.Now()
	c.kubectl("", "apply", "-f", filepath.Join(c.root, "charts/citadel/crds/"))
	// kubectl wait fails on a CRD whose status has no conditions yet: ask again.
	for i := 0; ; i++ {
		_, err := c.env.Kubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
		if err == nil {
			break
		}
		if i == 20 {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Citadel's namespace, the namespaces of OME's InferenceService and of a team, and the
	// OME model's token (spec.storage.key: hf-token): a ClusterBaseModel's Secret is in
	// Citadel's namespace. The stand-in Hub takes any token.
	c.kubectl(`apiVersion: v1
kind: Namespace
metadata: {name: `+citadelNS+`}
---
apiVersion: v1
kind: Namespace
metadata: {name: mimo-vl-7b-rl}
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: Secret
metadata: {name: hf-token, namespace: `+citadelNS+`}
stringData: {token: hf_stand_in}
`, "apply", "-f", "-")
	t.Logf("CRDs installed in %v", time.Since(start).Round(time.Millisecond))

	mdir := t.TempDir()
	c.run("mirror", "seed", mdir, "--example", "seed-001")
	mirror := freeAddr(t)
	c.start("mirror", nil, "mirror", "serve", "--dir", mdir, "--addr", mirror)
	c.mirror = "http://" + mirror
	waitHTTP(t, c.mirror+"/api/models/XiaomiMiMo/MiMo-VL-7B-RL")

	var nodes []kubelet.Node
	for _, n := range []string{"gpu-a", "gpu-b"} {
		c.nodes[n] = filepath.Join(t.TempDir(), n)
		nodes = append(nodes, kubelet.Node{Name: n, GPUs: 4, Dir: c.nodes[n], Labels: map[string]string{
			"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "4", "nvidia.com/gpu.memory": "81559",
		}})
	}
	klog := c.logFile("kubelet")
	kubelet.Start(t, c.env.Config, kubelet.Options{Nodes: nodes, Citadel: c.bin, Backoff: time.Second, Logf: func(format string, args ...any) {
		fmt.Fprintf(klog, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}})

	kc := c.env.Kubeconfig
	c.start("controller", nil, "controller", "--kubeconfig", kc, "--namespace", citadelNS, "--metrics-addr", "0", "--health-addr", "0")
	for _, n := range []string{"gpu-a", "gpu-b"} {
		c.start("agent-"+n, []string{"HF_ENDPOINT=" + c.mirror}, "agent", "--kubeconfig", kc, "--namespace", citadelNS, "--node", n,
			"--host-prefix", c.nodes[n], "--ollama-registry", c.mirror)
	}
	gw := freeAddr(t)
	c.start("gateway", nil, "gateway", "--kubeconfig", kc, "--addr", gw)
	return c, "http://" + gw
}

// TestKubernetesMode is issue 17's "done": OME's own model, runtime and InferenceService
// files and the seed-001 example applied with kubectl to a cluster of two fake GPU nodes;
// the models are pulled on both nodes by their agents (kubectl get shows it); the engines
// run and their InferenceServices are Ready with endpoints; requests through the gateway
// are routed by model, alias and task; the reasons a user reads when something is wrong
// (no agent on the nodes a model selects, a missing token Secret) come with their fix in
// kubectl describe; citadel serve, given the same files, says the same of the same models;
// and once the agents stop, a new model says their nodes stopped reporting.
func TestKubernetesMode(t *testing.T) {
	began := time.Now()
	// OME's files name storage.path /raid/models/...: every node's copy belongs in the node's
	// directory, and nothing may be written at the real path.
	if _, err := os.Stat("/raid/models/XiaomiMiMo"); err != nil {
		t.Cleanup(func() {
			if _, err := os.Stat("/raid/models/XiaomiMiMo"); err == nil {
				t.Errorf("/raid/models/XiaomiMiMo was created outside the test's directories")
			}
		})
	}
	c, gw := setup(t)
	t.Logf("cluster up in %v", time.Since(began).Round(time.Millisecond))
	ctx := t.Context()

	// OME's files, unchanged.
	for _, f := range []string{omeModel, omeRuntime, omeISVC} {
		c.kubectl("", "apply", "-f", filepath.Join(c.root, f))
	}
	took := eventually(t, "ClusterBaseModel mimo-vl-7b-rl Ready on gpu-a and gpu-b", 60*time.Second, func() (bool, string) {
		o, st := c.get("clusterbasemodel", "", "mimo-vl-7b-rl")
		ready := 0
		for _, n := range o.Status.Nodes {
			if n.Phase == "Ready" && n.Path == "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL" {
				ready++
			}
		}
		return o.Status.Phase == "Ready" && ready == 2, st
	})
	t.Logf("model Ready on both nodes %v after apply", took.Round(time.Millisecond))
	table := c.kubectl("", "get", "clusterbasemodels")
	t.Logf("kubectl get clusterbasemodels:\n%s", indent(table))
	found := false
	for _, row := range columns(table) {
		if row["NAME"] != "mimo-vl-7b-rl" {
			continue
		}
		found = true
		if row["PHASE"] != "Ready" || !strings.Contains(row["NODES READY"], "gpu-a") || !strings.Contains(row["NODES READY"], "gpu-b") {
			t.Errorf("kubectl get clusterbasemodels: mimo-vl-7b-rl row %v: want Ready with gpu-a and gpu-b in NODES READY", row)
		}
	}
	if !found {
		t.Errorf("kubectl get clusterbasemodels has no row mimo-vl-7b-rl")
	}
	for n, dir := range c.nodes { // the agents wrote under each node's own filesystem
		if _, err := os.Stat(filepath.Join(dir, "raid/models/XiaomiMiMo/MiMo-VL-7B-RL/config.json")); err != nil {
			t.Errorf("node %s: the model's files are not at its storage.path: %v", n, err)
		}
	}

	c.wantFilled(t, "mimo-vl-7b-rl", "modelFormat")
	// The files say transformers 4.51.3 and OME's runtime 4.41.2, which OME compares for
	// equality: the service says so and how to fix the runtime, as citadel serve does. The
	// user applies the fix it gives, and the service goes on.
	eventually(t, "InferenceService mimo-vl-7b-rl/mimo-vl-7b-rl RuntimeIncompatible with the fix", 60*time.Second, func() (bool, string) {
		o, st := c.get("inferenceservice", "mimo-vl-7b-rl", "mimo-vl-7b-rl")
		return o.Status.Reason == "RuntimeIncompatible" && strings.Contains(o.Status.Message, `version: "4.51.3"`), st
	})
	c.kubectl("", "patch", "clusterservingruntime", "srt-mimo-vl-7b-rl", "--type=json", "-p",
		`[{"op":"add","path":"/spec/supportedModelFormats/-","value":{"modelFormat":{"name":"safetensors","version":"1.0.0"},`+
			`"modelFramework":{"name":"transformers","version":"4.51.3"},"modelArchitecture":"Qwen2_5_VLForConditionalGeneration","autoSelect":true}}]`)
	// Then the size: the runtime says 6B-8B, and the files count 8.29B parameters.
	eventually(t, "InferenceService mimo-vl-7b-rl/mimo-vl-7b-rl: the size range and its fix", 60*time.Second, func() (bool, string) {
		o, st := c.get("inferenceservice", "mimo-vl-7b-rl", "mimo-vl-7b-rl")
		return o.Status.Reason == "RuntimeIncompatible" && strings.Contains(o.Status.Message, "modelSizeRange: {min: 6B, max: 8.29B}"), st
	})
	c.kubectl("", "patch", "clusterservingruntime", "srt-mimo-vl-7b-rl", "--type=merge", "-p", `{"spec":{"modelSizeRange":{"min":"6B","max":"8.29B"}}}`)
	took = eventually(t, "InferenceService mimo-vl-7b-rl/mimo-vl-7b-rl Ready", 60*time.Second, func() (bool, string) {
		o, st := c.get("inferenceservice", "mimo-vl-7b-rl", "mimo-vl-7b-rl")
		return o.Status.Phase == "Ready" && len(o.Status.Endpoints) == 1 && o.Status.Endpoints[0].Ready, st
	})
	t.Logf("OME InferenceService Ready %v later:\n%s", took.Round(time.Millisecond), indent(c.kubectl("", "get", "isvc", "-A")))

	// The seed-001 example, unchanged: its models (mimo-vl-7b-rl now from the Hub's cache
	// layout instead of OME's storage.path), one InferenceService each, and the Route.
	// Citadel's built-in runtimes, which seed-001's services select, are applied as a user
	// of a cluster applies them; then the example.
	c.kubectl("", "apply", "-f", filepath.Join(c.root, "examples/runtimes"))
	c.kubectl("", "apply", "-f", filepath.Join(c.root, seedDir))
	seedApplied := time.Now()
	names := []string{"mimo-vl-7b-rl", "deepseek-r1-32b", "deepcoder-14b", "qwen2-5-7b"}
	eventually(t, "seed-001's models Ready on both nodes and its services Ready", 90*time.Second, func() (bool, string) {
		var st []string
		ok := true
		for _, n := range names {
			m, ms := c.get("clusterbasemodel", "", n)
			s, ss := c.get("inferenceservice", "default", n)
			ok = ok && m.Status.Phase == "Ready" && len(m.Status.NodesReady) == 2 && s.Status.Phase == "Ready" && len(s.Status.Endpoints) > 0
			st = append(st, "model "+n+": "+ms, "isvc "+n+": "+ss)
		}
		return ok, strings.Join(st, "\n")
	})
	t.Logf("seed-001 Ready %v after apply:\n%s", time.Since(seedApplied).Round(time.Millisecond), indent(c.kubectl("", "get", "isvc", "-A")))
	eventually(t, "Route seed-001 Ready", 30*time.Second, func() (bool, string) {
		o, st := c.get("route", "default", "seed-001")
		return o.Status.Phase == "Ready", st
	})

	// Through the gateway: by model name and alias, and by task.
	for _, tc := range []struct{ name, body, service string }{
		{"by model", openAI("mimo-vl", "Hello!", false), "mimo-vl-7b-rl"},
		{"by alias", openAI("vision", "What is in this picture?", true), "mimo-vl-7b-rl"},
		{"task general", openAI("auto", "Hello! Suggest a name for a friendly cat.", false), "mimo-vl-7b-rl"},
		{"task vision", openAI("auto", "What is in this picture?", true), "mimo-vl-7b-rl"},
		{"task code", openAI("auto", "Why does this fail?\n```python\ndef f(x):\n    return x +\n```", false), "deepcoder-14b"},
		{"task reasoning", openAI("auto", "Prove step by step that the square root of 2 is irrational.", false), "deepseek-r1-32b"},
	} {
		code, route, body, err := chat(ctx, gw+"/v1/chat/completions", tc.body)
		if err != nil || code != http.StatusOK || !strings.Contains(route, "service=default/"+tc.service+" ") {
			t.Errorf("%s: status %d, route %q, err %v, body %.300s: want 200 from %s", tc.name, code, route, err, body, tc.service)
			continue
		}
		t.Logf("through the gateway, %s: 200 from %s", tc.name, route)
	}

	// citadel test model on the cluster: the same flow and report as on one host.
	testDir := t.TempDir()
	modelFile := filepath.Join(testDir, "model.yaml")
	if err := os.WriteFile(modelFile, []byte(testedModel), 0o644); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	out, err := exec.Command(c.bin, "test", "model", "--kubeconfig", c.env.Kubeconfig, "--gateway", gw, "-f", modelFile,
		"--out", filepath.Join(testDir, "report"), "--ready-timeout", "90s").CombinedOutput()
	report, _ := os.ReadFile(filepath.Join(testDir, "report", "report.md"))
	if err != nil {
		t.Errorf("citadel test model --kubeconfig: %v\n%s\n%s", err, out, report)
	} else {
		t.Logf("citadel test model --kubeconfig passed in %v:\n%s", time.Since(began).Round(time.Millisecond), indent(string(out)))
	}

	// What a user reads when a model cannot be pulled.
	c.kubectl(nowhere, "apply", "-f", "-")
	c.kubectl(missingSecret, "apply", "-f", "-")
	took = eventually(t, "nowhere: NoAgentOnMatchingNodes", 30*time.Second, func() (bool, string) {
		o, st := c.get("clusterbasemodel", "", "nowhere")
		return o.Status.Reason == "NoAgentOnMatchingNodes", st
	})
	t.Logf("NoAgentOnMatchingNodes %v after apply", took.Round(time.Millisecond))
	eventually(t, "team/gated: SecretNotFound naming team/team-hf-token", 30*time.Second, func() (bool, string) {
		o, st := c.get("basemodel", "team", "gated")
		return o.Status.Reason == "SecretNotFound" && strings.Contains(o.Status.Message, "team/team-hf-token"), st
	})
	for _, d := range []struct{ resource, ns, name string }{{"clusterbasemodel", "", "nowhere"}, {"basemodels", "team", "gated"}} {
		args := []string{"describe", d.resource, d.name}
		if d.ns != "" {
			args = append(args, "-n", d.ns)
		}
		out := c.kubectl("", args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), indent(out))
		for _, want := range map[string][]string{
			"nowhere": {"NoAgentOnMatchingNodes", "pool", "agent.nodeSelector"},
			"gated":   {"SecretNotFound", "team/team-hf-token", "kubectl create secret generic team-hf-token -n team"},
		}[d.name] {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl describe %s %s: no %q (the cause and the fix)", d.resource, d.name, want)
			}
		}
	}
	k8sPhases := phases(t, func(kind, ns, name string) object {
		o, _ := c.get(kind, ns, name)
		return o
	})

	// citadel serve, given the same files, says the same of the same models.
	serve := c.serve(t)
	if fmt.Sprint(serve) != fmt.Sprint(k8sPhases) {
		t.Errorf("phases and reasons differ:\n  kubernetes:    %v\n  citadel serve: %v", k8sPhases, serve)
	}
	t.Logf("phases and reasons, the same on both: %v", k8sPhases)

	// The agents stop: their Leases are no longer renewed and expire (within 30 s), after
	// which a model applied now says that the agents of its nodes stopped reporting, and
	// where to look.
	stopped := time.Now()
	for n := range c.nodes {
		c.stop("agent-" + n)
	}
	c.kubectl(late, "apply", "-f", "-")
	eventually(t, "late: AgentNotReporting once the agents' Leases expire", 40*time.Second, func() (bool, string) {
		o, st := c.get("clusterbasemodel", "", "late")
		return o.Status.Reason == "AgentNotReporting" && strings.Contains(o.Status.Message, "gpu-a: the agent stopped reporting") &&
			strings.Contains(o.Status.Message, "gpu-b: the agent stopped reporting"), st
	})
	t.Logf("AgentNotReporting %v after the agents stopped", time.Since(stopped).Round(time.Millisecond))
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// modelChecked are the models whose phase and reason are compared between the cluster and
// citadel serve.
var modelChecked = []struct{ kind, ns, name string }{
	{"clusterbasemodels", "", "mimo-vl-7b-rl"},
	{"clusterbasemodels", "", "qwen2-5-7b"},
	{"basemodels", "team", "gated"},
}

func phases(t *testing.T, get func(kind, ns, name string) object) []string {
	var out []string
	for _, m := range modelChecked {
		o := get(m.kind, m.ns, m.name)
		out = append(out, fmt.Sprintf("%s=%s/%s", m.name, o.Status.Phase, o.Status.Reason))
	}
	return out
}

// serve runs citadel serve on the same stand-in Hub, applies the same files with citadel
// apply, and returns the models' phases and reasons once they settle.
func (c *cluster) serve(t *testing.T) []string {
	admin, gw := freeAddr(t), freeAddr(t)
	c.start("serve", []string{"HF_ENDPOINT=" + c.mirror}, "serve", "--data-dir", t.TempDir(), "--admin-addr", admin, "--gateway-addr", gw,
		"--gpus", "4xh100-sxm", "--simulate-engines", "--sim-time-scale", "0", "--ollama-registry", c.mirror, "--next-step=false")
	waitHTTP(t, "http://"+admin+"/healthz")
	server := "http://" + admin
	// A ClusterBaseModel's token Secret is in namespace ome on one host.
	c.run("secret", "create", "hf-token", "-n", "ome", "--from-literal", "token=hf_stand_in", "--server", server)
	// On one host storage.path is written where it says: OME's /raid/models/... is moved
	// into the test's directory (the only change to the file), so that nothing is written
	// outside it.
	ome, err := os.ReadFile(filepath.Join(c.root, omeModel))
	if err != nil {
		t.Fatal(err)
	}
	omeCopy := filepath.Join(t.TempDir(), filepath.Base(omeModel))
	if err := os.WriteFile(omeCopy, bytes.ReplaceAll(ome, []byte("/raid/models/"), []byte(filepath.Join(t.TempDir(), "raid", "models")+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{omeCopy, filepath.Join(c.root, seedDir, "models.yaml")} {
		c.run("apply", "-f", f, "--server", server)
	}
	in := filepath.Join(t.TempDir(), "gated.yaml")
	if err := os.WriteFile(in, []byte(missingSecret), 0o644); err != nil {
		t.Fatal(err)
	}
	c.run("apply", "-f", in, "--server", server)
	var got []string
	eventually(t, "citadel serve: the models settled", 60*time.Second, func() (bool, string) {
		got = phases(t, func(kind, ns, name string) object {
			args := []string{"get", kind, name, "-o", "json", "--server", server}
			if ns != "" {
				args = append(args, "-n", ns)
			}
			var o object
			_ = json.Unmarshal([]byte(c.run(args...)), &o)
			return o
		})
		settled := 0
		for _, p := range got {
			if strings.Contains(p, "=Ready/") || strings.Contains(p, "=Failed/") {
				settled++
			}
		}
		return settled == len(got), strings.Join(got, "\n")
	})
	return got
}

// wantFilled waits until the controller has filled the model's empty spec field from what
// the agents read in its files (the entry's config), as the single-host agent fills it:
// the annotation lists it and a MetadataFilled event says so. OME's model file sets no
// modelFormat, which runtime selection needs.
func (c *cluster) wantFilled(t *testing.T, name, field string) {
	t.Helper()
	eventually(t, "ClusterBaseModel "+name+": spec."+field+" filled from the model's files", 30*time.Second, func() (bool, string) {
		out, err := c.env.Kubectl(nil, "get", "clusterbasemodel", name, "-o", "json")
		if err != nil {
			return false, err.Error()
		}
		var m struct {
			Metadata struct{ Annotations map[string]string }
			Spec     map[string]json.RawMessage
		}
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			return false, err.Error()
		}
		_, ok := m.Spec[field]
		return ok && strings.Contains(m.Metadata.Annotations[v1.AnnotationFilledFromFiles], field), out
	})
	if ev := c.kubectl("", "describe", "clusterbasemodel", name); !strings.Contains(ev, "MetadataFilled") {
		t.Errorf("kubectl describe clusterbasemodel %s shows no MetadataFilled event:\n%s", name, ev)
	}
}

// testedModel is what `citadel test model -f` applies on the cluster: an Ollama model of the
// stand-in registry under a name of its own.
const testedModel = `apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata:
  name: qwen-tested
spec:
  storage:
    storageUri: ollama://qwen2.5:7b
`
