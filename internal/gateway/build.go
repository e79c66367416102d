package gateway

// Building the routing table from Routes and InferenceServices: names and their precedence,
// targets and replicas, task rules, capabilities. See route.go for what the table is.

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	engines "citadel.dev/citadel/internal/engine" // "engine" is a test type of this package
	"citadel.dev/citadel/internal/taskclass"
)

// Name precedence: a lower level wins.
const (
	claimRoute       = iota
	claimServiceFull // namespace/name
	claimServiceName // name
	claimServed      // a served name
)

type nameClaim struct {
	level int
	owner string // "route ns/name", "service ns/name"
	entry *Entry
	how   string
	info  ModelInfo
	bare  string // for claimServiceFull: the service's bare name (listed only when it does not reach the service)
}

type gwService struct {
	key      string // namespace/name
	obj      *v1.InferenceService
	replicas []*Replica
	served   []string
	api      string // of the first endpoint; "" without endpoints
}

type tableBuilder struct {
	errs   []error
	prev   map[string]*Replica
	reps   map[string]*Replica
	svcs   map[string]*gwService
	claims map[string]*nameClaim
	local  map[string]*Entry
	caps   map[*Entry]map[string]bool
	// limiters by public model: those of the previous table, and those this one uses
	prevLims, lims map[string]*limiter
	// rule targets, whose capabilities are their rule's task
	ruleTargets []ruleTargets
}

type ruleTargets struct {
	task string
	dest *Destination
}

func (b *tableBuilder) errf(format string, args ...any) {
	b.errs = append(b.errs, fmt.Errorf(format, args...))
}

// Build builds a table. The errors say what was left out or is suspect (a target naming a
// missing service, a name two routes claim, a task rule that loops, …): the table is still
// built from what is valid, and is never nil.
func Build(in BuildInput) (*Table, []error) {
	b := &tableBuilder{
		prev:   map[string]*Replica{},
		reps:   map[string]*Replica{},
		svcs:   map[string]*gwService{},
		claims: map[string]*nameClaim{},
		local:  map[string]*Entry{},
		caps:   map[*Entry]map[string]bool{},
		lims:   map[string]*limiter{},
	}
	if in.Previous != nil {
		b.prevLims = in.Previous.lims
		for _, r := range in.Previous.replicas {
			b.prev[r.ID] = r
		}
	}
	b.services(in.Services)
	routes := slices.Clone(in.Routes)
	routes = slices.DeleteFunc(routes, func(r *v1.Route) bool { return r == nil })
	slices.SortStableFunc(routes, func(x, y *v1.Route) int {
		return cmp.Compare(routeKey(x), routeKey(y))
	})
	for _, r := range routes {
		b.route(r)
	}
	b.serviceNames()
	return b.table(), b.errs
}

func routeKey(r *v1.Route) string {
	return cmp.Or(r.Namespace, v1.DefaultNamespace) + "/" + r.Name
}

// services indexes the services and makes replicas of their ready endpoints.
func (b *tableBuilder) services(in []*v1.InferenceService) {
	svcs := slices.DeleteFunc(slices.Clone(in), func(s *v1.InferenceService) bool { return s == nil || s.Name == "" })
	// The default namespace first, so that it keeps a bare name two namespaces share.
	slices.SortStableFunc(svcs, func(x, y *v1.InferenceService) int {
		return compareServices(cmp.Or(x.Namespace, v1.DefaultNamespace), x.Name, cmp.Or(y.Namespace, v1.DefaultNamespace), y.Name)
	})
	for _, s := range svcs {
		ns := cmp.Or(s.Namespace, v1.DefaultNamespace)
		key := ns + "/" + s.Name
		if b.svcs[key] != nil {
			b.errf("service %s: listed twice; the first is used", key)
			continue
		}
		gs := &gwService{key: key, obj: s}
		b.svcs[key] = gs
		for _, ep := range s.Status.Endpoints {
			api := APIOpenAI
			if strings.EqualFold(ep.Engine, APIOllama) {
				api = APIOllama
			}
			if gs.api == "" || (ep.Ready && len(gs.replicas) == 0) {
				gs.api = api
			}
			for _, n := range ep.Served {
				if n != "" && !slices.Contains(gs.served, n) {
					gs.served = append(gs.served, n)
				}
			}
			if !ep.Ready || ep.Address == "" {
				continue
			}
			r := b.replica(&Replica{
				ID:            key + "/" + strconv.Itoa(ep.Replica),
				Service:       key,
				BaseURL:       endpointURL(ep.Address),
				API:           api,
				Engine:        strings.ToLower(ep.Engine),
				MetricsPath:   ep.Metrics,
				RunningMetric: ep.RunningMetric,
				WaitingMetric: ep.WaitingMetric,
				KVMetric:      ep.KVUsageMetric,
			}, "service "+key)
			if !slices.Contains(gs.replicas, r) {
				gs.replicas = append(gs.replicas, r)
			}
		}
	}
}

