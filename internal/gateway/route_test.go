package gateway

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
)

func rtPtr[T any](v T) *T { return &v }

func rtEP(replica int, addr, engine string, ready bool, served ...string) v1.Endpoint {
	return v1.Endpoint{Replica: replica, Address: addr, Engine: engine, Ready: ready, Served: served,
		Metrics: "/metrics", RunningMetric: engine + ":running"}
}

func rtSvc(ns, name string, eps ...v1.Endpoint) *v1.InferenceService {
	s := &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Name: name, Namespace: ns}}
	s.Spec.Model = &v1.ModelRef{Name: name + "-model"}
	s.Status.Endpoints = eps
	return s
}

func rtRoute(ns, name string, models ...v1.RouteModel) *v1.Route {
	return &v1.Route{ObjectMeta: v1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1.RouteSpec{Models: models}}
}

func rtTo(services ...string) []v1.RouteTarget {
	var out []v1.RouteTarget
	for _, s := range services {
		out = append(out, v1.RouteTarget{Service: s})
	}
	return out
}

// rtWorld is a lab: services (one replica not ready, one service with none, one in another
// namespace sharing a name), a route with names, aliases, weights, fallback and a virtual
// name, and a second route that conflicts.
func rtWorld() BuildInput {
	services := []*v1.InferenceService{
		rtSvc("default", "mimo-vl-7b-rl",
			rtEP(0, "10.0.0.1:8000", "vllm", true, "XiaomiMiMo/MiMo-VL-7B-RL"),
			rtEP(1, "10.0.0.2:8000", "vllm", false, "XiaomiMiMo/MiMo-VL-7B-RL")),
		rtSvc("default", "deepcoder", rtEP(0, "0.0.0.0:8001", "sglang", true, "deepcoder-14b")),
		rtSvc("default", "qwen-general", rtEP(0, "10.0.0.3:8000", "vllm", true, "qwen2.5-7b-instruct")),
		rtSvc("default", "qwen-canary", rtEP(0, "10.0.0.4:8000", "vllm", true, "qwen2.5-7b-instruct-v2")),
		rtSvc("default", "llava-ollama", rtEP(0, "10.0.0.5:11434", "ollama", true, "llava:7b", "qwen2.5:7b")),
		rtSvc("default", "down", rtEP(0, "10.0.0.6:8000", "vllm", false, "down-model")),
		rtSvc("default", "pending"),
		rtSvc("team", "qwen-general", rtEP(0, "10.1.0.1:8000", "llamacpp", true, "qwen-team")),
	}
	lab := rtRoute("default", "lab",
		v1.RouteModel{Name: "mimo-vl", Aliases: []string{"vision"}, Targets: rtTo("mimo-vl-7b-rl"),
			Fallback: []v1.RouteTarget{{Service: "llava-ollama", Model: "llava:7b"}}},
		v1.RouteModel{Name: "coder", Targets: rtTo("deepcoder")},
		v1.RouteModel{Name: "qwen", Targets: []v1.RouteTarget{
			{Service: "qwen-general", Weight: rtPtr[int32](90)},
			{Service: "default/qwen-canary", Weight: rtPtr[int32](10)},
		}},
		v1.RouteModel{Name: "qwen-general", Targets: rtTo("qwen-canary")}, // shadows the service's bare name
		v1.RouteModel{Name: "auto", Aliases: []string{"router"}, Tasks: []v1.TaskRule{
			{Task: "vision", Model: "vision"}, // an alias: resolved to mimo-vl
			{Task: "embedding", Targets: []v1.RouteTarget{{URL: "http://10.9.9.9:8080/v1/", Model: "bge-m3"}}},
			{Task: "reasoning", Keywords: []string{"Think Hard"}, Patterns: []string{`(?i)\bqed\b`},
				Targets: rtTo("team/qwen-general")},
			{Task: "reasoning", MinPromptTokens: rtPtr[int32](8000), Model: "qwen"},
			{Task: "code", Model: "coder"},
			{Task: "general", Model: "qwen"},
		}},
		v1.RouteModel{Name: "smart", Tasks: []v1.TaskRule{ // a virtual name leading to another
			{Task: "code", Model: "coder"},
			{Task: "general", Model: "auto"},
		}},
		v1.RouteModel{Name: "loop-a", Tasks: []v1.TaskRule{{Task: "general", Model: "loop-b"}}},
		v1.RouteModel{Name: "loop-b", Tasks: []v1.TaskRule{
			{Task: "general", Model: "loop-a"}, // closes the loop: dropped
			{Task: "code", Model: "coder"},
		}},
	)
	other := rtRoute("default", "other",
		v1.RouteModel{Name: "coder", Targets: rtTo("qwen-general")}, // lab has it
		v1.RouteModel{Name: "ghostly", Targets: rtTo("ghost"), Fallback: rtTo("qwen-general")},
	)
	return BuildInput{Routes: []*v1.Route{other, lab}, Services: services}
}

