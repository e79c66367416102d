package modeltest

// The cause catalogue of the service: runtime selection, placement and the engine, from the
// reasons the serving controller and the supervisor write on an InferenceService.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// serviceRow explains a reason on an InferenceService (tail: the engine's last output); nil
// when the reason alone does not explain the failure and the classifier reads on.
type serviceRow func(d *diag, reason string, tail []string) *Cause

// serviceCauses is the service's cause catalogue, keyed by reason. TestEveryReasonHasADiagnosis
// fails when a problem reason of api/v1 on an InferenceService has no row (ModelDisabled is
// the classifier's own: it is read before any step).
var serviceCauses = map[string]serviceRow{
	v1.ReasonModelNotFound: func(d *diag, reason string, _ []string) *Cause {
		c := d.svcCause(reason, fmt.Sprintf("The service names model %s, which does not exist.", d.r.Model))
		c.NextSteps = []string{"citadel get models; apply the model, or fix spec.model.name of the service"}
		return c
	},
	v1.ReasonModelNotReady: func(d *diag, reason string, _ []string) *Cause {
		c := d.svcCause(reason, "The service waits for its model, which is not Ready.")
		c.NextSteps = []string{d.describeModel()}
		return c
	},
	v1.ReasonModelFilesMissing: func(d *diag, reason string, _ []string) *Cause {
		c := d.svcCause(reason, fmt.Sprintf("Model %s is Ready but its files are gone from this host; the model agent was asked to fetch them again.", orDefault(d.f.Model, d.r.Model)))
		c.NextSteps = []string{
			"watch the agent fetch them: " + d.describeModel(),
			"find what deletes files under the model's directory (a cleanup job, another tool sharing the cache) and stop it",
		}
		return c
	},
	v1.ReasonModelUnreadable: func(d *diag, reason string, _ []string) *Cause {
		c := d.svcCause(reason, "The controller cannot read the model's files to size it for placement.")
		c.NextSteps = []string{"check config.json and the weights in the model's directory (see the message); re-download: delete and re-apply the model"}
		return c
	},
	v1.ReasonModelNotInOllamaStore: func(d *diag, reason string, _ []string) *Cause {
		c := d.svcCause(reason, fmt.Sprintf("Runtime %s runs ollama serve, which serves only models pulled from the Ollama registry, and model %s is not one.", orDefault(d.f.Runtime, "?"), orDefault(d.f.Model, d.r.Model)))
		c.NextSteps = []string{
			"pull the model from the Ollama registry: spec.storage.storageUri: ollama://name:tag",
			fmt.Sprintf("or serve its GGUF file with runtime llamacpp: citadel test model %s --runtime llamacpp", orDefault(d.f.Model, d.r.Model)),
			d.describeService(),
		}
		return c
	},
	v1.ReasonNoSupportingRuntime:    (*diag).runtimeRejected,
	v1.ReasonRuntimeIncompatible:    (*diag).runtimeRejected,
	v1.ReasonRuntimeNotFound:        (*diag).runtimeRejected,
	v1.ReasonRuntimeDisabled:        (*diag).runtimeRejected,
	v1.ReasonRuntimeSelectionFailed: (*diag).runtimeRejected,
	v1.ReasonEngineUnknown:          (*diag).noEngine,
	v1.ReasonRuntimeHasNoEngine:     (*diag).noEngine,
	v1.ReasonInvalidEngineArgs: func(d *diag, reason string, _ []string) *Cause {
		c := d.svcCause(reason, fmt.Sprintf("The engine arguments of runtime %s (or of the service) are invalid, so no engine is started.", orDefault(d.f.Runtime, "?")))
		c.NextSteps = []string{
			"fix the argument the message names in the runtime's engineConfig.args (or the service's), and re-apply it: " + d.describeRuntime(),
			d.describeService(),
		}
		return c
	},
	v1.ReasonUnschedulable: func(d *diag, _ string, _ []string) *Cause { return d.unschedulable() },
	v1.ReasonEngineNotFound: func(d *diag, reason string, _ []string) *Cause {
		c := d.svcCause(reason, fmt.Sprintf("The engine runtime %s starts is not installed on the server's host.", orDefault(d.f.Runtime, "?")))
		c.NextSteps = []string{
			"install the engine named in the message on the server's host (e.g. pip install vllm), in the environment `citadel serve` runs in",
			fmt.Sprintf("or point the runtime's command at it: %s", d.describeRuntime()),
			"or, without a GPU, test with simulated engines: citadel serve --simulate-engines --gpus PROFILES",
		}
		return c
	},
	v1.ReasonEngineLaunchFailed: (*diag).notStarted,
	v1.ReasonStartFailed:        (*diag).notStarted,
	v1.ReasonPortInUse:          (*diag).notStarted,
	v1.ReasonKillFailed:         (*diag).notStarted,
	v1.ReasonExited:             func(d *diag, _ string, tail []string) *Cause { return d.engineCrashed(tail) },
	v1.ReasonStartupTimeout:     func(d *diag, _ string, tail []string) *Cause { return d.startupTimeout(tail) },
	v1.ReasonLivenessFailed:     (*diag).probeFailed,
	v1.ReasonReadinessFailed:    (*diag).probeFailed,
	v1.ReasonAwaitingController: func(d *diag, _ string, _ []string) *Cause {
		if !d.failedAt(StepReady) {
			return nil
		}
		c := d.svcCause(CodeNoServingController, "No serving controller runs on the server, so no engine is ever started.")
		c.NextSteps = []string{"start the server with engines: citadel serve --engines=true (the default)"}
		return c
	},
}

