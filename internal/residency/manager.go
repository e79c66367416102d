package residency

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of the hold bounds (docs/design/0006-residency.md).
const (
	DefaultMaxQueue = 64
	DefaultMaxWait  = 120 * time.Second
)

// Event is one load, eviction or refusal, with its arithmetic in Message.
type Event struct {
	Service, Type, Reason, Message string
}

// Event types, as Kubernetes names them.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Config configures a Manager.
type Config struct {
	// Budget is the memory the manager may fill on each GPU, by index: what the GPU has
	// beside other processes and the dedicated services.
	Budget map[int]int64
	// MaxQueue and MaxWait bound the requests held per service when a service sets none.
	MaxQueue int
	MaxWait  time.Duration
	// LoadTimeout bounds one load or eviction; default 10 minutes.
	LoadTimeout time.Duration
	// FailureBackoff is how long a failed load refuses requests before it is tried again;
	// default 10 s.
	FailureBackoff time.Duration
	// DemandWindow is how far back requests count as a service's demand when choosing
	// victims; default 5 minutes.
	DemandWindow time.Duration
	// Tick is how often the scheduling loop looks at wait limits and idle timeouts even
	// when nothing happens; default 250 ms.
	Tick time.Duration
	// Progress is how often a held request hears of its load; default 1 s.
	Progress time.Duration
	// Observe is how often a mechanism that is an Observer is asked whether its engine
	// holds the model; default 5 s.
	Observe time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Events receives every load, eviction and refusal; OnChange is called (without
	// locks held) when a service's state changes.
	Events   func(Event)
	OnChange func()
	Logger   *slog.Logger
	Metrics  *Metrics
}

// Service is one on-demand service as the manager keeps it.
type Service struct {
	// Name is namespace/name; Model the name clients ask for.
	Name, Model string
	// GPUs is the memory the service holds on each GPU (by index) while resident.
	GPUs map[int]int64
	// Floor is what it keeps on each of its GPUs while not resident: the CUDA context of an
	// engine process that stays up asleep (vLLM, SGLang); 0 when nothing stays.
	Floor int64
	// Mechanism loads and evicts it.
	Mechanism Mechanism
	// LoadTime is the expected load (a wake or a cold start); measured loads replace it.
	LoadTime time.Duration
	// IdleTimeout evicts it after this long without requests (0: only under pressure).
	IdleTimeout time.Duration
	// Priority breaks ties between victims: lower is evicted first.
	Priority int
	// MaxQueue and MaxWait bound its held requests (0: the manager's).
	MaxQueue int
	MaxWait  time.Duration
	// Preload loads it without a request when it fits without evicting anything.
	Preload bool
	// Resident says the engine holds its memory now (it was started awake).
	Resident bool
}

// waiter is one held request.
type waiter struct {
	at, deadline time.Time
	done         chan error // nil: admitted (counted in flight); else a *Refusal
}

// svc is a service's state.
type svc struct {
	cfg      Service
	value    string
	reason   string
	since    time.Time
	lastUsed time.Time
	inflight int
	queue    []*waiter
	demand   []time.Time // request arrivals within DemandWindow

	loading   bool // a load runs (value is StateLoading)
	evicting  bool // an eviction runs (the memory is held until it ends)
	draining  bool // a load waits for this one: new requests are held
	unload    bool // asked to unload once idle (keep_alive: 0)
	loadStart time.Time
	measured  time.Duration // the last load's duration
	failedAt  time.Time
	waitNote  string // why a blocked load waits, for its event (logged once)
	preloaded bool   // Preload was done (or not needed)
	observing bool   // an Observer check runs
	gen       int    // bumped by every state change, to discard stale observations
}

// Manager keeps on-demand services resident under per-GPU budgets. It implements Admitter.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	svcs    map[string]*svc
	budget  map[int]int64
	ctx     context.Context
	changed bool
	events  []Event // to hand to Config.Events
}

var _ Admitter = (*Manager)(nil)

// New returns a manager; call Run.
func New(cfg Config) *Manager {
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.LoadTimeout == 0 {
		cfg.LoadTimeout = 10 * time.Minute
	}
	if cfg.FailureBackoff == 0 {
		cfg.FailureBackoff = 10 * time.Second
	}
	if cfg.DemandWindow == 0 {
		cfg.DemandWindow = 5 * time.Minute
	}
	if cfg.Tick == 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.Progress == 0 {
		cfg.Progress = time.Second
	}
	if cfg.Observe == 0 {
		cfg.Observe = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), svcs: map[string]*svc{},
		budget: maps.Clone(cfg.Budget), ctx: context.Background()}
}

