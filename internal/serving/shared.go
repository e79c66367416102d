package serving

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/residency"
)

// A shared server is one engine process that serves many models: Ollama, as it is really
// run (one ollama serve, many models, loaded and evicted by the server itself). There is one
// per Ollama runtime, on every GPU Citadel places on, reading the Ollama store Citadel pulls
// into. A service of such a runtime starts no process of its own: it joins the running server
// (no restart), and the server stops when its last service goes.
//
// The server gets every GPU, not only the ones the planner expects its models on, so that a
// new model can join without restarting it; the planner's decision for each model (which
// GPUs, how many layers on the CPU) is stated in the service's status, and Ollama, like the
// planner, puts a model where memory is free.

// sharedGroup is the services of one shared server in this pass.
type sharedGroup struct {
	key     string  // instance key: shared/ollama/RUNTIME
	first   *intent // the runtime and store come from the first service
	members []*intent
}

// ensureShared starts the group's server, or keeps the running one when its runtime, store
// and GPUs are unchanged.
func (c *Controller) ensureShared(ctx context.Context, g *sharedGroup, decisions []placement.Decision, intents []*intent) error {
	in := g.first
	store := in.store
	if store == "" {
		store = c.opts.OllamaModels
	}
	var gpus []int
	for _, gpu := range c.inventory {
		if usable(gpu) {
			gpus = append(gpus, gpu.Index)
		}
	}
	// The server serves every model of its store; the launch names one (the first member's).
	spec := engine.Spec{Engine: engine.Ollama, ModelName: in.ollamaName, GPUs: gpus, Host: c.opts.Host,
		OllamaModels: store, Parallel: in.settings.Concurrency}
	if in.ref != nil {
		spec.ExtraArgs = in.ref.Args
		spec.Env = envList(in.ref.Env)
	}
	b, _ := json.Marshal(struct {
		Runtime string
		RT      v1.ServingRuntimeSpec
		Store   string
		GPUs    []int
	}{in.runtime.Name, in.runtime.Spec, store, gpus})
	fp := string(b)
	c.mu.Lock()
	cur := c.instances[g.key]
	c.mu.Unlock()
	if cur != nil && cur.fp == fp {
		return nil
	}
	if cur != nil {
		c.stop(cur, "the shared server's runtime, store or GPUs changed")
	}
	inst := &instance{key: g.key, fp: fp, gpus: gpus, shared: fmt.Sprintf("ollama (runtime %s)", in.runtime.Name)}
	var simArgs []string
	if c.opts.Simulate != nil {
		// The simulator cannot see what the other engines hold, as a real ollama serve
		// would: it is told the memory the planner leaves free on each GPU.
		simArgs = []string{"--gpu-free-memory", freeList(c.inventory, gpus, decisions, intents)}
	}
	if err := c.start(ctx, inst, in.runner, in.runtime.Name, spec, simArgs); err != nil {
		return err
	}
	for _, m := range g.members {
		c.event(ctx, m.svc, v1.EventNormal, "EngineStarted", fmt.Sprintf("shared %s started on GPUs %v, port %d, store %s: %s%s",
			inst.shared, gpus, inst.launch.Port, store, strings.Join(inst.launch.Argv, " "), notes(inst.launch.Notes)))
	}
	return nil
}

// usable reports whether the planner may place on the GPU.
func usable(g placement.GPU) bool { return g.Unusable == "" && g.MemoryTotal > 0 }

// freeList is the memory each GPU has beside other processes and the dedicated exclusive
// engines of this plan, as bytes separated by commas, in the order of gpus.
func freeList(inv []placement.GPU, gpus []int, decisions []placement.Decision, intents []*intent) string {
	free := map[int]int64{}
	total := map[int]int64{}
	for _, g := range inv {
		free[g.Index] = g.MemoryTotal - g.MemoryUsed
		total[g.Index] = g.MemoryTotal
	}
	for i, d := range decisions {
		if i < len(intents) && (intents[i].engine == engine.Ollama || intents[i].onDemand) {
			continue // on-demand engines hold memory only while the residency manager lets them
		}
		for _, a := range d.Replicas {
			for _, gpu := range a.GPUs {
				free[gpu] -= int64(a.MemoryUtilization * float64(total[gpu]))
			}
		}
	}
	out := make([]string, len(gpus))
	for i, gpu := range gpus {
		out[i] = strconv.FormatInt(max(free[gpu], 0), 10)
	}
	return strings.Join(out, ",")
}

