package serving

// On-demand services (docs/design/0006-residency.md). A service whose spec sets residency,
// or whose model's servingMode is On-demand, is placed as if it were alone on what the
// dedicated services leave (so on-demand services share GPUs beyond that budget), and its
// engine is started and stopped, put to sleep and woken, by the residency manager, not by the
// reconcile pass: the manager decides which on-demand services are resident, within the
// memory the dedicated services leave on each GPU.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/residency"
	"citadel.dev/citadel/internal/supervisor"
)

// contextBytes is what a sleeping vLLM or SGLang engine keeps on each GPU (its CUDA context).
const contextBytes = 512 << 20

// Residency is the manager of the on-demand services, for the gateway.
func (c *Controller) Residency() residency.Admitter { return c.res }

// planAll places the dedicated services together, as before, and then each on-demand
// service alone on what the dedicated ones leave; it returns the decisions and refusals
// index-aligned with reqs, and the memory left on each GPU for the on-demand services.
func planAll(intents []*intent, reqs []placement.Request, inv []placement.GPU) ([]placement.Decision, []error, map[int]int64) {
	var dIdx []int
	var dReqs []placement.Request
	for i, in := range intents {
		if !in.onDemand {
			dIdx, dReqs = append(dIdx, i), append(dReqs, reqs[i])
		}
	}
	decisions, refusals := make([]placement.Decision, len(reqs)), make([]error, len(reqs))
	ds, errs := plan(dReqs, inv)
	for k, i := range dIdx {
		decisions[i], refusals[i] = ds[k], errs[k]
	}
	left := slices.Clone(inv)
	used := reserved(inv, dReqs, ds)
	for i := range left {
		left[i].MemoryUsed += used[left[i].Index]
	}
	budget := map[int]int64{}
	for _, g := range left {
		if usable(g) {
			budget[g.Index] = max(g.MemoryTotal-g.MemoryUsed, 0)
		}
	}
	for i, in := range intents {
		if in.onDemand {
			ds, errs := plan([]placement.Request{reqs[i]}, left)
			decisions[i], refusals[i] = ds[0], errs[0]
		}
	}
	return decisions, refusals, budget
}

// reserved is the memory the decisions hold on each GPU: an exclusive engine its share of
// the card, the shared Ollama its largest model there.
func reserved(inv []placement.GPU, reqs []placement.Request, ds []placement.Decision) map[int]int64 {
	total := map[int]int64{}
	for _, g := range inv {
		total[g.Index] = g.MemoryTotal
	}
	used, peak := map[int]int64{}, map[int]int64{}
	for i, d := range ds {
		for _, a := range d.Replicas {
			for gpu, b := range footprint(a, reqs[i].Shared, total) {
				if reqs[i].Shared {
					peak[gpu] = max(peak[gpu], b)
				} else {
					used[gpu] += b
				}
			}
		}
	}
	for gpu, b := range peak {
		used[gpu] += b
	}
	return used
}

// footprint is what an assignment holds on each of its GPUs while loaded.
func footprint(a placement.Assignment, shared bool, total map[int]int64) map[int]int64 {
	out := map[int]int64{}
	for k, gpu := range a.GPUs {
		if shared {
			b := a.Plan.WeightBytes + a.Plan.ActivationBytes + a.Plan.KVBytes
			if a.Offload != nil && k < len(a.Offload.GPUBytes) {
				b = a.Offload.GPUBytes[k]
			}
			out[gpu] = b
			continue
		}
		out[gpu] = int64(a.MemoryUtilization * float64(total[gpu]))
	}
	return out
}

// odEngine loads and evicts one on-demand service's engine for the residency manager. It is
// kept across passes (a vLLM engine remembers the level it slept at); each pass updates what
// it runs.
type odEngine struct {
	c *Controller

	mu     sync.Mutex
	in     *intent
	a      placement.Assignment
	key    string // the instance key: service/0, or the shared server's
	fp     string // the launch's fingerprint
	level  int    // vLLM sleep level
	vllm   residency.VLLM
	sglang residency.SGLang
}

func (e *odEngine) snapshot() (*intent, placement.Assignment, string, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.in, e.a, e.key, e.level
}

