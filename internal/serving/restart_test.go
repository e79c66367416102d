package serving_test

import (
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/sim/simtest"
)

// TestServeKilledAndRestarted: `citadel serve` killed with -9 leaves no engine behind, and a new
// serve on the same data directory brings the service back from the stored state.
func TestServeKilledAndRestarted(t *testing.T) {
	bin := simtest.Citadel(t)
	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	serve := func() (*exec.Cmd, *bytes.Buffer) {
		var out bytes.Buffer
		cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--admin-addr", addr, "--gateway-addr", "off", "--agent=false",
			"--gpus", "rtx-4090", "--simulate-engines", "--sim-time-scale", "0")
		cmd.Env = append(cmd.Environ(), "HOME="+dataDir)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, &out
	}
	first, out := serve()
	c, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.Health(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("citadel serve did not answer: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cl := &cluster{c: c, dataDir: dataDir}
	cl.apply(t, qwen(t, "q", "rt", "  engine: {name: vllm, args: [--max-model-len, \"4096\"]}"))
	cl.markReady(t, "q")
	s := waitPhase(cl, t, "q", 60*time.Second, v1.ServiceReady)
	pid := s.Status.Endpoints[0].PID

	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	waitGone(t, pid) // no orphan: the engine dies with its supervisor

	_, out = serve()
	deadline = time.Now().Add(20 * time.Second)
	for c.Health(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the second citadel serve did not answer: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s = cl.waitFor(t, "default", "q", 60*time.Second, "Ready again with a new engine", func(s *v1.InferenceService) bool {
		return s.Status.Phase == v1.ServiceReady && len(s.Status.Endpoints) == 1 && s.Status.Endpoints[0].PID != pid
	})
	if alive(pid) {
		t.Errorf("the first engine (pid %d) still runs", pid)
	}
	if code, _ := httpGet(t, "http://"+s.Status.Endpoints[0].Address+"/health"); code != 200 {
		t.Errorf("the new engine's /health: %d (pid %s)", code, strconv.Itoa(s.Status.Endpoints[0].PID))
	}
}
