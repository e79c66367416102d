package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/test/k8s"
)

const ns = "citadel"

// safetensors is a small valid safetensors file with one BF16 tensor.
func safetensors(rows, cols int) []byte {
	n := rows * cols * 2
	hdr, _ := json.Marshal(map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"w":            map[string]any{"dtype": "BF16", "shape": []int{rows, cols}, "data_offsets": []int{0, n}},
	})
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(out, hdr...)
	return append(out, make([]byte, n)...)
}

func hfRepo(t *testing.T, dir, name string) {
	t.Helper()
	d := filepath.Join(dir, "hf", filepath.FromSlash(name))
	cfg := `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","torch_dtype":"bfloat16","max_position_embeddings":4096}`
	write(t, filepath.Join(d, "config.json"), []byte(cfg))
	write(t, filepath.Join(d, "model.safetensors"), safetensors(512, 512))
}

// ollamaRepo puts ollama://tiny:1b into a mirror directory: a GGUF with a
// little metadata and no tensors.
func ollamaRepo(t *testing.T, dir string) {
	t.Helper()
	var b bytes.Buffer
	u32 := func(v uint32) { _ = binary.Write(&b, binary.LittleEndian, v) }
	u64 := func(v uint64) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { u64(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	u32(3)
	u64(0)
	u64(2)
	str("general.architecture")
	u32(8)
	str("llama")
	str("llama.context_length")
	u32(4)
	u32(4096)
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	b.Write(make([]byte, 64<<10))
	weights, cfg := b.Bytes(), []byte(`{"model_format":"gguf","model_family":"llama"}`)
	wsum, csum := sha256.Sum256(weights), sha256.Sum256(cfg)
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":%d}]}`,
		hex.EncodeToString(csum[:]), len(cfg), hex.EncodeToString(wsum[:]), len(weights))
	write(t, filepath.Join(dir, "ollama", "blobs", "sha256-"+hex.EncodeToString(wsum[:])), weights)
	write(t, filepath.Join(dir, "ollama", "blobs", "sha256-"+hex.EncodeToString(csum[:])), cfg)
	write(t, filepath.Join(dir, "ollama", "manifests", "registry.ollama.ai", "library", "tiny", "1b"), []byte(man))
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type cluster struct {
	env  *k8s.Env
	cs   kubernetes.Interface
	root string
}

// node is a fake node and its agent: hostPrefix and modelsRoot as the agent got them.
type node struct {
	name, hostPrefix, modelsRoot string
}

// hostPath is where a reported path is on the test's disk.
func (n node) hostPath(p string) string { return filepath.Join(n.hostPrefix, p) }

func startCluster(t *testing.T) *cluster {
	t.Helper()
	e := k8s.Start(t)
	start := time.Now()
	root := k8s.RepoRoot(t)
	// The agent reads only the two model kinds: their CRDs are enough (the
	// others are large and take seconds to establish).
	e.MustKubectl(nil, "apply", "-f", filepath.Join(root, "charts/citadel/crds/ome.io_clusterbasemodels.yaml"), "-f", filepath.Join(root, "charts/citadel/crds/ome.io_basemodels.yaml"))
	e.MustKubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "clusterbasemodels.ome.io", "basemodels.ome.io")
	t.Logf("CRDs established in %v", time.Since(start).Round(time.Millisecond))
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ns, "team-a", "team-b"} {
		if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster{env: e, cs: cs, root: root}
	c.agentRBAC(t)
	return c
}

// agentSA is the agents' service account, which the test's agents
// impersonate: they have the permissions the chart gives them, no more.
const agentSA = "system:serviceaccount:" + ns + ":citadel-agent"

// agentRBAC grants the agents' service account what the chart's
// rbac-agent.yaml grants, with agent.secrets.clusterWide=false and
// agent.secrets.namespaces [team-a]: Secrets in team-b are forbidden.
func (c *cluster) agentRBAC(t *testing.T) {
	t.Helper()
	ctx, rbac := t.Context(), c.cs.RbacV1()
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "citadel-agent", Namespace: ns}}
	for name, rules := range map[string][]rbacv1.PolicyRule{
		"citadel-agent": {
			{APIGroups: []string{"ome.io"}, Resources: []string{"clusterbasemodels", "basemodels"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "patch"}},
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		},
		"citadel-agent-secrets": {{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}},
	} {
		if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "citadel-agent"}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "citadel-agent"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "citadel-agent"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update", "patch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update", "patch"}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "citadel-agent"}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "citadel-agent"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ns, "team-a"} {
		c.grantSecrets(t, n)
	}
}