// compareServices orders services: the default namespace first, then by namespace/name.
func compareServices(nx, x, ny, y string) int {
	if dx, dy := nx == v1.DefaultNamespace, ny == v1.DefaultNamespace; dx != dy {
		if dx {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(nx, ny), cmp.Compare(x, y))
}

// endpointURL is the base URL of an endpoint's host:port; an address bound to every
// interface is reached on loopback.
func endpointURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + addr
}

// targetURL normalizes a URL target: no trailing "/", and no "/v1" (OpenAI base URLs are
// often written with it; the proxy adds the API path).
func targetURL(u string) string {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	return strings.TrimRight(strings.TrimSuffix(u, "/v1"), "/")
}

func sameReplica(a, b *Replica) bool {
	return a.ID == b.ID && a.Service == b.Service && a.BaseURL == b.BaseURL && a.API == b.API && a.Engine == b.Engine &&
		a.MetricsPath == b.MetricsPath && a.RunningMetric == b.RunningMetric && a.WaitingMetric == b.WaitingMetric && a.KVMetric == b.KVMetric
}

// replica returns the replica with r's ID: the one already in this build, else the previous
// table's when it is the same, else r, new and healthy.
func (b *tableBuilder) replica(r *Replica, owner string) *Replica {
	if old := b.reps[r.ID]; old != nil {
		if !sameReplica(old, r) {
			b.errf("%s: replica %s is also used with a different API, engine or address; the first use wins", owner, r.ID)
		}
		return old
	}
	if p := b.prev[r.ID]; p != nil && sameReplica(p, r) {
		r = p
	} else {
		r.State.Healthy = true // not yet shared: the controller said Ready, or a URL is assumed up
	}
	b.reps[r.ID] = r
	return r
}

// urlReplica is the replica of a url target. When the target names its engine the replica
// is probed on the engine's health path and scraped for the engine's load metrics; otherwise
// its load is the gateway's in-flight count.
func (b *tableBuilder) urlReplica(u, api, eng, owner string) *Replica {
	r := &Replica{ID: u, BaseURL: u, API: api, Engine: eng}
	if path, m, ok := engines.Metrics(eng); ok {
		r.MetricsPath, r.RunningMetric, r.WaitingMetric, r.KVMetric = path, m.Running, m.Waiting, m.KVUsage
	}
	return b.replica(r, owner)
}

func httpURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

// claim registers name for c unless a claim of a lower level holds it.
func (b *tableBuilder) claim(name string, c *nameClaim) {
	if name == "" {
		return
	}
	old := b.claims[name]
	switch {
	case old == nil:
		b.claims[name] = c
	case old.entry == c.entry || old.owner == c.owner && old.level == c.level:
		// the same name twice from one owner (a service serving its own name)
	case c.level < old.level:
		b.claims[name] = c
	case c.level == claimRoute:
		b.errf("%s: name %q is already used by %s; ignored here", c.owner, name, old.owner)
	}
}

func mergeRouteLimits(route, model *v1.Limits) *v1.Limits {
	if model == nil {
		return route
	}
	if route == nil {
		return model
	}
	out := *route
	if model.RequestsPerMinute != nil {
		out.RequestsPerMinute = model.RequestsPerMinute
	}
	if model.TokensPerMinute != nil {
		out.TokensPerMinute = model.TokensPerMinute
	}
	if model.MaxConcurrent != nil {
		out.MaxConcurrent = model.MaxConcurrent
	}
	if model.MaxTokens != nil {
		out.MaxTokens = model.MaxTokens
	}
	if model.Timeout != nil {
		out.Timeout = model.Timeout
	}
	return &out
}