// Load starts the engine when it does not run (or wakes it when it sleeps), or loads the
// model into the shared Ollama.
func (e *odEngine) Load(ctx context.Context) (string, error) {
	in, a, key, level := e.snapshot()
	c := e.c
	inst := c.instance(key)
	if in.adapter != nil && in.adapter.Shared {
		if inst == nil {
			return residency.HowOllama, fmt.Errorf("the shared %s server is not running", in.engine)
		}
		if err := waitReady(ctx, inst); err != nil {
			return residency.HowOllama, err
		}
		o := residency.Ollama{BaseURL: c.baseURL(inst), Model: in.ollamaName}
		return o.Load(ctx)
	}
	if inst == nil || inst.proc.State().Phase == supervisor.Stopped {
		return residency.HowStart, c.startOnDemand(ctx, in, a, key, level)
	}
	if err := waitReady(ctx, inst); err != nil {
		return residency.HowStart, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch in.engine {
	case engine.VLLM:
		e.vllm.BaseURL = c.baseURL(inst)
		return e.vllm.Load(ctx)
	case engine.SGLang:
		e.sglang.BaseURL = c.baseURL(inst)
		return e.sglang.Load(ctx)
	}
	return residency.HowStart, nil // running: it holds its model
}

// Evict puts a vLLM engine to sleep, releases an SGLang engine's memory, unloads an Ollama
// model, or stops any other engine.
func (e *odEngine) Evict(ctx context.Context) (string, error) {
	in, _, key, level := e.snapshot()
	c := e.c
	inst := c.instance(key)
	if inst == nil {
		return residency.StateUnloaded, nil
	}
	if in.adapter != nil && in.adapter.Shared {
		o := residency.Ollama{BaseURL: c.baseURL(inst), Model: in.ollamaName}
		return o.Evict(ctx)
	}
	e.mu.Lock()
	switch in.engine {
	case engine.VLLM:
		e.vllm.BaseURL, e.vllm.Level = c.baseURL(inst), level
		defer e.mu.Unlock()
		return e.vllm.Evict(ctx)
	case engine.SGLang:
		e.sglang.BaseURL = c.baseURL(inst)
		defer e.mu.Unlock()
		return e.sglang.Evict(ctx)
	}
	e.mu.Unlock()
	c.mu.Lock()
	if c.instances[key] == inst {
		delete(c.instances, key)
	}
	c.mu.Unlock()
	c.log.Info("stopping on-demand engine", "instance", key)
	return residency.StateUnloaded, inst.proc.Stop(ctx)
}

// Resident tells the manager whether the engine holds the model now: a vLLM engine that is
// not asleep, a model /api/ps lists, another engine that runs. SGLang cannot tell.
func (e *odEngine) Resident(ctx context.Context) (bool, error) {
	in, _, key, _ := e.snapshot()
	c := e.c
	inst := c.instance(key)
	if inst == nil {
		return false, nil
	}
	if st := inst.proc.State(); st.Phase != supervisor.Ready {
		return false, fmt.Errorf("engine %s is %s", key, st.Phase) // not known until it is ready
	}
	switch {
	case in.adapter != nil && in.adapter.Shared:
		o := residency.Ollama{BaseURL: c.baseURL(inst), Model: in.ollamaName}
		return o.Loaded(ctx)
	case in.engine == engine.VLLM:
		v := residency.VLLM{BaseURL: c.baseURL(inst)}
		return v.Resident(ctx)
	case in.engine == engine.SGLang:
		return false, errors.New("SGLang does not say whether its memory is released")
	}
	return true, nil
}

func (c *Controller) instance(key string) *instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.instances[key]
}

func (c *Controller) baseURL(inst *instance) string {
	return "http://" + net.JoinHostPort(c.opts.Host, strconv.Itoa(inst.launch.Port))
}

// waitReady waits for the engine to pass its readiness probe.
func waitReady(ctx context.Context, inst *instance) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		st := inst.proc.State()
		switch st.Phase {
		case supervisor.Ready:
			return nil
		case supervisor.CrashLoopBackOff, supervisor.Failed, supervisor.Stopped:
			return fmt.Errorf("engine %s is %s: %s", inst.key, st.Phase, st.Message)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine %s not ready (%s: %s): %w", inst.key, st.Phase, st.Message, ctx.Err())
		case <-t.C:
		}
	}
}

