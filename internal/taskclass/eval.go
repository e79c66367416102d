package taskclass

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Decision is what a router decided for one example.
type Decision struct {
	Task       string  `json:"task"`
	Confidence float64 `json:"confidence"` // the chosen task's score (1 for a rule, an image, a header)
	Reason     string  `json:"reason"`
}

// Miss is one wrong decision.
type Miss struct {
	Where, Want, Got, Reason string
	Confidence               float64
	Ask                      string // the start of the ask
}

// Report is an evaluation: accuracy overall and per task, the confusion matrix, the worst
// misroutes (most confident first).
type Report struct {
	Total, Correct int
	Tasks          []string                  // the labels seen, in a fixed order
	Confusion      map[string]map[string]int // want → got → count
	Misses         []Miss
}

// Evaluate runs decide over the examples.
func Evaluate(examples []Example, decide func(*Example) (Decision, error)) (*Report, error) {
	r := &Report{Confusion: map[string]map[string]int{}}
	for i := range examples {
		e := &examples[i]
		d, err := decide(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Where, err)
		}
		r.Total++
		if r.Confusion[e.Task] == nil {
			r.Confusion[e.Task] = map[string]int{}
		}
		r.Confusion[e.Task][d.Task]++
		if d.Task == e.Task {
			r.Correct++
			continue
		}
		r.Misses = append(r.Misses, Miss{Where: e.Where, Want: e.Task, Got: d.Task, Reason: d.Reason, Confidence: d.Confidence, Ask: Excerpt(e.Input().Ask, 90)})
	}
	order := []string{"code", "reasoning", "general", "vision", "embedding"}
	seen := map[string]bool{}
	for want, row := range r.Confusion {
		seen[want] = true
		for got := range row {
			seen[got] = true
		}
	}
	for _, t := range order {
		if seen[t] {
			r.Tasks = append(r.Tasks, t)
			delete(seen, t)
		}
	}
	for t := range seen {
		r.Tasks = append(r.Tasks, t)
	}
	slices.Sort(r.Tasks[len(r.Tasks)-len(seen):])
	slices.SortStableFunc(r.Misses, func(a, b Miss) int { return cmp.Compare(b.Confidence, a.Confidence) })
	return r, nil
}

// Accuracy is the share of right decisions overall.
func (r *Report) Accuracy() float64 { return ratio(r.Correct, r.Total) }

// TaskAccuracy is the share of a task's examples routed to it (recall), and how many there were.
func (r *Report) TaskAccuracy(task string) (float64, int) {
	n := 0
	for _, c := range r.Confusion[task] {
		n += c
	}
	return ratio(r.Confusion[task][task], n), n
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Write prints the report as a person reads it: accuracy, per task, the confusion matrix
// (rows: the label; columns: the decision) and the worst misroutes.
func (r *Report) Write(w io.Writer, worst int) {
	fmt.Fprintf(w, "accuracy  %.1f %%  (%d of %d)\n\n", 100*r.Accuracy(), r.Correct, r.Total)
	fmt.Fprintf(w, "%-10s %8s %6s\n", "TASK", "ACCURACY", "N")
	for _, t := range r.Tasks {
		a, n := r.TaskAccuracy(t)
		if n == 0 {
			continue
		}
		fmt.Fprintf(w, "%-10s %7.1f%% %6d\n", t, 100*a, n)
	}
	fmt.Fprintf(w, "\nconfusion (rows: label, columns: routed to)\n%-10s", "")
	for _, t := range r.Tasks {
		fmt.Fprintf(w, " %9s", t)
	}
	fmt.Fprintln(w)
	for _, want := range r.Tasks {
		if len(r.Confusion[want]) == 0 {
			continue
		}
		fmt.Fprintf(w, "%-10s", want)
		for _, got := range r.Tasks {
			fmt.Fprintf(w, " %9d", r.Confusion[want][got])
		}
		fmt.Fprintln(w)
	}
	if worst > 0 && len(r.Misses) > 0 {
		fmt.Fprintf(w, "\nworst misroutes (most confident first; %d in all)\n", len(r.Misses))
		for _, m := range r.Misses[:min(worst, len(r.Misses))] {
			fmt.Fprintf(w, "  %s  %s → %s (%.2f, %s)  %q\n", m.Where, m.Want, m.Got, m.Confidence, m.Reason, m.Ask)
		}
	}
}

// Excerpt is the start of s for a line of output: its whitespace folded to single spaces,
// cut to n runes (with "…" when cut).
func Excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// DefaultMinConfidence is the score under which the built-in classifier's choice gives way
// to the route's default task.
const DefaultMinConfidence = 0.5

// Decider decides with the model alone, as a route with a rule for every task and general as
// its default does: images → vision, else the best task, or general below minConfidence.
func Decider(m *Model, minConfidence float64) func(*Example) (Decision, error) {
	return func(e *Example) (Decision, error) {
		if e.Images > 0 {
			return Decision{Task: "vision", Confidence: 1, Reason: "image part"}, nil
		}
		s := m.Classify(e.Input())
		t, p := s.Best()
		if p < minConfidence {
			return Decision{Task: "general", Confidence: s.Of("general"), Reason: fmt.Sprintf("low-confidence %s=%.2f", t, p)}, nil
		}
		return Decision{Task: t, Confidence: p, Reason: "classifier"}, nil
	}
}
