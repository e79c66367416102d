package gateway

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/taskclass"
)

// defaultMinConfidence is the classifier score a task needs to win over the default task.
const defaultMinConfidence = taskclass.DefaultMinConfidence

// exampleLean is how much a route's example pulls: a request whose nearest example of a task
// has cosine similarity s multiplies that task's odds by exp(exampleLean·s) (s = 0.5 → ×20).
const exampleLean = 6.0

// Verdict is how a virtual name's request was classified: the task, the rule that serves it,
// why, and the classifier's scores when it was asked.
type Verdict struct {
	Task   string
	How    string // header, embedding, image, rule, classifier, low-confidence (the metric's label)
	Reason string // "image_url", `keyword "kubectl"`, "classifier code=0.93", "low-confidence code=0.41", …
	Entry  *TaskEntry
	// Scores are the classifier's (nil when a header, an image, an embedding or a rule decided).
	Scores *taskclass.Scores
	// Nearest is, per task of the rules' examples, the similarity of the closest example.
	Nearest map[string]float64
}

// ask is the text rules match on: what the user asks and an agent's latest tool result, never
// the system prompt (with no turns known, the whole prompt text).
func (ri *RequestInfo) ask() string {
	c := &ri.Class
	switch {
	case c.Ask == "" && c.Tool == "":
		return ri.Text
	case c.Tool == "":
		return c.Ask
	case c.Ask == "":
		return c.Tool
	}
	return c.Ask + "\n" + c.Tool
}

// Classify picks the task of a request to virtual name e, and the rule that serves it, saying
// why. It is pure. In order:
//
//  0. The header x-citadel-task, when it names a task of the rules: the first rule of that
//     task (whose bounds admit the request, else the first). A task no rule has is ignored,
//     and the reason says "header names unknown task".
//  1. An embeddings request: the embedding task, when a rule has it.
//  2. Image parts: vision ("image_url"), when a rule has it.
//  3. The rules' own signals, in rule order, on what the user asks (the last user turn and an
//     agent's latest tool result; never the system prompt): a rule with keywords (whole
//     words, any case) or patterns (Go regular expressions on the text as sent) matches when
//     one of them does; a rule with only prompt-token bounds matches on length (except
//     vision and embedding rules). Bounds always have to admit the request.
//  4. The built-in classifier (package taskclass) scores code, reasoning and general; a
//     rule's examples lean toward its task. A task no rule serves gives its score to the
//     default task. The best task wins when its score reaches the name's minConfidence
//     (default 0.5); otherwise the default task, saying "low-confidence code=0.41".
//  5. The default task is the name's defaultTask, else general; without a rule for it, the
//     first rule that admits the request.
//
// With no rules it still classifies (Entry nil): embedding, vision, or the classifier's best.
func Classify(ri RequestInfo, e *Entry) Verdict {
	var rules []TaskEntry
	if e != nil {
		rules = e.Tasks
	}
	note := ""
	if h := strings.ToLower(strings.TrimSpace(ri.TaskHeader)); h != "" {
		if te := ruleFor(rules, h, ri, true); te != nil {
			return Verdict{Task: te.Task, How: "header", Reason: "header x-citadel-task", Entry: te}
		}
		note = "; header names unknown task " + quoteCut(ri.TaskHeader, 24)
	}
	v := classifyRules(ri, e, rules)
	v.Reason += note
	return v
}

func classifyRules(ri RequestInfo, e *Entry, rules []TaskEntry) Verdict {
	missed := "" // a signal no rule serves
	if ri.Embedding {
		if te := ruleFor(rules, v1.TaskEmbedding, ri, true); te != nil || len(rules) == 0 {
			return Verdict{Task: v1.TaskEmbedding, How: "embedding", Reason: "embedding request", Entry: te}
		}
		missed = "no embedding rule for embedding request; "
	}
	if ri.Images > 0 {
		if te := ruleFor(rules, v1.TaskVision, ri, true); te != nil || len(rules) == 0 {
			return Verdict{Task: v1.TaskVision, How: "image", Reason: "image_url", Entry: te}
		}
		missed = "no vision rule for image_url; "
	}
	ask := ri.ask()
	lower := ""
	for i := range rules {
		if len(rules[i].Keywords) > 0 && lower == "" {
			lower = strings.ToLower(ask)
		}
		if why := explicitMatch(&rules[i], ri, ask, lower); why != "" {
			return Verdict{Task: rules[i].Task, How: "rule", Reason: why, Entry: &rules[i]}
		}
	}

	fs := features(ri)
	s := taskclass.Builtin().ScoreFeatures(fs)
	v := Verdict{Scores: &s, How: "classifier"}
	odds := s
	if e != nil && e.hasExamples {
		v.Nearest = map[string]float64{}
		for i := range rules {
			t := taskclass.TaskIndex(rules[i].Task)
			if t < 0 {
				continue
			}
			for _, ex := range rules[i].Examples {
				if sim := taskclass.Similarity(fs, ex); sim > v.Nearest[rules[i].Task] {
					v.Nearest[rules[i].Task] = sim
				}
			}
		}
		sum := 0.0
		for t, name := range taskclass.Tasks {
			odds[t] *= math.Exp(exampleLean * v.Nearest[name])
			sum += odds[t]
		}
		for t := range odds {
			odds[t] /= sum
		}
	}
	def := v1.TaskGeneral
	if e != nil && e.DefaultTask != "" {
		def = e.DefaultTask
	}
	minConf := defaultMinConfidence
	if e != nil && e.MinConfidence != nil {
		minConf = *e.MinConfidence
	}
	// tasks no rule serves give their score to the default
	var served [taskclass.NumTasks]*TaskEntry
	for t, name := range taskclass.Tasks {
		if len(rules) == 0 {
			continue
		}
		served[t] = ruleFor(rules, name, ri, false)
	}
	best, bestP := -1, 0.0
	for t := range odds {
		if len(rules) > 0 && served[t] == nil {
			continue
		}
		p := odds[t]
		if taskclass.Tasks[t] == def {
			for u := range odds {
				if served[u] == nil && len(rules) > 0 {
					p += odds[u]
				}
			}
		}
		if p > bestP {
			best, bestP = t, p
		}
	}
	why := fmt.Sprintf("%s=%.2f", taskclass.Tasks[max(best, 0)], bestP)
	if n := v.Nearest[taskclass.Tasks[max(best, 0)]]; n > 0 {
		why += fmt.Sprintf(" example=%.2f", n)
	}
	if best >= 0 && bestP >= minConf {
		v.Task, v.Reason = taskclass.Tasks[best], missed+"classifier "+why
		if len(rules) > 0 {
			v.Entry = served[best]
		}
		return v
	}
	if best >= 0 && taskclass.Tasks[best] == def {
		why = "classifier " + why
	} else {
		why, v.How = "low-confidence "+why, "low-confidence"
	}
	v.Task, v.Reason = def, missed+why
	if len(rules) == 0 {
		return v
	}
	if te := ruleFor(rules, def, ri, true); te != nil {
		v.Entry = te
		return v
	}
	v.Reason += "; no " + def + " rule: first rule"
	for i := range rules {
		if (rules[i].Task != v1.TaskEmbedding || ri.Embedding) && ruleAdmits(&rules[i], ri.PromptTokens) {
			v.Task, v.Entry = rules[i].Task, &rules[i]
			return v
		}
	}
	v.Task, v.Entry = rules[0].Task, &rules[0]
	return v
}