// GPUs is the host's GPUs as the controller sees them: memory, what other processes use, and
// which engines hold each one by the planner's arithmetic.
func (c *Controller) GPUs() v1.GPUList {
	// On-demand services hold their memory only while resident (a sleeping engine keeps its
	// context).
	resident := map[string]bool{}
	for _, st := range c.res.States() {
		resident[st.Service] = st.Value == residency.StateLoaded || st.Value == residency.StateLoading
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := v1.GPUList{Source: c.opts.InventorySource, Items: []v1.GPU{}}
	if c.invErr != nil {
		out.Error = c.invErr.Error()
	}
	byIndex := map[int]int{}
	for _, g := range c.inventory {
		byIndex[g.Index] = len(out.Items)
		out.Items = append(out.Items, v1.GPU{Index: g.Index, UUID: g.UUID, Name: g.Name, Profile: g.Profile,
			MemoryTotal: g.MemoryTotal, MemoryUsed: g.MemoryUsed, MIG: g.MIG, Note: gpuNote(g)})
	}
	total := func(i int) int64 { return out.Items[i].MemoryTotal }
	for _, inst := range c.instances {
		if inst.service == "" {
			continue
		}
		p := c.placed[inst.service]
		if inst.replica >= len(p.replicas) {
			continue
		}
		a := p.replicas[inst.replica]
		for _, gpu := range inst.gpus {
			i, ok := byIndex[gpu]
			if !ok {
				continue
			}
			b := int64(a.MemoryUtilization * float64(total(i)))
			if r, ok := resident[inst.service]; ok && !r {
				full := b
				b = 0
				if e := inst.launch.Engine; e == engine.VLLM || e == engine.SGLang {
					b = min(contextBytes, full)
				}
			}
			out.Items[i].Planned += b
			out.Items[i].Holders = append(out.Items[i].Holders, v1.GPUHolder{Service: inst.service, Replica: inst.replica,
				Engine: inst.launch.Engine, PID: inst.proc.State().PID, Bytes: b})
		}
	}
	peak := map[int]int64{} // by item index: the largest shared model on the GPU
	for svc, p := range c.placed {
		if r, ok := resident[svc]; p.shared == "" || ok && !r {
			continue // not a model of the shared server, or an on-demand one not loaded in it
		}
		inst := c.instances[p.shared]
		pid := 0
		if inst != nil {
			pid = inst.proc.State().PID
		}
		for r, a := range p.replicas {
			for k, gpu := range a.GPUs {
				i, ok := byIndex[gpu]
				if !ok {
					continue
				}
				share := a.Plan.WeightBytes + a.Plan.ActivationBytes + a.Plan.KVBytes // per GPU
				if a.Offload != nil && k < len(a.Offload.GPUBytes) {
					share = a.Offload.GPUBytes[k]
				}
				// The shared server holds one model at a time at most where memory is short:
				// what it can take on a GPU is its largest model there.
				peak[i] = max(peak[i], share)
				out.Items[i].Holders = append(out.Items[i].Holders, v1.GPUHolder{Service: svc, Replica: r,
					Engine: engine.Ollama, PID: pid, Bytes: share, Shared: true})
			}
		}
	}
	for i, p := range peak {
		out.Items[i].Planned += p
	}
	for i := range out.Items {
		slices.SortFunc(out.Items[i].Holders, func(a, b v1.GPUHolder) int {
			return strings.Compare(a.Service, b.Service)*2 + (a.Replica - b.Replica)
		})
	}
	return out
}

// gpuNote is what the inventory says about a GPU: why nothing is placed on it, and what the
// driver did not report.
func gpuNote(g placement.GPU) string {
	return strings.Join(slices.DeleteFunc([]string{g.Unusable, g.Note}, func(s string) bool { return s == "" }), "; ")
}