// noEngine: the runtime names no engine, or one Citadel does not know.
func (d *diag) noEngine(reason string, _ []string) *Cause {
	c := d.svcCause(reason, fmt.Sprintf("Runtime %s does not say which engine to run.", orDefault(d.f.Runtime, "?")))
	c.NextSteps = []string{fmt.Sprintf("fix the runtime's engineConfig.runner (vllm serve, python3 -m sglang.launch_server, llama-server or ollama serve): %s", d.describeRuntime())}
	return c
}

// notStarted: the engine's process could not be started (or, KillFailed, not be stopped).
func (d *diag) notStarted(reason string, tail []string) *Cause {
	code := map[string]string{v1.ReasonStartFailed: v1.ReasonEngineLaunchFailed, v1.ReasonKillFailed: CodeEngineKillFailed}[reason]
	summary := "The engine could not be started."
	switch reason {
	case v1.ReasonPortInUse:
		summary = "The engine could not be started: another process holds its port."
	case v1.ReasonKillFailed:
		summary = "The engine's processes survived SIGKILL: they could not be stopped, and the replica is not restarted."
	}
	c := d.svcCause(orDefault(code, reason), summary)
	c.Evidence = append(c.Evidence, tailLines(tail)...)
	c.NextSteps = []string{d.logsCmd(), d.describeService()}
	return c
}

// probeFailed: the engine started but then failed its liveness or readiness probe.
func (d *diag) probeFailed(reason string, tail []string) *Cause {
	c := d.svcCause(reason, fmt.Sprintf("The engine started but then failed its %s probe.", strings.ToLower(strings.TrimSuffix(reason, "Failed"))))
	c.Evidence = append(c.Evidence, tailLines(tail)...)
	c.NextSteps = []string{d.logsCmd(), "check GPU health (nvidia-smi) and whether the engine hangs under load"}
	return c
}

func (d *diag) svcCause(code, summary string) *Cause {
	c := &Cause{Code: code, Step: StepReady, Summary: summary}
	c.Evidence = append(c.Evidence, d.serviceStatusLine())
	c.Evidence = append(c.Evidence, d.serviceEventLines()...)
	return c
}