// Run schedules loads and evictions until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	obs := time.NewTicker(m.cfg.Observe)
	defer obs.Stop()
	for {
		m.step()
		m.flush()
		select {
		case <-obs.C:
			m.observe(ctx)
		case <-ctx.Done():
			m.mu.Lock()
			for _, s := range m.svcs {
				for _, w := range s.queue {
					w.done <- &Refusal{Status: 503, Reason: "ShuttingDown", Message: "citadel is stopping: " + s.cfg.Model + " will not be loaded"}
				}
				s.queue = nil
			}
			m.mu.Unlock()
			m.flush()
			return
		case <-m.kick:
		case <-t.C:
		}
	}
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// SetBudget replaces the per-GPU budgets.
func (m *Manager) SetBudget(b map[int]int64) {
	m.mu.Lock()
	if !maps.Equal(b, m.budget) {
		m.budget = maps.Clone(b)
		m.changed = true
	}
	m.mu.Unlock()
	m.poke()
}

// Set adds a service or updates its settings. A new service starts loaded when Resident,
// else unloaded.
func (m *Manager) Set(c Service) {
	now := m.cfg.Now()
	m.mu.Lock()
	s := m.svcs[c.Name]
	if s == nil {
		s = &svc{value: StateUnloaded, reason: "NotRequested: no request has asked for it yet", since: now, lastUsed: now}
		if c.Resident {
			s.value, s.reason, s.preloaded = StateLoaded, "Started: the engine started with its model loaded", true
		}
		m.svcs[c.Name] = s
		m.changed = true
	}
	s.cfg = c
	m.setMetricState(s)
	m.mu.Unlock()
	m.poke()
}

// Remove forgets a service; its held requests are refused.
func (m *Manager) Remove(name string) {
	m.mu.Lock()
	if s := m.svcs[name]; s != nil {
		for _, w := range s.queue {
			w.done <- &Refusal{Status: 503, Reason: "ServiceRemoved", Message: name + " was deleted or is no longer on-demand"}
		}
		delete(m.svcs, name)
		m.changed = true
		if mt := m.cfg.Metrics; mt != nil {
			mt.forget(s.cfg.Model)
		}
	}
	m.mu.Unlock()
	m.poke()
}

// Names lists the managed services.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.svcs))
}

// MarkUnloaded records that a service's engine lost its memory outside the manager (its
// process ended, or the engine evicted the model itself).
func (m *Manager) MarkUnloaded(name, reason string) {
	m.mu.Lock()
	if s := m.svcs[name]; s != nil && !s.loading && !s.evicting && s.value != StateUnloaded {
		m.setState(s, StateUnloaded, reason)
	}
	m.mu.Unlock()
	m.poke()
}

// OnDemand implements Admitter.
func (m *Manager) OnDemand(service string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.svcs[service] != nil
}

