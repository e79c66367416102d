package agent

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"citadel.dev/citadel/internal/pull"
)

// Two models that cannot reach the hub from a node make its agent run citadel test's
// systemic probe from there, and the Node's events say what they share (kubectl describe
// node): the hub does not answer.
func TestSystemicProbe(t *testing.T) {
	c := startCluster(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a hub that is gone: the port refuses
	if err != nil {
		t.Fatal(err)
	}
	hub := "http://" + ln.Addr().String()
	ln.Close()
	n := node{name: "gpu-x", modelsRoot: t.TempDir()}
	c.addNode(t, n.name, nil)
	cfg := rest.CopyConfig(c.env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: agentSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	a := New(Options{
		Config: cfg, Node: n.name, Namespace: ns, ModelsRoot: n.modelsRoot, Holder: "agent-x",
		Pull:   pull.Options{HFEndpoint: hub, StallTimeout: 5 * time.Second},
		Resync: 500 * time.Millisecond, LeaseRenew: 500 * time.Millisecond, RetryBase: time.Hour, ProbeEvery: time.Hour,
		Logger: slog.New(slog.NewTextHandler(testWriter{t, n.name}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	c.apply(t, cbm("one", "hf://org/one", ""))
	c.apply(t, cbm("two", "hf://org/two", ""))
	deadline := time.Now().Add(60 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		evs, err := c.cs.CoreV1().Events("").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + n.name})
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason == ReasonSystemicProbeFailed {
				for _, want := range []string{"2 models are stuck on this node", "one", "two", "hub: "} {
					if !strings.Contains(e.Message, want) {
						t.Errorf("event %q lacks %q", e.Message, want)
					}
				}
				if e.Count > 1 {
					t.Errorf("probe ran %d times within ProbeEvery (1 h)", e.Count)
				}
				t.Logf("kubectl describe node %s shows: %s %s", n.name, e.Reason, e.Message)
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %s event on node %s within 60 s; events: %q", ReasonSystemicProbeFailed, n.name, seen)
}
