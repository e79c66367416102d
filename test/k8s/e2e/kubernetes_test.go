package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/internal/sim/simtest"
	"citadel.dev/citadel/test/k8s"
	"citadel.dev/citadel/test/k8s/kubelet"
)

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

// setup starts everything a cluster runs: the API server with the CRDs, the stand-in Hub,
// two fake nodes with four GPUs each, the controller, an agent per node and the gateway.
func setup(t *testing.T) *cluster {
	c := &cluster{t: t, root: k8s.RepoRoot(t), logDir: t.TempDir(), nodes: map[string]string{}, procs: map[string]*exec.Cmd{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.printLogs()
		}
	})
	c.bin = simtest.Citadel(t)
	c.env = k8s.Start(t)
	start := time.Now()
	c.kubectl("", "apply", "-f", filepath.Join(c.root, "charts/citadel/crds/"))
	c.kubectl("", "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
	for _, ns := range []string{citadelNS, "mimo-vl-7b-rl", "team"} {
		c.kubectl("", "create", "namespace", ns)
	}
	// The OME model's token (spec.storage.key: hf-token): a ClusterBaseModel's Secret is in
	// Citadel's namespace. The stand-in Hub takes any token.
	c.kubectl("", "-n", citadelNS, "create", "secret", "generic", "hf-token", "--from-literal=token=hf_stand_in")
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
	kubelet.Start(t, c.env.Config, kubelet.Options{Nodes: nodes, Citadel: c.bin, Backoff: time.Second, Logf: func(string, ...any) {}})

	kc := c.env.Kubeconfig
	c.start("controller", nil, "controller", "--kubeconfig", kc, "--namespace", citadelNS, "--metrics-addr", "0", "--health-addr", "0")
	return c
}

// TestKubernetesMode is issue 17's "done", as far as its pieces have landed: a cluster of
// two fake GPU nodes with Citadel's controller; a model whose node selection matches no
// node with an agent says so (NoAgentOnMatchingNodes) at once, and kubectl describe shows
// the cause and the fix.
func TestKubernetesMode(t *testing.T) {
	began := time.Now()
	c := setup(t)
	t.Logf("cluster up in %v", time.Since(began).Round(time.Millisecond))

	// What a user reads when a model cannot be pulled.
	c.kubectl(nowhere, "apply", "-f", "-")
	took := eventually(t, "nowhere: NoAgentOnMatchingNodes", 30*time.Second, func() (bool, string) {
		o, st := c.get("clusterbasemodel", "", "nowhere")
		return o.Status.Reason == "NoAgentOnMatchingNodes", st
	})
	t.Logf("NoAgentOnMatchingNodes %v after apply", took.Round(time.Millisecond))
	for _, d := range []struct{ resource, ns, name string }{{"clusterbasemodel", "", "nowhere"}} {
		args := []string{"describe", d.resource, d.name}
		if d.ns != "" {
			args = append(args, "-n", d.ns)
		}
		out := c.kubectl("", args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), indent(out))
		for _, want := range map[string][]string{
			"nowhere": {"NoAgentOnMatchingNodes", "pool", "agent.nodeSelector"},
			"gated":   {"SecretNotFound", "team/team-hf-token", "secret create team-hf-token -n team"},
		}[d.name] {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl describe %s %s: no %q (the cause and the fix)", d.resource, d.name, want)
			}
		}
	}
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}