// routeCtx is what the targets of one route model share.
type routeCtx struct {
	ns, owner, public string
	bal               *v1.Balancing
	limits            *v1.Limits
	retry             *v1.Retry
}

func (b *tableBuilder) dest(rc routeCtx, where string, targets, fallback []v1.RouteTarget) *Destination {
	d := &Destination{Limits: rc.limits, Retry: rc.retry, Owner: rc.owner}
	if l := rc.limits; l != nil && (l.RequestsPerMinute != nil || l.TokensPerMinute != nil || l.MaxConcurrent != nil) {
		// One limiter per public model, kept from the previous table: a route update that
		// keeps the name keeps what was counted and what is in flight.
		d.lim = b.lims[rc.public]
		if d.lim == nil {
			d.lim = b.prevLims[rc.public]
		}
		if d.lim == nil {
			d.lim = &limiter{}
		}
		b.lims[rc.public] = d.lim
	}
	for i, rt := range targets {
		if t := b.target(rc, fmt.Sprintf("%s.targets[%d]", where, i), rt); t != nil {
			d.Targets = append(d.Targets, t)
		}
	}
	for i, rt := range fallback {
		if t := b.target(rc, fmt.Sprintf("%s.fallback[%d]", where, i), rt); t != nil {
			d.Fallback = append(d.Fallback, t)
		}
	}
	return d
}

func (b *tableBuilder) target(rc routeCtx, where string, rt v1.RouteTarget) *Target {
	t := &Target{Weight: 1, Model: rt.Model}
	if rt.Weight != nil {
		t.Weight = int(*rt.Weight)
		if t.Weight < 0 {
			b.errf("%s: %s.weight: %d is negative; taken as 0", rc.owner, where, t.Weight)
			t.Weight = 0
		}
	}
	if rc.bal != nil {
		t.Policy, t.SessionHeader = rc.bal.Policy, rc.bal.SessionHeader
		if t.Policy == v1.BalanceSessionAffinity && t.SessionHeader == "" {
			t.SessionHeader = "x-session-id"
		}
	}
	api := strings.ToLower(rt.API)
	if api != "" && api != APIOpenAI && api != APIOllama {
		b.errf("%s: %s.api: %q is not openai or ollama; openai is used", rc.owner, where, rt.API)
		api = ""
	}
	switch {
	case rt.Service != "" && rt.URL != "":
		b.errf("%s: %s: sets both service and url; the target is ignored", rc.owner, where)
		return nil
	case rt.Service != "":
		ns, name, err := v1.ServiceRef(rt.Service, rc.ns)
		if err != nil {
			b.errf("%s: %s.service: %v; the target is ignored", rc.owner, where, err)
			return nil
		}
		t.Name = ns + "/" + name
		s := b.svcs[t.Name]
		if s == nil {
			b.errf("%s: %s.service: InferenceService %s does not exist; the target has no replicas until it does", rc.owner, where, t.Name)
			t.API = cmp.Or(api, APIOpenAI)
			t.Model = cmp.Or(t.Model, rc.public)
			return t
		}
		t.API = cmp.Or(s.api, api, APIOpenAI)
		if api != "" && s.api != "" && api != s.api {
			b.errf("%s: %s.api: service %s speaks %s (its engine); api %q is for url targets and is ignored", rc.owner, where, t.Name, s.api, rt.API)
		}
		t.Model = cmp.Or(t.Model, firstName(s.served), specModelName(s.obj), rc.public)
		t.Replicas = slices.Clone(s.replicas)
		return t
	case rt.URL != "":
		u := targetURL(rt.URL)
		if !httpURL(u) {
			b.errf("%s: %s.url: %q is not an http(s) URL; the target is ignored", rc.owner, where, rt.URL)
			return nil
		}
		eng := strings.ToLower(rt.Engine)
		if _, known := engines.Lookup(eng); eng != "" && !known {
			b.errf("%s: %s.engine: %q is not one of %s; the engine is taken as unknown", rc.owner, where, rt.Engine, strings.Join(engines.Engines, ", "))
			eng = ""
		}
		if eng == APIOllama && api == "" {
			api = APIOllama
		}
		t.Name = u
		t.API = cmp.Or(api, APIOpenAI)
		t.Model = cmp.Or(t.Model, rc.public)
		t.Replicas = []*Replica{b.urlReplica(u, t.API, eng, rc.owner)}
		return t
	}
	b.errf("%s: %s: names no service or url; the target is ignored", rc.owner, where)
	return nil
}