// Acquire implements Admitter.
func (m *Manager) Acquire(ctx context.Context, service string, progress func(Progress)) (func(), error) {
	now := m.cfg.Now()
	m.mu.Lock()
	s := m.svcs[service]
	if s == nil {
		m.mu.Unlock()
		return nil, &Refusal{Status: 503, Reason: "NotOnDemand", Message: service + " is not an on-demand service of this host"}
	}
	s.demand = append(s.demand, now)
	if s.value == StateLoaded && !s.evicting && !s.draining && len(s.queue) == 0 {
		s.inflight++
		s.lastUsed = now
		m.mu.Unlock()
		m.observeWait(0)
		return m.releaser(s), nil
	}
	if s.value == StateFailed && now.Sub(s.failedAt) < m.cfg.FailureBackoff {
		r := &Refusal{Status: 503, RetryAfter: m.cfg.FailureBackoff - now.Sub(s.failedAt), Reason: "LoadFailed",
			Message: fmt.Sprintf("%s failed to load (%s); it is tried again on a request after %s", s.cfg.Model, s.reason, (m.cfg.FailureBackoff - now.Sub(s.failedAt)).Round(time.Second))}
		m.refusedLocked(s, r)
		m.mu.Unlock()
		return nil, r
	}
	if mq := m.maxQueue(s); len(s.queue) >= mq {
		r := &Refusal{Status: 429, RetryAfter: m.estimate(s), Reason: "QueueFull",
			Message: fmt.Sprintf("%d requests already wait for %s to load (maxQueue %d); retry after its load, about %s", len(s.queue), s.cfg.Model, mq, roundD(m.estimate(s)))}
		m.refusedLocked(s, r)
		m.mu.Unlock()
		return nil, r
	}
	w := &waiter{at: now, deadline: now.Add(m.maxWait(s)), done: make(chan error, 1)}
	s.queue = append(s.queue, w)
	m.changed = true
	m.mu.Unlock()
	m.poke()

	var tick <-chan time.Time
	if progress != nil {
		t := time.NewTicker(m.cfg.Progress)
		defer t.Stop()
		tick = t.C
		progress(m.progressOf(s, w))
	}
	for {
		select {
		case err := <-w.done:
			if err != nil {
				return nil, err
			}
			m.observeWait(m.cfg.Now().Sub(w.at))
			return m.releaser(s), nil
		case <-tick:
			progress(m.progressOf(s, w))
		case <-ctx.Done():
			m.mu.Lock()
			if i := slices.Index(s.queue, w); i >= 0 {
				s.queue = slices.Delete(s.queue, i, i+1)
				m.mu.Unlock()
				m.poke()
				return nil, ctx.Err()
			}
			m.mu.Unlock()
			if err := <-w.done; err == nil { // admitted as the client left
				m.releaser(s)()
			}
			return nil, ctx.Err()
		}
	}
}

func (m *Manager) releaser(s *svc) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			s.inflight--
			s.lastUsed = m.cfg.Now()
			m.mu.Unlock()
			m.poke()
		})
	}
}

func (m *Manager) progressOf(s *svc, w *waiter) Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := Progress{Model: s.cfg.Model, Queued: max(slices.Index(s.queue, w), 0)}
	p.Progress, p.ETA = m.progressLocked(s)
	return p
}

// progressLocked is a load's progress and time left, from its expected duration.
func (m *Manager) progressLocked(s *svc) (float64, time.Duration) {
	est := m.estimate(s)
	if !s.loading {
		return 0, est
	}
	el := m.cfg.Now().Sub(s.loadStart)
	if est <= 0 {
		return 0.99, 0
	}
	return min(float64(el)/float64(est), 0.99), max(est-el, 0)
}

// Load implements Admitter: the service is made resident as a request would make it.
func (m *Manager) Load(ctx context.Context, service string) error {
	release, err := m.Acquire(ctx, service, nil)
	if err != nil {
		return err
	}
	release()
	return nil
}

// Unload implements Admitter: the service is evicted once its requests end; Unload returns
// when it is no longer resident.
func (m *Manager) Unload(ctx context.Context, service string) error {
	m.mu.Lock()
	s := m.svcs[service]
	if s == nil {
		m.mu.Unlock()
		return &Refusal{Status: 503, Reason: "NotOnDemand", Message: service + " is not an on-demand service of this host"}
	}
	s.unload = true
	m.mu.Unlock()
	m.poke()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		m.mu.Lock()
		done := !s.unload || (!resident(s) && !s.loading)
		m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// States implements Admitter.
func (m *Manager) States() []State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]State, 0, len(m.svcs))
	for _, s := range m.svcs {
		out = append(out, m.stateLocked(s))
	}
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// State is one service's state; ok is false when it is not managed.
func (m *Manager) State(service string) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.svcs[service]
	if s == nil {
		return State{}, false
	}
	return m.stateLocked(s), true
}

// Times returns when a service entered its state and when a request to it last ended.
func (m *Manager) Times(service string) (since, lastUsed time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.svcs[service]; s != nil {
		return s.since, s.lastUsed
	}
	return time.Time{}, time.Time{}
}

func (m *Manager) stateLocked(s *svc) State {
	st := State{Service: s.cfg.Name, Model: s.cfg.Model, Value: s.value, Reason: s.reason, InFlight: s.inflight, Queued: len(s.queue)}
	if s.loading {
		st.Progress, st.ETA = m.progressLocked(s)
	}
	if resident(s) {
		for _, b := range s.cfg.GPUs {
			st.SizeVRAM += b
		}
		if s.cfg.IdleTimeout > 0 && s.value == StateLoaded {
			st.ExpiresAt = s.lastUsed.Add(s.cfg.IdleTimeout)
		}
	}
	return st
}

