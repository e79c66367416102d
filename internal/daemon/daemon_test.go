package daemon

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunStopsEverything: cancelling the context ends Run, open watch
// streams included, and leaves no goroutine behind.
func TestRunStopsEverything(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{DataDir: t.TempDir(), AdminListener: ln, Ready: func(string) { close(ready) }})
	}()
	<-ready
	c, err := client.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	watching := make(chan struct{})
	watchDone := make(chan error, 1)
	go func() {
		first := true
		watchDone <- c.Watch(context.Background(), "", "", func(v1.WatchEvent) error {
			if first {
				close(watching)
				first = false
			}
			return nil
		})
	}()
	model := `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m"},"spec":{"storage":{"storageUri":"hf://org/m"}}}`
	if _, err := c.Apply(t.Context(), v1.ApplyRequest{Items: []v1.ApplyItem{{Object: []byte(model)}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watching:
	case <-time.After(10 * time.Second):
		t.Fatal("watch got nothing")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := <-watchDone; err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("watch should end with the server: %v", err)
	}
	c.Close()
}