func (d *diag) runtimeRejected(reason string, _ []string) *Cause {
	f := d.f
	c := &Cause{Code: reason, Step: StepRuntime}
	model := orDefault(f.Model, d.r.Model)
	var rejected []string
	for _, rc := range f.Runtimes {
		if rc.Reason != "" && !rc.Selected {
			rejected = append(rejected, fmt.Sprintf("runtime %s rejected: %s", rc.Name, rc.Reason))
		}
	}
	switch reason {
	case v1.ReasonNoSupportingRuntime:
		c.Summary = fmt.Sprintf("No runtime can serve model %s: %d runtime(s) rejected it.", model, len(rejected))
		if len(f.Runtimes) == 0 {
			c.Summary = fmt.Sprintf("No runtime can serve model %s.", model)
		}
	case v1.ReasonRuntimeIncompatible:
		c.Summary = fmt.Sprintf("The runtime named for model %s cannot serve it.", model)
	case v1.ReasonRuntimeNotFound:
		c.Summary = fmt.Sprintf("The runtime named for model %s does not exist.", model)
	case v1.ReasonRuntimeDisabled:
		c.Summary = fmt.Sprintf("The runtime named for model %s is disabled.", model)
	default:
		c.Summary = fmt.Sprintf("Runtime selection failed for model %s.", model)
	}
	pending := len(rejected) > 0
	for _, l := range rejected {
		pending = pending && strings.Contains(l, "model metadata not yet known")
	}
	if pending {
		// The model is Ready (the runtime step follows the download): the agent read what the
		// files tell, so the metadata is missing for good, not pending; waiting changes nothing.
		if f.ModelPhase == v1.ModelReady {
			c.Summary = strings.TrimSuffix(c.Summary, ".") + ": every rejection cites model metadata the model lacks although it is Ready (its spec does not set it and the agent could not read it from the files): set it in the model's spec, or use a runtime that does not ask for it."
		} else {
			c.Summary = strings.TrimSuffix(c.Summary, ".") + ": every rejection cites model metadata that is not known yet (the agent fills it when the model is Ready, or set it in the model's spec)."
		}
	}
	c.Evidence = append(c.Evidence, rejected...)
	if len(rejected) == 0 && f.ServiceMessage != "" {
		c.Evidence = append(c.Evidence, f.ServiceMessage)
	} else if f.ServiceMessage != "" {
		c.Evidence = append(c.Evidence, "selection: "+f.ServiceMessage)
	}
	c.NextSteps = []string{
		d.describeRuntimes() + " (supportedModelFormats, modelSizeRange, autoSelect)",
		d.nameRuntime(model),
		"if the model's metadata is wrong or missing, fix it in the model's spec: " + d.describeModel(),
	}
	if reason == v1.ReasonRuntimeNotFound {
		c.NextSteps[1] = "apply the runtime, or fix the name given with --runtime / spec.runtime.name"
	}
	if reason == v1.ReasonRuntimeDisabled {
		c.NextSteps[1] = "set spec.disabled: false in the runtime, or name another"
	}
	return c
}

func (d *diag) unschedulable() *Cause {
	f := d.f
	c := &Cause{Code: v1.ReasonUnschedulable, Step: StepReady}
	if d.failedAt(StepService) { // refused by the fit check, before anything was applied
		c.Step = StepService
	}
	alts := alternatives(f.ServiceMessage)
	var arith, fixes []string
	for _, l := range f.Placement {
		switch {
		case strings.HasPrefix(l, "it would fit "): // the controller's edits, YAML included
			fixes = append(fixes, strings.TrimPrefix(strings.TrimPrefix(l, "it would fit "), "with "))
		case !slices.Contains(alts, l):
			arith = append(arith, l)
		}
	}
	if len(arith) == 0 && f.ServiceMessage != "" {
		for _, l := range strings.Split(f.ServiceMessage, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "- ") || strings.HasPrefix(l, "it would fit with one of") {
				continue
			}
			arith = append(arith, l)
		}
	}
	c.Summary = fmt.Sprintf("Service %s does not fit on the GPUs: the placement arithmetic refuses it.", orDefault(f.Service, "?"))
	for _, l := range arith {
		if strings.Contains(l, "does not fit") || strings.Contains(l, " > ") || strings.Contains(l, "not enough GPUs") {
			c.Summary = fmt.Sprintf("Service %s does not fit on the GPUs: %s.", orDefault(f.Service, "?"), strings.TrimSuffix(l, "."))
			break
		}
	}
	for _, l := range arith {
		c.Evidence = append(c.Evidence, "placement: "+l)
	}
	for _, a := range alts {
		c.Evidence = append(c.Evidence, "would fit with: "+a)
	}
	if len(fixes) == 0 {
		fixes = alts
	}
	for _, a := range fixes {
		c.NextSteps = append(c.NextSteps, "apply one change: "+a)
	}
	if c.Step == StepService {
		c.NextSteps = append(c.NextSteps, "see what holds the GPUs (the test applied no service and moved nothing): citadel get gpus; citadel get isvc -A")
		return c
	}
	c.NextSteps = append(c.NextSteps, "see what holds the GPUs: citadel get gpus; citadel get isvc -A", d.describeService())
	return c
}

// alternatives are the "- …" lines after "it would fit with one of:" of a placement refusal.
func alternatives(msg string) []string {
	_, after, ok := strings.Cut(msg, "it would fit with one of:")
	if !ok {
		return nil
	}
	var out []string
	for _, l := range strings.Split(after, "\n") {
		l = strings.TrimSpace(l)
		if a, ok := strings.CutPrefix(l, "- "); ok {
			out = append(out, a)
		}
	}
	return out
}

