// Package taskclass is the gateway's built-in task classifier: it reads what a chat request
// asks and says whether it is code, reasoning or general, with a probability for each.
//
// The model is a linear (multinomial logistic) model over hashed features of the text: words
// and word pairs, character trigrams, runs of symbols, CJK characters, and the shape of the
// lines. It runs on the CPU in tens of microseconds, needs no engine, and its weights ship in
// the binary (model.bin, int8). They are trained by `go generate ./internal/taskclass` from the
// labelled corpus in corpus/train; corpus/heldout is never trained on and is what the
// accuracy figures in docs/gateway.md are measured on. Vision and embedding requests are not
// its business: an image part or an embeddings endpoint decides those before it is asked.
package taskclass

import (
	"cmp"
	"math"
	"slices"
	"sync"
)

// Tasks the model tells apart, in the order of its scores.
var Tasks = [NumTasks]string{"code", "reasoning", "general"}

// NumTasks is the number of tasks the model scores.
const NumTasks = 3

// Buckets is the size of the hashed feature space (a power of two).
const Buckets = 1 << 18

// Input is what is classified: the last user turn and, for an agent, the latest tool result
// decide; earlier turns and the system prompt only lean.
type Input struct {
	Ask     string   // the last user turn's text
	Tool    string   // the latest tool result after it, if any
	Context []string // earlier user and assistant turns, newest first
	System  string   // the system prompt
	Agent   bool     // the conversation has tool calls or tool results
}

// Scores are the model's probabilities, indexed like Tasks.
type Scores [NumTasks]float64

// Best is the most probable task and its probability.
func (s Scores) Best() (string, float64) {
	b := 0
	for i := range s {
		if s[i] > s[b] {
			b = i
		}
	}
	return Tasks[b], s[b]
}

// Of is the score of a task (0 for one the model does not score).
func (s Scores) Of(task string) float64 {
	if i := TaskIndex(task); i >= 0 {
		return s[i]
	}
	return 0
}

// TaskIndex is the index of task in Tasks, or -1.
func TaskIndex(task string) int {
	for i, t := range Tasks {
		if t == task {
			return i
		}
	}
	return -1
}

// Model holds the weights: Buckets rows of NumTasks, int8 scaled by Scale.
type Model struct {
	W     []int8 // Buckets*NumTasks
	Scale float32
}

// Contribution is one feature's push toward a task, for explanations.
type Contribution struct {
	Feature string  // "a:kubectl" — namespace and text
	Task    string  // the task it pushes toward most
	Weight  float64 // how much it adds to that task's logit over the others' mean
}

var pool = sync.Pool{New: func() any { return newFeaturizer(false) }}

// Classify scores an input. It is safe for concurrent use.
func (m *Model) Classify(in Input) Scores {
	f := pool.Get().(*featurizer)
	fs := f.features(in)
	pool.Put(f)
	return m.score(fs)
}

// Featurize is an input's normalised features (for similarity to a route's examples).
func Featurize(in Input) Features {
	f := pool.Get().(*featurizer)
	fs := f.features(in)
	pool.Put(f)
	return fs
}

// ScoreFeatures scores features Featurize made.
func (m *Model) ScoreFeatures(fs Features) Scores { return m.score(fs) }

// Explain scores an input and names the features that weighed most, strongest first.
func (m *Model) Explain(in Input, n int) (Scores, []Contribution) {
	fs := newFeaturizer(true).features(in)
	var cs []Contribution
	for k, i := range fs.Index {
		var l [NumTasks]float64
		mean := 0.0
		for t := range NumTasks {
			l[t] = float64(m.W[int(i)*NumTasks+t]) * float64(m.Scale) * float64(fs.Value[k])
			mean += l[t] / NumTasks
		}
		best := 0
		for t := range NumTasks {
			if l[t] > l[best] {
				best = t
			}
		}
		if d := l[best] - mean; d > 0 {
			cs = append(cs, Contribution{Feature: fs.Names[k], Task: Tasks[best], Weight: d})
		}
	}
	slices.SortFunc(cs, func(a, b Contribution) int {
		return cmp.Or(cmp.Compare(b.Weight, a.Weight), cmp.Compare(a.Feature, b.Feature))
	})
	if len(cs) > n {
		cs = cs[:n]
	}
	return m.score(fs), cs
}

func (m *Model) score(fs Features) Scores {
	var l [NumTasks]float64
	for k, i := range fs.Index {
		row := m.W[int(i)*NumTasks : int(i)*NumTasks+NumTasks]
		v := float64(fs.Value[k])
		for t := range NumTasks {
			l[t] += float64(row[t]) * v
		}
	}
	for t := range l {
		l[t] *= float64(m.Scale)
	}
	return softmax(l)
}

func softmax(l [NumTasks]float64) Scores {
	mx := l[0]
	for _, v := range l[1:] {
		mx = max(mx, v)
	}
	var s Scores
	sum := 0.0
	for t, v := range l {
		s[t] = math.Exp(v - mx)
		sum += s[t]
	}
	for t := range s {
		s[t] /= sum
	}
	return s
}

// Similarity is the cosine similarity of two feature sets (both are normalised, indexes sorted).
func Similarity(a, b Features) float64 {
	dot := 0.0
	for i, j := 0, 0; i < len(a.Index) && j < len(b.Index); {
		switch {
		case a.Index[i] < b.Index[j]:
			i++
		case a.Index[i] > b.Index[j]:
			j++
		default:
			dot += float64(a.Value[i]) * float64(b.Value[j])
			i++
			j++
		}
	}
	return dot
}
