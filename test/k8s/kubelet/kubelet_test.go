package kubelet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"

	"citadel.dev/citadel/internal/sim/simtest"
	"citadel.dev/citadel/test/k8s"
	"citadel.dev/citadel/test/k8s/kubelet"
)

func TestMain(m *testing.M) {
	code := k8s.MainInNetNS(m) // pods have addresses of their own
	simtest.RemoveBuilt()
	os.Exit(code)
}

// cluster is an API server with the test kubelet's two fake nodes.
type cluster struct {
	t    *testing.T
	env  *k8s.Env
	core corev1client.CoreV1Interface
	apps appsv1client.AppsV1Interface
	disc discoveryv1client.DiscoveryV1Interface
	dirs map[string]string // node → its filesystem
	pids map[int]bool      // every container process seen
	stop func()
}

func start(t *testing.T) *cluster {
	t.Helper()
	k8s.InNetNS(t)
	env := k8s.Start(t)
	c := &cluster{t: t, env: env, dirs: map[string]string{}, pids: map[int]bool{}}
	var err error
	if c.core, err = corev1client.NewForConfig(env.Config); err != nil {
		t.Fatal(err)
	}
	if c.apps, err = appsv1client.NewForConfig(env.Config); err != nil {
		t.Fatal(err)
	}
	if c.disc, err = discoveryv1client.NewForConfig(env.Config); err != nil {
		t.Fatal(err)
	}
	var nodes []kubelet.Node
	for _, n := range []string{"gpu-a", "gpu-b"} {
		c.dirs[n] = t.TempDir()
		nodes = append(nodes, kubelet.Node{Name: n, GPUs: 1, Dir: c.dirs[n], Labels: map[string]string{"pool": strings.TrimPrefix(n, "gpu-")}})
	}
	bin := simtest.Citadel(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- kubelet.Run(ctx, env.Config, kubelet.Options{Nodes: nodes, Citadel: bin, Backoff: 500 * time.Millisecond, Logf: t.Logf})
	}()
	c.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kubelet.Run: %v", err)
		}
		c.stop = func() {}
	}
	t.Cleanup(func() { c.stop() })
	return c
}