// resident says the service holds its full footprint: loaded, loading, or evicting.
func resident(s *svc) bool { return s.value == StateLoaded || s.loading || s.evicting }

// held is what the service holds on a GPU now.
func held(s *svc, gpu int) int64 {
	b, ok := s.cfg.GPUs[gpu]
	if !ok {
		return 0
	}
	if resident(s) {
		return b
	}
	return min(s.cfg.Floor, b)
}

func (m *Manager) maxQueue(s *svc) int {
	if s.cfg.MaxQueue > 0 {
		return s.cfg.MaxQueue
	}
	return m.cfg.MaxQueue
}

func (m *Manager) maxWait(s *svc) time.Duration {
	if s.cfg.MaxWait > 0 {
		return s.cfg.MaxWait
	}
	return m.cfg.MaxWait
}

// estimate is the expected load time: the last measured one, else the configured one.
func (m *Manager) estimate(s *svc) time.Duration {
	if s.measured > 0 {
		return s.measured
	}
	return s.cfg.LoadTime
}

func (m *Manager) setState(s *svc, value, reason string) {
	if s.value == value && s.reason == reason {
		return
	}
	if s.value != value {
		s.since = m.cfg.Now()
	}
	s.value, s.reason = value, reason
	s.gen++
	m.changed = true
	m.setMetricState(s)
}

// emit queues an event; the loop hands it to Config.Events without the lock held. m.mu is
// held.
func (m *Manager) emit(s *svc, typ, reason, msg string) {
	m.log.Info("residency", "service", s.cfg.Name, "reason", reason, "message", msg)
	if m.cfg.Events != nil {
		m.events = append(m.events, Event{Service: s.cfg.Name, Type: typ, Reason: reason, Message: msg})
		m.poke()
	}
}

// flush hands the queued events to Config.Events.
func (m *Manager) flush() {
	m.mu.Lock()
	evs := m.events
	m.events = nil
	m.mu.Unlock()
	for _, e := range evs {
		m.cfg.Events(e)
	}
}

func (m *Manager) refusedLocked(s *svc, r *Refusal) {
	m.emit(s, EventWarning, "Refused"+r.Reason, fmt.Sprintf("%d %s (Retry-After %s)", r.Status, r.Message, roundD(r.RetryAfter)))
	if mt := m.cfg.Metrics; mt != nil {
		mt.refusals.WithLabelValues(s.cfg.Model, r.Reason).Inc()
	}
}

// step is one pass of the scheduling loop.
func (m *Manager) step() {
	m.mu.Lock()
	now := m.cfg.Now()
	names := slices.Sorted(maps.Keys(m.svcs))
	for _, n := range names {
		s := m.svcs[n]
		s.demand = slices.DeleteFunc(s.demand, func(t time.Time) bool { return now.Sub(t) > m.cfg.DemandWindow })
		// Held requests past their wait limit are refused.
		keep := s.queue[:0]
		for _, w := range s.queue {
			if !now.Before(w.deadline) {
				r := &Refusal{Status: 503, RetryAfter: m.estimate(s), Reason: "WaitExceeded",
					Message: fmt.Sprintf("waited %s for %s to load (maxWait %s): %s", roundD(now.Sub(w.at)), s.cfg.Model, roundD(m.maxWait(s)), s.reason)}
				m.refusedLocked(s, r)
				w.done <- r
				m.changed = true
				continue
			}
			keep = append(keep, w)
		}
		s.queue = keep
	}
	// Held requests of a loaded service run before it can be chosen as a victim.
	m.admit(now, names)
	m.plan(now, names)
	m.admit(now, names)
	changed := m.changed
	m.changed = false
	m.mu.Unlock()
	if changed && m.cfg.OnChange != nil {
		m.cfg.OnChange()
	}
}

