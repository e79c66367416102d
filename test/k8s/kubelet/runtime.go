package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
)

// podRuntime is a Pod whose containers run here.
type podRuntime struct {
	pod        *corev1.Pod // as it was when its containers started
	ip         string      // the Pod's address, which its processes bind
	node       *Node
	nodeIP     string
	started    metav1.Time
	cancel     context.CancelFunc
	containers []*container
}

func (pr *podRuntime) stop() { pr.cancel() }

// container is one of a Pod's containers: its process, restarted when it exits.
type container struct {
	spec corev1.Container
	ip   string // the Pod's address
	port int    // the port its process listens on, the same across restarts
	logs string // the directory of its log files, one per start

	mu sync.Mutex
	st containerState
}

// containerState is what the Pod's status says of a container.
type containerState struct {
	pid            int
	running        bool
	startedAt      metav1.Time
	started, ready bool
	restarts       int32
	waiting        string // the reason it waits (ContainerCreating, CrashLoopBackOff, …)
	waitingMsg     string
	last           *corev1.ContainerStateTerminated
}

func (c *container) update(f func(*containerState)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

func (c *container) state() containerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// startPod starts the goroutines that run a bound Pod's containers.
func (k *kubelet) startPod(ctx context.Context, p *corev1.Pod) error {
	node := k.nodes[p.Spec.NodeName]
	pctx, cancel := context.WithCancel(k.ctx)
	ip, err := k.opts.PodIP()
	if err != nil {
		cancel()
		return err
	}
	pr := &podRuntime{pod: p.DeepCopy(), ip: ip, node: node, nodeIP: k.nodeIP[node.Name], started: metav1.Now(), cancel: cancel}
	for _, cs := range p.Spec.Containers {
		port, err := freePort(ip)
		if err != nil {
			cancel()
			return err
		}
		dir := filepath.Join(node.Dir, "var/log/pods", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), cs.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cancel()
			return err
		}
		c := &container{spec: cs, ip: ip, port: port, logs: dir}
		c.st.waiting = "ContainerCreating"
		pr.containers = append(pr.containers, c)
	}
	k.mu.Lock()
	k.pods[p.UID] = pr
	for _, c := range pr.containers {
		k.wg.Add(1)
		go k.runContainer(pctx, pr, c)
	}
	k.mu.Unlock()
	k.logf("test kubelet: pod %s/%s starting on %s at %s", p.Namespace, p.Name, node.Name, ip)
	return nil
}

// freePort returns a port of ip that was free a moment ago.
func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// runContainer runs a container until ctx ends, restarting it after each exit with the
// CrashLoopBackOff delay (restartPolicy Always).
func (k *kubelet) runContainer(ctx context.Context, pr *podRuntime, c *container) {
	defer k.wg.Done()
	p := pr.pod
	maxBackoff := 16 * k.opts.Backoff
	backoff := k.opts.Backoff
	for ctx.Err() == nil {
		l, env, err := k.launch(ctx, pr, c)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.update(func(s *containerState) { s.waiting, s.waitingMsg = "CreateContainerConfigError", err.Error() })
			k.event(k.ctx, p, corev1.EventTypeWarning, "Failed", "kubelet", "Error: "+err.Error())
			k.wake()
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		ran, term := k.runOnce(ctx, pr, c, l, env)
		if ctx.Err() != nil {
			return
		}
		if ran > 2*maxBackoff { // ran long enough: the next crash starts the backoff again
			backoff = k.opts.Backoff
		}
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", backoff, c.spec.Name, p.Name, p.Namespace, p.UID)
		c.update(func(s *containerState) {
			s.restarts++
			s.last = term
			s.running, s.started, s.ready, s.pid = false, false, false, 0
			s.waiting, s.waitingMsg = "CrashLoopBackOff", msg
		})
		k.logf("test kubelet: pod %s/%s container %s exited %d (%s); %s", p.Namespace, p.Name, c.spec.Name, term.ExitCode, term.Reason, msg)
		k.event(k.ctx, p, corev1.EventTypeWarning, "BackOff", "kubelet", fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", c.spec.Name, p.Name, p.Namespace, p.UID))
		k.wake()
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runOnce starts the container's process, probes it, and waits for it to exit (or kills it
// when a probe says so or ctx ends). It returns how long it ran and how it ended.
func (k *kubelet) runOnce(ctx context.Context, pr *podRuntime, c *container, l engine.Launch, env []string) (time.Duration, *corev1.ContainerStateTerminated) {
	st := c.state()
	logPath := filepath.Join(c.logs, fmt.Sprintf("%d.log", st.restarts))
	start := metav1.Now()
	f, err := os.Create(logPath)
	if err != nil {
		return 0, &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: start, FinishedAt: metav1.Now()}
	}
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = pr.node.Dir, env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return 0, &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: start, FinishedAt: metav1.Now()}
	}
	pid := cmd.Process.Pid
	k.logf("test kubelet: pod %s/%s container %s: pid %d port %d: %s (log %s)", pr.pod.Namespace, pr.pod.Name, c.spec.Name, pid, c.port, strings.Join(l.Argv, " "), logPath)
	c.update(func(s *containerState) {
		s.pid, s.running, s.startedAt = pid, true, start
		s.waiting, s.waitingMsg = "", ""
	})
	k.event(k.ctx, pr.pod, corev1.EventTypeNormal, "Started", "kubelet", "Started container "+c.spec.Name)
	k.wake()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()

	pctx, stopProbes := context.WithCancel(ctx)
	kill := make(chan string, 1)
	probed := make(chan struct{})
	go func() { defer close(probed); k.probe(pctx, c, l, kill) }()
	var why string
	select {
	case <-exited:
	case <-ctx.Done():
		k.kill(pid, exited, pr.pod)
	case why = <-kill:
		k.logf("test kubelet: pod %s/%s container %s: %s; killing it", pr.pod.Namespace, pr.pod.Name, c.spec.Name, why)
		k.event(k.ctx, pr.pod, corev1.EventTypeWarning, "Unhealthy", "kubelet", why)
		k.event(k.ctx, pr.pod, corev1.EventTypeNormal, "Killing", "kubelet", fmt.Sprintf("Container %s failed a probe, will be restarted", c.spec.Name))
		k.kill(pid, exited, pr.pod)
	}
	stopProbes()
	<-probed
	_ = syscall.Kill(-pid, syscall.SIGKILL) // what the process left in its group goes with it
	ran := time.Since(start.Time)

	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	term := &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: "Error", StartedAt: start, FinishedAt: metav1.Now(), ContainerID: containerID(pid)}
	tail := logTail(logPath)
	switch {
	case code == 0:
		term.Reason = "Completed"
	case outOfMemory(tail):
		term.Reason = "OOMKilled"
	}
	if code != 0 && c.spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		term.Message = tail
	}
	if why != "" && term.Message == "" {
		term.Message = why
	}
	return ran, term
}

