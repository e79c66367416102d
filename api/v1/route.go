package v1

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Route (citadel.dev/v1alpha1) says what the gateway exposes: public model
// names and aliases, each served by weighted targets with an ordered
// fallback chain, or, for a virtual name such as "auto", by task classes
// (vision, code, reasoning, general, embedding) chosen per request.
//
//	apiVersion: citadel.dev/v1alpha1
//	kind: Route
//	metadata: {name: lab}
//	spec:
//	  models:
//	  - name: mimo-vl
//	    aliases: [vision]
//	    targets: [{service: mimo-vl-7b-rl}]
//	    fallback: [{service: llava-ollama}]
//	  - name: auto
//	    tasks:
//	    - {task: vision, model: mimo-vl}
//	    - {task: code, keywords: ["```", "def ", "stack trace"], targets: [{service: deepcoder}]}
//	    - {task: general, targets: [{service: qwen-general}]}
type Route struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       RouteSpec `json:"spec"`
	Status     Status    `json:"status,omitzero"`
}

// RouteSpec lists the public models and the defaults for all of them.
type RouteSpec struct {
	// Models are the public names the route exposes; a name or alias may appear once.
	Models []RouteModel `json:"models"`
	// Balancing is the replica choice of every model that sets none of its own.
	Balancing *Balancing `json:"balancing,omitempty"`
	// Limits apply to every model, each counted on its own; a model's own limits override
	// them field by field.
	Limits *Limits `json:"limits,omitempty"`
	// Retry is how every model's requests are retried.
	Retry *Retry `json:"retry,omitempty"`
	// Objectives are the service-level objectives of all the route's traffic, which the
	// dashboard measures and marks met or missed.
	Objectives *Objectives `json:"objectives,omitempty"`
}

// RouteModel is one public model name.
type RouteModel struct {
	// Name is what clients send as "model".
	Name string `json:"name"`
	// Aliases are other names clients may send for the same model: "vision" for mimo-vl.
	// /v1/models lists them too.
	Aliases []string `json:"aliases,omitempty"`
	// Targets serve the name, weighted (canary: 90/10). Exclusive with Tasks.
	Targets []RouteTarget `json:"targets,omitempty"`
	// Fallback is tried in order when no target can serve the request.
	Fallback []RouteTarget `json:"fallback,omitempty"`
	// Tasks make the name virtual: each request is classified and sent to
	// the first matching task's destination.
	Tasks []TaskRule `json:"tasks,omitempty"`
	// DefaultTask is the task a virtual name's request goes to when the classifier is not
	// sure (its best score is under MinConfidence) or sees a task no rule serves; default
	// general (or, without a general rule, the first rule).
	DefaultTask string `json:"defaultTask,omitempty"`
	// MinConfidence is the classifier score (0–1) a task needs to win over DefaultTask;
	// default 0.5.
	MinConfidence *float64 `json:"minConfidence,omitempty"`
	// Balancing replaces the route's balancing, as a whole, for this name.
	Balancing *Balancing `json:"balancing,omitempty"`
	// Limits override the route's limits for this name, field by field.
	Limits *Limits `json:"limits,omitempty"`
	// Objectives are the service-level objectives of this public name's traffic alone (a
	// virtual name's request whose task rule names another model counts for that model).
	Objectives *Objectives `json:"objectives,omitempty"`
}

// RouteTarget is a destination: an InferenceService ("name" or
// "namespace/name"), or, for engines Citadel does not run, a URL.
type RouteTarget struct {
	// Service is an InferenceService, "name" (in the route's namespace) or
	// "namespace/name"; its ready replicas are the target's. Exclusive with URL.
	Service string `json:"service,omitempty"`
	// URL is an engine's base URL, http(s)://host:port (a trailing /v1 is dropped), for an
	// engine Citadel does not run. Exclusive with Service.
	URL string `json:"url,omitempty"`
	// Model is the name the upstream knows the model by (for url targets,
	// or to override the service's served name).
	Model string `json:"model,omitempty"`
	// API is the upstream protocol of a url target: openai (default) or ollama.
	API string `json:"api,omitempty"`
	// Engine names a url target's engine (one of EngineNames but sim): the gateway then
	// probes its health path and balances on its load metrics, as for a service.
	Engine string `json:"engine,omitempty"`
	// Weight is the share of traffic; default 1. Weight 0 takes no new traffic.
	Weight *int32 `json:"weight,omitempty"`
}