// odSpec is the engine spec of an on-demand service: the dedicated one, with the engine's
// memory release switched on.
func (c *Controller) odSpec(in *intent, a placement.Assignment) engine.Spec {
	spec := engine.Spec{Engine: in.engine, ModelPath: in.modelPath, ModelName: in.modelName, Vision: in.vision,
		MaxModelLen: in.maxLen, TP: a.TP, GPUMemoryUtilization: a.MemoryUtilization, GPUs: a.GPUs,
		Host: c.opts.Host, CacheDir: c.opts.CacheDir, Parallel: in.settings.Concurrency}
	if in.ref != nil {
		spec.ExtraArgs = append(slices.Clone(in.ref.Args), in.extraArgs...)
		spec.Env = append(envList(in.ref.Env), in.extraEnv...)
	}
	switch in.engine {
	case engine.VLLM:
		// The sleep endpoints exist only in development mode (sleep/api_router.py); they stay
		// on the engine's loopback port behind the gateway.
		spec.ExtraArgs = append(spec.ExtraArgs, "--enable-sleep-mode")
		spec.Env = append(spec.Env, "VLLM_SERVER_DEV_MODE=1")
	case engine.SGLang:
		spec.ExtraArgs = append(spec.ExtraArgs, "--enable-memory-saver")
	}
	return spec
}

// startOnDemand starts an on-demand service's engine and waits until it is ready.
func (c *Controller) startOnDemand(ctx context.Context, in *intent, a placement.Assignment, key string, level int) error {
	spec := c.odSpec(in, a)
	var runner *v1.Container
	if in.runner != nil {
		r := *in.runner
		r.Args = append(slices.Clone(r.Args), spec.ExtraArgs...)
		r.Env = slices.Clone(r.Env)
		for _, kv := range spec.Env {
			k, v, _ := strings.Cut(kv, "=")
			r.Env = append(r.Env, v1.EnvVar{Name: k, Value: v})
		}
		runner = &r
	}
	inst := &instance{key: key, service: in.key, fp: fingerprint(in, spec), gpus: a.GPUs}
	// The process lives as long as the controller, not as long as this load.
	c.mu.Lock()
	life := c.life
	c.mu.Unlock()
	if err := c.start(life, inst, runner, in.runtime.Name, spec, nil); err != nil {
		return err
	}
	c.event(ctx, in.svc, v1.EventNormal, "EngineStarted", fmt.Sprintf("on-demand: %s on GPUs %v, port %d: %s%s", inst.launch.Engine, a.GPUs, inst.launch.Port,
		strings.Join(inst.launch.Argv, " "), notes(inst.launch.Notes)))
	c.poke()
	return waitReady(ctx, inst)
}

// sleepLevel is the vLLM sleep level of a service: its own, else 1 when the host's available
// memory holds the weights with room to spare, else 2.
func sleepLevel(in *intent, a placement.Assignment) int {
	if l := in.svc.Spec.Residency.SleepLevelOf(); l > 0 {
		return l
	}
	if avail := memAvailable(); avail > 0 && avail > a.Plan.WeightBytes*int64(max(a.TP, 1))+4<<30 {
		return 1
	}
	return 2
}

// memAvailable is the host's MemAvailable from /proc/meminfo, 0 when unknown.
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// loadTime is the expected load: a wake for vLLM and SGLang, else reading the weights.
func loadTime(in *intent, a placement.Assignment, level int) time.Duration {
	switch in.engine {
	case engine.VLLM:
		return perfmodel.WakeTime(level, a.Plan.WeightBytes)
	case engine.SGLang:
		return perfmodel.WakeTime(2, a.Plan.WeightBytes)
	}
	return perfmodel.ColdLoadTime(a.Plan.WeightBytes)
}