// kill stops a process group: SIGTERM, then SIGKILL after the grace period (the
// kubelet's, at most the Pod's terminationGracePeriodSeconds).
func (k *kubelet) kill(pid int, exited <-chan struct{}, p *corev1.Pod) {
	grace := k.opts.Grace
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < grace {
		grace = time.Duration(*g) * time.Second
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
}

func containerID(pid int) string { return "process://" + strconv.Itoa(pid) }

// logTail is the end of a container's log as a kubelet keeps it for
// FallbackToLogsOnError: the last 80 lines, at most 2048 bytes.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	return strings.Join(lines, "\n")
}

// outOfMemory reports whether a log tail says the engine ran out of GPU memory (the
// simulator logs what the engines log): the container's termination is then OOMKilled.
func outOfMemory(tail string) bool {
	low := strings.ToLower(tail)
	return slices.ContainsFunc(engine.OutOfMemory(), func(f string) bool { return strings.Contains(low, f) })
}

// probe runs the container's startup probe, then its readiness and liveness probes, and
// sets started and ready; a failed startup or liveness probe sends why on kill. Only the
// probes the container declares run, as in Kubernetes: without a readiness probe a started
// container is ready.
func (k *kubelet) probe(ctx context.Context, c *container, l engine.Launch, kill chan<- string) {
	if c.spec.StartupProbe != nil && l.Startup != nil {
		if !k.probeUntil(ctx, c, l.Startup) {
			if ctx.Err() == nil {
				kill <- fmt.Sprintf("Startup probe failed: %s", l.Startup)
			}
			return
		}
	}
	c.update(func(s *containerState) { s.started = true })
	k.wake()
	var wg sync.WaitGroup
	if c.spec.ReadinessProbe != nil && l.Readiness != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.probeLoop(ctx, c, l.Readiness, func(ok bool) {
				c.update(func(s *containerState) { s.ready = ok })
				k.wake()
			})
		}()
	} else {
		c.update(func(s *containerState) { s.ready = true })
		k.wake()
	}
	if c.spec.LivenessProbe != nil && l.Liveness != nil {
		k.probeLoop(ctx, c, l.Liveness, func(ok bool) {
			if !ok {
				select {
				case kill <- fmt.Sprintf("Liveness probe failed: %s", l.Liveness):
				default:
				}
			}
		})
	}
	wg.Wait()
}

// probeUntil probes until success (true) or FailureThreshold failures in a row (false).
func (k *kubelet) probeUntil(ctx context.Context, c *container, p *engine.Probe) bool {
	if !sleep(ctx, p.InitialDelay) {
		return false
	}
	fails := 0
	for {
		if check(ctx, c.ip, c.port, p) {
			return true
		}
		if fails++; fails >= max(p.FailureThreshold, 1) {
			return false
		}
		if !sleep(ctx, p.Period) {
			return false
		}
	}
}