// Task classes.
const (
	TaskVision    = "vision"
	TaskCode      = "code"
	TaskReasoning = "reasoning"
	TaskGeneral   = "general"
	TaskEmbedding = "embedding"
)

var taskClasses = []string{TaskVision, TaskCode, TaskReasoning, TaskGeneral, TaskEmbedding}

// TaskRule routes requests of one task class. An image part makes a request
// vision; Keywords (whole words, any case), Patterns (Go regular expressions) and
// prompt-length bounds match on what the user asks (the last user turn and an
// agent's latest tool result, never the system prompt); otherwise the built-in
// classifier decides, leaning toward the rules' Examples. The header
// x-citadel-task overrides.
type TaskRule struct {
	// Task is the task class the rule serves.
	Task string `json:"task"`
	// Keywords match when one occurs in what the user asks as a whole word, in any case
	// ("git" matches "use git." but not "digit"); the first rule, in order, that matches
	// wins over the classifier.
	Keywords []string `json:"keywords,omitempty"`
	// Patterns are Go regular expressions (RE2) matched against what the user asks, as
	// sent; like keywords, the first matching rule wins.
	Patterns []string `json:"patterns,omitempty"`
	// Examples are requests of this route's traffic that belong to the task: a request
	// like one of them leans toward it, without retraining the classifier.
	Examples []string `json:"examples,omitempty"`
	// MinPromptTokens is the fewest prompt tokens the rule admits, estimated (about 4
	// bytes of text a token, 1,024 an image). A rule with bounds and no keywords or
	// patterns matches on length alone.
	MinPromptTokens *int32 `json:"minPromptTokens,omitempty"`
	// MaxPromptTokens is the most prompt tokens the rule admits, estimated as for
	// MinPromptTokens.
	MaxPromptTokens *int32 `json:"maxPromptTokens,omitempty"`
	// Model sends the task's requests to another public model of this route (its targets
	// and fallback). Exclusive with Targets.
	Model string `json:"model,omitempty"`
	// Targets serve the task's requests directly, weighted as a model's targets.
	Targets []RouteTarget `json:"targets,omitempty"`
	// Fallback is tried in order when no target of the rule can serve the request.
	Fallback []RouteTarget `json:"fallback,omitempty"`
}

// Balancing policies.
const (
	BalanceRoundRobin       = "round-robin"
	BalanceLeastOutstanding = "least-outstanding"
	BalanceLoadAware        = "load-aware"
	BalancePrefixAffinity   = "prefix-affinity"
	BalanceSessionAffinity  = "session-affinity"
)

// Balancing chooses among a target's replicas.
type Balancing struct {
	// Policy is how a replica is picked: round-robin; least-outstanding (the fewest
	// requests in flight from the gateway; the default, except that an Ollama target with
	// no policy keeps each model on one server); load-aware (the engines' scraped queue
	// and KV-cache use); prefix-affinity or session-affinity (the same prompt prefix, or
	// session header, to the same replica while it is not overloaded).
	Policy string `json:"policy,omitempty"`
	// SessionHeader is the header whose value pins a session to a replica
	// (session-affinity); default x-session-id.
	SessionHeader string `json:"sessionHeader,omitempty"`
}

