package placement

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"citadel.dev/citadel/internal/perfmodel"
)

// slot is one GPU and what the plan has put on it so far.
type slot struct {
	gpu      GPU
	pg       perfmodel.GPU
	reserved int64 // taken by exclusive engines: utilisation × total each
	peak     int64 // the largest shared model placed here
	holders  []holder
}

type holder struct {
	service string
	engine  string
	bytes   int64
	util    float64 // exclusive engines: the utilisation they run with
	shared  bool
	offload bool // a shared model with layers on the CPU
}

// text names a holder in a message: "default/mimo (vllm, utilisation 0.6)".
func (h holder) text() string {
	if h.shared {
		return h.service
	}
	return fmt.Sprintf("%s (%s, utilisation %s)", h.service, h.engine, ratio(h.util))
}

// state is the inventory, sorted by index, with the reservations so far.
type state []slot

func newState(inv []GPU) (state, error) {
	st := make(state, len(inv))
	var errs []error
	for i, g := range inv {
		if g.Unusable == "" && (g.MemoryTotal <= 0 || g.MemoryUsed < 0 || g.MemoryUsed > g.MemoryTotal) {
			errs = append(errs, fmt.Errorf("GPU %d: memory used %d of %d bytes: want 0 ≤ used ≤ total, total > 0", g.Index, g.MemoryUsed, g.MemoryTotal))
		}
		st[i] = slot{gpu: g, pg: g.perfGPU()}
	}
	slices.SortFunc(st, func(a, b slot) int { return cmp.Compare(a.gpu.Index, b.gpu.Index) })
	for i := 1; i < len(st); i++ {
		if st[i].gpu.Index == st[i-1].gpu.Index {
			errs = append(errs, fmt.Errorf("GPU index %d appears twice", st[i].gpu.Index))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("GPU inventory: %w", errors.Join(errs...))
	}
	return st, nil
}

func (s state) clone() state {
	c := slices.Clone(s)
	for i := range c {
		c[i].holders = slices.Clone(c[i].holders)
	}
	return c
}

// free is what a new model can use on the GPU: an exclusive engine must leave room for the
// largest shared model; a shared model only has to fit beside the exclusive engines, because
// the shared server swaps its own models.
func (s *slot) free(shared bool) int64 {
	f := s.gpu.MemoryTotal - s.gpu.MemoryUsed - s.reserved
	if !shared {
		f -= s.peak
	}
	return f
}

func (s *slot) idleFree() int64 { return s.gpu.MemoryTotal - s.gpu.MemoryUsed }

// describe says who holds the GPU's memory and how much is free to a new model: "GPU 0: 9.59
// GiB reserved by default/mimo (vllm, utilisation 0.6), 6.40 GiB free of 15.99 GiB".
func (s *slot) describe(shared bool) string {
	var parts, sharedBy []string
	if s.gpu.MemoryUsed > 0 {
		parts = append(parts, gib(s.gpu.MemoryUsed)+" used by other processes")
	}
	for _, h := range s.holders {
		if h.shared {
			sharedBy = append(sharedBy, h.service)
		} else {
			parts = append(parts, gib(h.bytes)+" reserved by "+h.text())
		}
	}
	if len(sharedBy) > 0 && !shared {
		parts = append(parts, fmt.Sprintf("%s for the shared server's models (%s)", gib(s.peak), strings.Join(sharedBy, ", ")))
	}
	parts = append(parts, fmt.Sprintf("%s free of %s", gib(max(s.free(shared), 0)), gib(s.gpu.MemoryTotal)))
	return fmt.Sprintf("GPU %d: %s", s.gpu.Index, strings.Join(parts, ", "))
}

// job is a validated request with its defaults filled in.
type job struct {
	Request
	idx      int
	autoUtil bool
	util     float64 // exclusive engines: the requested utilisation, or the default
	tokens   int64   // MaxModelLen × Concurrency
	allowed  []int   // positions in the state
	kvElem   float64 // bytes per KV element

	kept      []Assignment // replicas of Keep left where they run
	keptSlots map[int]bool // positions in the state of their GPUs
	keptLines []string
}

func newJob(r Request, st state) (*job, error) {
	j := &job{Request: r}
	if j.Service == "" {
		j.Service = r.Model.Name
	}
	if j.Engine == "" {
		j.Engine = "vllm"
		if j.Shared {
			j.Engine = "ollama"
		}
	}
	if j.Quant == "" {
		j.Quant = cmp.Or(r.Model.Quant, perfmodel.QuantBF16)
	}
	if j.Concurrency == 0 {
		j.Concurrency = 1
	}
	if j.Replicas == 0 {
		j.Replicas = 1
	}
	if j.MaxModelLen == 0 {
		j.MaxModelLen = r.Model.MaxContext
		if j.Shared {
			j.MaxModelLen = min(defaultSharedContext, r.Model.MaxContext)
		}
	}
	j.util, j.autoUtil = r.GPUMemoryUtilization, r.GPUMemoryUtilization == 0
	if j.autoUtil {
		j.util = perfmodel.DefaultGPUMemoryUtilization
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", j.Service, fmt.Sprintf(format, args...)))
	}
	if kv, err := perfmodel.KVCacheBytes(r.KVCacheDtype); err != nil {
		bad("%v", err)
	} else {
		j.kvElem = kv
	}
	if j.MaxNumSeqs < 0 {
		bad("max num seqs %d is negative", r.MaxNumSeqs)
	}
	if j.Concurrency < 0 || j.Concurrency > perfmodel.DefaultMaxNumSeqs {
		bad("concurrency %d is not in [1, %d]: vLLM runs at most %d sequences at once (max_num_seqs)",
			r.Concurrency, perfmodel.DefaultMaxNumSeqs, perfmodel.DefaultMaxNumSeqs)
	}
	if j.Replicas < 0 || j.Replicas > maxReplicas {
		bad("replicas %d is not in [1, %d]", r.Replicas, maxReplicas)
	}
	if !(j.util > 0 && j.util <= 1) {
		bad("gpu memory utilization %g is not in (0, 1]", r.GPUMemoryUtilization)
	}
	if j.TP < 0 {
		bad("tensor parallel %d is negative", r.TP)
	} else if j.TP > 0 && !j.Shared && r.Model.Heads > 0 && r.Model.Heads%j.TP != 0 {
		bad("tensor parallel %d does not divide %s's %d attention heads", j.TP, r.Model.Name, r.Model.Heads)
	}
	if j.MaxModelLen < 0 {
		bad("max model len %d is negative", r.MaxModelLen)
	} else if r.Model.MaxContext > 0 && j.MaxModelLen > r.Model.MaxContext {
		bad("max model len %d is more than %s's context of %d tokens", j.MaxModelLen, r.Model.Name, r.Model.MaxContext)
	}
	if len(errs) == 0 {
		// perf validates the model's shape and the weight format.
		if _, err := perfmodel.NewPlan(perfmodel.GPU{Name: "check", MemoryBytes: 1 << 40}, r.Model,
			perfmodel.Options{Quant: j.Quant, MaxModelLen: j.MaxModelLen, KVCacheDtype: j.KVCacheDtype}); err != nil {
			var pe *perfmodel.PlanError
			if !errors.As(err, &pe) {
				errs = append(errs, fmt.Errorf("%s: %w", j.Service, err))
			}
		}
	}
	seen := map[int]bool{}
	for _, p := range r.Pinned {
		i := slices.IndexFunc(st, func(s slot) bool { return s.gpu.Index == p })
		switch {
		case seen[p]:
			bad("pinned GPU %d is listed twice", p)
		case i < 0:
			bad("pinned GPU %d is not in the inventory (%s)", p, inventoryList(st))
		case st[i].gpu.Unusable != "":
			// not an error: the refusal says why the GPU cannot be used
		default:
			j.allowed = append(j.allowed, i)
		}
		seen[p] = true
	}
	if len(r.Pinned) == 0 {
		for i := range st {
			if st[i].gpu.Unusable == "" {
				j.allowed = append(j.allowed, i)
			}
		}
	}
	slices.Sort(j.allowed)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	j.tokens = int64(j.MaxModelLen) * int64(j.Concurrency)
	return j, nil
}

func inventoryList(st state) string {
	if len(st) == 0 {
		return "no GPUs"
	}
	ix := make([]int, len(st))
	for i, s := range st {
		ix[i] = s.gpu.Index
	}
	return "GPUs " + joinInts(ix, ", ")
}

// size orders the services: weights plus the KV cache they need, over all replicas.
func (j *job) size() int64 {
	return int64(j.Replicas) * (j.Model.WeightBytes(j.Quant) + j.tokens*j.kvPerToken())
}

// kvPerToken is the KV cache one token takes over all layers, in the job's KV dtype (tp = 1).
func (j *job) kvPerToken() int64 {
	return int64(math.Round(float64(j.Model.KVBytesPerToken()) / 2 * j.kvElem))
}

// keep reserves the job's running replicas (Request.Keep) where they are, on a copy of st. A
// replica whose GPUs are not all in the inventory and usable is left to be placed afresh.
func (j *job) keep(st state) state {
	if len(j.Keep) == 0 {
		return st
	}
	st = st.clone()
	j.keptSlots = map[int]bool{}
	for _, a := range j.Keep {
		n := len(j.kept) + 1
		if len(j.kept) == j.Replicas {
			break
		}
		label := ""
		if j.Replicas > 1 {
			label = fmt.Sprintf("replica %d: ", n)
		}
		var slots []int
		var gone []string
		for _, g := range a.GPUs {
			i := slices.IndexFunc(st, func(s slot) bool { return s.gpu.Index == g })
			switch {
			case i < 0:
				gone = append(gone, fmt.Sprintf("GPU %d is gone from the inventory", g))
			case st[i].gpu.Unusable != "":
				gone = append(gone, fmt.Sprintf("GPU %d cannot be used (%s)", g, st[i].gpu.Unusable))
			default:
				slots = append(slots, i)
			}
		}
		if len(gone) > 0 || len(slots) == 0 {
			if len(gone) == 0 {
				gone = []string{"it lists no GPUs"}
			}
			on := "GPU "
			if len(a.GPUs) > 1 {
				on = "GPUs "
			}
			j.keptLines = append(j.keptLines, fmt.Sprintf("%sthe replica on %s%s is placed afresh: %s",
				label, on, a.CUDAVisibleDevices(), strings.Join(gone, "; ")))
			continue
		}
		a.Kept = true
		var held []string
		for k, c := range slots {
			s := &st[c]
			switch {
			case j.Shared:
				b := a.Plan.BudgetBytes
				if a.Offload != nil && k < len(a.Offload.GPUBytes) {
					b = a.Offload.GPUBytes[k]
				}
				s.peak = max(s.peak, b)
				s.holders = append(s.holders, holder{service: j.Service, engine: j.Engine, bytes: b, shared: true, offload: a.Offload != nil})
				held = append(held, fmt.Sprintf("up to %s on GPU %d", gib(b), s.gpu.Index))
			default:
				u := a.MemoryUtilization
				if u <= 0 {
					u = j.util
				}
				b := int64(float64(s.gpu.MemoryTotal) * u)
				s.reserved += b
				s.holders = append(s.holders, holder{service: j.Service, engine: j.Engine, bytes: b, util: u})
				held = append(held, fmt.Sprintf("%s on GPU %d", gib(b), s.gpu.Index))
			}
			j.keptSlots[c] = true
		}
		what := "reserves"
		if j.Shared {
			what = "the shared server holds"
		}
		j.keptLines = append(j.keptLines, fmt.Sprintf("%skept %s (running): %s %s", label, j.layout(a), what, strings.Join(held, ", ")))
		j.kept = append(j.kept, a)
	}
	return st
}

// eval is the memory one GPU of a tp-wide replica needs.
type eval struct {
	plan perfmodel.Plan // at the job's utilisation (shared: the whole GPU)
	err  error          // perf's refusal at that utilisation, if any
	kv   int64          // KV cache for the job's tokens, in whole blocks
	need int64          // weights + activations and runtime + kv
}

func (j *job) eval(g perfmodel.GPU, tp int) eval {
	util := j.util
	if j.Shared {
		util = 1
	}
	opts := perfmodel.Options{TP: tp, GPUMemoryUtilization: util, MaxModelLen: j.MaxModelLen, Quant: j.Quant,
		KVCacheDtype: j.KVCacheDtype, MaxNumSeqs: j.MaxNumSeqs}
	if j.Shared {
		opts.Parallel = j.Concurrency // Ollama's slots
	}
	p, err := perfmodel.NewPlan(g, j.Model, opts)
	var pe *perfmodel.PlanError
	if err != nil && !errors.As(err, &pe) {
		// newJob checked everything else NewPlan validates; only the tensor-parallel size is new.
		return eval{err: err, need: math.MaxInt64}
	}
	blocks := (j.tokens + perfmodel.BlockSize - 1) / perfmodel.BlockSize
	e := eval{plan: p, err: err, kv: blocks * perfmodel.BlockSize * p.KVBytesPerToken}
	e.need = p.WeightBytes + p.ActivationBytes + e.kv
	return e
}

// room is the utilisation and memory budget the job gets on s when free bytes are free. An
// exclusive engine takes utilisation × total, and vLLM refuses to start unless that much is
// free; with the default utilisation the planner lowers it (in hundredths) to what is free. A
// shared model's budget is the free memory. A negative budget means no room at all.
func (j *job) room(s *slot, free int64) (util float64, budget int64) {
	if j.Shared {
		return 0, free
	}
	total := s.gpu.MemoryTotal
	u := j.util
	if j.autoUtil {
		u = min(u, math.Floor(float64(free)/float64(total)*100+1e-9)/100)
	}
	b := int64(float64(total) * u)
	if u <= 0 || b > free {
		return u, -1
	}
	return u, b
}

// tps are the tensor-parallel sizes to try with n GPUs available: the request's, or powers of two.
func (j *job) tps(n int) []int {
	if j.TP > 0 {
		return []int{j.TP}
	}
	tps := []int{1}
	for tp := 2; tp <= n; tp *= 2 {
		if j.Shared || j.Model.Heads%tp == 0 { // vLLM shards the heads; Ollama splits layers
			tps = append(tps, tp)
		}
	}
	return tps
}

// replica is one placed replica.
type replica struct {
	a     Assignment
	slots []int
	needs []int64 // per slot
	lines []string
}

// placeReplica finds a place for one replica on the allowed GPUs not in exclude, or says why
// there is none, one line per layout tried.
func (j *job) placeReplica(st state, exclude map[int]bool) (*replica, []string) {
	var cands []int
	for _, c := range j.allowed {
		if !exclude[c] {
			cands = append(cands, c)
		}
	}
	var lines []string
	for _, tp := range j.tps(len(cands)) {
		if tp > len(cands) {
			lines = append(lines, fmt.Sprintf("not enough GPUs for %s: %d needed, %s", j.sizeName(tp), tp, j.available(st, cands, exclude)))
			continue
		}
		evs := make([]eval, len(cands))
		var idleOK, nowOK []int // positions in cands
		for i, c := range cands {
			s := &st[c]
			evs[i] = j.eval(s.pg, tp)
			if _, b := j.room(s, s.idleFree()); evs[i].need <= b {
				idleOK = append(idleOK, i)
			}
			if _, b := j.room(s, s.free(j.Shared)); evs[i].need <= b {
				nowOK = append(nowOK, i)
			}
		}
		if sel, util := j.pick(st, cands, evs, nowOK, tp); sel != nil {
			return j.assign(st, tp, cands, evs, sel, util), lines
		}
		if len(idleOK) >= tp {
			lines = append(lines, j.heldLine(st, tp, cands, evs, idleOK, nowOK))
			continue
		}
		for _, i := range groups(st, cands) {
			if slices.Contains(idleOK, i) {
				continue
			}
			s := &st[cands[i]]
			lines = append(lines, fmt.Sprintf("%s does not fit: %s", j.spread(tp), j.arith(tp, s, evs[i], s.idleFree(), 0)))
		}
	}
	if j.Shared && len(cands) > 0 {
		r, line := j.offload(st, cands)
		if r != nil {
			return r, lines
		}
		lines = append(lines, line)
	}
	return nil, lines
}

// offload places a shared model that fits no GPU set whole as Ollama would run it: as many
// layers as fit on the candidates' free memory, the rest on the CPU. It fails only when no
// GPU has room for a single layer beside its fixed reservations.
func (j *job) offload(st state, cands []int) (*replica, string) {
	free := make([]int64, len(cands))
	g := st[cands[0]].pg
	for i, c := range cands {
		free[i] = max(st[c].free(true), 0)
		if p := st[c].pg; p.Bandwidth*p.BandwidthEfficiency < g.Bandwidth*g.BandwidthEfficiency || g.Bandwidth == 0 {
			g = p // the slowest GPU sets the pace
		}
	}
	assumed := ""
	if g.Bandwidth == 0 {
		g, _ = perfmodel.LookupGPU("rtx-4070-ti-super")
		assumed = fmt.Sprintf(" (%s's bandwidth assumed: the GPU's is unknown)", g.Name)
	}
	o := perfmodel.PlanOffloadOn(g, 0, j.Model, j.Quant, j.MaxModelLen, j.Concurrency, free)
	fixed := o.GraphBytes + 2*o.LayerBytes
	if !o.Fits() {
		var room []string
		for i, c := range cands {
			room = append(room, fmt.Sprintf("GPU %d has %s", st[c].gpu.Index, gib(free[i])))
		}
		return nil, fmt.Sprintf("even with layers on the CPU it does not fit: Ollama puts layers on a GPU only where it has room for the compute graph (%s), "+
			"llama.cpp's minimum and two layers of %s (%s in all), and %s free",
			gib(o.GraphBytes), gib(o.LayerBytes), gib(fixed+457<<20), strings.Join(room, ", "))
	}
	r := &replica{a: Assignment{}}
	var per []string
	sub := &perfmodel.Offload{Layers: o.Layers, CPULayers: o.CPULayers, Slowdown: o.Slowdown, CPUBytes: o.CPUBytes,
		LayerBytes: o.LayerBytes, GraphBytes: o.GraphBytes}
	for i, c := range cands {
		if o.GPULayers[i] == 0 {
			continue
		}
		s := &st[c]
		r.slots = append(r.slots, c)
		r.needs = append(r.needs, o.GPUBytes[i])
		r.a.GPUs = append(r.a.GPUs, s.gpu.Index)
		sub.GPULayers = append(sub.GPULayers, o.GPULayers[i])
		sub.GPUBytes = append(sub.GPUBytes, o.GPUBytes[i])
		per = append(per, strconv.Itoa(o.GPULayers[i]))
	}
	r.a.TP = len(r.a.GPUs)
	r.a.Offload = sub
	e := j.eval(st[r.slots[0]].pg, 1)
	p := e.plan
	p.Options.GPUMemoryUtilization = 0
	p.BudgetBytes, p.KVBytes = 0, e.kv
	p.KVBlocks = int(e.kv / (perfmodel.BlockSize * p.KVBytesPerToken))
	p.KVTokens = int64(p.KVBlocks) * perfmodel.BlockSize
	r.a.Plan = p
	gpus := "GPU " + r.a.CUDAVisibleDevices()
	split := ""
	if len(per) > 1 {
		gpus = "GPUs " + r.a.CUDAVisibleDevices()
		split = " (" + strings.Join(per, " + ") + ")"
	}
	r.lines = append(r.lines,
		fmt.Sprintf("%s: %d of %d layers on %s%s, %d on the CPU; decode ≈ %.1f× slower than all on GPU%s",
			j.Model.Name, o.OnGPU(), o.Layers, gpus, split, o.CPULayers, o.Slowdown, assumed),
		fmt.Sprintf("offload arithmetic (Ollama's estimate): a layer is %s (weights + KV for %s tokens); each GPU in use also holds the compute graph %s, llama.cpp's minimum 0.45 GiB and a spare layer; "+
			"the CPU part holds %s in host memory and runs at ≈ %.0f GB/s against the GPU's %.0f GB/s",
			gib(o.LayerBytes), j.tokenText(), gib(o.GraphBytes), gib(o.CPUBytes), perfmodel.DefaultHostBandwidth/1e9, g.Bandwidth*g.BandwidthEfficiency/1e9))
	for k, c := range r.slots {
		s := &st[c]
		r.lines = append(r.lines, fmt.Sprintf("GPU %d: %d layers, %s of %s free to the shared server%s", s.gpu.Index, sub.GPULayers[k],
			gib(sub.GPUBytes[k]), gib(max(s.free(true), 0)), j.beside(s)))
	}
	r.lines = append(r.lines, j.settings(r.a))
	return r, ""
}

// beside names what else holds the GPU, for a shared model's line: "beside default/mimo (vllm,
// utilisation 0.6)".
func (j *job) beside(s *slot) string {
	var hs []string
	if s.gpu.MemoryUsed > 0 {
		hs = append(hs, gib(s.gpu.MemoryUsed)+" used by other processes")
	}
	for _, h := range s.holders {
		if !h.shared {
			hs = append(hs, gib(h.bytes)+" reserved by "+h.text())
		}
	}
	if len(hs) == 0 {
		return ""
	}
	return " beside " + strings.Join(hs, " and ")
}

// groups returns one position in cands per kind of GPU (profile and memory), the first of each.
func groups(st state, cands []int) []int {
	var out []int
	for i, c := range cands {
		if !slices.ContainsFunc(out, func(o int) bool {
			a, b := st[cands[o]].gpu, st[c].gpu
			return a.kind() == b.kind() && a.MemoryTotal == b.MemoryTotal && a.MemoryUsed == b.MemoryUsed
		}) {
			out = append(out, i)
		}
	}
	return out
}

// pick chooses tp of the candidates that have room now (positions ok in cands). Shared models
// go where they raise the shared peak least, then where the least memory is free (best fit);
// exclusive engines go where they get the highest utilisation, then best fit. Ties go to the
// lower index. It returns positions in cands, or nil.
func (j *job) pick(st state, cands []int, evs []eval, ok []int, tp int) ([]int, float64) {
	if len(ok) < tp {
		return nil, 0
	}
	free := func(i int) int64 { return st[cands[i]].free(j.Shared) }
	if j.Shared {
		rise := func(i int) int64 { return max(evs[i].need-st[cands[i]].peak, 0) }
		sel := slices.Clone(ok)
		slices.SortStableFunc(sel, func(a, b int) int { return cmp.Or(cmp.Compare(rise(a), rise(b)), cmp.Compare(free(a), free(b))) })
		sel = sel[:tp]
		slices.Sort(sel)
		return sel, 0
	}
	utils := make([]float64, len(cands))
	var levels []float64
	for _, i := range ok {
		utils[i], _ = j.room(&st[cands[i]], free(i))
		levels = append(levels, utils[i])
	}
	slices.Sort(levels)
	slices.Reverse(levels)
	for _, v := range slices.Compact(levels) {
		var sel []int
		for _, i := range ok {
			if utils[i] >= v && evs[i].need <= int64(float64(st[cands[i]].gpu.MemoryTotal)*v) {
				sel = append(sel, i)
			}
		}
		if len(sel) >= tp {
			slices.SortStableFunc(sel, func(a, b int) int { return cmp.Compare(free(a), free(b)) })
			sel = sel[:tp]
			slices.Sort(sel)
			return sel, v
		}
	}
	return nil, 0
}

// assign builds the replica on the chosen candidates (positions sel in cands).
func (j *job) assign(st state, tp int, cands []int, evs []eval, sel []int, util float64) *replica {
	r := &replica{a: Assignment{TP: tp, MemoryUtilization: util}}
	bestKV := int64(math.MaxInt64)
	for _, i := range sel {
		c := cands[i]
		s := &st[c]
		r.slots = append(r.slots, c)
		r.needs = append(r.needs, evs[i].need)
		r.a.GPUs = append(r.a.GPUs, s.gpu.Index)
		var p perfmodel.Plan
		if j.Shared {
			p = evs[i].plan
			p.Options.GPUMemoryUtilization = float64(evs[i].need) / float64(s.gpu.MemoryTotal)
			p.BudgetBytes, p.KVBytes = evs[i].need, evs[i].kv
			p.KVBlocks = int(evs[i].kv / (perfmodel.BlockSize * p.KVBytesPerToken))
			p.KVTokens = int64(p.KVBlocks) * perfmodel.BlockSize
		} else {
			var err error
			p, err = perfmodel.NewPlan(s.pg, j.Model, perfmodel.Options{TP: tp, GPUMemoryUtilization: util, MaxModelLen: j.MaxModelLen, Quant: j.Quant,
				KVCacheDtype: j.KVCacheDtype, MaxNumSeqs: j.MaxNumSeqs})
			if err != nil || p.KVTokens < j.tokens {
				panic(fmt.Sprintf("placement: %s fits by the arithmetic but not by perfmodel.NewPlan: %v", j.Service, err))
			}
		}
		if p.KVTokens < bestKV {
			bestKV, r.a.Plan = p.KVTokens, p
		}
	}
	var sub []int
	for _, i := range sel {
		sub = append(sub, cands[i])
	}
	where := j.layout(r.a)
	for _, k := range groups(st, sub) {
		s := &st[sub[k]]
		i := sel[k]
		line := where + ": " + j.arith(tp, s, evs[i], s.free(j.Shared), util)
		if j.Shared {
			line += "; Ollama loads it on demand, unloading idle models to make room"
		} else {
			p := r.a.Plan
			line += fmt.Sprintf("; the KV cache gets %s = %d tokens, %.2f × %d", gib(p.KVBytes), p.KVTokens, p.MaxConcurrency(), j.MaxModelLen)
		}
		r.lines = append(r.lines, line)
	}
	r.lines = append(r.lines, j.settings(r.a))
	return r
}

// placed is a service that fits, and the state with it.
type placed struct {
	Decision
	state state
}

// failure is a service that does not fit.
type failure struct {
	lines []string
}

// place lays out every replica of j on a copy of st.
func place(j *job, st state) (placed, *failure) {
	st = st.clone()
	lines := append([]string{j.header()}, j.keptLines...)
	failed := slices.Clone(lines) // a refusal's lines: what was tried, and only a summary of what fitted
	seen := map[string]bool{}
	used := maps.Clone(j.keptSlots)
	if used == nil {
		used = map[int]bool{}
	}
	reps := slices.Clone(j.kept)
	for n := len(j.kept) + 1; n <= j.Replicas; n++ {
		label := ""
		if j.Replicas > 1 {
			label = fmt.Sprintf("replica %d: ", n)
		}
		var exclude map[int]bool
		if j.OnePerGPU || j.Shared {
			exclude = used
		}
		r, tried := j.placeReplica(st, exclude)
		for _, l := range tried {
			if !seen[l] {
				seen[l] = true
				lines = append(lines, label+l)
				failed = append(failed, label+l)
			}
		}
		if r == nil {
			return placed{}, &failure{lines: failed}
		}
		for k, c := range r.slots {
			s := &st[c]
			if j.Shared {
				s.peak = max(s.peak, r.needs[k])
				s.holders = append(s.holders, holder{service: j.Service, engine: j.Engine, bytes: r.needs[k], shared: true, offload: r.a.Offload != nil})
			} else {
				b := int64(float64(s.gpu.MemoryTotal) * r.a.MemoryUtilization)
				s.reserved += b
				s.holders = append(s.holders, holder{service: j.Service, engine: j.Engine, bytes: b, util: r.a.MemoryUtilization})
			}
			used[c] = true
		}
		for _, l := range r.lines {
			lines = append(lines, label+l)
		}
		failed = append(failed, label+"fits "+j.layout(r.a))
		reps = append(reps, r.a)
	}
	return placed{Decision: Decision{Service: j.Service, Replicas: reps, Lines: lines}, state: st}, nil
}