func rtBuild(t *testing.T, in BuildInput, wantErrs ...string) *Table {
	t.Helper()
	tab, errs := Build(in)
	if tab == nil {
		t.Fatal("Build returned a nil table")
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	for _, w := range wantErrs {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("errors lack %q:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(wantErrs) {
		t.Errorf("%d errors, want %d:\n%s", len(got), len(wantErrs), strings.Join(got, "\n"))
	}
	return tab
}

var rtWorldErrs = []string{
	`route default/other: name "coder" is already used by route default/lab`,
	`InferenceService default/ghost does not exist`,
	`"loop-a" leads back to "loop-b": a loop`,
}

func TestResolveNames(t *testing.T) {
	tab := rtBuild(t, rtWorld(), rtWorldErrs...)
	type want struct {
		public, reason, target, model, api string
		replicas                           int
		fallback                           string
	}
	tests := []struct {
		name, model string
		want        want
	}{
		{"exact name", "mimo-vl", want{"mimo-vl", "exact name", "default/mimo-vl-7b-rl", "XiaomiMiMo/MiMo-VL-7B-RL", APIOpenAI, 1, "default/llava-ollama"}},
		{"alias", "vision", want{"mimo-vl", "alias of mimo-vl", "default/mimo-vl-7b-rl", "XiaomiMiMo/MiMo-VL-7B-RL", APIOpenAI, 1, "default/llava-ollama"}},
		{"service name", "deepcoder", want{"deepcoder", "service name", "default/deepcoder", "deepcoder-14b", APIOpenAI, 1, ""}},
		{"service namespace/name", "default/deepcoder", want{"default/deepcoder", "service name", "default/deepcoder", "deepcoder-14b", APIOpenAI, 1, ""}},
		{"served name", "deepcoder-14b", want{"deepcoder-14b", "served name of default/deepcoder", "default/deepcoder", "deepcoder-14b", APIOpenAI, 1, ""}},
		{"second served name of an ollama", "qwen2.5:7b", want{"qwen2.5:7b", "served name of default/llava-ollama", "default/llava-ollama", "qwen2.5:7b", APIOllama, 1, ""}},
		{"ollama :latest", "coder:latest", want{"coder", "exact name", "default/deepcoder", "deepcoder-14b", APIOpenAI, 1, ""}},
		{"route wins over a service name", "qwen-general", want{"qwen-general", "exact name", "default/qwen-canary", "qwen2.5-7b-instruct-v2", APIOpenAI, 1, ""}},
		{"shadowed service by namespace/name", "default/qwen-general", want{"default/qwen-general", "service name", "default/qwen-general", "qwen2.5-7b-instruct", APIOpenAI, 1, ""}},
		{"other namespace", "team/qwen-general", want{"team/qwen-general", "service name", "team/qwen-general", "qwen-team", APIOpenAI, 1, ""}},
		{"first route wins a conflict", "coder", want{"coder", "exact name", "default/deepcoder", "deepcoder-14b", APIOpenAI, 1, ""}},
		{"service with no ready endpoint", "down", want{"down", "service name", "default/down", "down-model", APIOpenAI, 0, ""}},
		{"missing service kept empty", "ghostly", want{"ghostly", "exact name", "default/ghost", "ghostly", APIOpenAI, 0, "default/qwen-general"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tab.Resolve(RequestInfo{Model: tt.model, Text: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			t0 := d.Dest.Targets[0]
			got := want{d.Public, d.Reason, t0.Name, t0.Model, t0.API, len(t0.Replicas), ""}
			if len(d.Dest.Fallback) > 0 {
				got.fallback = d.Dest.Fallback[0].Name
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			for _, r := range t0.Replicas {
				if !r.State.Healthy {
					t.Errorf("replica %s of a ready endpoint is not healthy", r.ID)
				}
			}
		})
	}

	d, _ := tab.Resolve(RequestInfo{Model: "mimo-vl"})
	if fb := d.Dest.Fallback[0]; fb.API != APIOllama || fb.Model != "llava:7b" || fb.Replicas[0].BaseURL != "http://10.0.0.5:11434" {
		t.Errorf("fallback %+v", fb)
	}
	if r := d.Dest.Targets[0].Replicas[0]; r.ID != "default/mimo-vl-7b-rl/0" || r.BaseURL != "http://10.0.0.1:8000" || r.Engine != "vllm" ||
		r.Service != "default/mimo-vl-7b-rl" || r.MetricsPath != "/metrics" || r.RunningMetric != "vllm:running" {
		t.Errorf("replica %+v", r)
	}
	d, _ = tab.Resolve(RequestInfo{Model: "deepcoder"})
	if r := d.Dest.Targets[0].Replicas[0]; r.BaseURL != "http://127.0.0.1:8001" {
		t.Errorf("an endpoint bound to 0.0.0.0 is reached at %s, want loopback", r.BaseURL)
	}
}

func TestResolveNotFound(t *testing.T) {
	tab := rtBuild(t, rtWorld(), rtWorldErrs...)
	for _, model := range []string{"gpt-9", "pending", "default/pending", "", "loop-b:7b"} {
		_, err := tab.Resolve(RequestInfo{Model: model})
		var nf *NotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("%q: %v, want *NotFoundError", model, err)
		}
		if nf.Model != model || !slices.IsSorted(nf.Available) {
			t.Errorf("%q: %+v", model, nf)
		}
		want := []string{"auto", "coder", "deepcoder", "deepcoder-14b", "down", "down-model", "default/qwen-general", "ghostly", "llava-ollama", "llava:7b",
			"loop-a", "loop-b", "mimo-vl", "mimo-vl-7b-rl", "qwen", "qwen-canary", "qwen-general", "qwen-team", "qwen2.5-7b-instruct",
			"qwen2.5-7b-instruct-v2", "qwen2.5:7b", "router", "smart", "team/qwen-general", "vision", "XiaomiMiMo/MiMo-VL-7B-RL"}
		slices.Sort(want)
		if !slices.Equal(nf.Available, want) {
			t.Errorf("available\n got %q\nwant %q", nf.Available, want)
		}
		if !strings.Contains(nf.Error(), "`"+model+"` does not exist") {
			t.Errorf("message %q", nf.Error())
		}
	}
	var nilTable *Table
	if _, err := nilTable.Resolve(RequestInfo{Model: "x"}); err == nil {
		t.Error("a nil table resolved a model")
	}
}

func TestResolveVirtual(t *testing.T) {
	tab := rtBuild(t, rtWorld(), rtWorldErrs...)
	dest := func(name string) *Destination {
		d, err := tab.Resolve(RequestInfo{Model: name})
		if err != nil {
			t.Fatal(err)
		}
		return d.Dest
	}
	tests := []struct {
		name   string
		ri     RequestInfo
		task   string
		public string
		reason string
		dest   *Destination // nil: check target instead
		target string
	}{
		{"image → vision via alias", RequestInfo{Model: "auto", Images: 1, Text: "what is this"}, "vision", "mimo-vl", "image_url", dest("mimo-vl"), ""},
		{"embedding", RequestInfo{Model: "auto", Embedding: true, Text: "hello"}, "embedding", "auto", "embedding request", nil, "http://10.9.9.9:8080"},
		{"keyword", RequestInfo{Model: "auto", Text: "please THINK HARD about this"}, "reasoning", "auto", `keyword "think hard"`, nil, "team/qwen-general"},
		{"pattern", RequestInfo{Model: "auto", Text: "therefore 1=1. Qed."}, "reasoning", "auto", `pattern "(?i)\\bqed\\b"`, nil, "team/qwen-general"},
		{"min tokens", RequestInfo{Model: "auto", Text: "a long document", PromptTokens: 9000}, "reasoning", "qwen", "prompt_tokens=9000 min=8000", dest("qwen"), ""},
		{"code signal", RequestInfo{Model: "auto", Text: "fix it:\n```go\nfunc f() {}\n```"}, "code", "coder", "~^classifier code=[01]\\.\\d\\d$", dest("coder"), ""},
		{"classifier: the first reasoning rule admitting it", RequestInfo{Model: "auto", Text: "Prove that the square root of two is irrational.", PromptTokens: 3}, "reasoning", "auto", "~^classifier reasoning=[01]\\.\\d\\d$", nil, "team/qwen-general"},
		{"general", RequestInfo{Model: "auto", Text: "tell me about the sea"}, "general", "qwen", "~^classifier general=[01]\\.\\d\\d$", dest("qwen"), ""},
		{"alias of a virtual name", RequestInfo{Model: "router", Text: "tell me about the sea"}, "general", "qwen", "~^classifier general=[01]\\.\\d\\d$", dest("qwen"), ""},
		{"header override", RequestInfo{Model: "auto", Text: "tell me about the sea", TaskHeader: "Code"}, "code", "coder", "header x-citadel-task", dest("coder"), ""},
		{"header unknown task", RequestInfo{Model: "auto", Text: "tell me about the sea", TaskHeader: "poetry"}, "general", "qwen", `~^classifier general=[01]\.\d\d; header names unknown task "poetry"$`, dest("qwen"), ""},
		{"virtual leading to virtual", RequestInfo{Model: "smart", Images: 2, Text: "what is this"}, "vision", "mimo-vl", `~^no vision rule for image_url; classifier general=[01]\.\d\d, then auto: image_url$`, dest("mimo-vl"), ""},
		{"loop rule dropped", RequestInfo{Model: "loop-a", Text: "hi"}, "code", "coder", `~^classifier general=[01]\.\d\d, then loop-b: low-confidence \w+=0\.\d\d; no general rule: first rule$`, dest("coder"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tab.Resolve(tt.ri)
			if err != nil {
				t.Fatal(err)
			}
			reason := d.Reason == tt.reason
			if re, ok := strings.CutPrefix(tt.reason, "~"); ok { // a regular expression
				reason = regexp.MustCompile(re).MatchString(d.Reason)
			}
			if d.Task != tt.task || d.Public != tt.public || !reason {
				t.Errorf("task=%s public=%s reason=%q; want task=%s public=%s reason=%q", d.Task, d.Public, d.Reason, tt.task, tt.public, tt.reason)
			}
			if tt.dest != nil && d.Dest != tt.dest {
				t.Errorf("destination %p, want that of %s", d.Dest, tt.public)
			}
			if tt.target != "" && d.Dest.Targets[0].Name != tt.target {
				t.Errorf("target %s, want %s", d.Dest.Targets[0].Name, tt.target)
			}
		})
	}
	d, _ := tab.Resolve(RequestInfo{Model: "auto", Embedding: true})
	if tg := d.Dest.Targets[0]; tg.Model != "bge-m3" || tg.Replicas[0].ID != "http://10.9.9.9:8080" || tg.Replicas[0].Service != "" ||
		!slices.Equal(tg.Capabilities, []string{"embedding"}) {
		t.Errorf("url target %+v", tg)
	}
}

// The reasons below are regular expressions: the classifier's scores are the trained
// model's, so a classifier reason is matched by its shape ("classifier code=0.93").
const (
	byClassifier = `^classifier %s=[01]\.\d\d$`
	lowOrGeneral = `^(classifier general=[01]\.\d\d|low-confidence \w+=0\.\d\d)`
)

func TestClassify(t *testing.T) {
	rules := []TaskEntry{
		{Task: "vision"},    // 0
		{Task: "embedding"}, // 1
		{Task: "code", Keywords: []string{"terraform", "git", "```"}},                      // 2
		{Task: "reasoning", Patterns: []*regexp.Regexp{regexp.MustCompile(`(?i)\bqed\b`)}}, // 3
		{Task: "reasoning", MinPromptTokens: 8000},                                         // 4: a length signal
		{Task: "code"},      // 5: never reached: rule 2 also serves the classifier's code
		{Task: "reasoning"}, // 6: likewise, after rule 3
		{Task: "general", Keywords: []string{"hello", "grüße"}, MaxPromptTokens: 50}, // 7
		{Task: "general"}, // 8
	}
	tests := []struct {
		name   string
		ri     RequestInfo
		task   string
		rule   int // -1: nil
		reason string
	}{
		{"header", RequestInfo{Text: "hi", TaskHeader: "code"}, "code", 2, "^header x-citadel-task$"},
		{"header normalized", RequestInfo{Text: "hi", TaskHeader: " REASONING "}, "reasoning", 3, "^header x-citadel-task$"},
		{"header beats images", RequestInfo{Images: 1, TaskHeader: "general", PromptTokens: 10}, "general", 7, "^header x-citadel-task$"},
		{"header honours bounds", RequestInfo{Text: "hi", TaskHeader: "general", PromptTokens: 100}, "general", 8, "^header x-citadel-task$"},
		{"header unknown", RequestInfo{Text: "tell me about the sea", TaskHeader: "poetry\r\n", PromptTokens: 100}, "general", 8, `; header names unknown task "poetry\\r\\n"$`},
		{"embedding", RequestInfo{Embedding: true, Text: "terraform"}, "embedding", 1, "^embedding request$"},
		{"image", RequestInfo{Images: 2, Text: "```code```"}, "vision", 0, "^image_url$"},
		{"keyword", RequestInfo{Text: "write TERRAFORM for s3"}, "code", 2, `^keyword "terraform"$`},
		{"keyword is a whole word", RequestInfo{Text: "my bank asks for the three-digit code on my card over the phone, is that safe?", PromptTokens: 100}, "general", 8, lowOrGeneral},
		{"keyword punctuation anywhere", RequestInfo{Text: "x```y"}, "code", 2, "^keyword \"```\"$"},
		{"keyword unicode case", RequestInfo{Text: "GRÜSSE und GRÜßE aus Köln", PromptTokens: 10}, "general", 7, `^keyword "gr\\u00fc\\u00dfe"$`},
		{"regex", RequestInfo{Text: "hence x = y, QED"}, "reasoning", 3, `^pattern "\(\?i\)\\\\bqed\\\\b"$`},
		{"min tokens", RequestInfo{Text: "a story", PromptTokens: 8000}, "reasoning", 4, "^prompt_tokens=8000 min=8000$"},
		{"keyword and bounds", RequestInfo{Text: "hello there", PromptTokens: 10}, "general", 7, `^keyword "hello"$`},
		{"keyword beyond bounds", RequestInfo{Text: "hello there", PromptTokens: 51}, "general", 8, lowOrGeneral},
		{"classifier code", RequestInfo{Text: "how do I debounce a React input so it doesn't fire on every keystroke?", PromptTokens: 100}, "code", 2, fmt.Sprintf(byClassifier, "code")},
		{"classifier reasoning", RequestInfo{Text: "A train leaves at three going sixty miles an hour; a second leaves an hour later at eighty. When does it catch up?", PromptTokens: 100}, "reasoning", 3, fmt.Sprintf(byClassifier, "reasoning")},
		{"classifier general", RequestInfo{Text: "write a short, warm thank-you note to my neighbour for watering my plants", PromptTokens: 100}, "general", 8, fmt.Sprintf(byClassifier, "general")},
	}
	e := &Entry{Tasks: rules}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Classify(tt.ri, e)
			idx := rtRuleIndex(rules, v.Entry)
			if v.Task != tt.task || idx != tt.rule || !regexp.MustCompile(tt.reason).MatchString(v.Reason) {
				t.Errorf("got %s rule %d %q; want %s rule %d %s", v.Task, idx, v.Reason, tt.task, tt.rule, tt.reason)
			}
		})
	}
}

// rtRuleIndex is the index of the rule e points at (-1 for nil or another slice's).
func rtRuleIndex(rules []TaskEntry, e *TaskEntry) int {
	for i := range rules {
		if e == &rules[i] {
			return i
		}
	}
	return -1
}

func TestClassifyEdges(t *testing.T) {
	re := func(s string) []*regexp.Regexp { return []*regexp.Regexp{regexp.MustCompile(s)} }
	code := "my go build fails: ./main.go:12:2: undefined: http.NewRequestWithContext — what import am I missing?"
	tests := []struct {
		name   string
		rules  []TaskEntry
		ri     RequestInfo
		task   string
		rule   int
		reason string
	}{
		{"no rules: vision", nil, RequestInfo{Images: 1}, "vision", -1, "^image_url$"},
		{"no rules: embedding", nil, RequestInfo{Embedding: true}, "embedding", -1, "^embedding request$"},
		{"no rules: code", nil, RequestInfo{Text: code}, "code", -1, fmt.Sprintf(byClassifier, "code")},
		{"no rules: header ignored", nil, RequestInfo{Text: code, TaskHeader: "general"}, "code", -1, `; header names unknown task "general"$`},
		{"image without a vision rule", []TaskEntry{{Task: "general"}}, RequestInfo{Images: 1, Text: "what is in this picture?"}, "general", 0, "^no vision rule for image_url; classifier general=1\\.00$"},
		{"code rule bounded out", []TaskEntry{{Task: "code", Keywords: []string{"zzz"}, MaxPromptTokens: 10}, {Task: "general"}},
			RequestInfo{Text: code, PromptTokens: 500}, "general", 1, "^classifier general=1\\.00$"},
		{"code rule bounded in", []TaskEntry{{Task: "code", Keywords: []string{"zzz"}, MaxPromptTokens: 100}, {Task: "general"}},
			RequestInfo{Text: code, PromptTokens: 50}, "code", 0, fmt.Sprintf(byClassifier, "code")},
		{"no general rule", []TaskEntry{{Task: "embedding"}, {Task: "reasoning"}}, RequestInfo{Text: code}, "reasoning", 1, "; no general rule: first rule$"},
		{"embedding rules take no chat", []TaskEntry{{Task: "embedding", Keywords: []string{"sea"}}, {Task: "general"}},
			RequestInfo{Text: "the sea"}, "general", 1, "^classifier general=1\\.00$"},
		{"vision bounds take no text", []TaskEntry{{Task: "vision", MaxPromptTokens: 100}, {Task: "general"}},
			RequestInfo{Text: "hi", PromptTokens: 5}, "general", 1, "^classifier general=1\\.00$"},
		{"vision bounds choose among images", []TaskEntry{{Task: "vision", MaxPromptTokens: 100}, {Task: "vision"}},
			RequestInfo{Images: 1, PromptTokens: 500}, "vision", 1, "^image_url$"},
		{"max-tokens length signal", []TaskEntry{{Task: "code", MaxPromptTokens: 10}, {Task: "general"}},
			RequestInfo{Text: "hi", PromptTokens: 5}, "code", 0, "^prompt_tokens=5 max=10$"},
		{"rules in order", []TaskEntry{{Task: "general", Patterns: re(`sea`)}, {Task: "code", Keywords: []string{"sea"}}},
			RequestInfo{Text: "sea"}, "general", 0, `^pattern "sea"$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Classify(tt.ri, &Entry{Tasks: tt.rules})
			idx := rtRuleIndex(tt.rules, v.Entry)
			if v.Task != tt.task || idx != tt.rule || !regexp.MustCompile(tt.reason).MatchString(v.Reason) {
				t.Errorf("got %s rule %d %q; want %s rule %d %s", v.Task, idx, v.Reason, tt.task, tt.rule, tt.reason)
			}
		})
	}
}

func TestModels(t *testing.T) {
	tab := rtBuild(t, rtWorld(), rtWorldErrs...)
	ms := tab.Models()
	if !slices.IsSortedFunc(ms, func(a, b ModelInfo) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("models are not sorted")
	}
	byID := map[string]ModelInfo{}
	for _, m := range ms {
		if m.OwnedBy != "citadel" || m.MaxModelLen != 0 {
			t.Errorf("%+v", m)
		}
		byID[m.ID] = m
	}
	tests := []struct {
		id   string
		want ModelInfo
	}{
		{"mimo-vl", ModelInfo{Capabilities: []string{"chat", "vision"}, Route: "default/lab"}},
		{"vision", ModelInfo{Capabilities: []string{"chat", "vision"}, Route: "default/lab", AliasOf: "mimo-vl"}},
		{"coder", ModelInfo{Capabilities: []string{"chat", "code"}, Route: "default/lab"}},
		{"qwen", ModelInfo{Capabilities: []string{"chat", "reasoning"}, Route: "default/lab"}},
		{"auto", ModelInfo{Capabilities: []string{"chat", "vision", "code", "reasoning", "embedding"}, Route: "default/lab", Virtual: true}},
		{"router", ModelInfo{Capabilities: []string{"chat", "vision", "code", "reasoning", "embedding"}, Route: "default/lab", AliasOf: "auto", Virtual: true}},
		{"smart", ModelInfo{Capabilities: []string{"chat", "code"}, Route: "default/lab", Virtual: true}},
		{"ghostly", ModelInfo{Route: "default/other"}},
		{"deepcoder", ModelInfo{Service: "default/deepcoder"}},
		{"deepcoder-14b", ModelInfo{Service: "default/deepcoder"}},
		{"team/qwen-general", ModelInfo{Service: "team/qwen-general"}},
		{"down", ModelInfo{Service: "default/down"}},
	}
	for _, tt := range tests {
		tt.want.ID, tt.want.OwnedBy = tt.id, "citadel"
		got, ok := byID[tt.id]
		if !ok {
			t.Errorf("%s is not listed", tt.id)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.id, got, tt.want)
		}
	}
	for _, id := range []string{"default/deepcoder", "pending", "default/pending"} {
		if _, ok := byID[id]; ok {
			t.Errorf("%s is listed", id)
		}
	}
	d, _ := tab.Resolve(RequestInfo{Model: "mimo-vl"})
	for _, tg := range append(slices.Clone(d.Dest.Targets), d.Dest.Fallback...) {
		if !slices.Equal(tg.Capabilities, []string{"chat", "vision"}) {
			t.Errorf("target %s capabilities %q", tg.Name, tg.Capabilities)
		}
	}
	ms[0].ID = "changed"
	if tab.Models()[0].ID == "changed" {
		t.Error("Models returns the table's own slice")
	}
}

func TestReplicas(t *testing.T) {
	tab := rtBuild(t, rtWorld(), rtWorldErrs...)
	var ids []string
	for _, r := range tab.Replicas() {
		ids = append(ids, r.ID)
	}
	want := []string{"default/deepcoder/0", "default/llava-ollama/0", "default/mimo-vl-7b-rl/0", "default/qwen-canary/0",
		"default/qwen-general/0", "http://10.9.9.9:8080", "team/qwen-general/0"}
	if !slices.Equal(ids, want) {
		t.Errorf("replicas\n got %q\nwant %q (not-ready endpoints excluded, each once)", ids, want)
	}
	// One *Replica per endpoint, whichever name reaches it.
	a, _ := tab.Resolve(RequestInfo{Model: "coder"})
	b, _ := tab.Resolve(RequestInfo{Model: "deepcoder-14b"})
	if a.Dest.Targets[0].Replicas[0] != b.Dest.Targets[0].Replicas[0] {
		t.Error("a route target and the service's own name have different replicas")
	}
}

func TestPickTarget(t *testing.T) {
	rep := []*Replica{{ID: "r"}}
	mk := func(ws ...int) *Destination {
		d := &Destination{}
		for i, w := range ws {
			tg := &Target{Name: fmt.Sprint("t", i), Weight: w, Replicas: rep}
			if w < 0 { // no replicas
				tg.Weight, tg.Replicas = 1, nil
			}
			d.Targets = append(d.Targets, tg)
		}
		return d
	}
	tests := []struct {
		name string
		d    *Destination
		want map[string]int // picks per 1000 consecutive r
	}{
		{"canary 90/10", mk(90, 10), map[string]int{"t0": 900, "t1": 100}},
		{"rollback: weight 0 takes none", mk(90, 0), map[string]int{"t0": 1000}},
		{"no replicas skipped", mk(-1, 3, 1), map[string]int{"t1": 750, "t2": 250}},
		{"all weight 0", mk(0, 0), map[string]int{"<nil>": 1000}},
		{"none ready", mk(-1), map[string]int{"<nil>": 1000}},
		{"no targets", &Destination{}, map[string]int{"<nil>": 1000}},
		{"nil", nil, map[string]int{"<nil>": 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]int{}
			for r := uint64(1 << 40); r < 1<<40+1000; r++ {
				if tg := PickTarget(tt.d, r); tg != nil {
					got[tg.Name]++
				} else {
					got["<nil>"]++
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Deterministic in r, and the table's canary weights.
	tab := rtBuild(t, rtWorld(), rtWorldErrs...)
	d, _ := tab.Resolve(RequestInfo{Model: "qwen"})
	if PickTarget(d.Dest, 89).Name != "default/qwen-general" || PickTarget(d.Dest, 90).Name != "default/qwen-canary" || PickTarget(d.Dest, 189).Name != "default/qwen-general" {
		t.Error("weights 90/10 do not split r mod 100 at 90")
	}
}

func TestPreviousStateSurvives(t *testing.T) {
	in := rtWorld()
	t1 := rtBuild(t, in, rtWorldErrs...)
	old := map[string]*Replica{}
	for _, r := range t1.Replicas() {
		old[r.ID] = r
		r.State.InFlight.Store(7)
		r.State.mu.Lock()
		r.State.Healthy, r.State.Failures, r.State.Running = false, 2, 3
		r.State.mu.Unlock()
	}
	// deepcoder moves to another port; everything else stays.
	in.Services[1] = rtSvc("default", "deepcoder", rtEP(0, "10.0.0.7:8001", "sglang", true, "deepcoder-14b"))
	in.Previous = t1
	t2 := rtBuild(t, in, rtWorldErrs...)
	for _, r := range t2.Replicas() {
		switch p := old[r.ID]; {
		case r.ID == "default/deepcoder/0":
			if r == p || !r.State.Healthy || r.State.InFlight.Load() != 0 || r.BaseURL != "http://10.0.0.7:8001" {
				t.Errorf("moved replica reused or not fresh: %+v", r)
			}
		case p == nil:
			t.Errorf("new replica %s", r.ID)
		case r != p:
			t.Errorf("replica %s not reused", r.ID)
		case r.State.InFlight.Load() != 7 || r.State.Healthy || r.State.Failures != 2 || r.State.Running != 3:
			t.Errorf("replica %s lost its state", r.ID)
		}
	}
	// A replica gone from the table is not carried on.
	in.Services = in.Services[:1]
	in.Routes = nil
	in.Previous = t2
	t3 := rtBuild(t, in)
	if ids := len(t3.Replicas()); ids != 1 || t3.Replicas()[0] != old["default/mimo-vl-7b-rl/0"] {
		t.Errorf("replicas after removal: %d", ids)
	}
}

func TestRouteSettings(t *testing.T) {
	r := rtRoute("ml", "r",
		v1.RouteModel{Name: "m", Targets: []v1.RouteTarget{{Service: "s"}, {Service: "s", Weight: rtPtr[int32](0), Model: "other"}},
			Balancing: &v1.Balancing{Policy: v1.BalanceSessionAffinity},
			Limits:    &v1.Limits{RequestsPerMinute: rtPtr[int32](5)}},
		v1.RouteModel{Name: "n", Targets: rtTo("s")},
	)
	r.Spec.Limits = &v1.Limits{MaxTokens: rtPtr[int32](100), RequestsPerMinute: rtPtr[int32](50)}
	r.Spec.Retry = &v1.Retry{Attempts: rtPtr[int32](2)}
	r.Spec.Balancing = &v1.Balancing{Policy: v1.BalanceLoadAware}
	tab := rtBuild(t, BuildInput{Routes: []*v1.Route{r}, Services: []*v1.InferenceService{rtSvc("ml", "s", rtEP(0, "10.0.0.1:1", "vllm", true))}})
	d, _ := tab.Resolve(RequestInfo{Model: "m"})
	l := d.Dest.Limits
	if l == nil || *l.RequestsPerMinute != 5 || *l.MaxTokens != 100 || d.Dest.Retry != r.Spec.Retry {
		t.Errorf("limits %+v retry %+v", l, d.Dest.Retry)
	}
	t0, t1 := d.Dest.Targets[0], d.Dest.Targets[1]
	if t0.Policy != v1.BalanceSessionAffinity || t0.SessionHeader != "x-session-id" || t0.Weight != 1 || t0.Model != "s-model" || t0.Name != "ml/s" {
		t.Errorf("target %+v", t0)
	}
	if t1.Weight != 0 || t1.Model != "other" || t1.Replicas[0] != t0.Replicas[0] {
		t.Errorf("target %+v", t1)
	}
	d, _ = tab.Resolve(RequestInfo{Model: "n"})
	if d.Dest.Targets[0].Policy != v1.BalanceLoadAware || *d.Dest.Limits.RequestsPerMinute != 50 {
		t.Errorf("route defaults not applied: %+v", d.Dest.Targets[0])
	}
}

func TestDecisionHeader(t *testing.T) {
	dest := &Destination{Targets: []*Target{{Name: "default/mimo-vl-7b-rl"}, {Name: "default/other"}}}
	tests := []struct {
		d    Decision
		want string
	}{
		{Decision{Task: "vision", Public: "mimo-vl", Reason: "image_url", Dest: dest},
			"task=vision model=mimo-vl service=default/mimo-vl-7b-rl reason=image_url"},
		{Decision{Public: "qwen", Reason: "exact name", Dest: dest}, "model=qwen service=default/mimo-vl-7b-rl reason=exact name"},
		{Decision{Public: "q", Reason: "r", Dest: &Destination{Fallback: []*Target{{Name: "http://h:1"}}}}, "model=q service=http://h:1 reason=r"},
		{Decision{Public: "q", Reason: "bad\r\nX-Evil: 1"}, "model=q reason=bad  X-Evil: 1"},
	}
	for _, tt := range tests {
		if got := tt.d.Header(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
	tab := rtBuild(t, rtWorld(), rtWorldErrs...)
	d, _ := tab.Resolve(RequestInfo{Model: "auto", Images: 1})
	if got, want := d.Header(), "task=vision model=mimo-vl service=default/mimo-vl-7b-rl reason=image_url"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		model v1.RouteModel
		want  string
	}{
		{"unknown task", v1.RouteModel{Name: "v", Tasks: []v1.TaskRule{{Task: "poetry", Model: "m"}, {Task: "general", Model: "m"}}}, `"poetry" is not a task class`},
		{"bad pattern", v1.RouteModel{Name: "v", Tasks: []v1.TaskRule{{Task: "code", Patterns: []string{"("}, Model: "m"}}}, "patterns[0]"},
		{"model of another route", v1.RouteModel{Name: "v", Tasks: []v1.TaskRule{{Task: "code", Model: "elsewhere"}, {Task: "general", Model: "m"}}}, `"elsewhere" is not a model of this route`},
		{"self loop", v1.RouteModel{Name: "v", Tasks: []v1.TaskRule{{Task: "code", Model: "v"}, {Task: "general", Model: "m"}}}, `"v" leads back to "v": a loop`},
		{"no destination", v1.RouteModel{Name: "v", Tasks: []v1.TaskRule{{Task: "code"}, {Task: "general", Model: "m"}}}, "has no destination"},
		{"bad url", v1.RouteModel{Name: "v", Targets: []v1.RouteTarget{{URL: "ftp://x"}}}, `"ftp://x" is not an http(s) URL`},
		{"negative weight", v1.RouteModel{Name: "v", Targets: []v1.RouteTarget{{URL: "http://x", Weight: rtPtr[int32](-1)}}}, "is negative"},
		{"alias twice", v1.RouteModel{Name: "v", Aliases: []string{"m"}, Targets: rtTo("s")}, `alias "m" is already a name of the route`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rtRoute("", "r", v1.RouteModel{Name: "m", Targets: []v1.RouteTarget{{URL: "http://m"}}}, tt.model)
			tab := rtBuild(t, BuildInput{Routes: []*v1.Route{r}, Services: []*v1.InferenceService{rtSvc("", "s")}}, tt.want)
			if _, err := tab.Resolve(RequestInfo{Model: "m"}); err != nil {
				t.Errorf("the valid model is lost: %v", err)
			}
		})
	}
	// A virtual name with no usable rule is not served.
	r := rtRoute("", "r", v1.RouteModel{Name: "v", Tasks: []v1.TaskRule{{Task: "poetry", Model: "x"}}})
	tab := rtBuild(t, BuildInput{Routes: []*v1.Route{r}}, `"poetry" is not a task class`, "no task rule is usable")
	if _, err := tab.Resolve(RequestInfo{Model: "v"}); err == nil {
		t.Error("an empty virtual name is served")
	}
}