// Limits bound what clients may ask for, per public model: the route's limits, each
// overridden by the model's own. The gateway keeps one count per public model (across
// every client and key, kept across route updates that keep the name); a request must
// pass both these and its APIKey's, and one refused by either is counted by neither.
type Limits struct {
	// RequestsPerMinute bounds the requests admitted in any sliding minute; beyond it the
	// gateway answers 429 with Retry-After before calling an engine.
	RequestsPerMinute *int32 `json:"requestsPerMinute,omitempty"`
	// TokensPerMinute bounds the tokens (prompt and completion, from the engines' usage,
	// charged when an answer ends) in any sliding minute: a request is admitted while the
	// model is under it, and is never cut; the next one is refused with 429.
	TokensPerMinute *int64 `json:"tokensPerMinute,omitempty"`
	// MaxConcurrent bounds the requests in flight at once (a stream until it ends or its
	// client goes away); beyond it, 429.
	MaxConcurrent *int32 `json:"maxConcurrent,omitempty"`
	// MaxTokens bounds the answer a request may ask for: max_tokens or
	// max_completion_tokens (Ollama: options.num_predict) above it is refused with 400
	// naming the field, not clamped. A request that sets none is passed as sent.
	MaxTokens *int32 `json:"maxTokens,omitempty"`
	// Timeout is the total deadline of one request, including retries and the whole
	// stream; default 10 minutes.
	Timeout *Duration `json:"timeout,omitempty"`
}

// Retry says how failed attempts are retried before the first byte
// reaches the client.
type Retry struct {
	// Attempts is how many upstream attempts one request may make (replicas, other
	// weighted targets, then the fallback chain; each replica once), 1 to 10; default 3.
	Attempts *int32 `json:"attempts,omitempty"`
	// PerTryTimeout bounds one attempt: the whole answer when it is not streamed, the first
	// byte when it is; default 120 s and 60 s, at most the total timeout.
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
}

// Objectives are service-level objectives: what share of requests must succeed and how soon
// the first token must come. The dashboard measures them over the gateway's traffic of the
// last 15 minutes (since the gateway started, when that is sooner) and marks each met,
// missed, or no data when no request came.
//
//	objectives: {availability: "99.9%", ttftP99: 2s}
type Objectives struct {
	// Availability is the percentage of requests that must not fail: "99.9%". A request
	// fails when the gateway answers 5xx or no answer at all; 4xx (a wrong key, an unknown
	// model, a rate limit) are the client's and do not count.
	Availability string `json:"availability,omitempty"`
	// TTFTP50 bounds the median time to first token (arrival at the gateway to the first byte
	// of the engine's answer): "500ms".
	TTFTP50 *Duration `json:"ttftP50,omitempty"`
	// TTFTP99 bounds the 99th percentile of the time to first token: "2s".
	TTFTP99 *Duration `json:"ttftP99,omitempty"`
}

// AvailabilityRatio parses Availability ("99.9%") as a ratio (0.999); 0 when it is unset.
func (o *Objectives) AvailabilityRatio() (float64, error) {
	if o == nil || o.Availability == "" {
		return 0, nil
	}
	num, ok := strings.CutSuffix(strings.TrimSpace(o.Availability), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("%q is not a percentage", o.Availability)
	}
	if !(v > 0 && v <= 100) {
		return 0, fmt.Errorf("%q is not above 0%% and at most 100%%", o.Availability)
	}
	return v / 100, nil
}

func (o *Objectives) validate() FieldErrors {
	var errs FieldErrors
	if _, err := o.AvailabilityRatio(); err != nil {
		errs.Add("availability", err.Error(), `write the share of requests that must succeed as a percentage, e.g. "99.9%"`)
	}
	for _, d := range []struct {
		name string
		v    *Duration
	}{{"ttftP50", o.TTFTP50}, {"ttftP99", o.TTFTP99}} {
		if d.v == nil {
			continue
		}
		if v, err := d.v.Std(); err != nil {
			errs.Add(d.name, err.Error(), "")
		} else if v == 0 {
			errs.Add(d.name, "must be above zero", "write the time to first token to stay under, e.g. 2s")
		}
	}
	if o.Availability == "" && o.TTFTP50 == nil && o.TTFTP99 == nil {
		errs.Add("", "sets no objective", "set availability, ttftP50 or ttftP99, or remove objectives")
	}
	return errs
}

