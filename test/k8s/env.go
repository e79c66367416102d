// Package k8s starts a real Kubernetes API server for tests: etcd and
// kube-apiserver built from Go module sources by hack/envtest.sh, started by
// controller-runtime's envtest, with kubectl (built by the same script)
// pointed at it through a kubeconfig in a temporary directory. No kubelet or
// controller-manager runs: objects are stored and validated, nothing else.
//
// Tests skip when KUBEBUILDER_ASSETS is not set, and fail instead when
// CITADEL_REQUIRE_ENVTEST=1 (as in CI):
//
//	export KUBEBUILDER_ASSETS="$(hack/envtest.sh)"
//	go test ./test/k8s
package k8s

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// How to get the binaries, for messages.
const buildHint = `build etcd, kube-apiserver and kubectl from Go modules (6-10 minutes on an idle 2-core machine, once; then cached) and point KUBEBUILDER_ASSETS at them: export KUBEBUILDER_ASSETS="$(hack/envtest.sh)"`

// Env is a running API server.
type Env struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for Config's user.
	Kubeconfig string

	t       testing.TB
	kubectl string
	home    string
}

// setLogger silences controller-runtime's logger once: tests that start servers in
// parallel would race on it.
var setLogger sync.Once

// Start starts etcd and kube-apiserver and stops them when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	assets := Assets(t)
	setLogger.Do(func() { logf.SetLogger(logr.Discard()) })
	te := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute}
	if os.Getenv(netnsEnv) == "1" {
		// The test's network namespace has no default route, from which kube-apiserver
		// would take the address it advertises.
		te.ControlPlane.GetAPIServer().Configure().Set("advertise-address", "127.0.0.1")
	}
	start := time.Now()
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("starting etcd and kube-apiserver from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	t.Logf("API server %s started in %v", cfg.Host, time.Since(start).Round(time.Millisecond))
	user, err := te.AddUser(envtest.User{Name: "citadel-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("adding a user: %v", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("writing a kubeconfig: %v", err)
	}
	dir := t.TempDir()
	e := &Env{Config: user.Config(), Kubeconfig: filepath.Join(dir, "kubeconfig"), t: t, kubectl: filepath.Join(assets, "kubectl"), home: dir}
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// Assets returns the directory of etcd, kube-apiserver and kubectl from
// KUBEBUILDER_ASSETS. It skips the test when that is not set, unless
// CITADEL_REQUIRE_ENVTEST=1, and fails when a binary is missing.
func Assets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		if os.Getenv("CITADEL_REQUIRE_ENVTEST") == "1" {
			t.Fatalf("CITADEL_REQUIRE_ENVTEST=1 but KUBEBUILDER_ASSETS is not set: %s", buildHint)
		}
		t.Skipf("needs a Kubernetes API server: %s", buildHint)
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS=%s has no %s (%v): %s", dir, b, err, buildHint)
		}
	}
	return dir
}

// Kubectl runs kubectl against the server and returns its standard output;
// the error carries its standard error. Its caches go to a temporary
// directory, never to ~/.kube.
func (e *Env) Kubectl(stdin []byte, args ...string) (string, error) {
	args = append([]string{"--kubeconfig", e.Kubeconfig, "--cache-dir", filepath.Join(e.home, "cache")}, args...)
	cmd := exec.Command(e.kubectl, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.home, "KUBECONFIG="+e.Kubeconfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args[4:], " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// MustKubectl is Kubectl that fails the test on an error.
func (e *Env) MustKubectl(stdin []byte, args ...string) string {
	e.t.Helper()
	out, err := e.Kubectl(stdin, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// RepoRoot is the module's root directory, found from this file's path.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("the source path of test/k8s is unknown")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}
