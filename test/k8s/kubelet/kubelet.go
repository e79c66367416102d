// Package kubelet is a test stand-in for the parts of Kubernetes that envtest does not run
// (the scheduler, the Deployment and ReplicaSet controllers, the kubelets and the
// EndpointSlice controller), for the engine Deployments Citadel's controller makes: those
// labelled app.kubernetes.io/managed-by=citadel.
//
// Run creates a Node object per fake node, a ReplicaSet and Pods for each Deployment's
// replicas, schedules the Pods by their node selector, required node affinity and
// nvidia.com/gpu requests (or says why not, in the scheduler's words), and runs each
// scheduled Pod's containers as local processes: a known engine's command line is rewritten
// by engine.FromRunner and engine.Simulate to run `citadel sim` with the same flags, on a
// free loopback port; any other command runs as written. A fake node's filesystem is a
// directory: a hostPath volume /raid/models/x on node A is <A's Dir>/raid/models/x, and so
// are the paths the container's command line and environment name under its mount path.
// Pod status (Ready from the probes, restarts, the last termination with its log tail,
// CrashLoopBackOff), ReplicaSet and Deployment status and the EndpointSlices of the
// Services that select the Pods are written as the real components write them, with the
// process's real port. Each Pod has an address of its own (k8s.NewPodIP: 10.244.0.N on the
// loopback device of the test's network namespace, k8s.MainInNetNS), which its processes
// bind: the API server refuses loopback addresses in EndpointSlices.
//
// Simplifications: a changed pod template replaces every Pod at once (as the Recreate
// strategy does); only nvidia.com/gpu is counted against a node's capacity (CPU and memory
// requests always fit); taints, init containers, envFrom and exec probes are ignored; no
// general garbage collector runs: the Pods and ReplicaSets of a deleted Deployment, the
// EndpointSlices of a deleted Service, and the Deployments and Services Citadel's
// controller made for an owner that is gone are deleted. The scheduler's and the kubelet's
// events (Scheduled, FailedScheduling, Started, BackOff, Unhealthy, Killing) are recorded
// on the Pods.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/test/k8s"
)

// Node is a fake node.
type Node struct {
	// Name is the Node's name.
	Name string
	// Labels are added to the Node's (kubernetes.io/hostname and the OS and architecture
	// labels are always set). Labels others add to the Node later are kept.
	Labels map[string]string
	// GPUs is the Node's nvidia.com/gpu capacity.
	GPUs int
	// GPU is the citadel sim profile of its GPUs (citadel sim --gpu); default h100-sxm.
	GPU string
	// Dir is the node's filesystem: hostPath /x on this node is Dir/x. Container logs go
	// under Dir/var/log/pods, as a kubelet writes them. Required.
	Dir string
}

// Options configure Run.
type Options struct {
	// Nodes are the fake nodes; at least one.
	Nodes []Node
	// Citadel is the citadel binary that runs `citadel sim` in place of the engines; required.
	Citadel string
	// TimeScale is citadel sim's --time-scale: 0 runs as fast as possible. Probe delays and
	// periods shrink with it (never below 100 ms), as engine.Simulate says.
	TimeScale float64
	// Backoff is the first CrashLoopBackOff delay, doubled after each crash up to 16 times
	// it; default 1 s (a real kubelet: 10 s up to 5 min).
	Backoff time.Duration
	// Grace is how long a stopped container has between SIGTERM and SIGKILL; default 2 s,
	// at most the Pod's terminationGracePeriodSeconds.
	Grace time.Duration
	// Resync is the period of a full pass over the objects; default 200 ms. A process's
	// change of state starts a pass at once.
	Resync time.Duration
	// Logf, if set, receives what the kubelet does (pods created, bound, started, killed).
	Logf func(format string, args ...any)
	// PodIP gives each new Pod (and Node) its address, which the Pod's processes bind;
	// default k8s.NewPodIP, which works in the test's network namespace only (call
	// k8s.MainInNetNS from TestMain). Not 127.0.0.1: the API server refuses loopback
	// addresses in EndpointSlices.
	PodIP func() (string, error)
}

// The labels, annotations and values the stand-ins write, as the real components do.
const (
	// templateHashLabel is the ReplicaSet controller's label of a pod template's hash.
	templateHashLabel = "pod-template-hash"
	// ownedAnnotation marks the ReplicaSets and Pods this package made.
	ownedAnnotation = "citadel.dev/test-kubelet"
	// sliceManagedByLabel and sliceManagedBy mark the EndpointSlice controller's slices.
	sliceManagedByLabel = "endpointslice.kubernetes.io/managed-by"
	sliceManagedBy      = "endpointslice-controller.k8s.io"
	// defaultGPU is the sim profile of a node that names none.
	defaultGPU = "h100-sxm"
)