// Default fills the route's defaults.
func (r *Route) Default() {
	r.APIVersion, r.Kind = CitadelGroupVersion, KindRoute
	if r.Namespace == "" {
		r.Namespace = DefaultNamespace
	}
}

// PublicNames returns every name and alias the route exposes.
func (r *Route) PublicNames() []string {
	var names []string
	for _, m := range r.Spec.Models {
		names = append(names, m.Name)
		names = append(names, m.Aliases...)
	}
	return names
}

// Validate checks the route on its own.
func (r *Route) Validate() FieldErrors {
	errs := validateMeta(&r.ObjectMeta, true)
	var spec FieldErrors
	if len(r.Spec.Models) == 0 {
		spec.Add("models", "is empty: the route exposes nothing", "add a model, e.g. models: [{name: mimo-vl, targets: [{service: mimo-vl-7b-rl}]}]")
	}
	seen := map[string]string{}
	models := map[string]bool{}
	for _, m := range r.Spec.Models {
		models[m.Name] = true
	}
	for i, m := range r.Spec.Models {
		p := fmt.Sprintf("models[%d]", i)
		if m.Name == "" {
			spec.Add(p+".name", "is required", "the public name clients send as \"model\"")
		}
		for j, n := range append([]string{m.Name}, m.Aliases...) {
			if n == "" {
				continue
			}
			np := p + ".name"
			if j > 0 {
				np = fmt.Sprintf("%s.aliases[%d]", p, j-1)
			}
			if strings.ContainsAny(n, " \t\n") {
				spec.Add(np, fmt.Sprintf("%q contains whitespace", n), "public names are sent as the request's model string")
			}
			if prev, dup := seen[n]; dup {
				spec.Add(np, fmt.Sprintf("name %q is already used by %s", n, prev), "each public name and alias must be unique")
			} else {
				seen[n] = np
			}
		}
		switch {
		case len(m.Tasks) > 0 && (len(m.Targets) > 0 || len(m.Fallback) > 0):
			spec.Add(p, "sets both tasks and targets", "a name is either virtual (tasks) or served by targets; split it in two")
		case len(m.Tasks) == 0 && len(m.Targets) == 0:
			spec.Add(p+".targets", "is empty: nothing serves this name", "add targets: [{service: NAME}] or tasks")
		}
		spec.Prefixed(p, validateTargets("targets", m.Targets))
		spec.Prefixed(p, validateTargets("fallback", m.Fallback))
		if m.DefaultTask != "" {
			oneOf(&spec, p+".defaultTask", m.DefaultTask, TaskCode, TaskReasoning, TaskGeneral)
			if len(m.Tasks) == 0 {
				spec.Add(p+".defaultTask", "is set on a name without tasks", "defaultTask chooses among task rules; add tasks or remove it")
			} else if !slices.ContainsFunc(m.Tasks, func(t TaskRule) bool { return t.Task == m.DefaultTask }) {
				spec.Add(p+".defaultTask", fmt.Sprintf("%q has no task rule", m.DefaultTask), "add a rule for it or name a task the rules have")
			}
		}
		if c := m.MinConfidence; c != nil && (*c < 0 || *c > 1 || *c != *c) {
			spec.Add(p+".minConfidence", fmt.Sprintf("%v is not between 0 and 1", *c), "a classifier score: 0.5 is the default, 0 always trusts the classifier")
		}
		tasks := map[string]bool{}
		for j, t := range m.Tasks {
			tp := fmt.Sprintf("%s.tasks[%d]", p, j)
			if t.Task == "" {
				spec.Add(tp+".task", "is required", "one of: "+strings.Join(taskClasses, ", "))
			}
			oneOf(&spec, tp+".task", t.Task, taskClasses...)
			for k, ex := range t.Examples {
				if strings.TrimSpace(ex) == "" {
					spec.Add(fmt.Sprintf("%s.examples[%d]", tp, k), "is empty", "write a request of the task, as a user would send it")
				}
			}
			if tasks[t.Task] && len(t.Keywords) == 0 && len(t.Patterns) == 0 {
				spec.Add(tp+".task", fmt.Sprintf("task %q appears twice with no keywords or patterns to tell them apart", t.Task), "merge the two rules")
			}
			tasks[t.Task] = true
			for k, pat := range t.Patterns {
				if _, err := regexp.Compile(pat); err != nil {
					spec.Add(fmt.Sprintf("%s.patterns[%d]", tp, k), fmt.Sprintf("invalid regular expression: %v", err), "use Go RE2 syntax")
				}
			}
			if t.MinPromptTokens != nil && t.MaxPromptTokens != nil && *t.MinPromptTokens > *t.MaxPromptTokens {
				spec.Add(tp+".minPromptTokens", fmt.Sprintf("%d is greater than maxPromptTokens %d", *t.MinPromptTokens, *t.MaxPromptTokens), "")
			}
			switch {
			case t.Model != "" && len(t.Targets) > 0:
				spec.Add(tp, "sets both model and targets", "keep one of them")
			case t.Model == "" && len(t.Targets) == 0:
				spec.Add(tp, "has no destination", "set model: PUBLIC-NAME or targets: [{service: NAME}]")
			case t.Model != "" && !models[t.Model]:
				spec.Add(tp+".model", fmt.Sprintf("names %q, which is not a model of this route", t.Model), "use one of the route's model names")
			case t.Model == m.Name:
				spec.Add(tp+".model", "points at its own model", "name another model of the route")
			}
			spec.Prefixed(tp, validateTargets("targets", t.Targets))
			spec.Prefixed(tp, validateTargets("fallback", t.Fallback))
		}
		if m.Balancing != nil {
			spec.Prefixed(p+".balancing", m.Balancing.validate())
		}
		if m.Limits != nil {
			spec.Prefixed(p+".limits", m.Limits.validate())
		}
		if m.Objectives != nil {
			spec.Prefixed(p+".objectives", m.Objectives.validate())
		}
	}
	if r.Spec.Balancing != nil {
		spec.Prefixed("balancing", r.Spec.Balancing.validate())
	}
	if r.Spec.Limits != nil {
		spec.Prefixed("limits", r.Spec.Limits.validate())
	}
	if r.Spec.Objectives != nil {
		spec.Prefixed("objectives", r.Spec.Objectives.validate())
	}
	if rt := r.Spec.Retry; rt != nil {
		if rt.Attempts != nil && (*rt.Attempts < 1 || *rt.Attempts > 10) {
			spec.Add("retry.attempts", fmt.Sprintf("must be between 1 and 10, got %d", *rt.Attempts), "")
		}
		if rt.PerTryTimeout != nil {
			if _, err := rt.PerTryTimeout.Std(); err != nil {
				spec.Add("retry.perTryTimeout", err.Error(), "")
			}
		}
	}
	errs.Prefixed("spec", spec)
	return errs
}