// registerOnDemand hands an on-demand service to the residency manager: the instance that
// runs its engine stays wanted, and a change of its launch stops it (the next load starts
// the new one).
func (c *Controller) registerOnDemand(in *intent, a placement.Assignment, sharedKey string, total map[int]int64) {
	key := in.key + "/0"
	shared := sharedKey != ""
	if shared {
		key = sharedKey
	}
	level := 0
	if in.engine == engine.VLLM {
		level = sleepLevel(in, a)
	}
	c.mu.Lock()
	e := c.od[in.key]
	if e == nil {
		e = &odEngine{c: c}
		c.od[in.key] = e
	}
	c.mu.Unlock()
	fp := ""
	if !shared {
		fp = fingerprint(in, c.odSpec(in, a))
	}
	e.mu.Lock()
	changed := e.fp != "" && e.fp != fp
	e.in, e.a, e.key, e.fp, e.level = in, a, key, fp, level
	e.mu.Unlock()
	if inst := c.instance(key); changed && inst != nil && !shared {
		c.stop(inst, "the on-demand service's spec, runtime or placement changed")
		c.res.MarkUnloaded(in.key, "SpecChanged: the engine stopped; the next request starts it with the new spec")
	}
	var floor int64
	if !shared && (in.engine == engine.VLLM || in.engine == engine.SGLang) {
		floor = contextBytes
	}
	cfg := residency.Service{Name: in.key, Model: in.modelName, GPUs: footprint(a, shared, total), Floor: floor, Mechanism: e,
		LoadTime: loadTime(in, a, max(level, 1)), Preload: in.preload}
	if shared {
		cfg.Model = in.ollamaName
	}
	if r := in.svc.Spec.Residency; r != nil {
		if r.IdleTimeout != nil {
			cfg.IdleTimeout, _ = r.IdleTimeout.Std()
		}
		if r.Priority != nil {
			cfg.Priority = int(*r.Priority)
		}
		if r.MaxQueue != nil {
			cfg.MaxQueue = int(*r.MaxQueue)
		}
		if r.MaxWait != nil {
			cfg.MaxWait, _ = r.MaxWait.Std()
		}
	}
	c.res.Set(cfg)
}

// forgetOnDemand removes the services the manager keeps that are no longer on-demand here.
func (c *Controller) forgetOnDemand(keep map[string]bool) {
	for _, name := range c.res.Names() {
		if !keep[name] {
			c.res.Remove(name)
			c.mu.Lock()
			delete(c.od, name)
			c.mu.Unlock()
		}
	}
}

// residencyEvent records a manager's event on its service.
func (c *Controller) residencyEvent(ev residency.Event) {
	c.mu.Lock()
	e := c.od[ev.Service]
	c.mu.Unlock()
	if e == nil {
		return
	}
	in, _, _, _ := e.snapshot()
	c.event(context.Background(), in.svc, ev.Type, ev.Reason, ev.Message)
}

// withResidency puts an on-demand service's residency in its status. Not loaded is not a
// failure: the service is Ready to be asked, and the first request loads it.
func (c *Controller) withResidency(key string, st v1.InferenceServiceStatus) v1.InferenceServiceStatus {
	rs, ok := c.res.State(key)
	if !ok {
		return st
	}
	since, last := c.res.Times(key)
	st.Residency = &v1.ResidencyStatus{State: rs.Value, Progress: rs.Progress, Reason: rs.Reason, SizeVRAM: rs.SizeVRAM,
		InFlight: int32(rs.InFlight), Queued: int32(rs.Queued)}
	if !since.IsZero() {
		st.Residency.Since = v1.NewTime(since)
	}
	if !last.IsZero() {
		st.Residency.LastUsed = v1.NewTime(last)
	}
	if len(st.Endpoints) == 0 {
		// No engine runs yet: the endpoint names what it will serve, without an address, so
		// that the gateway knows the names and holds their requests while it loads.
		c.mu.Lock()
		e := c.od[key]
		c.mu.Unlock()
		if e != nil {
			in, a, _, _ := e.snapshot()
			st.Endpoints = []v1.Endpoint{{Engine: in.engine, GPUs: a.GPUs, Phase: string(supervisor.Stopped), Served: c.served(in, a)}}
		}
	}
	if st.Phase == "" || st.Phase == v1.ServiceStarting && rs.Value != residency.StateLoaded {
		st.Phase, st.Reason = v1.ServiceReady, "OnDemand"
		st.Message = fmt.Sprintf("on-demand, %s: %s; a request loads it", rs.Value, rs.Reason)
	}
	return st
}

// served is the names the service's engine will answer to once started.
func (c *Controller) served(in *intent, a placement.Assignment) []string {
	spec := c.odSpec(in, a)
	spec.Port = 1
	var l engine.Launch
	var err error
	if in.runner != nil {
		l, err = engine.FromRunner(*in.runner, spec)
	} else {
		l, err = engine.Build(spec)
	}
	if err != nil || len(l.Served) == 0 {
		return []string{in.modelName}
	}
	return l.Served
}
