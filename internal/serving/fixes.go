package serving

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/placement"
)

// setKeep tells the planner where a service's replicas already run.
func setKeep(r *placement.Request, a []placement.Assignment) { r.Keep = a }

// fixes renders a refusal's alternatives as the exact edits that would make the service fit:
// the YAML to apply, in the file where the setting lives (the InferenceService's runner args
// for an engine adapter, the runtime's env for the shared Ollama), or what to stop.
func (c *Controller) fixes(in *intent, rf *placement.Refusal) []string {
	var out []string
	for _, a := range rf.Alternatives {
		if len(a.Stop) > 0 {
			out = append(out, fmt.Sprintf("it would fit if %s stopped (citadel delete isvc NAME -n NAMESPACE)", strings.Join(a.Stop, ", ")))
			continue
		}
		if y := fixYAML(in, a.Change); y != "" {
			out = append(out, fmt.Sprintf("it would fit with %s:\n%s", a.Text, y))
		} else {
			out = append(out, "it would fit with "+a.Text)
		}
	}
	return out
}

// fixYAML is the YAML edit for one change, or "" when the change is not a setting (another
// quantised variant of the model, dropping a pin).
func fixYAML(in *intent, ch placement.Change) string {
	a, _ := engine.Lookup(in.engine) // nil for an engine no adapter knows: written as flags
	ns, name := in.svc.Namespace, in.svc.Name
	if ch.Replicas > 0 {
		return isvcYAML(ns, name, fmt.Sprintf("  engine:\n    minReplicas: %d", ch.Replicas))
	}
	var set [][2]string // setting name, value
	if ch.TP > 0 {
		set = append(set, [2]string{"tensor-parallel-size", strconv.Itoa(ch.TP)})
	}
	if ch.MaxModelLen > 0 {
		set = append(set, [2]string{"max-model-len", strconv.Itoa(ch.MaxModelLen)})
	}
	if ch.Concurrency > 0 {
		name := "max-num-seqs" // continuous batching: vLLM --max-num-seqs, SGLang --max-running-requests
		if a == nil || a.Slots {
			name = "concurrency"
		}
		set = append(set, [2]string{name, strconv.Itoa(ch.Concurrency)})
	}
	if ch.GPUMemoryUtilization > 0 {
		set = append(set, [2]string{"gpu-memory-utilization", strconv.FormatFloat(ch.GPUMemoryUtilization, 'f', -1, 64)})
	}
	if ch.KVCacheDtype != "" {
		set = append(set, [2]string{"kv-cache-dtype", ch.KVCacheDtype})
	}
	if len(set) == 0 {
		return ""
	}
	if a != nil && a.EnvConfig != "" {
		// An engine configured by its environment (the shared ollama serve): the runtime's env.
		var env []string
		for _, kv := range set {
			if k, isEnv := engine.FlagFor(in.engine, kv[0]); isEnv && k != "" {
				env = append(env, fmt.Sprintf("          - {name: %s, value: %q}", k, kv[1]))
			}
		}
		if len(env) == 0 {
			return ""
		}
		return fmt.Sprintf("    # ClusterServingRuntime %s (every model of the shared ollama serve)\n    spec:\n      engine:\n        name: ollama\n        env:\n%s",
			in.runtime.Name, strings.Join(env, "\n"))
	}
	if in.runner != nil && in.ref == nil {
		var flags []string
		for _, kv := range set {
			if f, _ := engine.FlagFor(in.engine, kv[0]); f != "" {
				flags = append(flags, f+" "+kv[1])
			}
		}
		return fmt.Sprintf("    # in the runner's command line (runtime %s engineConfig.runner, or this InferenceService's spec.engine.runner): %s",
			in.runtime.Name, strings.Join(flags, ", "))
	}
	args := slices.Clone(in.extraArgs)
	for _, kv := range set {
		f, _ := engine.FlagFor(in.engine, kv[0])
		if f == "" {
			continue
		}
		v := kv[1]
		if a != nil && a.ContextTotal && kv[0] == "max-model-len" { // -c is split over the slots
			n, _ := strconv.Atoi(v)
			v = strconv.Itoa(n * max(in.settings.Concurrency, 1))
		}
		args = setArg(args, f, v)
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	return isvcYAML(ns, name, "  engine:\n    runner:\n      args: ["+strings.Join(quoted, ", ")+"]")
}

// setArg sets flag to v in args (--flag=v or --flag v), appending --flag=v when absent.
func setArg(args []string, flag, v string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		switch {
		case strings.HasPrefix(a, flag+"="):
			out[i] = flag + "=" + v
			return out
		case a == flag && i+1 < len(out):
			out[i+1] = v
			return out
		}
	}
	if strings.HasPrefix(flag, "--") {
		return append(out, flag+"="+v)
	}
	return append(out, flag, v)
}

func isvcYAML(ns, name, spec string) string {
	lines := []string{"apiVersion: " + v1.OMEGroupVersion, "kind: InferenceService", "metadata: {name: " + name + ", namespace: " + ns + "}", "spec:"}
	lines = append(lines, strings.Split(spec, "\n")...)
	for i := range lines {
		lines[i] = "    " + lines[i]
	}
	return strings.Join(lines, "\n")
}