// probeLoop probes every Period until ctx ends and calls set(true) after SuccessThreshold
// successes in a row, set(false) after FailureThreshold failures in a row (each time the
// result changes).
func (k *kubelet) probeLoop(ctx context.Context, c *container, p *engine.Probe, set func(bool)) {
	if !sleep(ctx, p.InitialDelay) {
		return
	}
	ok, okN, failN := false, 0, 0
	first := true
	for ctx.Err() == nil {
		if check(ctx, c.ip, c.port, p) {
			okN, failN = okN+1, 0
			if okN >= max(p.SuccessThreshold, 1) && (!ok || first) {
				ok, first = true, false
				set(true)
			}
		} else if ctx.Err() == nil {
			failN, okN = failN+1, 0
			if failN >= max(p.FailureThreshold, 1) && (ok || first) {
				ok, first = false, false
				set(false)
			}
		}
		if !sleep(ctx, p.Period) {
			return
		}
	}
}

var probeClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// check runs one probe: an HTTP GET answered 200-399, or a TCP connect when Path is "".
func check(ctx context.Context, ip string, port int, p *engine.Probe) bool {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if p.Path == "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.Path, nil)
	if err != nil {
		return false
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// launch writes the container's command line and environment: engine.FromRunner expands
// $(VAR) references (Kubernetes' rules), unwraps a simple shell script and sets the port;
// the paths under hostPath mounts are moved into the node's directory; a known engine is
// then rewritten by engine.Simulate to run citadel sim.
func (k *kubelet) launch(ctx context.Context, pr *podRuntime, c *container) (engine.Launch, []string, error) {
	mounts := hostMounts(pr.pod, &c.spec, pr.node.Dir)
	var given []string
	modelPath := ""
	for _, e := range c.spec.Env {
		v := e.Value
		if e.ValueFrom != nil {
			var err error
			if v, err = k.valueFrom(ctx, pr, &c.spec, e.ValueFrom); err != nil {
				return engine.Launch{}, nil, err
			}
			given = append(given, e.Name+"="+mapPaths(v, mounts))
		}
		if e.Name == "MODEL_PATH" {
			modelPath = mapPaths(v, mounts)
		}
	}
	var vc v1.Container
	b, err := json.Marshal(c.spec)
	if err == nil {
		err = json.Unmarshal(b, &vc)
	}
	if err != nil {
		return engine.Launch{}, nil, fmt.Errorf("container %s: %w", c.spec.Name, err)
	}
	l, err := engine.FromRunner(vc, engine.Spec{Port: c.port, Host: pr.ip, ModelPath: modelPath, Env: given})
	if err != nil {
		return engine.Launch{}, nil, fmt.Errorf("container %s: %w", c.spec.Name, err)
	}
	for i, a := range l.Argv {
		l.Argv[i] = mapPaths(a, mounts)
	}
	for i, kv := range l.Env {
		if key, v, ok := strings.Cut(kv, "="); ok {
			l.Env[i] = key + "=" + mapPaths(v, mounts)
		}
	}
	if l.Engine != "" {
		if l, err = engine.Simulate(l, k.opts.Citadel, pr.node.GPU, k.opts.TimeScale); err != nil {
			return engine.Launch{}, nil, fmt.Errorf("container %s: %w", c.spec.Name, err)
		}
	}
	if len(l.Argv) == 0 {
		return engine.Launch{}, nil, fmt.Errorf("container %s: no command", c.spec.Name)
	}
	env := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + pr.node.Dir, "TMPDIR=" + os.TempDir(), "HOSTNAME=" + pr.pod.Name}, l.Env...)
	return l, env, nil
}

// mount is a hostPath volume's mount: what the container calls path is local on this node.
type mount struct{ path, local string }

// hostMounts are the container's hostPath mounts, longest mount path first.
func hostMounts(p *corev1.Pod, c *corev1.Container, nodeDir string) []mount {
	host := map[string]string{}
	for _, v := range p.Spec.Volumes {
		if v.HostPath != nil {
			host[v.Name] = v.HostPath.Path
		}
	}
	var out []mount
	for _, m := range c.VolumeMounts {
		if h, ok := host[m.Name]; ok && m.MountPath != "" {
			out = append(out, mount{path: filepath.Clean(m.MountPath), local: filepath.Join(nodeDir, h, m.SubPath)})
		}
	}
	slices.SortFunc(out, func(a, b mount) int { return len(b.path) - len(a.path) })
	return out
}

// mapPaths replaces each path under a mount (at the start of s or after =, :, a space or a
// quote) by its place on the node.
func mapPaths(s string, mounts []mount) string {
	for _, m := range mounts {
		re := mountRegexp(m.path)
		s = re.ReplaceAllString(s, "${1}"+strings.ReplaceAll(m.local, "$", "$$")+"${2}")
	}
	return s
}

