package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/taskclass"
)

// Explain routes a chat request without sending it: where it would go, the rule, the reason,
// the classifier's scores and the features that weighed most. api is "openai" (a
// chat-completions body) or "ollama" (an /api/chat body).
func (s *Server) Explain(body []byte, api string) (v1.RouteExplanation, error) {
	var ri RequestInfo
	switch api {
	case "", APIOpenAI:
		var err error
		if _, ri, err = parseOpenAI("chat", body); err != nil {
			return v1.RouteExplanation{}, err
		}
	case APIOllama:
		o, err := ParseOllama(OllamaChat, body)
		if err != nil {
			return v1.RouteExplanation{}, err
		}
		ri = o.Info()
	default:
		return v1.RouteExplanation{}, fmt.Errorf("api %q: want openai or ollama", api)
	}
	return s.Table().Explain(ri)
}

// Explain is Resolve with the reasons spelled out.
func (t *Table) Explain(ri RequestInfo) (v1.RouteExplanation, error) {
	start := time.Now()
	d, e, v, err := t.resolve(ri)
	took := time.Since(start)
	if err != nil {
		return v1.RouteExplanation{}, err
	}
	x := v1.RouteExplanation{Model: ri.Model, Public: d.Public, Task: d.Task, Reason: d.Reason, Micros: float64(took.Nanoseconds()) / 1e3}
	if tg := d.Dest.first(); tg != nil {
		x.Target = tg.Name
	}
	if e == nil {
		return x, nil
	}
	for i := range e.Tasks {
		if &e.Tasks[i] == v.Entry {
			x.Rule = fmt.Sprintf("%s: tasks[%d] (%s)", e.Public, i, v.Entry.Task)
		}
	}
	x.Ask = taskclass.Excerpt(ri.ask(), 200)
	if v.Scores != nil {
		scores, feats := taskclass.Builtin().Explain(ri.classInput(), 12)
		x.Scores = map[string]float64{}
		for i, task := range taskclass.Tasks {
			x.Scores[task] = round2(scores[i])
		}
		for _, f := range feats {
			x.Features = append(x.Features, v1.ExplainedFeature{Feature: f.Feature, Task: f.Task, Weight: round2(f.Weight)})
		}
		for task, sim := range v.Nearest {
			if x.Nearest == nil {
				x.Nearest = map[string]float64{}
			}
			x.Nearest[task] = round2(sim)
		}
	}
	return x, nil
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// explainError is a request Explain cannot route, with the HTTP status the admin API answers.
type explainError struct {
	status int
	msg    string
}

func (e *explainError) Error() string   { return e.msg }
func (e *explainError) StatusCode() int { return e.status }

// ExplainForAdmin is Explain with errors that carry the HTTP status to answer (StatusCode).
func (s *Server) ExplainForAdmin(body []byte, api string) (v1.RouteExplanation, error) {
	x, err := s.Explain(body, api)
	if err == nil {
		return x, nil
	}
	var ce *clientError
	var nf *NotFoundError
	var oe *OllamaError
	switch {
	case errors.As(err, &nf):
		msg := nf.Error()
		if len(nf.Available) > 0 {
			msg += " Available: " + strings.Join(nf.Available, ", ")
		}
		return x, &explainError{404, msg}
	case errors.As(err, &ce):
		return x, &explainError{ce.status, ce.message}
	case errors.As(err, &oe):
		return x, &explainError{400, oe.Message}
	}
	return x, &explainError{400, err.Error()}
}
