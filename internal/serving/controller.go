// Package serving is the controller that turns InferenceServices into running engine
// processes on this host: it resolves the model, selects the runtime (internal/selection),
// places replicas on GPUs (internal/placement), builds each engine's command line
// (internal/engine) and supervises the processes (internal/supervisor), and writes every
// service's status, endpoints and events.
//
// One goroutine (Run) owns the controller's state. A watch on the store and the supervisors'
// state changes both mark it dirty; a debounced pass then reconciles every service.
package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/residency"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
	"citadel.dev/citadel/internal/supervisor"
)

// Simulation runs `citadel sim` in place of every engine, with the engine's own flags.
type Simulation struct {
	Citadel   string  // path to the citadel binary
	TimeScale float64 // --time-scale
}

// Options configure the controller.
type Options struct {
	Store     *store.Store
	Logger    *slog.Logger
	Inventory []placement.GPU
	// Discover, when set, re-reads the GPU inventory on every pass (nvidia-smi): a GPU that
	// disappears takes its engines with it, and they are placed again on what is left.
	Discover func(context.Context) ([]placement.GPU, error)
	// Dir holds the supervisor's records (Dir/state) and the engine logs (Dir/logs).
	Dir string
	// CacheDir is the model cache engines read instead of downloading.
	CacheDir string
	// OllamaModels is the Ollama store models are pulled into (OLLAMA_MODELS): the shared
	// ollama serve reads it unless a model's status names another.
	OllamaModels string
	// InventorySource says where Inventory comes from, for GPUs ("nvidia-smi", or the
	// simulated profiles given to serve --gpus).
	InventorySource string
	// Recheck asks the model agent to check a Ready model's files now (kind, namespace,
	// name): the controller calls it when they are gone.
	Recheck func(kind, namespace, name string)
	// Host is the address engines listen on; default 127.0.0.1.
	Host     string
	Simulate *Simulation
	// Debounce between a change and the reconcile pass; default 100 ms.
	Debounce time.Duration
	// Metrics, when set, registers the residency manager's series.
	Metrics prometheus.Registerer
}

// Controller runs InferenceServices.
type Controller struct {
	opts Options
	log  *slog.Logger
	kick chan struct{}

	mu        sync.Mutex
	instances map[string]*instance // by service key + "/" + replica
	inventory []placement.GPU
	invErr    error             // the last discovery failure
	baseline  map[string]int64  // GPU UUID → memory in use at the first look, before our engines ran
	placed    map[string]placed // by service key: where the planner put it, kept while it is unchanged
	rechecked map[[3]string]time.Time
	stopping  sync.WaitGroup
	life      context.Context // Run's: engines the residency manager starts live as long
	res       *residency.Manager
	od        map[string]*odEngine // on-demand services' engines, by service key
}

// placed is a service the planner placed: what it asked for and where it went.
type placed struct {
	ifp      string
	replicas []placement.Assignment
	shared   string // the shared engine's instance key, for a model of a shared server
	model    string // the name the shared engine serves it by
}

// instance is one running replica.
type instance struct {
	key     string // namespace/name/replica, or shared/ENGINE/RUNTIME for a shared server
	service string // namespace/name; "" for a shared server
	shared  string // a shared server's description, e.g. "ollama (runtime ollama)"
	replica int
	fp      string // fingerprint of the launch: a change restarts the instance
	launch  engine.Launch
	gpus    []int
	proc    *supervisor.Instance
	last    supervisor.Phase
}

// New returns a controller; call Run.
func New(opts Options) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Debounce == 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	c := &Controller{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), instances: map[string]*instance{},
		inventory: opts.Inventory, placed: map[string]placed{}, rechecked: map[[3]string]time.Time{}, od: map[string]*odEngine{},
		life: context.Background()}
	rc := residency.Config{Logger: opts.Logger.With("component", "residency"), Events: c.residencyEvent, OnChange: c.poke}
	if opts.Metrics != nil {
		rc.Metrics = residency.NewMetrics(opts.Metrics)
	}
	c.res = residency.New(rc)
	return c
}