// observe asks the engines that can tell whether they hold their model, and corrects the
// state of those that changed behind the manager's back.
func (m *Manager) observe(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.svcs {
		o, ok := s.cfg.Mechanism.(Observer)
		if !ok || s.observing || s.loading || s.evicting || s.value == StateFailed {
			continue
		}
		s.observing = true
		gen := s.gen
		go func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := o.Resident(cctx)
			m.mu.Lock()
			s.observing = false
			if err != nil || s.gen != gen || s.loading || s.evicting {
				m.mu.Unlock()
				return
			}
			switch {
			case s.value == StateLoaded && !res && s.inflight == 0:
				m.setState(s, StateUnloaded, "EvictedByEngine: the engine no longer holds the model")
				m.emit(s, EventWarning, "EvictedByEngine", s.cfg.Model+" was loaded, but its engine no longer holds it (evicted by the engine itself, or restarted asleep); the next request loads it")
			case s.value != StateLoaded && res:
				was := s.value
				m.setState(s, StateLoaded, "Resident: the engine holds the model (it restarted awake)")
				m.emit(s, EventWarning, "ResidentByEngine", fmt.Sprintf("%s was %s, but its engine holds it: counted as loaded (%s)", s.cfg.Model, was, m.footprint(s, true)))
			}
			m.mu.Unlock()
			m.poke()
		}()
	}
}

// admit lets the held requests of every loaded service that no load waits for run.
func (m *Manager) admit(now time.Time, names []string) {
	for _, n := range names {
		s := m.svcs[n]
		if s.value != StateLoaded || s.evicting || s.draining || len(s.queue) == 0 {
			continue
		}
		for _, w := range s.queue {
			s.inflight++
			w.done <- nil
		}
		s.lastUsed = now
		s.queue = nil
		m.changed = true
	}
}

// plan decides loads and evictions: the service with the oldest held request is loaded
// first, evicting idle services by weighted LRU, or waiting for busy ones to finish; then
// idle timeouts, unload requests, preloads and budget overruns.
func (m *Manager) plan(now time.Time, names []string) {
	for _, n := range names {
		m.svcs[n].draining = false
	}
	// Services with held requests that are not loaded, oldest request first.
	var targets []*svc
	for _, n := range names {
		s := m.svcs[n]
		if len(s.queue) > 0 && s.value != StateLoaded && !s.loading {
			if s.value == StateFailed && now.Sub(s.failedAt) < m.cfg.FailureBackoff {
				continue
			}
			targets = append(targets, s)
		}
	}
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].queue[0].at.Before(targets[j].queue[0].at) })
	blocked := false
	for _, t := range targets {
		if t.evicting {
			blocked = true // it loads again once its eviction ends
			break
		}
		if m.fits(t, nil) {
			m.startLoad(t, "")
			continue
		}
		if m.fitsOn(m.committed, t, nil) {
			blocked = true
			m.waitNote(t, "waiting for evictions in progress to free its memory")
			break
		}
		if short := m.alone(t); short != "" {
			r := &Refusal{Status: 503, RetryAfter: 0, Reason: "DoesNotFit", Message: short}
			for _, w := range t.queue {
				w.done <- r
			}
			m.refusedLocked(t, r)
			t.queue = nil
			m.setState(t, StateFailed, "DoesNotFit: "+short)
			t.failedAt = now
			continue
		}
		idle, busy, ok := m.victims(now, t)
		if !ok {
			blocked = true
			m.waitNote(t, "waiting for loads in progress on its GPUs to finish")
			break
		}
		for _, v := range idle {
			m.startEvict(v, "Pressure", m.arithmetic(t, v))
		}
		for _, v := range busy {
			v.draining = true
		}
		if len(busy) > 0 {
			var parts []string
			for _, v := range busy {
				parts = append(parts, fmt.Sprintf("%s to finish %d requests", v.cfg.Model, v.inflight))
			}
			m.waitNote(t, "waiting for "+strings.Join(parts, " and "))
		} else if len(idle) > 0 {
			m.waitNote(t, "waiting for "+names2(idle)+" to be evicted")
		}
		blocked = true
		break // later targets do not take the memory this one waits for
	}
	for _, n := range names {
		s := m.svcs[n]
		if s.value != StateLoaded || s.evicting || s.loading || s.inflight > 0 || len(s.queue) > 0 || s.draining {
			continue
		}
		switch {
		case s.unload:
			m.startEvict(s, "Requested", fmt.Sprintf("unload asked for (keep_alive 0); frees %s", m.footprint(s, false)))
		case s.cfg.IdleTimeout > 0 && now.Sub(s.lastUsed) >= s.cfg.IdleTimeout:
			m.startEvict(s, "IdleTimeout", fmt.Sprintf("idle for %s (idleTimeout %s); frees %s", roundD(now.Sub(s.lastUsed)), s.cfg.IdleTimeout, m.footprint(s, false)))
		}
	}
	for _, n := range names {
		if s := m.svcs[n]; s.unload && !resident(s) {
			s.unload = false
		}
	}
	// Over budget (a budget shrank, or services started loaded): evict idle ones.
	for gpu, b := range m.budget {
		for m.committed(gpu) > b {
			v := m.best(now, gpu)
			if v == nil {
				break
			}
			m.startEvict(v, "OverBudget", fmt.Sprintf("GPU %d holds %s, more than its budget %s; frees %s", gpu, gib(m.committed(gpu)), gib(b), m.footprint(v, false)))
		}
	}
	if blocked {
		return
	}
	for _, n := range names {
		s := m.svcs[n]
		if s.cfg.Preload && !s.preloaded && !resident(s) && s.value != StateFailed && !s.unload && m.fits(s, nil) {
			s.preloaded = true // once: later it waits for requests
			m.startLoad(s, "Preload")
		}
	}
}

