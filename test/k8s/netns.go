package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Engines of Kubernetes-mode tests listen on pod addresses, as in a cluster: the API server
// refuses loopback addresses in EndpointSlices, and tests send traffic only to loopback or
// to network namespaces they create. So a package whose tests run engines behind
// EndpointSlices runs in a network namespace of its own (MainInNetNS), where each pod
// address is added to the namespace's loopback device (PodIP). Nothing leaves the
// namespace; the API server, etcd and every process of the test run inside it.

const (
	netnsEnv        = "CITADEL_TEST_NETNS"    // set inside the namespace
	requireNetnsEnv = "CITADEL_REQUIRE_NETNS" // CI: fail rather than skip without one
	podCIDRPrefix   = "10.244.0."             // pod addresses: 10.244.0.2 and up
	netnsHint       = "needs `unshare --net` (util-linux) and `ip` (iproute2), run as root"
)

// MainInNetNS runs the package's tests in a new network namespace: it re-runs the test
// binary under `unshare --net` and returns its exit code. Inside, it brings the loopback
// device up and runs the tests. Where no namespace can be made, the tests run here and
// those that call PodIP are skipped (or fail, with CITADEL_REQUIRE_NETNS=1).
//
//	func TestMain(m *testing.M) { os.Exit(k8s.MainInNetNS(m)) }
func MainInNetNS(m *testing.M) int {
	if os.Getenv(netnsEnv) == "1" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "in the test's network namespace: ip link set lo up: %v: %s\n", err, out)
			return 2
		}
		return m.Run()
	}
	if _, err := exec.LookPath("unshare"); err == nil {
		if _, err := exec.LookPath("ip"); err == nil && exec.Command("unshare", "--net", "true").Run() == nil {
			cmd := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
			cmd.Env = append(os.Environ(), netnsEnv+"=1")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					return ee.ExitCode()
				}
				fmt.Fprintf(os.Stderr, "running the tests in a network namespace: %v\n", err)
				return 2
			}
			return 0
		}
	}
	noNetns = true
	return m.Run()
}

var (
	noNetns bool
	podMu   sync.Mutex
	podNext = 2
)

// InNetNS skips the test when it does not run in a namespace of its own (MainInNetNS could
// not make one), or fails it with CITADEL_REQUIRE_NETNS=1.
func InNetNS(t testing.TB) {
	t.Helper()
	if os.Getenv(netnsEnv) == "1" {
		return
	}
	if os.Getenv(requireNetnsEnv) == "1" {
		t.Fatalf("CITADEL_REQUIRE_NETNS=1 but the test is not in a network namespace of its own: call k8s.MainInNetNS from TestMain; it %s", netnsHint)
	}
	if noNetns {
		t.Skipf("runs engines at pod addresses in a network namespace of its own, which could not be made here: %s", netnsHint)
	}
	t.Skip("runs engines at pod addresses: call k8s.MainInNetNS from the package's TestMain")
}

// PodIP returns a new pod address (10.244.0.2, .3, …), added to the loopback device of the
// test's network namespace so that a process can listen on it. It skips the test outside a
// namespace of its own (InNetNS).
func PodIP(t testing.TB) string {
	t.Helper()
	InNetNS(t)
	ip, err := NewPodIP()
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// NewPodIP is PodIP for code that has no test at hand (the test kubelet); it fails outside
// the test's network namespace.
func NewPodIP() (string, error) {
	if os.Getenv(netnsEnv) != "1" {
		return "", fmt.Errorf("pod addresses exist only in the test's network namespace (k8s.MainInNetNS): %s", netnsHint)
	}
	podMu.Lock()
	defer podMu.Unlock()
	if podNext > 254 {
		return "", fmt.Errorf("more than 253 pod addresses in one test process")
	}
	ip := fmt.Sprintf("%s%d", podCIDRPrefix, podNext)
	podNext++
	if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return "", fmt.Errorf("adding pod address %s to the namespace's loopback: %v: %s", ip, err, out)
	}
	return ip, nil
}