// kubectl runs kubectl, failing t on an error.
func (c *cluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := c.env.Kubectl(in, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pod waits until the Deployment's only pod satisfies ok, and returns it.
func (c *cluster) pod(ns, selector string, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	c.t.Helper()
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		l, err := c.core.Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			c.t.Fatal(err)
		}
		for i := range l.Items {
			p := &l.Items[i]
			c.seen(p)
			if ok(p) {
				return p
			}
		}
		b, _ := json.Marshal(l.Items)
		last = string(b)
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("no pod %s in %s is %s after 60 s; pods: %s", selector, ns, what, last)
	return nil
}

// seen records the pod's container processes.
func (c *cluster) seen(p *corev1.Pod) {
	for _, cs := range p.Status.ContainerStatuses {
		for _, id := range []string{cs.ContainerID, lastID(cs)} {
			if pid, err := strconv.Atoi(strings.TrimPrefix(id, "process://")); err == nil {
				c.pids[pid] = true
			}
		}
	}
}

func lastID(cs corev1.ContainerStatus) string {
	if t := cs.LastTerminationState.Terminated; t != nil {
		return t.ContainerID
	}
	return ""
}

// alive reports whether a process exists.
func alive(pid int) bool { return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func (c *cluster) slices(ns, svc string) []discoveryv1.EndpointSlice {
	c.t.Helper()
	l, err := c.disc.EndpointSlices(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + svc})
	if err != nil {
		c.t.Fatal(err)
	}
	return l.Items
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = f(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not after %v; last: %s", what, timeout, last)
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// engineDeployment is an engine Deployment as Citadel's controller writes one, with the
// container of OME's SGLang runtime for MiMo-VL (test/k8s/testdata/ome/runtimes/srt/
// XiaomiMiMo/mimo-vl-7b-rl-rt.yaml): a bash -lc script, port 8080, its probes.
const engineDeployment = `
apiVersion: v1
kind: Namespace
metadata: {name: mimo}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: mimo-vl-7b-rl-engine
  namespace: mimo
  labels: {app.kubernetes.io/managed-by: citadel, ome.io/inferenceservice: mimo-vl-7b-rl, component: engine}
spec:
  replicas: 1
  selector:
    matchLabels: {ome.io/inferenceservice: mimo-vl-7b-rl, component: engine}
  template:
    metadata:
      labels: {app.kubernetes.io/managed-by: citadel, ome.io/inferenceservice: mimo-vl-7b-rl, component: engine}
    spec:
      nodeSelector: {pool: b}
      volumes:
        - name: model
          hostPath: {path: /raid/models/XiaomiMiMo/MiMo-VL-7B-RL}
        - name: dshm
          emptyDir: {medium: Memory}
      containers:
        - name: ome-container
          image: docker.io/lmsysorg/sglang:v0.5.5.post3-cu129-amd64
          command: [/bin/bash, -lc, --]
          args:
            - |
              python3 -m sglang.launch_server \
              --host=0.0.0.0 \
              --port=8080 \
              --enable-metrics \
              --log-requests \
              --model-path="$MODEL_PATH" \
              --tp-size=1 \
              --mem-frac=0.9 \
              --served-model-name=XiaomiMiMo/MiMo-VL-7B-RL \
              --trust-remote-code
          env:
            - {name: MODEL_PATH, value: /raid/models/XiaomiMiMo/MiMo-VL-7B-RL}
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports:
            - {containerPort: 8080, name: http, protocol: TCP}
          volumeMounts:
            - {name: model, mountPath: /raid/models/XiaomiMiMo/MiMo-VL-7B-RL}
            - {name: dshm, mountPath: /dev/shm}
          resources:
            requests: {cpu: 10, memory: 30Gi, nvidia.com/gpu: 1}
            limits: {cpu: 10, memory: 30Gi, nvidia.com/gpu: 1}
          terminationMessagePolicy: FallbackToLogsOnError
          readinessProbe:
            httpGet: {path: /health_generate, port: 8080}
            failureThreshold: 3
            periodSeconds: 60
            timeoutSeconds: 200
          livenessProbe:
            httpGet: {path: /health, port: 8080}
            failureThreshold: 5
            periodSeconds: 60
            timeoutSeconds: 60
          startupProbe:
            httpGet: {path: /health_generate, port: 8080}
            failureThreshold: 150
            periodSeconds: 6
            initialDelaySeconds: 60
            timeoutSeconds: 30
---
apiVersion: v1
kind: Service
metadata:
  name: mimo-vl-7b-rl-engine
  namespace: mimo
  labels: {app.kubernetes.io/managed-by: citadel, ome.io/inferenceservice: mimo-vl-7b-rl, component: engine}
spec:
  selector: {ome.io/inferenceservice: mimo-vl-7b-rl, component: engine}
  ports:
    - {name: http, port: 8080, targetPort: http}
`

// TestKubelet runs hand-written engine Deployments on two fake nodes (one GPU each) as
// Citadel's controller will write them, and checks what the controller and the gateway
// read back: Pod, Deployment and EndpointSlice status, and an engine that answers.
func TestKubelet(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	const sel = "ome.io/inferenceservice=mimo-vl-7b-rl"

	t.Run("engine runs and serves", func(t *testing.T) {
		begin := time.Now()
		c.kubectl(t, engineDeployment, "apply", "-f", "-")
		p := c.pod("mimo", sel, "Ready", ready)
		t.Logf("pod Ready %v after apply", time.Since(begin).Round(time.Millisecond))
		ip := p.Status.PodIP
		if p.Spec.NodeName != "gpu-b" || !strings.HasPrefix(ip, "10.244.0.") || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod on %q, IP %q, phase %s; want gpu-b (its node selector), a pod address, Running", p.Spec.NodeName, ip, p.Status.Phase)
		}
		if !strings.HasPrefix(p.Name, "mimo-vl-7b-rl-engine-") || p.Labels["pod-template-hash"] == "" {
			t.Errorf("pod %s, labels %v: want <deployment>-<hash>-<suffix> with pod-template-hash", p.Name, p.Labels)
		}
		cs := p.Status.ContainerStatuses[0]
		pid, _ := strconv.Atoi(strings.TrimPrefix(cs.ContainerID, "process://"))
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("container %s: %v", cs.ContainerID, err)
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		t.Logf("process: %q", argv)
		want := filepath.Join(c.dirs["gpu-b"], "raid/models/XiaomiMiMo/MiMo-VL-7B-RL")
		if !contains(argv, "--model-path", want) || !contains(argv, "--engine", "sglang") || !contains(argv, "--host", ip) {
			t.Errorf("process %q: want citadel sim --engine sglang with --model-path %s (the hostPath in gpu-b's directory) on --host %s", argv, want, ip)
		}

		var port int32
		eventually(t, "the Service's EndpointSlice", 10*time.Second, func() (bool, string) {
			s := c.slices("mimo", "mimo-vl-7b-rl-engine")
			b, _ := json.Marshal(s)
			if len(s) != 1 || len(s[0].Endpoints) != 1 || len(s[0].Ports) != 1 {
				return false, string(b)
			}
			e, sp := s[0].Endpoints[0], s[0].Ports[0]
			port = *sp.Port
			return e.Conditions.Ready != nil && *e.Conditions.Ready && e.Addresses[0] == ip && *e.NodeName == "gpu-b" &&
				*sp.Name == "http" && *sp.Port != 8080 && s[0].Labels["ome.io/inferenceservice"] == "mimo-vl-7b-rl" &&
				s[0].AddressType == discoveryv1.AddressTypeIPv4 && e.TargetRef.Name == p.Name, string(b)
		})

		body := `{"model":"XiaomiMiMo/MiMo-VL-7B-RL","messages":[{"role":"user","content":"hello"}],"max_tokens":8}`
		resp, err := http.Post(fmt.Sprintf("http://%s:%d/v1/chat/completions", ip, port), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("chat request to the slice's address: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"choices"`) || !strings.Contains(string(b), "XiaomiMiMo/MiMo-VL-7B-RL") {
			t.Errorf("chat: %d %s", resp.StatusCode, b)
		}

		eventually(t, "Deployment status", 10*time.Second, func() (bool, string) {
			d, err := c.apps.Deployments("mimo").Get(ctx, "mimo-vl-7b-rl-engine", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			s := d.Status
			b, _ := json.Marshal(s)
			return s.ObservedGeneration == d.Generation && s.Replicas == 1 && s.ReadyReplicas == 1 && s.AvailableReplicas == 1 &&
				s.UpdatedReplicas == 1 && condition(s, appsv1.DeploymentAvailable) == "True/MinimumReplicasAvailable", string(b)
		})
		logs, _ := filepath.Glob(filepath.Join(c.dirs["gpu-b"], "var/log/pods", "mimo_"+p.Name+"_*", "ome-container", "0.log"))
		if len(logs) != 1 {
			t.Errorf("no container log under gpu-b's /var/log/pods: %v", logs)
		}
	})

	t.Run("scale to zero", func(t *testing.T) {
		p := c.pod("mimo", sel, "Ready", ready)
		pid, _ := strconv.Atoi(strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "process://"))
		c.kubectl(t, "", "-n", "mimo", "scale", "deployment/mimo-vl-7b-rl-engine", "--replicas=0")
		eventually(t, "pods and slices removed, process killed", 15*time.Second, func() (bool, string) {
			l, _ := c.core.Pods("mimo").List(ctx, metav1.ListOptions{LabelSelector: sel})
			s := c.slices("mimo", "mimo-vl-7b-rl-engine")
			return len(l.Items) == 0 && len(s) == 0 && !alive(pid), fmt.Sprintf("%d pods, %d slices, pid %d alive %v", len(l.Items), len(s), pid, alive(pid))
		})
		eventually(t, "Deployment status at 0", 10*time.Second, func() (bool, string) {
			d, _ := c.apps.Deployments("mimo").Get(ctx, "mimo-vl-7b-rl-engine", metav1.GetOptions{})
			b, _ := json.Marshal(d.Status)
			return d.Status.Replicas == 0 && d.Status.ReadyReplicas == 0 && d.Status.ObservedGeneration == d.Generation, string(b)
		})
	})

	t.Run("unschedulable", func(t *testing.T) {
		// Two GPUs, on a node of pool a: gpu-a has one GPU, gpu-b is in pool b.
		c.kubectl(t, strings.NewReplacer("name: mimo-vl-7b-rl-engine\n", "name: big-engine\n", "mimo-vl-7b-rl", "big",
			"nodeSelector: {pool: b}", "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [a]}]}]}}}",
			"nvidia.com/gpu: 1", "nvidia.com/gpu: 2").Replace(engineDeployment), "apply", "-f", "-")
		want := "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector."
		c.pod("mimo", "ome.io/inferenceservice=big", "Unschedulable", func(p *corev1.Pod) bool {
			for _, cd := range p.Status.Conditions {
				if cd.Type == corev1.PodScheduled && cd.Status == corev1.ConditionFalse && cd.Reason == "Unschedulable" && cd.Message == want {
					return p.Spec.NodeName == "" && p.Status.Phase == corev1.PodPending
				}
			}
			return false
		})
		eventually(t, "the scheduler's FailedScheduling event", 10*time.Second, func() (bool, string) {
			l, err := c.core.Events("mimo").List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedScheduling"})
			if err != nil {
				return false, err.Error()
			}
			for _, e := range l.Items {
				if e.Type == corev1.EventTypeWarning && e.Message == want && strings.HasPrefix(e.InvolvedObject.Name, "big-engine-") {
					return true, ""
				}
			}
			b, _ := json.Marshal(l.Items)
			return false, string(b)
		})
		eventually(t, "Deployment not available", 10*time.Second, func() (bool, string) {
			d, _ := c.apps.Deployments("mimo").Get(ctx, "big-engine", metav1.GetOptions{})
			b, _ := json.Marshal(d.Status)
			return condition(d.Status, appsv1.DeploymentAvailable) == "False/MinimumReplicasUnavailable" && d.Status.UnavailableReplicas == 1, string(b)
		})
		// One GPU fits gpu-a once its pool matches: the pending pod is scheduled there (a
		// model becoming Ready on a node relabels it the same way).
		c.kubectl(t, "", "-n", "mimo", "patch", "deployment/big-engine", "--type=json", "-p",
			`[{"op":"replace","path":"/spec/template/spec/containers/0/resources/requests/nvidia.com~1gpu","value":"1"},{"op":"replace","path":"/spec/template/spec/containers/0/resources/limits/nvidia.com~1gpu","value":"1"}]`)
		p := c.pod("mimo", "ome.io/inferenceservice=big", "Ready on gpu-a", func(p *corev1.Pod) bool { return ready(p) && p.Spec.NodeName == "gpu-a" })
		t.Logf("pod %s Ready on gpu-a after the template changed", p.Name)
		c.kubectl(t, "", "-n", "mimo", "delete", "deployment/big-engine")
		eventually(t, "pods of the deleted Deployment removed", 15*time.Second, func() (bool, string) {
			l, _ := c.core.Pods("mimo").List(ctx, metav1.ListOptions{LabelSelector: "ome.io/inferenceservice=big"})
			rs, _ := c.apps.ReplicaSets("mimo").List(ctx, metav1.ListOptions{LabelSelector: "ome.io/inferenceservice=big"})
			return len(l.Items) == 0 && len(rs.Items) == 0, fmt.Sprintf("%d pods, %d ReplicaSets", len(l.Items), len(rs.Items))
		})
	})

	t.Run("crash loop", func(t *testing.T) {
		// An engine that runs out of GPU memory while loading (citadel sim --oom-at-load),
		// and a program that fails on its own.
		c.kubectl(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: oom-engine, namespace: mimo, labels: {app.kubernetes.io/managed-by: citadel}}
spec:
  selector: {matchLabels: {app: oom}}
  template:
    metadata: {labels: {app: oom}}
    spec:
      containers:
        - name: engine
          image: vllm/vllm-openai:v0.11.0
          command: [vllm, serve, Qwen/Qwen2.5-7B-Instruct, --port, "8000", --oom-at-load]
          terminationMessagePolicy: FallbackToLogsOnError
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: failing, namespace: mimo, labels: {app.kubernetes.io/managed-by: citadel}}
spec:
  selector: {matchLabels: {app: failing}}
  template:
    metadata: {labels: {app: failing}}
    spec:
      containers:
        - name: main
          image: busybox
          command: [sh, -c, 'echo loading; echo "fatal: no weights in $(WEIGHTS)" >&2; exit 3']
          env: [{name: WEIGHTS, value: /raid/models/none}]
          terminationMessagePolicy: FallbackToLogsOnError
`, "apply", "-f", "-")
		for _, tc := range []struct {
			app, reason, msg string
			code             int32
		}{
			{"oom", "OOMKilled", "torch.OutOfMemoryError: CUDA out of memory", 1},
			{"failing", "Error", "fatal: no weights in /raid/models/none", 3},
		} {
			p := c.pod("mimo", "app="+tc.app, "in CrashLoopBackOff", func(p *corev1.Pod) bool {
				if len(p.Status.ContainerStatuses) == 0 {
					return false
				}
				cs := p.Status.ContainerStatuses[0]
				term := cs.LastTerminationState.Terminated
				return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && cs.RestartCount >= 2 && term != nil &&
					term.ExitCode == tc.code && term.Reason == tc.reason && strings.Contains(term.Message, tc.msg) && !ready(p)
			})
			cs := p.Status.ContainerStatuses[0]
			t.Logf("%s: restarts %d, waiting %q; last exit %d %s: %q", p.Name, cs.RestartCount, cs.State.Waiting.Message,
				cs.LastTerminationState.Terminated.ExitCode, cs.LastTerminationState.Terminated.Reason, cs.LastTerminationState.Terminated.Message)
		}
	})

	t.Run("owner deleted", func(t *testing.T) {
		// What Citadel's controller makes is owned by an InferenceService; here a ConfigMap
		// stands for it. Deleting the owner deletes the Deployment and the Service, as the
		// garbage collector does, and so their pods, processes and slices.
		c.kubectl(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner, namespace: mimo}\n", "apply", "-f", "-")
		cm, err := c.core.ConfigMaps("mimo").Get(ctx, "owner", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		owner := fmt.Sprintf("ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: %s, controller: true}]", cm.UID)
		c.kubectl(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: owned, namespace: mimo, labels: {app.kubernetes.io/managed-by: citadel}, `+owner+`}
spec:
  selector: {matchLabels: {app: owned}}
  template:
    metadata: {labels: {app: owned}}
    spec:
      containers:
        - {name: main, image: busybox, command: [sh, -c, exec sleep 300], ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: owned, namespace: mimo, labels: {app.kubernetes.io/managed-by: citadel}, `+owner+`}
spec:
  selector: {app: owned}
  ports: [{name: http, port: 8080, targetPort: http}]
`, "apply", "-f", "-")
		p := c.pod("mimo", "app=owned", "Ready", ready)
		pid, _ := strconv.Atoi(strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "process://"))
		eventually(t, "the Service's slice", 10*time.Second, func() (bool, string) {
			return len(c.slices("mimo", "owned")) == 1, ""
		})
		c.kubectl(t, "", "-n", "mimo", "delete", "configmap", "owner")
		eventually(t, "Deployment, Service, pod, slice and process gone", 15*time.Second, func() (bool, string) {
			_, derr := c.apps.Deployments("mimo").Get(ctx, "owned", metav1.GetOptions{})
			_, serr := c.core.Services("mimo").Get(ctx, "owned", metav1.GetOptions{})
			l, _ := c.core.Pods("mimo").List(ctx, metav1.ListOptions{LabelSelector: "app=owned"})
			s := c.slices("mimo", "owned")
			return apierrors.IsNotFound(derr) && apierrors.IsNotFound(serr) && len(l.Items) == 0 && len(s) == 0 && !alive(pid),
				fmt.Sprintf("deployment %v, service %v, %d pods, %d slices, pid %d alive %v", derr, serr, len(l.Items), len(s), pid, alive(pid))
		})
	})

	t.Run("stop kills every process", func(t *testing.T) {
		if len(c.pids) < 4 {
			t.Fatalf("saw %d processes, expected at least 4", len(c.pids))
		}
		c.stop()
		for pid := range c.pids {
			if alive(pid) {
				t.Errorf("process %d still runs after the kubelet stopped", pid)
			}
		}
	})
}

func condition(s appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType) string {
	for _, c := range s.Conditions {
		if c.Type == typ {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}

// contains reports whether argv has flag followed by value, or flag=value.
func contains(argv []string, flag, value string) bool {
	for i, a := range argv {
		if a == flag+"="+value || (a == flag && i+1 < len(argv) && argv[i+1] == value) {
			return true
		}
	}
	return false
}