func (m *Manager) waitNote(t *svc, note string) {
	if t.waitNote != note {
		t.waitNote = note
		m.emit(t, EventNormal, "LoadWaiting", fmt.Sprintf("%s (%d requests held)", note, len(t.queue)))
	}
	m.setState(t, t.value, "Waiting: "+note)
}

// used is the memory held on a GPU.
func (m *Manager) used(gpu int) int64 {
	var u int64
	for _, s := range m.svcs {
		u += held(s, gpu)
	}
	return u
}

// committed is the memory a GPU will hold once the evictions in progress end.
func (m *Manager) committed(gpu int) int64 {
	u := m.used(gpu)
	for _, s := range m.svcs {
		if s.evicting {
			u -= held(s, gpu) - min(s.cfg.Floor, s.cfg.GPUs[gpu])
		}
	}
	return u
}

// fits says whether t could load with the services in gone evicted.
func (m *Manager) fits(t *svc, gone []*svc) bool { return m.fitsOn(m.used, t, gone) }

// fitsOn is fits with base as each GPU's memory in use: used, or committed (once the
// evictions in progress end).
func (m *Manager) fitsOn(base func(int) int64, t *svc, gone []*svc) bool {
	for gpu, need := range t.cfg.GPUs {
		u := base(gpu) - held(t, gpu) + need
		for _, g := range gone {
			u -= held(g, gpu) - min(g.cfg.Floor, g.cfg.GPUs[gpu])
		}
		b, ok := m.budget[gpu]
		if !ok || u > b {
			return false
		}
	}
	return true
}

// alone says why t cannot load even with every other service evicted ("" if it can).
func (m *Manager) alone(t *svc) string {
	for gpu, need := range t.cfg.GPUs {
		var floors int64
		for _, s := range m.svcs {
			if s != t {
				floors += min(s.cfg.Floor, s.cfg.GPUs[gpu])
			}
		}
		b, ok := m.budget[gpu]
		if !ok {
			return fmt.Sprintf("%s needs GPU %d, which has no budget for on-demand services", t.cfg.Model, gpu)
		}
		if need+floors > b {
			return fmt.Sprintf("%s needs %s on GPU %d; its budget for on-demand services is %s (%s held by sleeping engines)", t.cfg.Model, gib(need), gpu, gib(b), gib(floors))
		}
	}
	return ""
}

// score is the weighted LRU of the design: idle seconds ÷ (reload seconds × (1 + demand)).
func (m *Manager) score(now time.Time, s *svc) float64 {
	reload := max(m.estimate(s).Seconds(), 0.1)
	return now.Sub(s.lastUsed).Seconds() / (reload * float64(1+len(s.demand)))
}

