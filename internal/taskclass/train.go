package taskclass

import (
	"math"
	"math/rand/v2"
)

// TrainOptions tune training. The zero value is the shipped model's setting.
type TrainOptions struct {
	Epochs int     // passes over the corpus (default 30)
	Rate   float64 // AdaGrad learning rate (default 0.2)
	L2     float64 // weight decay per example (default 1e-6)
	Seed   uint64  // the shuffle's seed
}

// Train fits the model to labelled examples of the tasks it scores (others are skipped):
// multinomial logistic regression by AdaGrad, each task weighted so that every task counts
// the same, in a fixed order from the seed, so the same corpus gives the same weights.
func Train(examples []Example, o TrainOptions) *Model {
	if o.Epochs == 0 {
		o.Epochs = 30
	}
	if o.Rate == 0 {
		o.Rate = 0.2
	}
	if o.L2 == 0 {
		o.L2 = 1e-6
	}
	type item struct {
		fs   Features
		task int
	}
	var items []item
	var count [NumTasks]int
	f := newFeaturizer(false)
	for i := range examples {
		t := TaskIndex(examples[i].Task)
		if t < 0 || examples[i].Images > 0 {
			continue
		}
		items = append(items, item{f.features(examples[i].Input()), t})
		count[t]++
	}
	var classWeight [NumTasks]float64
	for t := range count {
		if count[t] > 0 {
			classWeight[t] = float64(len(items)) / (NumTasks * float64(count[t]))
		}
	}
	w := make([]float64, Buckets*NumTasks)
	g := make([]float64, Buckets*NumTasks) // AdaGrad's sums of squared gradients
	rng := rand.New(rand.NewPCG(o.Seed, 0x7a5c1a55))
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	for range o.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, k := range order {
			it := items[k]
			var l [NumTasks]float64
			for n, i := range it.fs.Index {
				for t := range NumTasks {
					l[t] += w[int(i)*NumTasks+t] * float64(it.fs.Value[n])
				}
			}
			p := softmax(l)
			for t := range NumTasks {
				y := 0.0
				if t == it.task {
					y = 1
				}
				d := (p[t] - y) * classWeight[it.task]
				for n, i := range it.fs.Index {
					j := int(i)*NumTasks + t
					grad := d*float64(it.fs.Value[n]) + o.L2*w[j]
					g[j] += grad * grad
					w[j] -= o.Rate * grad / (math.Sqrt(g[j]) + 1e-8)
				}
			}
		}
	}
	return quantize(w)
}

// quantize maps weights to int8 with one scale (the largest weight is ±127).
func quantize(w []float64) *Model {
	mx := 0.0
	for _, v := range w {
		mx = max(mx, math.Abs(v))
	}
	m := &Model{W: make([]int8, len(w)), Scale: 1}
	if mx == 0 {
		return m
	}
	m.Scale = float32(mx / 127)
	for i, v := range w {
		m.W[i] = int8(math.Round(v / float64(m.Scale)))
	}
	return m
}