// features are the request's classifier features, computed once per request.
func features(ri RequestInfo) taskclass.Features { return taskclass.Featurize(ri.classInput()) }

// classInput is what the classifier reads: the request's turns, or with none known, the whole
// prompt text as the ask.
func (ri *RequestInfo) classInput() taskclass.Input {
	in := ri.Class
	if in.Ask == "" && in.Tool == "" {
		in.Ask = ri.Text
	}
	return in
}

// quoteCut quotes s in ASCII, cut to n runes.
func quoteCut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

func ruleAdmits(e *TaskEntry, tokens int) bool {
	return (e.MinPromptTokens == 0 || tokens >= e.MinPromptTokens) && (e.MaxPromptTokens == 0 || tokens <= e.MaxPromptTokens)
}

// ruleFor is the first rule of task whose bounds admit the request; with anyway, else the
// first rule of task.
func ruleFor(rules []TaskEntry, task string, ri RequestInfo, anyway bool) *TaskEntry {
	var fallback *TaskEntry
	for i := range rules {
		e := &rules[i]
		if e.Task != task {
			continue
		}
		if ruleAdmits(e, ri.PromptTokens) {
			return e
		}
		if fallback == nil {
			fallback = e
		}
	}
	if anyway {
		return fallback
	}
	return nil
}

// explicitMatch says why rule e matches on its own keywords, patterns or bounds ("" when not).
func explicitMatch(e *TaskEntry, ri RequestInfo, ask, lower string) string {
	if e.Task == v1.TaskEmbedding && !ri.Embedding || !ruleAdmits(e, ri.PromptTokens) {
		return ""
	}
	if len(e.Keywords) > 0 || len(e.Patterns) > 0 {
		for _, k := range e.Keywords {
			if containsWord(lower, k) {
				return "keyword " + quoteCut(k, 32)
			}
		}
		for _, p := range e.Patterns {
			if p.MatchString(ask) {
				return "pattern " + quoteCut(p.String(), 32)
			}
		}
		return ""
	}
	if e.MinPromptTokens == 0 && e.MaxPromptTokens == 0 || e.Task == v1.TaskVision || e.Task == v1.TaskEmbedding {
		// no bounds; or bounds that only choose among image or embedding requests (steps 1-2)
		return ""
	}
	why := "prompt_tokens=" + strconv.Itoa(ri.PromptTokens)
	if e.MinPromptTokens > 0 {
		why += " min=" + strconv.Itoa(e.MinPromptTokens)
	}
	if e.MaxPromptTokens > 0 {
		why += " max=" + strconv.Itoa(e.MaxPromptTokens)
	}
	return why
}

// containsWord says whether kw occurs in s as a whole word: where kw begins (ends) with a
// letter or digit, the character before (after) it must not be one. Both are lower case.
// "git" is found in "git rebase" and "use git." but not in "three-digit"; "```" anywhere.
func containsWord(s, kw string) bool {
	if kw == "" {
		return false
	}
	first, _ := utf8.DecodeRuneInString(kw)
	last, _ := utf8.DecodeLastRuneInString(kw)
	wordStart, wordEnd := isWordRune(first), isWordRune(last)
	for off := 0; off <= len(s)-len(kw); {
		i := strings.Index(s[off:], kw)
		if i < 0 {
			return false
		}
		i += off
		j := i + len(kw)
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[j:])
		if (!wordStart || i == 0 || !isWordRune(before)) && (!wordEnd || j == len(s) || !isWordRune(after)) {
			return true
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		off = i + n
	}
	return false
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
