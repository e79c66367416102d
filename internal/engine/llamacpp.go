package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// llamacppArgs writes `llama-server` and its flags (protocols.md §6).
// llama-server splits -c over its -np slots, so the context it is given is
// MaxModelLen × Parallel: every slot gets MaxModelLen tokens; -kvu keeps the
// slot count literal (see below). -ngl 999 puts
// every layer on the GPU; layers are spread over the visible GPUs (there is
// no tensor-parallel flag). -a is the model id /v1/models reports.
func llamacppArgs(s Spec, l *Launch) (prog, args []string, err error) {
	if !strings.HasSuffix(strings.ToLower(s.ModelPath), ".gguf") {
		return nil, nil, fmt.Errorf("model path %q is not a GGUF file: llama-server loads .gguf files", s.ModelPath)
	}
	prog = []string{"llama-server"}
	slots := max(s.Parallel, 1)
	if len(l.Served) > 1 {
		l.Notes = append(l.Notes, fmt.Sprintf("llama-server reports one model id (-a): %s (not %s)", l.Served[0], strings.Join(l.Served[1:], ", ")))
		l.Served = l.Served[:1]
	}
	args = append(args, "-m", s.ModelPath, "--host", s.Host, "--port", strconv.Itoa(s.Port))
	if s.MaxModelLen > 0 {
		args = append(args, "-c", strconv.Itoa(s.MaxModelLen*slots))
	}
	// -kvu: one KV buffer shared by the slots. Without it, llama-server turns -np 1 into 4
	// slots with a unified KV cache (server main()), which is not the plan.
	args = append(args, "-np", strconv.Itoa(slots), "-kvu", "-ngl", "999", "--metrics", "-a", l.Served[0])
	if s.TP > 1 {
		l.Notes = append(l.Notes, fmt.Sprintf("tensor parallelism %d: llama-server has no such flag; it spreads layers over the %d visible GPUs", s.TP, max(len(s.GPUs), s.TP)))
	}
	if s.GPUMemoryUtilization > 0 {
		l.Notes = append(l.Notes, fmt.Sprintf("GPU memory utilization %s not applied: llama-server has no such flag", formatFloat(s.GPUMemoryUtilization)))
	}
	if s.Vision && !slices.Contains(s.ExtraArgs, "--mmproj") {
		l.Notes = append(l.Notes, "vision model without --mmproj: llama-server answers text only until the runtime args name the projector GGUF (--mmproj FILE)")
	}
	return prog, args, nil
}