func (c *cluster) grantSecrets(t *testing.T, namespace string) {
	t.Helper()
	if _, err := c.cs.RbacV1().RoleBindings(namespace).Create(t.Context(), &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "citadel-agent-secrets"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "citadel-agent", Namespace: ns}},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "citadel-agent-secrets"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) addNode(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	if _, err := c.cs.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// startAgent runs an agent in this process until the test ends, or until
// the function it returns is called.
func (c *cluster) startAgent(t *testing.T, n node, hub string) (stop func()) {
	t.Helper()
	cfg := rest.CopyConfig(c.env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: agentSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	a := New(Options{
		Config: cfg, Node: n.name, Namespace: ns, ModelsRoot: n.modelsRoot, HostPrefix: n.hostPrefix, Holder: "agent-" + n.name,
		Pull:   pull.Options{HFEndpoint: hub, OllamaRegistry: strings.TrimPrefix(hub, "http://"), OllamaInsecure: true, StallTimeout: 5 * time.Second},
		Resync: time.Second, LeaseRenew: 500 * time.Millisecond, ProgressEvery: 200 * time.Millisecond, RetryBase: time.Hour,
		Logger: slog.New(slog.NewTextHandler(testWriter{t, n.name}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent %s: %v", n.name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct {
	t    *testing.T
	node string
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.node, strings.TrimSpace(string(b)))
	return len(b), nil
}

// entry returns a node's entry of a model, if any.
func (c *cluster) entry(t *testing.T, node, key string) (kube.NodeEntry, bool) {
	t.Helper()
	cm, err := c.cs.CoreV1().ConfigMaps(ns).Get(t.Context(), node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return kube.NodeEntry{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	data, ok := cm.Data[key]
	if !ok {
		return kube.NodeEntry{}, false
	}
	e, err := kube.ParseEntry(node, key, data)
	if err != nil {
		t.Fatal(err)
	}
	return e, true
}

func (c *cluster) label(t *testing.T, node, label string) (string, bool) {
	t.Helper()
	n, err := c.cs.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := n.Labels[label]
	return v, ok
}

// waitEntry waits until the node's entry of a model satisfies ok.
func (c *cluster) waitEntry(t *testing.T, node, key string, what string, ok func(kube.NodeEntry, bool) bool) kube.NodeEntry {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, found := c.entry(t, node, key)
		if ok(e, found) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s, entry %s: waited 30 s for %s; found=%v, entry %+v", node, key, what, found, e)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) waitReady(t *testing.T, node, key string) kube.NodeEntry {
	t.Helper()
	return c.waitEntry(t, node, key, "Ready", func(e kube.NodeEntry, found bool) bool { return found && e.Status == kube.EntryReady })
}

func (c *cluster) waitGone(t *testing.T, node, kind, namespace, name string) {
	t.Helper()
	c.waitEntry(t, node, kube.ModelEntryKey(kind, namespace, name), "no entry", func(_ kube.NodeEntry, found bool) bool { return !found })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := c.label(t, node, kube.ModelLabel(kind, namespace, name)); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s still has label %s", node, kube.ModelLabel(kind, namespace, name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) apply(t *testing.T, yaml string) {
	t.Helper()
	c.env.MustKubectl([]byte(yaml), "apply", "-f", "-")
}

func dynamicClient(t *testing.T, c *cluster) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(c.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func cbm(name, uri string, extra string) string {
	return fmt.Sprintf("apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: %s}\nspec:\n  storage:\n    storageUri: %s\n%s", name, uri, extra)
}

// TestAgents runs two agents, for two fake nodes, against a real API server
// and a mirror standing in for the Hugging Face Hub and Ollama's registry.
func TestAgents(t *testing.T) {
	c := startCluster(t)
	mdir := t.TempDir()
	hfRepo(t, mdir, "org/tiny")
	hfRepo(t, mdir, "org/other")
	hfRepo(t, mdir, "org/gated")
	hfRepo(t, mdir, "org/keep")
	hfRepo(t, mdir, "org/slow")
	write(t, filepath.Join(mdir, "hf", "org", "slow", ".mirror.json"), []byte(`{"faults": [{"kind": "throttle", "files": "model.safetensors", "rate": 150000}]}`))
	hfRepo(t, mdir, "XiaomiMiMo/MiMo-VL-7B-RL")
	ollamaRepo(t, mdir)
	_, hub := mirrortest.Start(t, mirror.Options{Dir: mdir}, nil)

	_, raidErr := os.Stat("/raid/models/XiaomiMiMo")
	// a sees the node's disk under a host prefix, with the chart's default
	// models root; b has its models root in a temporary directory.
	a := node{name: "gpu-a", hostPrefix: t.TempDir(), modelsRoot: DefaultModelsRoot}
	b := node{name: "gpu-b", modelsRoot: filepath.Join(t.TempDir(), "models")}
	c.addNode(t, a.name, map[string]string{"gpu": "a100", "zone": "1"})
	c.addNode(t, b.name, map[string]string{"gpu": "h100", "zone": "2"})
	c.startAgent(t, a, hub)
	stopB := c.startAgent(t, b, hub)

	t.Run("lease", func(t *testing.T) {
		var first *metav1.MicroTime
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := c.cs.CoordinationV1().Leases(ns).Get(t.Context(), kube.AgentLease(a.name), metav1.GetOptions{})
			if err == nil {
				if *l.Spec.HolderIdentity != "agent-gpu-a" || *l.Spec.LeaseDurationSeconds != kube.AgentLeaseDurationSeconds {
					t.Fatalf("lease %+v", l.Spec)
				}
				if first == nil {
					first = l.Spec.RenewTime
				} else if l.Spec.RenewTime.After(first.Time) {
					return // renewed
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease %s not written and renewed within 10 s (err %v)", kube.AgentLease(a.name), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	tinyKey := kube.ModelEntryKey(v1.KindClusterBaseModel, "", "tiny")
	t.Run("hf model on both nodes", func(t *testing.T) {
		c.apply(t, cbm("tiny", "hf://org/tiny", ""))
		for _, n := range []node{a, b} {
			e := c.waitReady(t, n.name, tinyKey)
			if e.Name != "tiny" || e.UID == "" || e.Generation != 1 || e.Citadel.Node != n.name || e.Citadel.Phase != v1.ModelReady {
				t.Errorf("%s: entry %+v", n.name, e)
			}
			if n.hostPrefix != "" && strings.Contains(e.Citadel.Path+e.Citadel.Store+e.Citadel.Message, n.hostPrefix) {
				t.Errorf("%s: the entry reports the host prefix: path %s, message %s", n.name, e.Citadel.Path, e.Citadel.Message)
			}
			want := filepath.Join(n.modelsRoot, "hub") + "/models--org--tiny/snapshots/"
			if !strings.HasPrefix(e.Citadel.Path, want) || e.Citadel.Store != filepath.Join(n.modelsRoot, "hub") {
				t.Errorf("%s: path %s, store %s; want the snapshot under %s", n.name, e.Citadel.Path, e.Citadel.Store, want)
			}
			if _, err := os.Stat(n.hostPath(filepath.Join(e.Citadel.Path, "model.safetensors"))); err != nil {
				t.Errorf("%s: %v", n.name, err)
			}
			if v, _ := c.label(t, n.name, kube.ModelLabel(v1.KindClusterBaseModel, "", "tiny")); v != kube.EntryReady {
				t.Errorf("%s: label %q, want Ready", n.name, v)
			}
		}
		cm, err := c.cs.CoreV1().ConfigMaps(ns).Get(t.Context(), a.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Labels[kube.NodeStatusLabel] != "true" || cm.Labels[kube.NodeLabel] != a.name || cm.Annotations[kube.NodeNameAnnotation] != a.name || cm.Annotations[kube.ManagedByAnnotation] != ManagedBy {
			t.Errorf("ConfigMap labels %v, annotations %v", cm.Labels, cm.Annotations)
		}
		// Phase changes are Events on the model.
		deadline := time.Now().Add(10 * time.Second)
		for {
			evs, err := c.cs.CoreV1().Events("").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=tiny,involvedObject.kind=ClusterBaseModel"})
			if err != nil {
				t.Fatal(err)
			}
			ready := map[string]bool{}
			for _, ev := range evs.Items {
				if ev.Reason == v1.ReasonReady {
					ready[ev.Source.Host] = true
				}
			}
			if ready[a.name] && ready[b.name] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no Ready event from both nodes on ClusterBaseModel tiny: %d events", len(evs.Items))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("OME file verbatim", func(t *testing.T) {
		if _, err := c.cs.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token"}, StringData: map[string]string{"token": "hf_test"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.env.MustKubectl(nil, "apply", "-f", filepath.Join(c.root, "test/k8s/testdata/ome/models/XiaomiMiMo/MiMo-VL-7B-RL.yaml"))
		key := kube.ModelEntryKey(v1.KindClusterBaseModel, "", "mimo-vl-7b-rl")
		// a: storage.path lies under the models root: it is the model's view.
		ea := c.waitReady(t, a.name, key)
		if ea.Citadel.Path != "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL" || ea.Citadel.Store != "/raid/models/hub" || strings.Contains(ea.Citadel.Message, a.hostPrefix) {
			t.Errorf("a: path %s, store %s, message %q: want storage.path, the store under the root, no host prefix", ea.Citadel.Path, ea.Citadel.Store, ea.Citadel.Message)
		}
		if _, err := os.Stat(a.hostPath("/raid/models/XiaomiMiMo/MiMo-VL-7B-RL/config.json")); err != nil {
			t.Errorf("a: storage.path not placed under the host prefix: %v", err)
		}
		// b: storage.path lies outside its models root: not written.
		eb := c.waitReady(t, b.name, key)
		if !strings.HasPrefix(eb.Citadel.Path, b.modelsRoot+"/") || !strings.Contains(eb.Citadel.Message, v1.ReasonStoragePathNotUsed) || !strings.Contains(eb.Citadel.Message, "models.root") {
			t.Errorf("b: path %s, message %q: want the store under the models root and StoragePathNotUsed with models.root advice", eb.Citadel.Path, eb.Citadel.Message)
		}
		t.Logf("b's entry: %s: %s", eb.Citadel.Reason, eb.Citadel.Message)
		if _, err := os.Stat("/raid/models/XiaomiMiMo"); err == nil && raidErr != nil {
			t.Errorf("/raid/models/XiaomiMiMo was created outside the test's directories")
		}
	})

	t.Run("progress while bytes move", func(t *testing.T) {
		w, err := c.cs.CoreV1().ConfigMaps(ns).Watch(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=" + a.name})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		c.apply(t, cbm("slow", "hf://org/slow", "    nodeSelector: {gpu: a100}\n"))
		key := kube.ModelEntryKey(v1.KindClusterBaseModel, "", "slow")
		var moving []kube.NodeEntry
		var last string
		timeout := time.After(30 * time.Second)
	watch:
		for {
			select {
			case ev := <-w.ResultChan():
				cm, ok := ev.Object.(*corev1.ConfigMap)
				if !ok || cm.Data[key] == "" || cm.Data[key] == last {
					continue
				}
				last = cm.Data[key]
				e, err := kube.ParseEntry(a.name, key, last)
				if err != nil {
					t.Fatal(err)
				}
				if e.Status == kube.EntryReady {
					break watch
				}
				if p := e.Progress; p != nil && p.Phase == "Downloading" && p.CompletedBytes > 0 && p.CompletedBytes < p.TotalBytes {
					moving = append(moving, e)
				}
			case <-timeout:
				t.Fatalf("slow model not Ready within 30 s; last entry %s", last)
			}
		}
		// 524 KB at 150 KB/s: 3.5 s of bytes moving, reported every second or so.
		if len(moving) < 2 {
			t.Fatalf("%d entries while bytes moved, want at least 2 (progress at least every 5 s)", len(moving))
		}
		for i := 1; i < len(moving); i++ {
			if moving[i].Progress.CompletedBytes < moving[i-1].Progress.CompletedBytes {
				t.Errorf("progress went back: %+v after %+v", *moving[i].Progress, *moving[i-1].Progress)
			}
		}
		p := moving[len(moving)-1].Progress
		t.Logf("%d progress entries while downloading; last %d of %d bytes, %d/%d files, %d B/s", len(moving), p.CompletedBytes, p.TotalBytes, p.CompletedFiles, p.TotalFiles, p.SpeedBytesPerSec)
		if p.TotalFiles != 2 || p.TotalBytes < 500_000 {
			t.Errorf("OME progress %+v: want 2 files, 524 KB", *p)
		}
	})

	t.Run("node selector", func(t *testing.T) {
		c.apply(t, cbm("only-a", "hf://org/other", "    nodeSelector: {gpu: a100}\n"))
		key := kube.ModelEntryKey(v1.KindClusterBaseModel, "", "only-a")
		c.waitReady(t, a.name, key)
		// b's agent has had a resync since: it wrote no entry.
		time.Sleep(1500 * time.Millisecond)
		if e, ok := c.entry(t, b.name, key); ok {
			t.Errorf("b is not selected but wrote %+v", e)
		}
		// The selection moves to b, by nodeAffinity: a takes it off, b pulls it.
		c.apply(t, cbm("only-a", "hf://org/other", "    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: zone, operator: Gt, values: [\"1\"]}\n          - {key: gpu, operator: NotIn, values: [a100]}\n"))
		c.waitReady(t, b.name, key)
		c.waitGone(t, a.name, v1.KindClusterBaseModel, "", "only-a")
	})

	t.Run("invalid spec", func(t *testing.T) {
		// The CRD's schema takes a model without storageUri; the agents refuse it and go on.
		c.apply(t, "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: nowhere}\nspec:\n  storage:\n    path: /raid/models/nowhere\n")
		key := kube.ModelEntryKey(v1.KindClusterBaseModel, "", "nowhere")
		for _, n := range []node{a, b} {
			e := c.waitEntry(t, n.name, key, "Failed", func(e kube.NodeEntry, found bool) bool { return found && e.Status == kube.EntryFailed })
			if e.Citadel.Reason != v1.ReasonInvalid || !strings.Contains(e.Citadel.Message, "storageUri") {
				t.Errorf("%s: %s: %s", n.name, e.Citadel.Reason, e.Citadel.Message)
			}
		}
		c.env.MustKubectl(nil, "delete", "clusterbasemodel", "nowhere")
		for _, n := range []node{a, b} {
			c.waitGone(t, n.name, v1.KindClusterBaseModel, "", "nowhere")
		}
	})

	t.Run("node labels change", func(t *testing.T) {
		c.apply(t, cbm("gold", "hf://org/other", "    nodeSelector: {tier: gold}\n"))
		key := kube.ModelEntryKey(v1.KindClusterBaseModel, "", "gold")
		label := func(v any) {
			t.Helper()
			b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{"tier": v}}})
			if _, err := c.cs.CoreV1().Nodes().Patch(t.Context(), a.name, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		label("gold")
		c.waitReady(t, a.name, key)
		label(nil)
		c.waitGone(t, a.name, v1.KindClusterBaseModel, "", "gold")
		if _, ok := c.entry(t, b.name, key); ok {
			t.Error("b is not gold but wrote an entry")
		}
	})

	t.Run("missing secret, then created", func(t *testing.T) {
		c.apply(t, "apiVersion: ome.io/v1beta1\nkind: BaseModel\nmetadata: {name: gated, namespace: team-a}\nspec:\n  storage:\n    storageUri: hf://org/gated\n    key: hf-token\n")
		key := kube.ModelEntryKey(v1.KindBaseModel, "team-a", "gated")
		for _, n := range []node{a, b} {
			e := c.waitEntry(t, n.name, key, "Failed", func(e kube.NodeEntry, found bool) bool { return found && e.Status == kube.EntryFailed })
			t.Logf("%s: %s: %s", n.name, e.Citadel.Reason, e.Citadel.Message)
			if e.Citadel.Reason != v1.ReasonSecretNotFound || !strings.Contains(e.Citadel.Message, "team-a/hf-token") || !strings.Contains(e.Citadel.Message, "kubectl create secret") {
				t.Errorf("%s: %s: %s", n.name, e.Citadel.Reason, e.Citadel.Message)
			}
			if v, _ := c.label(t, n.name, kube.ModelLabel(v1.KindBaseModel, "team-a", "gated")); v != kube.EntryFailed {
				t.Errorf("%s: label %q, want Failed", n.name, v)
			}
		}
		if _, err := c.cs.CoreV1().Secrets("team-a").Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token"}, StringData: map[string]string{"token": "hf_test"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []node{a, b} {
			c.waitReady(t, n.name, key)
		}
	})

	t.Run("forbidden secret", func(t *testing.T) {
		if _, err := c.cs.CoreV1().Secrets("team-b").Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token"}, StringData: map[string]string{"token": "hf_test"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.apply(t, "apiVersion: ome.io/v1beta1\nkind: BaseModel\nmetadata: {name: gated, namespace: team-b}\nspec:\n  storage:\n    storageUri: hf://org/gated\n    key: hf-token\n    nodeSelector: {gpu: a100}\n")
		key := kube.ModelEntryKey(v1.KindBaseModel, "team-b", "gated")
		e := c.waitEntry(t, a.name, key, "Failed", func(e kube.NodeEntry, found bool) bool { return found && e.Status == kube.EntryFailed })
		if e.Citadel.Reason != v1.ReasonSecretNotFound || !strings.Contains(e.Citadel.Message, "team-b/hf-token") || !strings.Contains(e.Citadel.Message, "may not read") || !strings.Contains(e.Citadel.Message, agentSA) {
			t.Errorf("%s: %s", e.Citadel.Reason, e.Citadel.Message)
		}
		t.Logf("entry: %s: %s", e.Citadel.Reason, e.Citadel.Message)
		// Granted: read again on a resync, without re-applying the model.
		c.grantSecrets(t, "team-b")
		c.waitReady(t, a.name, key)
	})

	t.Run("ollama model", func(t *testing.T) {
		c.apply(t, cbm("tiny-gguf", "ollama://tiny:1b", ""))
		for _, n := range []node{a, b} {
			e := c.waitReady(t, n.name, kube.ModelEntryKey(v1.KindClusterBaseModel, "", "tiny-gguf"))
			if e.Citadel.OllamaName != "tiny:1b" || e.Citadel.Store != filepath.Join(n.modelsRoot, "ollama") {
				t.Errorf("%s: ollama name %q, store %q", n.name, e.Citadel.OllamaName, e.Citadel.Store)
			}
			if _, err := os.Stat(n.hostPath(e.Citadel.Path)); err != nil {
				t.Errorf("%s: %v", n.name, err)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		// The controller holds a finalizer: the agents act on the deletionTimestamp.
		patch := []byte(`{"metadata":{"finalizers":["` + kube.ClusterBaseModelFinalizer + `"]}}`)
		gvr, _ := kube.GVR(v1.KindClusterBaseModel)
		dyn := dynamicClient(t, c)
		if _, err := dyn.Resource(gvr).Patch(t.Context(), "tiny", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		var snaps []string
		for _, n := range []node{a, b} {
			e, _ := c.entry(t, n.name, tinyKey)
			snaps = append(snaps, n.hostPath(e.Citadel.Path))
		}
		c.env.MustKubectl(nil, "delete", "clusterbasemodel", "tiny", "--wait=false")
		for i, n := range []node{a, b} {
			c.waitGone(t, n.name, v1.KindClusterBaseModel, "", "tiny")
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, err := os.Stat(snaps[i]); os.IsNotExist(err) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s: %s still there after the model was deleted", n.name, snaps[i])
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		// Other models are untouched.
		for _, n := range []node{a, b} {
			if e, ok := c.entry(t, n.name, kube.ModelEntryKey(v1.KindClusterBaseModel, "", "tiny-gguf")); !ok || e.Status != kube.EntryReady {
				t.Errorf("%s: tiny-gguf's entry %+v after tiny was deleted", n.name, e)
			}
		}
		if _, err := dyn.Resource(gvr).Patch(t.Context(), "tiny", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}

		// OME's reserve-model-artifact label keeps the files of a deleted model.
		c.apply(t, strings.Replace(cbm("keep", "hf://org/keep", "    nodeSelector: {gpu: h100}\n"), "metadata: {name: keep}", "metadata: {name: keep, labels: {"+kube.ReserveArtifactLabel+": \"true\"}}", 1))
		e := c.waitReady(t, b.name, kube.ModelEntryKey(v1.KindClusterBaseModel, "", "keep"))
		c.env.MustKubectl(nil, "delete", "clusterbasemodel", "keep")
		c.waitGone(t, b.name, v1.KindClusterBaseModel, "", "keep")
		time.Sleep(500 * time.Millisecond) // the local agent has collected what it collects
		if _, err := os.Stat(filepath.Join(e.Citadel.Path, "model.safetensors")); err != nil {
			t.Errorf("files of a model labelled %s were removed: %v", kube.ReserveArtifactLabel, err)
		}
	})

	t.Run("deleted while the agent was away", func(t *testing.T) {
		// only-a is on b since its selection moved there.
		key := kube.ModelEntryKey(v1.KindClusterBaseModel, "", "only-a")
		e, ok := c.entry(t, b.name, key)
		if !ok {
			t.Fatal("no entry of only-a on b")
		}
		stopB()
		c.env.MustKubectl(nil, "delete", "clusterbasemodel", "only-a")
		if _, ok := c.entry(t, b.name, key); !ok {
			t.Fatal("b's entry went while its agent was stopped")
		}
		c.startAgent(t, b, hub)
		c.waitGone(t, b.name, v1.KindClusterBaseModel, "", "only-a")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(e.Citadel.Path); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still there after the restarted agent removed the model", e.Citadel.Path)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// What b still holds is kept and reported as it was.
		c.waitReady(t, b.name, kube.ModelEntryKey(v1.KindBaseModel, "team-a", "gated"))
	})
}