func firstName(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func specModelName(s *v1.InferenceService) string {
	if s.Spec.Model != nil {
		return s.Spec.Model.Name
	}
	return ""
}

var taskClassSet = map[string]bool{v1.TaskVision: true, v1.TaskCode: true, v1.TaskReasoning: true, v1.TaskGeneral: true, v1.TaskEmbedding: true}

// route adds one Route's models.
func (b *tableBuilder) route(r *v1.Route) {
	rkey := routeKey(r)
	ns := cmp.Or(r.Namespace, v1.DefaultNamespace)
	owner := "route " + rkey
	type model struct {
		i   int
		m   *v1.RouteModel
		e   *Entry
		ctx routeCtx
	}
	var models []*model
	local := map[string]*model{} // names and aliases
	for i := range r.Spec.Models {
		m := &r.Spec.Models[i]
		where := fmt.Sprintf("models[%d]", i)
		if m.Name == "" {
			b.errf("%s: %s.name is empty; the model is ignored", owner, where)
			continue
		}
		if local[m.Name] != nil {
			b.errf("%s: %s: name %q is used twice in the route; the first is kept", owner, where, m.Name)
			continue
		}
		bal := m.Balancing
		if bal == nil {
			bal = r.Spec.Balancing
		}
		mm := &model{i: i, m: m, e: &Entry{Public: m.Name, Route: rkey, DefaultTask: strings.ToLower(m.DefaultTask), MinConfidence: m.MinConfidence},
			ctx: routeCtx{ns: ns, owner: owner, public: m.Name, bal: bal, limits: mergeRouteLimits(r.Spec.Limits, m.Limits), retry: r.Spec.Retry}}
		if len(m.Tasks) > 0 && (len(m.Targets) > 0 || len(m.Fallback) > 0) {
			b.errf("%s: %s %q sets both tasks and targets; the targets are ignored", owner, where, m.Name)
		}
		if len(m.Tasks) == 0 {
			if len(m.Targets) == 0 {
				b.errf("%s: %s %q has no targets: requests for it fail until it has", owner, where, m.Name)
			}
			mm.e.Dest = b.dest(mm.ctx, where, m.Targets, m.Fallback)
		}
		models = append(models, mm)
		local[m.Name] = mm
		for _, a := range m.Aliases {
			switch {
			case a == "":
			case local[a] != nil:
				b.errf("%s: %s: alias %q is already a name of the route; ignored", owner, where, a)
			default:
				local[a] = mm
			}
		}
	}
	// The task rules, once every model of the route exists.
	edges := map[*Entry][]*Entry{} // virtual → virtual, to keep the rules loop-free
	reaches := func(from, to *Entry) bool {
		seen := map[*Entry]bool{}
		var walk func(e *Entry) bool
		walk = func(e *Entry) bool {
			if e == to {
				return true
			}
			if seen[e] {
				return false
			}
			seen[e] = true
			return slices.ContainsFunc(edges[e], walk)
		}
		return walk(from)
	}
	for _, mm := range models {
		for j, tr := range mm.m.Tasks {
			where := fmt.Sprintf("models[%d].tasks[%d]", mm.i, j)
			task := strings.ToLower(tr.Task)
			if !taskClassSet[task] {
				b.errf("%s: %s.task: %q is not a task class (vision, code, reasoning, general, embedding); the rule is ignored", owner, where, tr.Task)
				continue
			}
			te := TaskEntry{Task: task, Public: mm.m.Name}
			for _, k := range tr.Keywords {
				if k != "" {
					te.Keywords = append(te.Keywords, strings.ToLower(k))
				}
			}
			for k, p := range tr.Patterns {
				re, err := regexp.Compile(p)
				if err != nil {
					b.errf("%s: %s.patterns[%d]: %v; the pattern is ignored", owner, where, k, err)
					continue
				}
				te.Patterns = append(te.Patterns, re)
			}
			for _, ex := range tr.Examples {
				if strings.TrimSpace(ex) != "" {
					te.Examples = append(te.Examples, taskclass.Featurize(taskclass.Input{Ask: ex}))
					te.ExampleText = append(te.ExampleText, ex)
					mm.e.hasExamples = true
				}
			}
			if tr.MinPromptTokens != nil && *tr.MinPromptTokens > 0 {
				te.MinPromptTokens = int(*tr.MinPromptTokens)
			}
			if tr.MaxPromptTokens != nil && *tr.MaxPromptTokens > 0 {
				te.MaxPromptTokens = int(*tr.MaxPromptTokens)
			}
			switch {
			case tr.Model != "" && len(tr.Targets) > 0:
				b.errf("%s: %s sets both model and targets; the rule is ignored", owner, where)
				continue
			case tr.Model != "":
				to := local[tr.Model]
				if to == nil {
					b.errf("%s: %s.model: %q is not a model of this route; the rule is ignored", owner, where, tr.Model)
					continue
				}
				te.Public = to.m.Name
				if to.e.Dest != nil {
					te.Dest = to.e.Dest
					b.addCap(to.e, task)
					break
				}
				if reaches(to.e, mm.e) {
					b.errf("%s: %s.model: %q leads back to %q: a loop; the rule is ignored", owner, where, tr.Model, mm.m.Name)
					continue
				}
				edges[mm.e] = append(edges[mm.e], to.e)
			case len(tr.Targets) > 0:
				te.Dest = b.dest(mm.ctx, where, tr.Targets, tr.Fallback)
				b.ruleTargets = append(b.ruleTargets, ruleTargets{task: task, dest: te.Dest})
			default:
				b.errf("%s: %s has no destination (model or targets); the rule is ignored", owner, where)
				continue
			}
			b.addCap(mm.e, task)
			mm.e.Tasks = append(mm.e.Tasks, te)
		}
	}
	for _, mm := range models {
		e := mm.e
		if e.Dest == nil && len(e.Tasks) == 0 {
			b.errf("%s: models[%d] %q: no task rule is usable; the name is not served", owner, mm.i, e.Public)
			continue
		}
		b.local[rkey+"\x00"+e.Public] = e
		b.claim(e.Public, &nameClaim{level: claimRoute, owner: owner, entry: e, how: "exact name",
			info: ModelInfo{ID: e.Public, Route: rkey, Virtual: e.Dest == nil}})
		for _, a := range mm.m.Aliases {
			if a != "" && local[a] == mm {
				b.claim(a, &nameClaim{level: claimRoute, owner: owner, entry: e, how: "alias of " + e.Public,
					info: ModelInfo{ID: a, Route: rkey, AliasOf: e.Public, Virtual: e.Dest == nil}})
			}
		}
	}
}

func (b *tableBuilder) addCap(e *Entry, task string) {
	if b.caps[e] == nil {
		b.caps[e] = map[string]bool{}
	}
	b.caps[e][task] = true
}

// taskCapabilities lists what a set of tasks says of a model: "chat" for any task but
// embedding, then the special tasks in a fixed order.
func taskCapabilities(tasks map[string]bool) []string {
	var out []string
	for t := range tasks {
		if t != v1.TaskEmbedding {
			out = append(out, "chat")
			break
		}
	}
	for _, t := range []string{v1.TaskVision, v1.TaskCode, v1.TaskReasoning, v1.TaskEmbedding} {
		if tasks[t] {
			out = append(out, t)
		}
	}
	return out
}

// serviceNames claims every service's own names, below routes.
func (b *tableBuilder) serviceNames() {
	keys := make([]*gwService, 0, len(b.svcs))
	for _, s := range b.svcs {
		keys = append(keys, s)
	}
	slices.SortFunc(keys, func(x, y *gwService) int {
		return compareServices(cmp.Or(x.obj.Namespace, v1.DefaultNamespace), x.obj.Name, cmp.Or(y.obj.Namespace, v1.DefaultNamespace), y.obj.Name)
	})
	for _, s := range keys {
		if len(s.obj.Status.Endpoints) == 0 {
			continue // not started: nothing answers to its names
		}
		owner := "service " + s.key
		mk := func(model string) *Entry {
			return &Entry{Public: "", Dest: &Destination{Targets: []*Target{{
				Name: s.key, Weight: 1, Model: model, API: cmp.Or(s.api, APIOpenAI), Replicas: slices.Clone(s.replicas)}}}}
		}
		// The service's own names ask for its first served name (or its own name when it
		// serves it); a served name asks for itself (an Ollama serves several models).
		model := firstName(s.served)
		if slices.Contains(s.served, s.obj.Name) {
			model = s.obj.Name
		}
		model = cmp.Or(model, specModelName(s.obj), s.obj.Name)
		own := mk(model)
		own.Public = s.obj.Name
		full := mk(model)
		full.Public = s.key
		b.claim(s.key, &nameClaim{level: claimServiceFull, owner: owner, entry: full, how: "service name", bare: s.obj.Name,
			info: ModelInfo{ID: s.key, Service: s.key}})
		b.claim(s.obj.Name, &nameClaim{level: claimServiceName, owner: owner, entry: own, how: "service name",
			info: ModelInfo{ID: s.obj.Name, Service: s.key}})
		for _, n := range s.served {
			if n == s.obj.Name || n == s.key {
				continue
			}
			e := mk(n)
			e.Public = n
			b.claim(n, &nameClaim{level: claimServed, owner: owner, entry: e, how: "served name of " + s.key,
				info: ModelInfo{ID: n, Service: s.key}})
		}
	}
}

func (b *tableBuilder) table() *Table {
	t := &Table{names: map[string]*Entry{}, how: map[string]string{}, local: b.local, lims: b.lims}
	// Capabilities: of the models task rules lead to, their aliases and their targets.
	for _, rt := range b.ruleTargets {
		c := taskCapabilities(map[string]bool{rt.task: true})
		for _, tg := range append(slices.Clone(rt.dest.Targets), rt.dest.Fallback...) {
			tg.Capabilities = c
		}
	}
	for e, set := range b.caps {
		if e.Dest == nil {
			continue
		}
		c := taskCapabilities(set)
		for _, tg := range append(slices.Clone(e.Dest.Targets), e.Dest.Fallback...) {
			tg.Capabilities = c
		}
	}
	for name, c := range b.claims {
		t.names[name] = c.entry
		t.how[name] = c.how
		if c.level == claimServiceFull {
			if bare := b.claims[c.bare]; bare != nil && bare.owner == c.owner {
				continue // reachable, but listed by its bare name
			}
		}
		info := c.info
		info.OwnedBy = "citadel"
		info.Capabilities = taskCapabilities(b.caps[c.entry])
		t.models = append(t.models, info)
	}
	slices.SortFunc(t.models, func(x, y ModelInfo) int { return cmp.Compare(x.ID, y.ID) })
	for _, m := range t.models {
		t.avail = append(t.avail, m.ID)
	}
	// The replicas some name reaches (not those of a name another route or a route won).
	seen := map[*Replica]bool{}
	addDest := func(d *Destination) {
		if d == nil {
			return
		}
		for _, tg := range append(slices.Clone(d.Targets), d.Fallback...) {
			for _, r := range tg.Replicas {
				if !seen[r] {
					seen[r] = true
					t.replicas = append(t.replicas, r)
				}
			}
		}
	}
	for _, e := range t.names {
		addDest(e.Dest)
		for i := range e.Tasks {
			addDest(e.Tasks[i].Dest)
		}
	}
	for _, e := range t.local {
		for i := range e.Tasks {
			addDest(e.Tasks[i].Dest)
		}
	}
	slices.SortFunc(t.replicas, func(x, y *Replica) int { return cmp.Compare(x.ID, y.ID) })
	return t
}