func (c *Controller) stateDir() string { return filepath.Join(c.opts.Dir, "state") }
func (c *Controller) logDir() string   { return filepath.Join(c.opts.Dir, "logs") }

// Run reconciles until ctx ends, then stops every engine it started.
func (c *Controller) Run(ctx context.Context) error {
	for _, d := range []string{c.stateDir(), c.logDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Engines a previous citadel serve left behind (it may have been killed with -9) are
	// stopped: this run starts its own, clean.
	if killed, err := supervisor.CleanOrphans(ctx, c.stateDir()); err != nil {
		c.log.Warn("cleaning engines of a previous run", "err", err)
	} else if len(killed) > 0 {
		c.log.Info("stopped engines left by a previous run", "process_groups", killed)
	}
	defer c.stopAll()
	c.mu.Lock()
	c.life = ctx
	c.mu.Unlock()
	rctx, stopRes := context.WithCancel(ctx)
	resDone := make(chan struct{})
	go func() { defer close(resDone); c.res.Run(rctx) }()
	defer func() { stopRes(); <-resDone }()
	// Our own status writes come back as changes too; the next pass finds nothing to change.
	// The resync catches what changes without store events: GPU inventory and engines.
	return c.opts.Store.Reconcile(ctx, store.ReconcileOptions{Name: "serving controller", Logger: c.log,
		Debounce: c.opts.Debounce, Resync: 5 * time.Second, Kick: c.kick}, c.reconcile)
}

func (c *Controller) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// snapshot reads every object the controller needs.
func (c *Controller) snapshot(ctx context.Context) (*world, map[string]store.Object, error) {
	w := &world{cluster: map[string]*v1.ClusterBaseModel{}, models: map[[2]string]*v1.BaseModel{},
		cRuntime: map[string]*v1.ClusterServingRuntime{}, runtimes: map[[2]string]*v1.ServingRuntime{}}
	stored := map[string]store.Object{}
	for _, kind := range []string{v1.KindClusterBaseModel, v1.KindBaseModel, v1.KindClusterServingRuntime, v1.KindServingRuntime, v1.KindInferenceService} {
		objs, _, err := c.opts.Store.List(ctx, kind, store.ListOptions{})
		if err != nil {
			return nil, nil, err
		}
		for _, so := range objs {
			o, err := resource.FromStore(so)
			if err != nil {
				c.log.Error("decoding stored object", "kind", so.Kind, "name", so.Name, "err", err)
				continue
			}
			switch o := o.(type) {
			case *v1.ClusterBaseModel:
				w.cluster[o.Name] = o
			case *v1.BaseModel:
				w.models[[2]string{o.Namespace, o.Name}] = o
			case *v1.ClusterServingRuntime:
				w.cRuntime[o.Name] = o
			case *v1.ServingRuntime:
				w.runtimes[[2]string{o.Namespace, o.Name}] = o
			case *v1.InferenceService:
				w.services = append(w.services, o)
				stored[o.Namespace+"/"+o.Name] = so
			}
		}
	}
	slices.SortFunc(w.services, func(a, b *v1.InferenceService) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return w, stored, nil
}

// reconcile is one pass over every service.
func (c *Controller) reconcile(ctx context.Context) error {
	w, stored, err := c.snapshot(ctx)
	if err != nil {
		return err
	}
	if c.opts.Discover != nil {
		inv, err := c.opts.Discover(ctx)
		if err != nil {
			if c.invErr == nil {
				c.log.Warn("reading the GPU inventory", "err", err)
			}
			c.mu.Lock()
			c.invErr = err // keep the last inventory
			c.mu.Unlock()
		} else {
			if !slices.EqualFunc(inv, c.inventory, func(a, b placement.GPU) bool {
				return a.Index == b.Index && a.UUID == b.UUID && a.MemoryTotal == b.MemoryTotal
			}) {
				c.log.Info("GPU inventory changed", "gpus", len(inv))
			}
			// nvidia-smi's memory.used counts our own engines too: what others use is what was
			// in use when this controller first looked (after stopping a previous run's engines).
			if c.baseline == nil {
				c.baseline = map[string]int64{}
			}
			for i := range inv {
				b, ok := c.baseline[inv[i].UUID]
				if !ok {
					b = inv[i].MemoryUsed
					c.baseline[inv[i].UUID] = b
				}
				inv[i].MemoryUsed = b
			}
			c.mu.Lock()
			c.inventory, c.invErr = inv, nil
			c.mu.Unlock()
		}
	}
	intents, reqs, statuses := c.collect(w)
	c.mu.Lock()
	inv := slices.Clone(c.inventory)
	c.mu.Unlock()
	decisions, refusals, budget := planAll(intents, reqs, inv)
	c.res.SetBudget(budget)
	total := map[int]int64{}
	for _, g := range inv {
		total[g.Index] = g.MemoryTotal
	}
	onDemand := map[string]bool{}
	want := map[string]bool{} // instance keys that should run
	groups := map[string]*sharedGroup{}
	placedNow := map[string]placed{}
	for i, in := range intents {
		st := statuses[in.key]
		st.Placement = in.settings.Lines()
		if in.tpNote != "" {
			st.Placement = append(st.Placement, in.tpNote)
		}
		d := decisions[i]
		if err := refusals[i]; err != nil {
			st.Phase, st.Reason, st.Message = v1.ServiceScheduling, "Unschedulable", err.Error()
			var rf *placement.Refusal
			if errors.As(err, &rf) {
				st.Placement = append(append(st.Placement, rf.Lines...), c.fixes(in, rf)...)
			}
			statuses[in.key] = st
			if len(d.Replicas) == 0 {
				continue
			}
			// The replicas that run stay; only the ones to add do not fit.
		} else {
			st.Placement = append(st.Placement, d.Lines...)
		}
		statuses[in.key] = st
		placedNow[in.key] = placed{ifp: in.ifp, replicas: d.Replicas}
		if in.adapter != nil && in.adapter.Shared {
			g := groups[in.runtime.Name]
			if g == nil {
				g = &sharedGroup{key: "shared/ollama/" + in.runtime.Name, first: in}
				groups[in.runtime.Name] = g
			}
			g.members = append(g.members, in)
			p := placedNow[in.key]
			p.shared, p.model = g.key, in.ollamaName
			placedNow[in.key] = p
			if in.onDemand && len(d.Replicas) > 0 {
				onDemand[in.key] = true
				c.registerOnDemand(in, d.Replicas[0], g.key, total)
			}
			continue
		}
		if in.onDemand {
			// The residency manager starts, wakes, puts to sleep and stops its engine.
			onDemand[in.key] = true
			want[in.key+"/0"] = true
			if len(d.Replicas) > 0 {
				c.registerOnDemand(in, d.Replicas[0], "", total)
			}
			continue
		}
		for r, a := range d.Replicas {
			key := fmt.Sprintf("%s/%d", in.key, r)
			want[key] = true
			if err := c.ensure(ctx, in, r, a, key); err != nil {
				st.Phase, st.Reason, st.Message = v1.ServiceFailed, reasonOf(err), err.Error()
				statuses[in.key] = st
				break
			}
		}
	}
	for _, g := range groups {
		want[g.key] = true
		if err := c.ensureShared(ctx, g, decisions, intents); err != nil {
			for _, in := range g.members {
				st := statuses[in.key]
				st.Phase, st.Reason, st.Message = v1.ServiceFailed, reasonOf(err), err.Error()
				statuses[in.key] = st
			}
		}
	}
	c.mu.Lock()
	c.placed = placedNow
	c.mu.Unlock()
	c.forgetOnDemand(onDemand)
	c.stopUnwanted(want)
	for key, st := range statuses {
		so, ok := stored[key]
		if !ok {
			continue
		}
		st = c.withResidency(key, c.withInstances(key, st))
		if err := c.writeStatus(ctx, so, st); err != nil {
			return err
		}
	}
	return nil
}

// collect decides what every service needs: the intents and placement requests of the
// services that can be placed (each running one with Keep, so that it stays where it runs),
// and the status of those that cannot be yet.
func (c *Controller) collect(w *world) ([]*intent, []placement.Request, map[string]v1.InferenceServiceStatus) {
	var intents []*intent
	var reqs []placement.Request
	statuses := map[string]v1.InferenceServiceStatus{}
	c.mu.Lock()
	for _, s := range w.services {
		in, err := w.intentFor(s)
		st := v1.InferenceServiceStatus{Runtime: in.runtime.Name, Runtimes: in.candidates}
		var b *blocked
		if errors.As(err, &b) {
			st.Phase, st.Reason, st.Message = b.phase, b.reason, b.msg
			statuses[in.key] = st
			if b.reason == v1.ReasonModelFilesMissing {
				c.recheck(in.modelKey)
			}
			continue
		}
		statuses[in.key] = st
		if in.replicas == 0 {
			continue
		}
		// A placed service that still asks for the same keeps its GPUs: a running replica is
		// never moved to make room for another service. A model of the shared Ollama holds no
		// GPU of its own (the server loads and evicts it, and offloads layers to the CPU when
		// memory is short), so it is placed afresh each pass after the exclusive engines: an
		// Ollama model pulled first never keeps a vLLM engine out.
		if p, ok := c.placed[in.key]; ok && p.ifp == in.ifp && !in.request.Shared {
			setKeep(&in.request, p.replicas)
		}
		intents = append(intents, in)
		reqs = append(reqs, in.request)
	}
	c.mu.Unlock()
	return intents, reqs, statuses
}

// Fit says whether a service would be placed now beside the running ones, without applying
// it and without moving anything: the planner's decision or refusal for it, with the
// arithmetic and the edits that would make it fit. Checked is false when the service cannot
// be planned yet (its model is not Ready, no runtime fits, …), with the reason.
func (c *Controller) Fit(ctx context.Context, s *v1.InferenceService) (v1.FitResult, error) {
	cp := *s // Default fills top-level fields and the model and runtime references
	if s.Spec.Model != nil {
		m := *s.Spec.Model
		cp.Spec.Model = &m
	}
	if s.Spec.Runtime != nil {
		r := *s.Spec.Runtime
		cp.Spec.Runtime = &r
	}
	s = &cp
	s.Default()
	w, _, err := c.snapshot(ctx)
	if err != nil {
		return v1.FitResult{}, err
	}
	w.services = slices.DeleteFunc(w.services, func(o *v1.InferenceService) bool {
		return o.Namespace == s.Namespace && o.Name == s.Name
	})
	intents, reqs, _ := c.collect(w)
	in, err := w.intentFor(s)
	var b *blocked
	if errors.As(err, &b) {
		return v1.FitResult{Reason: b.reason, Message: b.msg}, nil
	}
	res := v1.FitResult{Checked: true, Fits: true, Placement: in.settings.Lines()}
	if in.replicas == 0 {
		res.Message = "no replicas asked for (minReplicas 0): nothing to place"
		return res, nil
	}
	c.mu.Lock()
	inv := slices.Clone(c.inventory)
	c.mu.Unlock()
	ds, errs, _ := planAll(append(intents, in), append(reqs, in.request), inv)
	i := len(reqs)
	if err := errs[i]; err != nil {
		res.Fits, res.Reason, res.Message = false, "Unschedulable", err.Error()
		var rf *placement.Refusal
		if errors.As(err, &rf) {
			res.Placement = append(append(res.Placement, rf.Lines...), c.fixes(in, rf)...)
		}
		return res, nil
	}
	res.Placement = append(res.Placement, ds[i].Lines...)
	res.Message = fmt.Sprintf("%s fits beside the running services", in.key)
	if in.onDemand {
		res.Message = fmt.Sprintf("%s fits beside the dedicated services; on-demand, it takes turns with the other on-demand services", in.key)
	}
	return res, nil
}

// plan runs the planner: decisions and refusals index-aligned with reqs, so that a service
// carries its own refusal, never another's.
func plan(reqs []placement.Request, inv []placement.GPU) ([]placement.Decision, []error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ds, errs := placement.Plan(reqs, inv)
	for i := range reqs {
		if errs[i] == nil && len(ds[i].Replicas) == 0 {
			errs[i] = errors.New("the planner made no decision")
		}
	}
	return ds, errs
}

// recheck asks the model agent to look at a model's files, at most every 30 s per model.
// c.mu is held.
func (c *Controller) recheck(k [3]string) {
	if c.opts.Recheck == nil || time.Since(c.rechecked[k]) < 30*time.Second {
		return
	}
	c.rechecked[k] = time.Now()
	c.log.Warn("model files missing: asking the model agent to check them", "model", k[2])
	c.opts.Recheck(k[0], k[1], k[2])
}

func reasonOf(err error) string {
	var ne *engine.NotFoundError
	if errors.As(err, &ne) {
		return "EngineNotFound"
	}
	return "EngineLaunchFailed"
}

// ensure starts replica r of a service, or restarts it when its launch changed.
func (c *Controller) ensure(ctx context.Context, in *intent, r int, a placement.Assignment, key string) error {
	c.mu.Lock()
	cur := c.instances[key]
	c.mu.Unlock()
	spec := engine.Spec{Engine: in.engine, ModelPath: in.modelPath, ModelName: in.modelName, Vision: in.vision,
		MaxModelLen: in.maxLen, TP: a.TP, GPUMemoryUtilization: a.MemoryUtilization, GPUs: a.GPUs,
		Host: c.opts.Host, CacheDir: c.opts.CacheDir, Parallel: in.settings.Concurrency}
	if in.ref != nil {
		spec.ExtraArgs = append(slices.Clone(in.ref.Args), in.extraArgs...)
		spec.Env = append(envList(in.ref.Env), in.extraEnv...)
	}
	fp := fingerprint(in, spec)
	if cur != nil && cur.fp == fp {
		return nil
	}
	if cur != nil {
		c.stop(cur, "the service's spec, runtime or placement changed")
	}
	inst := &instance{key: key, service: in.key, replica: r, fp: fp, gpus: a.GPUs}
	if err := c.start(ctx, inst, in.runner, in.runtime.Name, spec, nil); err != nil {
		return err
	}
	c.event(ctx, in.svc, v1.EventNormal, "EngineStarted", fmt.Sprintf("replica %d: %s on GPUs %v, port %d: %s%s", r, inst.launch.Engine, a.GPUs, inst.launch.Port,
		strings.Join(inst.launch.Argv, " "), notes(inst.launch.Notes)))
	return nil
}

// start builds inst's launch from a runner or the engine adapter, rewrites it for the
// simulator when simulating (adding simArgs), and starts it under the supervisor.
func (c *Controller) start(ctx context.Context, inst *instance, runner *v1.Container, runtime string, spec engine.Spec, simArgs []string) error {
	port, err := freePort(c.opts.Host)
	if err != nil {
		return err
	}
	spec.Port = port
	var l engine.Launch
	if runner != nil {
		l, err = engine.FromRunner(*runner, spec)
	} else {
		l, err = engine.Build(spec)
	}
	if err != nil {
		return fmt.Errorf("runtime %s: %w", runtime, err)
	}
	if s := c.opts.Simulate; s != nil {
		gpu := ""
		if len(inst.gpus) > 0 {
			gpu = c.profileOf(inst.gpus[0])
		}
		if l, err = engine.Simulate(l, s.Citadel, gpu, s.TimeScale); err != nil {
			return err
		}
		l.Argv = append(l.Argv, simArgs...)
	} else if err := engine.LookPath(l); err != nil {
		return err
	}
	inst.launch = l
	sp := supervisor.Spec{Name: inst.key, Argv: l.Argv, Env: append(os.Environ(), l.Env...), Port: l.Port,
		Startup: probe(l.Startup), Readiness: probe(l.Readiness), Liveness: probe(l.Liveness), LogDir: c.logDir(),
		OnChange: func(supervisor.State) { c.poke() }}
	proc, err := supervisor.Start(ctx, sp, c.stateDir())
	if err != nil {
		return err
	}
	inst.proc = proc
	c.mu.Lock()
	c.instances[inst.key] = inst
	c.mu.Unlock()
	return nil
}

func notes(n []string) string {
	if len(n) == 0 {
		return ""
	}
	return " (" + strings.Join(n, "; ") + ")"
}

func (c *Controller) profileOf(gpu int) string {
	for _, g := range c.inventory {
		if g.Index == gpu {
			return g.Profile
		}
	}
	return ""
}

func probe(p *engine.Probe) *supervisor.Probe {
	if p == nil {
		return nil
	}
	return &supervisor.Probe{Path: p.Path, InitialDelay: p.InitialDelay, Period: p.Period, Timeout: p.Timeout,
		SuccessThreshold: p.SuccessThreshold, FailureThreshold: p.FailureThreshold}
}

func fingerprint(in *intent, spec engine.Spec) string {
	b, _ := json.Marshal(struct {
		Gen    int64
		Spec   engine.Spec
		Runner *v1.Container
		RT     string
	}{in.svc.Generation, spec, in.runner, in.runtime.Name})
	return string(b)
}

// freePort asks the kernel for an unused port on host.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("allocating an engine port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// stopUnwanted stops instances of deleted services and surplus replicas.
func (c *Controller) stopUnwanted(want map[string]bool) {
	c.mu.Lock()
	var gone []*instance
	for k, inst := range c.instances {
		if !want[k] {
			gone = append(gone, inst)
		}
	}
	c.mu.Unlock()
	for _, inst := range gone {
		c.stop(inst, "no longer wanted (service deleted, scaled down or not schedulable)")
	}
}

// stop removes an instance and stops its process in the background.
func (c *Controller) stop(inst *instance, why string) {
	c.mu.Lock()
	if c.instances[inst.key] == inst {
		delete(c.instances, inst.key)
	}
	c.mu.Unlock()
	c.log.Info("stopping engine", "instance", inst.key, "why", why)
	c.stopping.Add(1)
	go func() {
		defer c.stopping.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := inst.proc.Stop(ctx); err != nil {
			c.log.Error("stopping engine", "instance", inst.key, "err", err)
		}
	}()
}

func (c *Controller) stopAll() {
	c.mu.Lock()
	all := make([]*instance, 0, len(c.instances))
	for _, inst := range c.instances {
		all = append(all, inst)
	}
	c.mu.Unlock()
	for _, inst := range all {
		c.stop(inst, "citadel serve is stopping")
	}
	c.stopping.Wait()
}

// withInstances fills a service's phase and endpoints from its running replicas, or from
// the shared server its model runs in.
func (c *Controller) withInstances(key string, st v1.InferenceServiceStatus) v1.InferenceServiceStatus {
	type view struct {
		inst    *instance
		replica int
		served  []string
	}
	c.mu.Lock()
	var views []view
	for _, inst := range c.instances {
		if inst.service == key {
			views = append(views, view{inst, inst.replica, inst.launch.Served})
		}
	}
	if p, ok := c.placed[key]; ok && p.shared != "" && st.Phase == "" {
		if inst := c.instances[p.shared]; inst != nil {
			views = append(views, view{inst, 0, []string{p.model}})
		}
	}
	c.mu.Unlock()
	slices.SortFunc(views, func(a, b view) int { return a.replica - b.replica })
	if len(views) == 0 {
		return st
	}
	ready := 0
	var worst *supervisor.State
	for _, v := range views {
		ps := v.inst.proc.State()
		l := v.inst.launch
		ep := v1.Endpoint{Replica: v.replica, Address: net.JoinHostPort(c.opts.Host, fmt.Sprint(l.Port)), Engine: l.Engine,
			GPUs: v.inst.gpus, Ready: ps.Phase == supervisor.Ready, Phase: string(ps.Phase), Restarts: ps.Restarts, PID: ps.PID,
			Served: v.served, Metrics: l.MetricsPath, RunningMetric: l.Metrics.Running, WaitingMetric: l.Metrics.Waiting,
			KVUsageMetric: l.Metrics.KVUsage, LastExit: ps.LastExit, LastExitReason: ps.Reason, Shared: v.inst.shared}
		st.Endpoints = append(st.Endpoints, ep)
		if ep.Ready {
			ready++
		} else if worst == nil {
			s := ps
			worst = &s
		}
	}
	st.Replicas, st.ReadyReplicas = int32(len(views)), int32(ready)
	if st.Phase != "" {
		return st // a launch error already says what is wrong
	}
	via := ""
	if sh := views[0].inst.shared; sh != "" {
		via = fmt.Sprintf(" (shared %s, PID %d, GPUs %v, serving it as %s)", sh, st.Endpoints[0].PID, views[0].inst.gpus, views[0].served[0])
	}
	switch {
	case ready == len(views):
		st.Phase, st.Reason = v1.ServiceReady, v1.ReasonEngineReady
		st.Message = fmt.Sprintf("%d of %d replicas ready at %s%s", ready, len(views), st.Endpoints[0].Address, via)
		st.URL = "http://" + st.Endpoints[0].Address
	case ready > 0 || (worst != nil && worst.Restarts > 0):
		st.Phase, st.Reason = v1.ServiceDegraded, worst.Reason
		st.Message = fmt.Sprintf("%d of %d replicas ready; replica not ready: %s%s", ready, len(views), worst.Message, via)
	default:
		st.Phase, st.Reason, st.Message = v1.ServiceStarting, worst.Reason, worst.Message+via
	}
	if st.Reason == "" {
		st.Reason = string(worst.Phase)
	}
	return st
}

// NoEngineError is a logs request for a service or replica that no engine runs for.
type NoEngineError struct {
	Namespace, Name string
	Replica         int
}

func (e *NoEngineError) Error() string {
	return fmt.Sprintf("no engine runs for InferenceService %s/%s replica %d: see citadel describe isvc %s -n %s",
		e.Namespace, e.Name, e.Replica, e.Name, e.Namespace)
}

// NotFound reports true. The admin API answers an error that has this method with 404 NotFound
// without importing the package that defines it.
func (e *NoEngineError) NotFound() bool { return true }

// Logs implements admin.Options.Logs: with no engine for the service or replica it returns a
// *NoEngineError.
func (c *Controller) Logs(ctx context.Context, namespace, name string, replica, tail int, follow bool, w io.Writer) error {
	key := fmt.Sprintf("%s/%s/%d", namespace, name, replica)
	c.mu.Lock()
	inst := c.instances[key]
	if p, ok := c.placed[namespace+"/"+name]; inst == nil && ok && p.shared != "" && replica == 0 {
		inst = c.instances[p.shared] // the shared server's output: every model it serves
	}
	c.mu.Unlock()
	if inst == nil {
		return &NoEngineError{Namespace: namespace, Name: name, Replica: replica}
	}
	var lines <-chan string
	if follow {
		lines = inst.proc.Follow(ctx)
	}
	for _, l := range inst.proc.Logs(tail) {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		}
	}
}