func mountRegexp(path string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[=:\s"'])` + regexp.QuoteMeta(path) + `(/|$|[\s"':])`)
}

// valueFrom resolves an environment variable's source as the kubelet does.
func (k *kubelet) valueFrom(ctx context.Context, pr *podRuntime, c *corev1.Container, src *corev1.EnvVarSource) (string, error) {
	p := pr.pod
	switch {
	case src.FieldRef != nil:
		path := src.FieldRef.FieldPath
		switch path {
		case "metadata.name":
			return p.Name, nil
		case "metadata.namespace":
			return p.Namespace, nil
		case "metadata.uid":
			return string(p.UID), nil
		case "spec.nodeName":
			return p.Spec.NodeName, nil
		case "spec.serviceAccountName":
			return p.Spec.ServiceAccountName, nil
		case "status.podIP", "status.podIPs":
			return pr.ip, nil
		case "status.hostIP", "status.hostIPs":
			return pr.nodeIP, nil
		}
		if key, ok := strings.CutPrefix(path, "metadata.labels["); ok {
			return p.Labels[strings.Trim(strings.TrimSuffix(key, "]"), `'"`)], nil
		}
		if key, ok := strings.CutPrefix(path, "metadata.annotations["); ok {
			return p.Annotations[strings.Trim(strings.TrimSuffix(key, "]"), `'"`)], nil
		}
		return "", fmt.Errorf("fieldRef %s is not supported by the test kubelet", path)
	case src.ResourceFieldRef != nil:
		name := strings.TrimPrefix(strings.TrimPrefix(src.ResourceFieldRef.Resource, "limits."), "requests.")
		q, ok := c.Resources.Limits[corev1.ResourceName(name)]
		if !ok {
			q = c.Resources.Requests[corev1.ResourceName(name)]
		}
		return q.String(), nil
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		s, err := k.core.Secrets(p.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && r.Optional != nil && *r.Optional {
				return "", nil
			}
			return "", notFound(err, "secret", r.Name)
		}
		v, ok := s.Data[r.Key]
		if !ok && (r.Optional == nil || !*r.Optional) {
			return "", fmt.Errorf("couldn't find key %s in Secret %s/%s", r.Key, p.Namespace, r.Name)
		}
		return string(v), nil
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		cm, err := k.core.ConfigMaps(p.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && r.Optional != nil && *r.Optional {
				return "", nil
			}
			return "", notFound(err, "configmap", r.Name)
		}
		v, ok := cm.Data[r.Key]
		if !ok && (r.Optional == nil || !*r.Optional) {
			return "", fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", r.Key, p.Namespace, r.Name)
		}
		return v, nil
	}
	return "", errors.New("an env valueFrom with no source")
}

// notFound says a missing object as the kubelet does: secret "hf-token" not found.
func notFound(err error, kind, name string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found", kind, name)
	}
	return err
}

// status is the Pod's status from its containers' states.
func (pr *podRuntime) status(p *corev1.Pod) corev1.PodStatus {
	s := *p.Status.DeepCopy()
	s.ContainerStatuses = nil
	anyRan := false
	var unready []string
	for _, c := range pr.containers {
		st := c.state()
		cs := corev1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image, ImageID: c.spec.Image,
			RestartCount: st.restarts, Ready: st.ready, Started: ptrTo(st.started)}
		if st.running {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: st.startedAt}
			cs.ContainerID = containerID(st.pid)
			anyRan = true
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: st.waiting, Message: st.waitingMsg}
		}
		if st.last != nil {
			cs.LastTerminationState.Terminated = st.last
			anyRan = true
		}
		if !st.ready {
			unready = append(unready, c.spec.Name)
		}
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	s.Phase = corev1.PodPending
	s.StartTime = &pr.started
	s.HostIP, s.HostIPs = pr.nodeIP, []corev1.HostIP{{IP: pr.nodeIP}}
	if anyRan {
		s.Phase = corev1.PodRunning
		s.PodIP, s.PodIPs = pr.ip, []corev1.PodIP{{IP: pr.ip}}
	}
	setPodCondition(&s, corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", "")
	setPodCondition(&s, corev1.PodInitialized, corev1.ConditionTrue, "", "")
	if len(unready) == 0 {
		setPodCondition(&s, corev1.ContainersReady, corev1.ConditionTrue, "", "")
		setPodCondition(&s, corev1.PodReady, corev1.ConditionTrue, "", "")
	} else {
		msg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		setPodCondition(&s, corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady", msg)
		setPodCondition(&s, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", msg)
	}
	setPodCondition(&s, corev1.PodScheduled, corev1.ConditionTrue, "", "")
	return s
}