func validateTargets(field string, ts []RouteTarget) FieldErrors {
	var errs FieldErrors
	for i, t := range ts {
		p := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case t.Service != "" && t.URL != "":
			errs.Add(p, "sets both service and url", "keep one of them")
		case t.Service == "" && t.URL == "":
			errs.Add(p, "names no destination", "set service: NAME (an InferenceService) or url: http://host:port")
		case t.Service != "":
			if _, _, err := ServiceRef(t.Service, ""); err != nil {
				errs.Add(p+".service", err.Error(), "")
			}
		case t.URL != "":
			u, err := url.Parse(t.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs.Add(p+".url", fmt.Sprintf("%q is not an http(s) URL", t.URL), "write e.g. http://127.0.0.1:11434")
			}
		}
		oneOf(&errs, p+".api", t.API, "openai", "ollama")
		oneOf(&errs, p+".engine", t.Engine, slices.DeleteFunc(slices.Clone(EngineNames), func(n string) bool { return n == "sim" })...)
		if t.Engine != "" && t.Service != "" {
			errs.Add(p+".engine", "is for url targets", "remove it: a service's engine is known")
		}
		if t.Weight != nil && *t.Weight < 0 {
			errs.Add(p+".weight", fmt.Sprintf("must not be negative, got %d", *t.Weight), "")
		}
	}
	return errs
}

