package controller

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/agent"
	"citadel.dev/citadel/test/k8s"
)

const testNS = "citadel-system"

// TestMain sets controller-runtime's logger once before the tests, which start
// their API servers in parallel: k8s.Start sets it too, and the first setting
// races with a concurrent one.
func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// cluster is an API server with Citadel's CRDs, a client, and the controller.
type cluster struct {
	t   *testing.T
	e   *k8s.Env
	c   client.Client
	ctx context.Context
}

func startCluster(t *testing.T) *cluster {
	e := k8s.Start(t)
	root := k8s.RepoRoot(t)
	e.MustKubectl(nil, "apply", "-f", filepath.Join(root, "charts/citadel/crds/"))
	e.MustKubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
	c, err := client.New(e.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	k := &cluster{t: t, e: e, c: c, ctx: t.Context()}
	for _, ns := range []string{testNS, "team"} {
		k.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	// The chart's RBAC for the controller, which the managers run under.
	b, err := os.ReadFile(filepath.Join(root, "charts/citadel/templates/rbac-controller.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rbac []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.ReplaceAll(l, "{{ .Release.Namespace }}", testNS)
		if !strings.Contains(l, "{{") { // the labels' includes
			rbac = append(rbac, l)
		}
	}
	e.MustKubectl([]byte(strings.Join(rbac, "\n")), "apply", "-f", "-")
	return k
}

// asController is the API server's config as the chart's citadel-controller
// service account in testNS.
func (k *cluster) asController() *rest.Config {
	cfg := rest.CopyConfig(k.e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + testNS + ":citadel-controller",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + testNS, "system:authenticated"}}
	return cfg
}

// run starts a manager with test timings, as the chart's service account; it
// stops when stop is called or the test ends.
func (k *cluster) run(opts Options) (mgr ctrl.Manager, stop func()) {
	t := k.t
	t.Helper()
	opts.Config, opts.Namespace = k.asController(), testNS
	if opts.Resync == 0 {
		opts.Resync = 500 * time.Millisecond
	}
	mgr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop within 30 s")
		}
	}
	t.Cleanup(stop)
	return mgr, stop
}

func (k *cluster) create(o client.Object) {
	k.t.Helper()
	if err := k.c.Create(k.ctx, o); err != nil {
		k.t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
}

// node creates a Node with labels.
func (k *cluster) node(name string, labels map[string]string) {
	k.t.Helper()
	k.create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
}

// lease writes node's agent Lease, renewed at renewed, lasting d seconds.
func (k *cluster) lease(node string, renewed time.Time, d int32) {
	k.t.Helper()
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: kube.AgentLease(node), Namespace: testNS}}
	holder := "citadel-agent-" + node + "-pod"
	spec := coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &d, RenewTime: &metav1.MicroTime{Time: renewed}}
	err := k.c.Get(k.ctx, client.ObjectKeyFromObject(l), l)
	switch {
	case apierrors.IsNotFound(err):
		l.Spec = spec
		k.create(l)
	case err != nil:
		k.t.Fatal(err)
	default:
		l.Spec = spec
		if err := k.c.Update(k.ctx, l); err != nil {
			k.t.Fatal(err)
		}
	}
}

// entry writes (or, with e nil, removes) a model's entry in node's ConfigMap.
func (k *cluster) entry(node, kind, ns, name string, e *kube.NodeEntry) {
	k.t.Helper()
	key := kube.ModelEntryKey(kind, ns, name)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: testNS}}
	err := k.c.Get(k.ctx, client.ObjectKeyFromObject(cm), cm)
	if err != nil && !apierrors.IsNotFound(err) {
		k.t.Fatal(err)
	}
	exists := err == nil
	cm.Labels = map[string]string{kube.NodeStatusLabel: "true", kube.NodeLabel: node}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	if e == nil {
		delete(cm.Data, key)
	} else {
		e.Name = name
		e.Status = kube.EntryStatus(e.Citadel.Phase)
		e.Citadel.Node = node
		b, _ := json.Marshal(e)
		cm.Data[key] = string(b)
	}
	if exists {
		err = k.c.Update(k.ctx, cm)
	} else {
		err = k.c.Create(k.ctx, cm)
	}
	if err != nil {
		k.t.Fatal(err)
	}
}

func (k *cluster) apply(yaml string) {
	k.t.Helper()
	k.e.MustKubectl([]byte(yaml), "apply", "-f", "-")
}