// kubelet is Run's state.
type kubelet struct {
	opts  Options
	nodes map[string]*Node
	core  corev1client.CoreV1Interface
	apps  appsv1client.AppsV1Interface
	disc  discoveryv1client.DiscoveryV1Interface
	dyn   dynamic.Interface
	// mapper finds the resource of an owner reference's kind, for the garbage collector.
	mapper *restmapper.DeferredDiscoveryRESTMapper
	logf   func(format string, args ...any)
	nodeIP map[string]string // each fake node's address

	poke chan struct{} // a process changed state: sync now
	ctx  context.Context

	mu   sync.Mutex
	pods map[types.UID]*podRuntime // the Pods whose containers run here
	wg   sync.WaitGroup            // the containers' goroutines
}

// Run runs the stand-ins until ctx ends, then kills every process it started and returns
// once they have exited. It returns an error only for bad options or when the fake nodes
// cannot be created; other API errors are retried on the next pass (and logged).
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	k, err := newKubelet(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer k.stopAll()
	if err := k.ensureNodes(ctx); err != nil {
		return err
	}
	t := time.NewTicker(k.opts.Resync)
	defer t.Stop()
	for {
		k.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-k.poke:
		}
	}
}

// Start runs Run for a test: the stand-ins stop, and their processes are killed, when the
// test ends; an error of Run fails the test. Without Options.PodIP the test must run in a
// network namespace of its own (k8s.InNetNS skips or fails it otherwise).
func Start(t testing.TB, cfg *rest.Config, opts Options) {
	t.Helper()
	if opts.PodIP == nil {
		k8s.InNetNS(t)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("test kubelet: %v", err)
		}
	})
}

func newKubelet(ctx context.Context, cfg *rest.Config, opts Options) (*kubelet, error) {
	if len(opts.Nodes) == 0 {
		return nil, errors.New("test kubelet: no nodes: give Options.Nodes at least one")
	}
	if opts.Citadel == "" {
		return nil, errors.New("test kubelet: no citadel binary: set Options.Citadel (simtest.Citadel(t) in tests)")
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = 2 * time.Second
	}
	if opts.Resync <= 0 {
		opts.Resync = 200 * time.Millisecond
	}
	if opts.PodIP == nil {
		opts.PodIP = k8s.NewPodIP
	}
	k := &kubelet{opts: opts, nodes: map[string]*Node{}, poke: make(chan struct{}, 1), ctx: ctx,
		pods: map[types.UID]*podRuntime{}, logf: opts.Logf, nodeIP: map[string]string{}}
	if k.logf == nil {
		k.logf = func(string, ...any) {}
	}
	for i := range opts.Nodes {
		n := &opts.Nodes[i]
		switch {
		case n.Name == "":
			return nil, fmt.Errorf("test kubelet: node %d has no name", i)
		case n.Dir == "":
			return nil, fmt.Errorf("test kubelet: node %s has no Dir (its filesystem)", n.Name)
		case k.nodes[n.Name] != nil:
			return nil, fmt.Errorf("test kubelet: node %s given twice", n.Name)
		}
		abs, err := filepath.Abs(n.Dir)
		if err != nil {
			return nil, fmt.Errorf("test kubelet: node %s: %w", n.Name, err)
		}
		n.Dir = abs
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("test kubelet: node %s: %w", n.Name, err)
		}
		if n.GPU == "" {
			n.GPU = defaultGPU
		}
		k.nodes[n.Name] = n
	}
	var err error
	if k.core, err = corev1client.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if k.apps, err = appsv1client.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if k.disc, err = discoveryv1client.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if k.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	k.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return k, nil
}

// wake starts a pass soon.
func (k *kubelet) wake() {
	select {
	case k.poke <- struct{}{}:
	default:
	}
}

// ensureNodes creates the Node objects, or adds the options' labels to existing ones, and
// writes their status: capacity, Ready, the loopback address.
func (k *kubelet) ensureNodes(ctx context.Context) error {
	for _, n := range k.opts.Nodes {
		if err := k.ensureNode(ctx, &n); err != nil {
			return fmt.Errorf("test kubelet: node %s: %w", n.Name, err)
		}
	}
	return nil
}

func (k *kubelet) ensureNode(ctx context.Context, n *Node) error {
	if k.nodeIP[n.Name] == "" {
		ip, err := k.opts.PodIP()
		if err != nil {
			return err
		}
		k.nodeIP[n.Name] = ip
	}
	labels := map[string]string{
		"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
	}
	for key, v := range n.Labels {
		labels[key] = v
	}
	node, err := k.core.Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		node, err = k.core.Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		for key, v := range labels {
			node.Labels[key] = v
		}
		if node, err = k.core.Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("512Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
		kube.GPUResource:      *resource.NewQuantity(int64(n.GPUs), resource.DecimalSI),
	}
	now := metav1.Now()
	node.Status = corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity,
		Phase: corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: k.nodeIP[n.Name]}, {Type: corev1.NodeHostName, Address: n.Name}},
		NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "citadel-test-kubelet",
			ContainerRuntimeVersion: "process://citadel-sim"},
	}
	_, err = k.core.Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// stopAll stops every Pod's containers and waits for their processes to exit.
func (k *kubelet) stopAll() {
	k.mu.Lock()
	for _, pr := range k.pods {
		pr.stop()
	}
	k.mu.Unlock()
	k.wg.Wait()
}
