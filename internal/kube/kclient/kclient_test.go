package kclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/test/k8s"
)

// TestCluster applies OME's MiMo model file through the Cluster as `citadel test model
// --kubeconfig` does, reads it back, and checks the evidence a failed step quotes: which
// nodes have an agent, the model's label and entry on each, the engine Deployment's
// condition and the pod's unschedulable message and crash.
func TestCluster(t *testing.T) {
	e := k8s.Start(t)
	root := k8s.RepoRoot(t)
	e.MustKubectl(nil, "apply", "-f", filepath.Join(root, "charts/citadel/crds/"))
	e.MustKubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
	e.MustKubectl(nil, "create", "namespace", "citadel")
	ctx := t.Context()

	c, err := New(e.Config, "citadel")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "test/k8s/testdata/ome/models/XiaomiMiMo/MiMo-VL-7B-RL.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	items, errs := config.Decode(f, f.Name())
	f.Close()
	if len(errs) > 0 && !errs[0].Warning {
		t.Fatal(errs)
	}
	var req v1.ApplyRequest
	for _, it := range items {
		b, _ := json.Marshal(it.Object)
		req.Items = append(req.Items, v1.ApplyItem{Object: b})
	}
	resp, err := c.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Action != "created" {
		t.Fatalf("apply: %+v", resp.Results)
	}
	if resp, err = c.Apply(ctx, req); err != nil || resp.Results[0].Action != "unchanged" {
		t.Fatalf("second apply: %+v, %v", resp, err)
	}
	o, err := c.Get(ctx, "clusterbasemodel", "", "mimo-vl-7b-rl")
	if err != nil {
		t.Fatal(err)
	}
	m := o.(*v1.ClusterBaseModel)
	if m.Spec.Storage == nil || m.Spec.Storage.StorageURI == nil || !strings.HasPrefix(*m.Spec.Storage.StorageURI, "hf://") {
		t.Fatalf("stored model lost its storage: %+v", m.Spec.Storage)
	}
	if l, err := c.List(ctx, v1.KindClusterBaseModel, client.ListOptions{}); err != nil || len(l) != 1 {
		t.Fatalf("list: %d, %v", len(l), err)
	}
	_, err = c.Get(ctx, v1.KindClusterBaseModel, "", "nope")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != 404 {
		t.Fatalf("get of a missing model: %v, want a 404 APIError", err)
	}

	// Two nodes: gpu-a's agent reports and has the model Downloading; gpu-b has no agent.
	cs := c.cs
	for _, n := range []string{"gpu-a", "gpu-b"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if n == "gpu-a" {
			node.Labels = map[string]string{kube.ModelLabel(v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"): kube.EntryUpdating}
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now := metav1.NewMicroTime(time.Now())
	if _, err := cs.CoordinationV1().Leases("citadel").Create(ctx, &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: kube.AgentLease("gpu-a")},
		Spec: coordv1.LeaseSpec{RenewTime: &now, LeaseDurationSeconds: new(int32(kube.AgentLeaseDurationSeconds))}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	entry, _ := json.Marshal(kube.NodeEntry{Name: "mimo-vl-7b-rl", Status: kube.EntryUpdating,
		Citadel: v1.NodeModelStatus{Node: "gpu-a", Phase: "Downloading", Reason: v1.ReasonDownloading, Message: "3/7 files, 1.20 GB of 7.40 GB at 50.0 MB/s"}})
	if _, err := cs.CoreV1().ConfigMaps("citadel").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gpu-a",
		Labels: map[string]string{kube.NodeStatusLabel: "true", kube.NodeLabel: "gpu-a"}},
		Data: map[string]string{kube.ModelEntryKey(v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"): string(entry)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := strings.Join(c.ModelEvidence(ctx, m), "\n")
	for _, want := range []string{
		"node gpu-a: agent reporting", "label models.ome.io/clusterbasemodel.mimo-vl-7b-rl=Updating",
		"model Downloading (Downloading): 3/7 files, 1.20 GB of 7.40 GB", "node gpu-b: no agent",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("model evidence lacks %q:\n%s", want, ev)
		}
	}

	// An engine that cannot be placed, and one that crashed.
	ns := "default"
	labels := map[string]string{kube.InferenceServiceLabel: "mimo", kube.ComponentLabel: kube.ComponentEngine}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: kube.EngineName("mimo"), Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "vllm/vllm-openai"}}}}}}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mimo-engine-0", Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "vllm/vllm-openai"}}}}
	if pod, err = cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: "Unschedulable", Message: "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev = strings.Join(c.ServiceEvidence(ctx, ns, "mimo"), "\n")
	for _, want := range []string{"deployment default/mimo-engine: 0/0 ready", "pod mimo-engine-0: Pending", "Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu."} {
		if !strings.Contains(ev, want) {
			t.Errorf("service evidence lacks %q:\n%s", want, ev)
		}
	}

	// Events of the model, as kubectl describe shows them.
	if _, err := cs.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "mimo.1"},
		InvolvedObject: corev1.ObjectReference{Kind: v1.KindClusterBaseModel, Name: "mimo-vl-7b-rl", APIVersion: v1.OMEGroupVersion},
		Type:           "Warning", Reason: v1.ReasonSecretNotFound, Message: "no secret", FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now()}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Events(ctx, client.EventFilter{Kind: v1.KindClusterBaseModel, Name: "mimo-vl-7b-rl"})
	if err != nil || len(evs) != 1 || evs[0].Reason != v1.ReasonSecretNotFound {
		t.Fatalf("events: %+v, %v", evs, err)
	}
	var logs bytes.Buffer
	if err := c.Logs(ctx, ns, "mimo", 1, 20, false, &logs); err == nil || !strings.Contains(err.Error(), "1 engine pod(s), no replica 1") {
		t.Errorf("logs of a replica that does not exist: %v", err)
	}

	if _, err := c.Delete(ctx, v1.KindClusterBaseModel, "", "mimo-vl-7b-rl", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"); !errors.As(err, &ae) || ae.Code != 404 {
		t.Errorf("after delete: %v", err)
	}
}

// A cluster that does not answer is an UnreachableError that says what to check, so that
// `citadel test` exits 2 (could not run) rather than reporting a failed model.
func TestUnreachable(t *testing.T) {
	c, err := New(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second}, "citadel")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), v1.KindClusterBaseModel, "", "m")
	var ue *client.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("got %v, want an UnreachableError naming --kubeconfig", err)
	}
}