// candidates are the loaded services that hold memory on t's GPUs, best victim first: idle
// ones by score (ties: lower priority first), then busy ones by priority and requests in
// flight.
func (m *Manager) candidates(now time.Time, t *svc, gpus func(int) bool) []*svc {
	var out []*svc
	for _, s := range m.svcs {
		if s == t || s.value != StateLoaded || s.loading || s.evicting {
			continue
		}
		for gpu := range s.cfg.GPUs {
			if gpus(gpu) {
				out = append(out, s)
				break
			}
		}
	}
	// Requests held for a loaded service arrived after a load began to wait for it: they
	// are younger than that load's and do not keep it resident.
	busy := func(s *svc) bool { return s.inflight > 0 }
	slices.SortFunc(out, func(a, b *svc) int {
		if busy(a) != busy(b) {
			if busy(a) {
				return 1
			}
			return -1
		}
		if !busy(a) {
			sa, sb := m.score(now, a), m.score(now, b)
			if sa != sb {
				if sa > sb {
					return -1
				}
				return 1
			}
		}
		if a.cfg.Priority != b.cfg.Priority {
			return a.cfg.Priority - b.cfg.Priority
		}
		if a.inflight != b.inflight {
			return a.inflight - b.inflight
		}
		return strings.Compare(a.cfg.Name, b.cfg.Name)
	})
	return out
}

// victims picks the services to evict for t: the idle ones to evict now and the busy ones
// to wait for. ok is false when even all of them would not free enough (loads in progress).
func (m *Manager) victims(now time.Time, t *svc) (idle, busy []*svc, ok bool) {
	var gone []*svc
	for _, c := range m.candidates(now, t, func(g int) bool { _, ok := t.cfg.GPUs[g]; return ok }) {
		if m.fitsOn(m.committed, t, gone) {
			break
		}
		if !m.helps(t, gone, c) {
			continue
		}
		gone = append(gone, c)
		if c.inflight > 0 {
			busy = append(busy, c)
		} else {
			idle = append(idle, c)
		}
	}
	return idle, busy, m.fitsOn(m.committed, t, gone)
}

// helps says whether evicting c frees memory on a GPU where t is short.
func (m *Manager) helps(t *svc, gone []*svc, c *svc) bool {
	for gpu, need := range t.cfg.GPUs {
		u := m.committed(gpu) - held(t, gpu) + need
		for _, g := range gone {
			u -= held(g, gpu) - min(g.cfg.Floor, g.cfg.GPUs[gpu])
		}
		if u > m.budget[gpu] && held(c, gpu) > min(c.cfg.Floor, c.cfg.GPUs[gpu]) {
			return true
		}
	}
	return false
}

// best is the idle victim to evict first on a GPU.
func (m *Manager) best(now time.Time, gpu int) *svc {
	for _, c := range m.candidates(now, nil, func(g int) bool { return g == gpu }) {
		if c.inflight == 0 && len(c.queue) == 0 && !c.draining {
			return c
		}
	}
	return nil
}

// arithmetic explains an eviction for t: bytes needed, free, and freed by v.
func (m *Manager) arithmetic(t, v *svc) string {
	var parts []string
	for _, gpu := range slices.Sorted(maps.Keys(t.cfg.GPUs)) {
		need := t.cfg.GPUs[gpu] - held(t, gpu)
		free := m.budget[gpu] - m.used(gpu)
		freed := held(v, gpu) - min(v.cfg.Floor, v.cfg.GPUs[gpu])
		if freed <= 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("GPU %d: %s needs %s, %s free of budget %s, evicting %s frees %s", gpu, t.cfg.Model, gib(need), gib(max(free, 0)), gib(m.budget[gpu]), v.cfg.Model, gib(freed)))
	}
	return fmt.Sprintf("%s (idle %s, score %.3g, priority %d) for %s, which %d requests wait for: %s", v.cfg.Model,
		roundD(m.cfg.Now().Sub(v.lastUsed)), m.score(m.cfg.Now(), v), v.cfg.Priority, t.cfg.Model, len(t.queue), strings.Join(parts, "; "))
}

// footprint is what the service frees when evicted (what stays is its floor), or with full
// what it holds while resident.
func (m *Manager) footprint(s *svc, full bool) string {
	var parts []string
	for _, gpu := range slices.Sorted(maps.Keys(s.cfg.GPUs)) {
		b := s.cfg.GPUs[gpu]
		if !full {
			b -= min(s.cfg.Floor, b)
		}
		parts = append(parts, fmt.Sprintf("%s on GPU %d", gib(b), gpu))
	}
	return strings.Join(parts, ", ")
}