func (d *diag) engineCrashed(tail []string) *Cause {
	f := d.f
	exit := d.exitText()
	c := d.svcCause(CodeEngineCrashed, fmt.Sprintf("The engine exited on its own (%s) before it became Ready.", exit))
	if last := lastMeaningful(tail); last != "" {
		c.Summary = fmt.Sprintf("The engine exited on its own (%s) before it became Ready; its last words: %s", exit, last)
	}
	for _, ep := range f.Endpoints {
		if ep.LastExit != "" {
			c.Evidence = append(c.Evidence, fmt.Sprintf("replica %d: %s, %d restart(s), last exit: %s (%s)", ep.Replica, ep.Phase, ep.Restarts, ep.LastExit, orNone(ep.LastExitReason)))
		}
	}
	c.Evidence = append(c.Evidence, "exit: "+exit)
	c.Evidence = append(c.Evidence, tailLines(tail)...)
	c.NextSteps = []string{d.logsCmd(), d.describeService()}
	if strings.Contains(exit, "killed") {
		c.NextSteps = append(c.NextSteps, "SIGKILL from outside is often the kernel's OOM killer (host memory): dmesg -T | grep -i -E 'killed process|out of memory'")
	}
	if len(tail) == 0 {
		c.NextSteps = append(c.NextSteps, "the engine wrote nothing: run its command by hand (see the EngineStarted event) to see why")
	}
	return c
}

func (d *diag) startupTimeout(tail []string) *Cause {
	c := d.svcCause(CodeStartupTimeout, "The engine did not pass its startup probe in time and was killed.")
	if last := lastMeaningful(tail); last != "" {
		c.Summary = "The engine did not pass its startup probe in time and was killed; its last output: " + last
	}
	c.Evidence = append(c.Evidence, tailLines(tail)...)
	c.NextSteps = []string{
		d.logsCmd(),
		fmt.Sprintf("if the log shows slow but steady loading, raise the runtime's startupProbe (failureThreshold × periodSeconds): %s", d.describeRuntime()),
		d.describeService(),
	}
	return c
}

func (d *diag) readinessTimeout(tail []string) *Cause {
	f := d.f
	budget := ""
	if s := d.step(StepReady); s != nil && s.Duration > 0 {
		budget = " (" + s.Duration.Round(time.Second).String() + ")"
	}
	c := d.svcCause(CodeReadinessTimeout, fmt.Sprintf("The service was still %s (%s) when the test's ready budget%s passed.", orDefault(f.ServicePhase, "not Ready"), orNone(f.ServiceReason), budget))
	if last := lastMeaningful(tail); last != "" {
		c.Summary += " The engine's last output: " + last
	}
	c.Evidence = append(c.Evidence, tailLines(tail)...)
	for _, l := range f.Placement {
		c.Evidence = append(c.Evidence, "placement: "+l)
	}
	c.NextSteps = []string{
		d.logsCmd() + " -f   (is it still loading, compiling or downloading?)",
		fmt.Sprintf("if it is loading steadily, rerun with a longer budget: citadel test model %s --ready-timeout 20m", orDefault(f.Model, d.r.Model)),
		d.describeService(),
	}
	return c
}

var oomRe = regexp.MustCompile(`(?i)(cuda out of memory|outofmemoryerror|cuda error: out of memory|cudamalloc failed|out of memory|no available memory for the cache blocks|larger than the maximum number of tokens that can be stored in kv cache)`)

func oomLines(tail []string) []string {
	var out []string
	for _, l := range tail {
		if oomRe.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func (d *diag) outOfMemory(oom, tail []string) *Cause {
	f := d.f
	c := d.svcCause(CodeOutOfMemoryAtLoad, "The engine ran out of GPU memory while loading: "+strings.TrimSpace(oom[len(oom)-1]))
	for _, l := range oom {
		c.Evidence = append(c.Evidence, "out of memory: "+strings.TrimSpace(l))
	}
	c.Evidence = append(c.Evidence, "exit: "+d.exitText())
	for _, l := range f.Placement {
		c.Evidence = append(c.Evidence, "placement: "+l)
	}
	c.Evidence = append(c.Evidence, tailLines(tail)...)
	kv := false
	for _, l := range oom {
		kv = kv || strings.Contains(strings.ToLower(l), "kv cache") || strings.Contains(strings.ToLower(l), "cache blocks")
	}
	c.NextSteps = []string{
		"check what else holds GPU memory: nvidia-smi (other engines, a desktop, a stray process)",
		"lower the context: the runtime's --max-model-len (vLLM) / --context-length (SGLang) / -c (llama.cpp)",
		"or give the engine more memory: --gpu-memory-utilization 0.95, --tensor-parallel-size 2 on two GPUs, or a quantized variant of the model",
		d.logsCmd(),
	}
	if kv {
		c.NextSteps[1] = "the weights fit but the KV cache does not: lower --max-model-len (or raise --gpu-memory-utilization)"
	}
	return c
}