func cbm(name, selector string) string {
	return fmt.Sprintf(`apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: %s}
spec:
  modelFormat: {name: safetensors}
  storage:
    storageUri: hf://org/%s
    nodeSelector: {%s}
`, name, name, selector)
}

// model reads a model's status and metadata.
func (k *cluster) model(kind, ns, name string) (v1.ModelStatus, metav1.Object, bool) {
	k.t.Helper()
	u, _ := kube.NewObject(kind)
	if err := k.c.Get(k.ctx, types.NamespacedName{Namespace: ns, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return v1.ModelStatus{}, nil, false
		}
		k.t.Fatal(err)
	}
	o, err := kube.Decode(u)
	if err != nil {
		k.t.Fatal(err)
	}
	switch o := o.(type) {
	case *v1.ClusterBaseModel:
		return o.Status, u, true
	case *v1.BaseModel:
		return o.Status, u, true
	}
	return v1.ModelStatus{}, u, true
}

// wait polls a model until ok says so, and returns its status and how long it took.
func (k *cluster) wait(kind, ns, name string, within time.Duration, what string, ok func(v1.ModelStatus) bool) (v1.ModelStatus, time.Duration) {
	k.t.Helper()
	start := time.Now()
	var st v1.ModelStatus
	for time.Since(start) < within {
		st, _, _ = k.model(kind, ns, name)
		if ok(st) {
			return st, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	k.t.Fatalf("%s %s: not %s within %v; status: phase %s, reason %s, message %q", kind, name, what, within, st.Phase, st.Reason, st.Message)
	return st, 0
}

func reason(r string) func(v1.ModelStatus) bool {
	return func(st v1.ModelStatus) bool { return st.Reason == r }
}

// row is one row of kubectl get's table by column name.
func (k *cluster) row(name string, args ...string) map[string]string {
	k.t.Helper()
	out := k.e.MustKubectl(nil, append([]string{"get"}, args...)...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	h := lines[0]
	var cols []string
	var starts []int
	for i := 0; i < len(h); i++ {
		if h[i] != ' ' && (i == 0 || strings.HasSuffix(h[:i], "  ")) {
			end := strings.Index(h[i:], "  ")
			if end < 0 {
				end = len(h) - i
			}
			cols, starts = append(cols, h[i:i+end]), append(starts, i)
			i += end
		}
	}
	for _, l := range lines[1:] {
		r := map[string]string{}
		for i, c := range cols {
			from, to := min(starts[i], len(l)), len(l)
			if i+1 < len(starts) {
				to = min(starts[i+1], len(l))
			}
			r[c] = strings.TrimSpace(l[from:to])
		}
		if r["NAME"] == name {
			return r
		}
	}
	k.t.Fatalf("kubectl get %s: no row %s:\n%s", strings.Join(args, " "), name, out)
	return nil
}

func (k *cluster) wantRow(name string, args []string, want map[string]string) {
	k.t.Helper()
	r := k.row(name, args...)
	for c, v := range want {
		if r[c] != v {
			k.t.Errorf("kubectl get %s: %s's %s is %q, want %q (row %v)", strings.Join(args, " "), name, c, r[c], v, r)
		}
	}
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not say %q:\n%s", what, sub, s)
		}
	}
}

// TestModels drives the model reconciler as the agents would (per-node
// ConfigMaps and Leases written by hand, on Nodes that exist) and checks
// what kubectl get and kubectl describe show.
func TestModels(t *testing.T) {
	t.Parallel()
	k := startCluster(t)
	_, stopMain := k.run(Options{})
	live := func(node string) { k.lease(node, time.Now(), 60) }
	gb := int64(1_000_000_000)

	t.Run("two nodes, one Ready one Downloading", func(t *testing.T) {
		k.t = t
		for _, n := range []string{"two-a", "two-b", "two-c"} {
			k.node(n, map[string]string{"case": "two"})
			live(n)
		}
		k.apply(cbm("two", "case: two"))
		k.wait(v1.KindClusterBaseModel, "", "two", 10*time.Second, "AwaitingAgent", reason(v1.ReasonAwaitingAgent))
		_, meta, _ := k.model(v1.KindClusterBaseModel, "", "two")
		uid := string(meta.GetUID())
		// An entry of an older model of the same name is not this one's (written
		// first: the controller sees the ConfigMaps' changes in order).
		k.entry("two-c", v1.KindClusterBaseModel, "", "two", &kube.NodeEntry{UID: "an-older-uid", Citadel: v1.NodeModelStatus{Phase: v1.ModelFailed, Reason: v1.ReasonRepoNotFound}})
		k.entry("two-a", v1.KindClusterBaseModel, "", "two", &kube.NodeEntry{UID: uid, Citadel: v1.NodeModelStatus{
			Phase: v1.ModelReady, Reason: v1.ReasonReady, Path: "/raid/models/org/two", BytesDone: 7 * gb, BytesTotal: 7 * gb}})
		k.entry("two-b", v1.KindClusterBaseModel, "", "two", &kube.NodeEntry{UID: uid, Citadel: v1.NodeModelStatus{
			Phase: v1.ModelDownloading, Reason: v1.ReasonDownloading, Message: "3/7 files, 1.20 GB of 7.00 GB at 50.0 MB/s",
			BytesDone: 1_200_000_000, BytesTotal: 7 * gb, BytesPerSecond: 50_000_000},
			Progress: &kube.EntryProgress{Phase: "Downloading", TotalFiles: 7, CompletedFiles: 3}})

		st, _ := k.wait(v1.KindClusterBaseModel, "", "two", 10*time.Second, "Ready with two nodes", func(st v1.ModelStatus) bool {
			return st.Phase == v1.ModelReady && len(st.Nodes) == 2
		})
		if st.State != "Ready" || fmt.Sprint(st.NodesReady) != "[two-a]" || len(st.NodesFailed) != 0 {
			t.Errorf("state %q, nodesReady %v, nodesFailed %v; want Ready, [two-a], none", st.State, st.NodesReady, st.NodesFailed)
		}
		if st.Nodes[0].Node != "two-a" || st.Nodes[0].Path != "/raid/models/org/two" || st.Nodes[1].Node != "two-b" || st.Nodes[1].Phase != v1.ModelDownloading {
			t.Errorf("status.nodes = %+v", st.Nodes)
		}
		if st.BytesDone != 1_200_000_000 || st.BytesTotal != 7*gb || st.FilesDone != 3 || st.FilesTotal != 7 {
			t.Errorf("bytes %d/%d files %d/%d: want the working node's 1.2 GB of 7 GB, 3 of 7 files", st.BytesDone, st.BytesTotal, st.FilesDone, st.FilesTotal)
		}
		contains(t, "the message", st.Message, "1 of 3 nodes ready", "two-b: Downloading: 3/7 files", "two-c: the agent has not reported the model yet")
		k.wantRow("two", []string{"clusterbasemodels"}, map[string]string{"PHASE": "Ready", "NODES READY": `["two-a"]`, "REASON": "Ready", "DOWNLOADED": "1200000000"})
	})

	t.Run("no agent Lease at all", func(t *testing.T) {
		k.t = t
		k.node("nolease-a", map[string]string{"case": "nolease"})
		start := time.Now()
		k.apply(cbm("nolease", "case: nolease"))
		st, took := k.wait(v1.KindClusterBaseModel, "", "nolease", 30*time.Second, "NoAgentOnMatchingNodes", reason(v1.ReasonNoAgentOnMatchingNodes))
		t.Logf("NoAgentOnMatchingNodes %v after kubectl apply returned, %v after it started", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		contains(t, "the message", st.Message, "nolease-a", "agent.nodeSelector", "nodes with a live agent: two-a")
		if st.Phase != v1.ModelPending || st.State != "In_Transit" {
			t.Errorf("phase %s, state %s; want Pending, In_Transit", st.Phase, st.State)
		}
		out := k.e.MustKubectl(nil, "describe", "clusterbasemodel", "nolease")
		contains(t, "kubectl describe", out, "NoAgentOnMatchingNodes", "Warning")
		// Resyncs that find nothing new write nothing.
		_, before, _ := k.model(v1.KindClusterBaseModel, "", "nolease")
		time.Sleep(1500 * time.Millisecond) // three resyncs
		if _, after, _ := k.model(v1.KindClusterBaseModel, "", "nolease"); after.GetResourceVersion() != before.GetResourceVersion() {
			t.Errorf("the model was written while nothing changed: resourceVersion %s, then %s", before.GetResourceVersion(), after.GetResourceVersion())
		}
	})

	t.Run("a node selector that matches no node with an agent", func(t *testing.T) {
		k.t = t
		k.apply(cbm("nomatch", "gpu: h100"))
		st, _ := k.wait(v1.KindClusterBaseModel, "", "nomatch", 30*time.Second, "NoAgentOnMatchingNodes", reason(v1.ReasonNoAgentOnMatchingNodes))
		contains(t, "the message", st.Message, "no node matches storage.nodeSelector gpu=h100", "nodes with a live agent: two-a, two-b, two-c")
		k.wantRow("nomatch", []string{"clusterbasemodels"}, map[string]string{"PHASE": "Pending", "REASON": v1.ReasonNoAgentOnMatchingNodes})
	})

	t.Run("the agent's Lease expires", func(t *testing.T) {
		k.t = t
		k.node("expire-a", map[string]string{"case": "expire"})
		k.lease("expire-a", time.Now(), 2)
		k.apply(cbm("expire", "case: expire"))
		k.entry("expire-a", v1.KindClusterBaseModel, "", "expire", &kube.NodeEntry{Citadel: v1.NodeModelStatus{
			Phase: v1.ModelDownloading, Reason: v1.ReasonDownloading, Message: "1/7 files", BytesDone: 1, BytesTotal: 7}})
		k.wait(v1.KindClusterBaseModel, "", "expire", 10*time.Second, "Downloading", reason(v1.ReasonDownloading))
		st, took := k.wait(v1.KindClusterBaseModel, "", "expire", 10*time.Second, "AgentNotReporting", reason(v1.ReasonAgentNotReporting))
		t.Logf("AgentNotReporting %v after Downloading (the Lease lasts 2 s)", took.Round(time.Millisecond))
		contains(t, "the message", st.Message, "expire-a: the agent stopped reporting: its Lease expired", "its last entry: Downloading", "kubectl -n "+testNS+" get pods")
		if len(st.Nodes) != 1 || st.Nodes[0].Phase != v1.ModelDownloading {
			t.Errorf("the node's last entry is not kept: %+v", st.Nodes)
		}
		// The agent comes back.
		k.lease("expire-a", time.Now(), 60)
		k.wait(v1.KindClusterBaseModel, "", "expire", 10*time.Second, "Downloading again", reason(v1.ReasonDownloading))
	})

	t.Run("a node's entry says SecretNotFound", func(t *testing.T) {
		k.t = t
		k.node("secret-a", map[string]string{"case": "secret"})
		live("secret-a")
		k.apply(cbm("secret", "case: secret"))
		msg := "spec.storage.key names secret ome/hf-token, which does not exist; nothing is downloaded anonymously in its place"
		k.entry("secret-a", v1.KindClusterBaseModel, "", "secret", &kube.NodeEntry{Citadel: v1.NodeModelStatus{
			Phase: v1.ModelFailed, Reason: v1.ReasonSecretNotFound, Message: msg,
			LastFailure: &v1.DownloadFailure{Reason: v1.ReasonSecretNotFound, Secret: &v1.FailureSecret{Namespace: "ome", Name: "hf-token", Key: "token"}}}})
		st, _ := k.wait(v1.KindClusterBaseModel, "", "secret", 10*time.Second, "SecretNotFound", reason(v1.ReasonSecretNotFound))
		if st.Phase != v1.ModelFailed || st.State != "Failed" || fmt.Sprint(st.NodesFailed) != "[secret-a]" {
			t.Errorf("phase %s, state %s, nodesFailed %v; want Failed, Failed, [secret-a]", st.Phase, st.State, st.NodesFailed)
		}
		if st.LastFailure == nil || st.LastFailure.Secret == nil || st.LastFailure.Secret.Name != "hf-token" {
			t.Errorf("lastFailure = %+v, want the node's, naming secret ome/hf-token", st.LastFailure)
		}
		contains(t, "the message", st.Message, "node secret-a: "+msg)
		var out string
		for range 50 { // the event is recorded asynchronously
			out = k.e.MustKubectl(nil, "describe", "clusterbasemodel", "secret")
			if strings.Contains(out, "Warning  SecretNotFound") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		contains(t, "kubectl describe", out, "ome/hf-token", "Warning  SecretNotFound")
		k.wantRow("secret", []string{"clusterbasemodels", "-o", "wide"}, map[string]string{"PHASE": "Failed", "REASON": "SecretNotFound", "STATE": "Failed", "NODES FAILED": `["secret-a"]`})
	})

	t.Run("a BaseModel", func(t *testing.T) {
		k.t = t
		k.node("bm-a", map[string]string{"case": "bm"})
		live("bm-a")
		k.apply(`apiVersion: ome.io/v1beta1
kind: BaseModel
metadata: {name: small, namespace: team}
spec:
  modelFormat: {name: safetensors}
  storage:
    storageUri: hf://org/small
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: case, operator: In, values: [bm]}]
`)
		k.wait(v1.KindBaseModel, "team", "small", 10*time.Second, "AwaitingAgent", reason(v1.ReasonAwaitingAgent))
		k.entry("bm-a", v1.KindBaseModel, "team", "small", &kube.NodeEntry{Citadel: v1.NodeModelStatus{Phase: v1.ModelReady, Reason: v1.ReasonReady, BytesTotal: gb, BytesDone: gb}})
		k.wait(v1.KindBaseModel, "team", "small", 10*time.Second, "Ready", reason(v1.ReasonReady))
		k.wantRow("small", []string{"basemodels", "-n", "team"}, map[string]string{"PHASE": "Ready", "NODES READY": `["bm-a"]`, "TOTAL": "1000000000"})
		_, meta, _ := k.model(v1.KindBaseModel, "team", "small")
		if fmt.Sprint(meta.GetFinalizers()) != "["+kube.BaseModelFinalizer+"]" {
			t.Errorf("finalizers %v, want %s", meta.GetFinalizers(), kube.BaseModelFinalizer)
		}
	})

	t.Run("deletion waits for a live agent's entry to go", func(t *testing.T) {
		k.t = t
		k.node("del-a", map[string]string{"case": "del"})
		live("del-a")
		k.apply(cbm("del", "case: del"))
		k.entry("del-a", v1.KindClusterBaseModel, "", "del", &kube.NodeEntry{Citadel: v1.NodeModelStatus{Phase: v1.ModelReady, Path: "/raid/models/org/del"}})
		k.wait(v1.KindClusterBaseModel, "", "del", 10*time.Second, "Ready", reason(v1.ReasonReady))
		k.e.MustKubectl(nil, "delete", "clusterbasemodel", "del", "--wait=false")
		time.Sleep(1500 * time.Millisecond) // three resyncs
		st, meta, ok := k.model(v1.KindClusterBaseModel, "", "del")
		if !ok || meta.GetDeletionTimestamp() == nil {
			t.Fatalf("the model went while the agent on del-a still had its entry")
		}
		contains(t, "the message while deleting", st.Message, "deleting: waiting for the agent on del-a to remove its copy")
		start := time.Now()
		k.entry("del-a", v1.KindClusterBaseModel, "", "del", nil) // the agent removed its copy
		k.waitGone(v1.KindClusterBaseModel, "", "del", 10*time.Second)
		t.Logf("deleted %v after the agent removed its entry", time.Since(start).Round(time.Millisecond))
	})

	t.Run("deletion with no agent completes", func(t *testing.T) {
		k.t = t
		k.node("gone-a", map[string]string{"case": "gone"})
		k.lease("gone-a", time.Now().Add(-time.Hour), 30) // the agent stopped long ago
		k.apply(cbm("gone", "case: gone"))
		k.entry("gone-a", v1.KindClusterBaseModel, "", "gone", &kube.NodeEntry{Citadel: v1.NodeModelStatus{Phase: v1.ModelReady, Path: "/raid/models/org/gone"}})
		k.wait(v1.KindClusterBaseModel, "", "gone", 10*time.Second, "Ready", reason(v1.ReasonReady))
		k.e.MustKubectl(nil, "delete", "clusterbasemodel", "gone", "--wait=false")
		k.waitGone(v1.KindClusterBaseModel, "", "gone", 10*time.Second)
		var out string
		for range 50 {
			out, _ = k.e.Kubectl(nil, "get", "events", "-A", "--field-selector", "reason=AgentNotReporting,involvedObject.name=gone", "-o", "custom-columns=MSG:.message")
			if strings.Contains(out, "gone-a") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		contains(t, "the deletion's event", out, "gone-a", "/raid/models/org/gone")

		// And a model no node matches (the finalizer was added with no agent anywhere).
		k.wait(v1.KindClusterBaseModel, "", "nomatch", 10*time.Second, "NoAgentOnMatchingNodes", reason(v1.ReasonNoAgentOnMatchingNodes))
		k.e.MustKubectl(nil, "delete", "clusterbasemodel", "nomatch", "--wait=false")
		k.waitGone(v1.KindClusterBaseModel, "", "nomatch", 10*time.Second)
	})

	t.Run("with the real agent", func(t *testing.T) {
		k.t = t
		k.node("real-a", map[string]string{"case": "real"})
		src, root := t.TempDir(), t.TempDir()
		hdr := []byte(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`)
		st := append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...)
		for name, b := range map[string][]byte{
			"config.json":       []byte(`{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","torch_dtype":"float32"}`),
			"model.safetensors": append(st, make([]byte, 16)...),
		} {
			if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		a := agent.New(agent.Options{Config: k.e.Config, Node: "real-a", Namespace: testNS, ModelsRoot: root, Holder: "agent-real-a",
			Resync: time.Second, LeaseRenew: 500 * time.Millisecond, ProgressEvery: 200 * time.Millisecond, RetryBase: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		}()
		k.apply(fmt.Sprintf(`apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: real}
spec:
  modelFormat: {name: safetensors}
  storage:
    storageUri: file://%s
    nodeSelector: {case: real}
`, src))
		st2, took := k.wait(v1.KindClusterBaseModel, "", "real", 30*time.Second, "Ready", reason(v1.ReasonReady))
		t.Logf("Ready %v after kubectl apply returned, from the agent's entry", took.Round(time.Millisecond))
		if fmt.Sprint(st2.NodesReady) != "[real-a]" || len(st2.Nodes) != 1 || st2.Nodes[0].Path == "" {
			t.Errorf("nodesReady %v, nodes %+v; want real-a with its path", st2.NodesReady, st2.Nodes)
		}
		k.wantRow("real", []string{"clusterbasemodels"}, map[string]string{"PHASE": "Ready", "NODES READY": `["real-a"]`})
		start := time.Now()
		k.e.MustKubectl(nil, "delete", "clusterbasemodel", "real", "--wait=false")
		k.waitGone(v1.KindClusterBaseModel, "", "real", 30*time.Second)
		t.Logf("deleted %v after kubectl delete: the agent removed its copy, then the controller the finalizer", time.Since(start).Round(time.Millisecond))
	})

	t.Run("two managers, one leader", func(t *testing.T) {
		k.t = t
		stopMain()
		opts := Options{LeaderElect: true, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}
		m1, stop1 := k.run(opts)
		m2, stop2 := k.run(opts)
		elected := func(m ctrl.Manager) bool {
			select {
			case <-m.Elected():
				return true
			default:
				return false
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for !elected(m1) && !elected(m2) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // the other keeps trying
		if elected(m1) == elected(m2) {
			t.Fatalf("elected: first %v, second %v; want exactly one", elected(m1), elected(m2))
		}
		holder := func() string {
			var l coordinationv1.Lease
			if err := k.c.Get(k.ctx, types.NamespacedName{Namespace: testNS, Name: kube.ControllerLeaderLease}, &l); err != nil {
				t.Fatal(err)
			}
			return ptrVal(l.Spec.HolderIdentity)
		}
		first := holder()
		// The leader writes.
		k.apply(cbm("leader", "case: nolease"))
		k.wait(v1.KindClusterBaseModel, "", "leader", 10*time.Second, "NoAgentOnMatchingNodes", reason(v1.ReasonNoAgentOnMatchingNodes))
		// The leader stops; the other takes over.
		leader, other, stopLeader, stopOther := m1, m2, stop1, stop2
		if elected(m2) {
			leader, other, stopLeader, stopOther = m2, m1, stop2, stop1
		}
		_ = leader
		start := time.Now()
		stopLeader()
		for !elected(other) && time.Since(start) < 15*time.Second {
			time.Sleep(50 * time.Millisecond)
		}
		if !elected(other) {
			t.Fatalf("the second manager was not elected within 15 s of the leader stopping")
		}
		if h := holder(); h == first || h == "" {
			t.Errorf("Lease %s holder %q after the leader stopped, was %q", kube.ControllerLeaderLease, h, first)
		}
		t.Logf("the second manager took over %v after the leader stopped", time.Since(start).Round(time.Millisecond))
		k.entry("nolease-a", v1.KindClusterBaseModel, "", "leader", &kube.NodeEntry{Citadel: v1.NodeModelStatus{Phase: v1.ModelReady}})
		live("nolease-a")
		k.wait(v1.KindClusterBaseModel, "", "leader", 10*time.Second, "Ready under the new leader", reason(v1.ReasonReady))
		stopOther()
	})
}

func (k *cluster) waitGone(kind, ns, name string, within time.Duration) {
	k.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if _, _, ok := k.model(kind, ns, name); !ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, meta, _ := k.model(kind, ns, name)
	k.t.Fatalf("%s %s still exists %v after its deletion (finalizers %v)", kind, name, within, meta.GetFinalizers())
}