func (m *Manager) startLoad(s *svc, why string) {
	now := m.cfg.Now()
	s.loading, s.loadStart, s.waitNote = true, now, ""
	note := fmt.Sprintf("LoadStarted: %d requests held; expected %s", len(s.queue), roundD(m.estimate(s)))
	if why != "" {
		note = fmt.Sprintf("%s: loading without a request; expected %s", why, roundD(m.estimate(s)))
	}
	m.setState(s, StateLoading, note)
	mech, ctx, to := s.cfg.Mechanism, m.ctx, m.cfg.LoadTimeout
	go func() {
		ctx, cancel := context.WithTimeout(ctx, to)
		defer cancel()
		start := m.cfg.Now()
		how, err := mech.Load(ctx)
		took := m.cfg.Now().Sub(start)
		m.mu.Lock()
		s.loading = false
		if err != nil {
			s.failedAt = m.cfg.Now()
			m.setState(s, StateFailed, "LoadFailed: "+err.Error())
			r := &Refusal{Status: 503, RetryAfter: m.cfg.FailureBackoff, Reason: "LoadFailed", Message: fmt.Sprintf("loading %s failed: %v", s.cfg.Model, err)}
			for _, w := range s.queue {
				w.done <- r
			}
			s.queue = nil
			m.emit(s, EventWarning, "LoadFailed", fmt.Sprintf("%s (%s) failed after %s: %v; requests are refused for %s, then it is tried again", s.cfg.Model, how, roundD(took), err, m.cfg.FailureBackoff))
		} else {
			s.measured = took
			m.setState(s, StateLoaded, fmt.Sprintf("Loaded: %s in %s", how, roundD(took)))
			if s.lastUsed.Before(s.loadStart) {
				s.lastUsed = m.cfg.Now()
			}
			m.emit(s, EventNormal, "Loaded", fmt.Sprintf("%s loaded (%s) in %s, holding %s; %d requests were held", s.cfg.Model, how, roundD(took), m.footprint(s, true), len(s.queue)))
			if mt := m.cfg.Metrics; mt != nil {
				mt.loads.WithLabelValues(s.cfg.Model, how).Inc()
				mt.loadSeconds.Observe(took.Seconds())
			}
		}
		m.mu.Unlock()
		m.poke()
	}()
}

func (m *Manager) startEvict(s *svc, reason, why string) {
	s.evicting = true
	m.changed = true
	m.emit(s, EventNormal, "Evicting", fmt.Sprintf("%s: %s; %d requests in flight", reason, why, s.inflight))
	mech, ctx, to := s.cfg.Mechanism, m.ctx, m.cfg.LoadTimeout
	go func() {
		ctx, cancel := context.WithTimeout(ctx, to)
		defer cancel()
		start := m.cfg.Now()
		state, err := mech.Evict(ctx)
		took := m.cfg.Now().Sub(start)
		m.mu.Lock()
		s.evicting = false
		if err != nil {
			// The memory may still be held: the service stays loaded and can serve.
			m.setState(s, StateLoaded, "EvictFailed: "+err.Error())
			m.emit(s, EventWarning, "EvictFailed", fmt.Sprintf("evicting %s failed after %s: %v; it is kept loaded", s.cfg.Model, roundD(took), err))
		} else {
			m.setState(s, state, fmt.Sprintf("Evicted: %s (%s)", reason, strings.SplitN(why, ";", 2)[0]))
			m.emit(s, EventNormal, "Evicted", fmt.Sprintf("%s is %s after %s (%s)", s.cfg.Model, state, roundD(took), reason))
			if mt := m.cfg.Metrics; mt != nil {
				mt.evictions.WithLabelValues(s.cfg.Model, reason).Inc()
			}
		}
		m.mu.Unlock()
		m.poke()
	}()
}

func (m *Manager) observeWait(d time.Duration) {
	if mt := m.cfg.Metrics; mt != nil {
		mt.queueWait.Observe(d.Seconds())
	}
}

func (m *Manager) setMetricState(s *svc) {
	if mt := m.cfg.Metrics; mt != nil {
		mt.setState(s.cfg.Model, s.value)
	}
}

func names2(ss []*svc) string {
	var n []string
	for _, s := range ss {
		n = append(n, s.cfg.Model)
	}
	return strings.Join(n, " and ")
}

func gib(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

func roundD(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
