package controller_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/cli"
	"citadel.dev/citadel/test/k8s"
)

// syncBuffer is a bytes.Buffer safe for the command's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// `citadel controller` as the chart runs it: it takes the leader Lease in its
// namespace, answers /healthz and /readyz, writes a model's status, and stops
// when its context ends.
func TestCommand(t *testing.T) {
	t.Parallel() // with TestModels: each waits on its own API server
	e := k8s.Start(t)
	t0 := time.Now()
	defer func() {
		t.Logf("the test took %v after the API server started", time.Since(t0).Round(time.Millisecond))
	}()
	e.MustKubectl(nil, "apply", "-f", filepath.Join(k8s.RepoRoot(t), "charts/citadel/crds/"))
	e.MustKubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
	e.MustKubectl(nil, "create", "namespace", "ctl")
	t.Logf("CRDs installed in %v", time.Since(t0).Round(time.Millisecond))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	health := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"controller", "--kubeconfig", e.Kubeconfig, "-n", "ctl", "--metrics-addr", "0", "--health-addr", health}, nil, &stderr, &stderr)
	}()

	e.MustKubectl([]byte(`apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: m}
spec:
  modelFormat: {name: safetensors}
  storage: {storageUri: hf://org/m}
`), "apply", "-f", "-")
	deadline := time.Now().Add(30 * time.Second)
	var reason string
	for time.Now().Before(deadline) {
		reason, _ = e.Kubectl(nil, "get", "clusterbasemodel", "m", "-o", "jsonpath={.status.reason}")
		if reason == "NoAgentOnMatchingNodes" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("NoAgentOnMatchingNodes %v after the API server started", time.Since(t0).Round(time.Millisecond))
	if reason != "NoAgentOnMatchingNodes" {
		t.Fatalf("model m: reason %q, want NoAgentOnMatchingNodes; the command said:\n%s", reason, stderr.String())
	}
	holder := e.MustKubectl(nil, "get", "lease", "-n", "ctl", "citadel-controller", "-o", "jsonpath={.spec.holderIdentity}")
	if holder == "" {
		t.Errorf("the leader Lease ctl/citadel-controller has no holder")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + health + p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}

	cancel()
	stopping := time.Now()
	defer func() { t.Logf("stopped in %v", time.Since(stopping).Round(time.Millisecond)) }()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("citadel controller exited %d after its context ended:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("citadel controller did not stop within 30 s of its context ending")
	}
	if !strings.Contains(stderr.String(), "namespace=ctl") {
		t.Errorf("the command's log does not name its namespace:\n%s", stderr.String())
	}
}