func (b *Balancing) validate() FieldErrors {
	var errs FieldErrors
	oneOf(&errs, "policy", b.Policy, BalanceRoundRobin, BalanceLeastOutstanding, BalanceLoadAware, BalancePrefixAffinity, BalanceSessionAffinity)
	return errs
}

func (l *Limits) validate() FieldErrors {
	var errs FieldErrors
	pos := func(name string, v *int64) {
		if v != nil && *v <= 0 {
			errs.Add(name, fmt.Sprintf("must be positive, got %d", *v), "remove it for no limit")
		}
	}
	i64 := func(p *int32) *int64 {
		if p == nil {
			return nil
		}
		v := int64(*p)
		return &v
	}
	pos("requestsPerMinute", i64(l.RequestsPerMinute))
	pos("tokensPerMinute", l.TokensPerMinute)
	pos("maxConcurrent", i64(l.MaxConcurrent))
	pos("maxTokens", i64(l.MaxTokens))
	if l.Timeout != nil {
		if _, err := l.Timeout.Std(); err != nil {
			errs.Add("timeout", err.Error(), "")
		}
	}
	return errs
}

// References returns the InferenceServices the route sends traffic to.
func (r *Route) References() []Reference {
	var refs []Reference
	add := func(path string, ts []RouteTarget) {
		for i, t := range ts {
			if t.Service == "" {
				continue
			}
			ns, name, err := ServiceRef(t.Service, r.Namespace)
			if err != nil {
				continue
			}
			refs = append(refs, Reference{Path: fmt.Sprintf("%s[%d].service", path, i), Kinds: []string{KindInferenceService}, Namespace: ns, Name: name})
		}
	}
	for i, m := range r.Spec.Models {
		p := fmt.Sprintf("spec.models[%d]", i)
		add(p+".targets", m.Targets)
		add(p+".fallback", m.Fallback)
		for j, t := range m.Tasks {
			tp := fmt.Sprintf("%s.tasks[%d]", p, j)
			add(tp+".targets", t.Targets)
			add(tp+".fallback", t.Fallback)
		}
	}
	return refs
}

// RouteExplanation is how the gateway would route a request, without sending it
// (POST /api/v1/explain; citadel route explain).
type RouteExplanation struct {
	Model  string `json:"model"`            // as the request named it
	Public string `json:"public"`           // the public model it resolves to
	Task   string `json:"task,omitempty"`   // for a virtual name
	Reason string `json:"reason"`           // why: "classifier code=0.93", `keyword "kubectl"`, …
	Rule   string `json:"rule,omitempty"`   // the task rule that serves it: "auto: tasks[2] (code)"
	Target string `json:"target,omitempty"` // the first target (or fallback) it would try
	// Scores are the built-in classifier's probabilities per task (absent when a header, an
	// image, an embedding request or a rule decided first).
	Scores map[string]float64 `json:"scores,omitempty"`
	// Nearest is, per task with examples, the similarity of the closest example.
	Nearest map[string]float64 `json:"nearest,omitempty"`
	// Features are what weighed most in the classifier's choice, strongest first.
	Features []ExplainedFeature `json:"features,omitempty"`
	// Ask is the start of the text the rules and the classifier read (the last user turn
	// and an agent's latest tool result; never the system prompt).
	Ask string `json:"ask,omitempty"`
	// Micros is how long the decision took, in microseconds.
	Micros float64 `json:"micros"`
}

// ExplainedFeature is one feature of the classifier and the task it pushed toward.
type ExplainedFeature struct {
	Feature string  `json:"feature"`
	Task    string  `json:"task"`
	Weight  float64 `json:"weight"`
}
