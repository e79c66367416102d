package modeltest

// The classifier: one root cause per failed report, with the lines that show it and the
// commands that fix it.
//
// Diagnose reads only the report. The most specific evidence wins: a reason the model
// agent, the serving controller or the supervisor wrote beats the test's own timeout, and
// the engine's own words (its log tail) beat the supervisor's reason. When nothing specific
// is known the cause is Unknown, with every piece of evidence and the commands that gather
// more; it never lists guesses.
//
// The files of the diagnosis:
//   - diagnose.go: the classifier (which cause a report has);
//   - causes_model.go, causes_service.go, causes_run.go: the cause catalogue, what each
//     cause says and which commands fix it, keyed by the reason that names it (the api/v1
//     Reason constants; see TestEveryReasonHasADiagnosis);
//   - evidence.go: the lines a cause quotes and the facts read from them;
//   - systemic.go: the systemic probe (the only I/O: HTTP requests to the hub, statfs of
//     the storage) and the systemic cause, for several models stuck at once.

import (
	"fmt"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Cause codes beyond the reasons the model agent, the serving controller and the
// supervisor write (those keep their names, the api/v1 Reason constants: SecretNotFound,
// Unschedulable, …).
const (
	CodeUnknown               = "Unknown"
	CodeDownloadTimeout       = "DownloadTimeout"        // the test's deadline passed while bytes still moved
	CodeDownloadStalled       = v1.ReasonDownloadStalled // no bytes for a stall period
	CodeHubUnreachable        = "HubUnreachable"         // DNS, connection refused, offline, or the hub answers 5xx
	CodeNoModelAgent          = "NoModelAgent"           // the server runs no model agent (citadel serve --agent=false)
	CodeDownloadQueued        = "DownloadQueued"         // every download slot was held by other models
	CodeEngineCrashed         = "EngineCrashed"          // the engine exited on its own
	CodeOutOfMemoryAtLoad     = "OutOfMemoryAtLoad"      // the engine ran out of GPU memory while loading
	CodeStartupTimeout        = v1.ReasonStartupTimeout  // the supervisor killed it: startup probe kept failing
	CodeReadinessTimeout      = "ReadinessTimeout"       // the test's ready budget passed while the engine still started
	CodeNoServingController   = "NoServingController"    // the server runs no serving controller (--engines=false)
	CodeEngineFailedInference = "EngineFailedInference"  // the engine is Ready but its own API fails the tests
	CodeGatewayRouteMissing   = "GatewayRouteMissing"    // the engine passes; the gateway says model_not_found
	CodeGatewayFailed         = "GatewayFailed"          // the engine passes; the gateway fails otherwise
	CodeApplyFailed           = "ApplyFailed"
	CodeTestCouldNotRun       = "TestCouldNotRun"
	CodeCleanupFailed         = "CleanupFailed"
	CodeSystemic              = "Systemic"           // prefix: SystemicHubUnreachable, SystemicUnauthorized, …
	CodeEngineKillFailed      = "EngineKillFailed"   // the engine's processes survived SIGKILL (the supervisor's KillFailed)
	CodeAgentInternalError    = "AgentInternalError" // the pull failed in a way the agent does not classify (InternalError)
	CodeAgentStalled          = "AgentStalled"       // a systemic check: the model agent moves no bytes for any model
)

// stallAfter is how long bytes may stand still before a download counts as stalled: the
// model agent's default --stall-timeout.
const stallAfter = 60 * time.Second

// maxTail is how many lines of the engine's output a cause quotes.
const maxTail = 20

// Diagnose picks the one root cause of a failed report from its steps and facts (nil when
// the report passed). Deterministic, pure.
func Diagnose(r *Report) *Cause {
	if r == nil || r.Result == ResultPassed {
		return nil
	}
	d := &diag{r: r, f: &r.Facts}
	for i := range r.Steps {
		if r.Steps[i].Status == Failed {
			d.failed = &r.Steps[i]
			break
		}
	}
	if d.failed == nil && r.Result != ResultFailed && r.Result != ResultError {
		return nil
	}
	c := d.classify()
	if d.failed != nil {
		c.Step = d.failed.Name
	}
	c.Evidence = dedupe(c.Evidence)
	c.NextSteps = dedupe(c.NextSteps)
	return c
}

type diag struct {
	r      *Report
	f      *Facts
	failed *Step // the first failed step; nil when none failed
}

func (d *diag) failedAt(name string) bool { return d.failed != nil && d.failed.Name == name }

func (d *diag) classify() *Cause {
	f := d.f
	if d.r.Result == ResultError {
		return d.couldNotRun()
	}
	if f.ModelReason == v1.ReasonModelDisabled || f.ServiceReason == v1.ReasonModelDisabled ||
		(f.ModelSpec != nil && f.ModelSpec.Disabled != nil && *f.ModelSpec.Disabled && f.ModelPhase != v1.ModelReady) {
		return d.modelDisabled()
	}
	if d.failedAt(StepApply) {
		return d.applyFailed()
	}
	if d.failedAt(StepDownload) || (f.ModelPhase != "" && f.ModelPhase != v1.ModelReady) || f.ServiceReason == v1.ReasonModelNotReady {
		c, generic := d.model()
		if generic {
			if sc := systemicCause([]Facts{*f}, d.r.Systemic); sc != nil {
				sc.Evidence = append(sc.Evidence, c.Evidence...)
				return sc
			}
		}
		if c != nil && (c.Code != CodeUnknown || d.failedAt(StepDownload)) {
			return c
		}
	}
	if c := d.service(); c != nil {
		return c
	}
	if d.failedAt(StepInference) {
		if c := d.inference(); c != nil {
			return c
		}
	}
	if d.failed != nil && d.failed.Name == StepCleanup {
		return d.cleanupFailed()
	}
	return d.unknown("the facts name no specific cause")
}

// model classifies a download that did not end Ready. generic reports that nothing of the
// model's own explains it (a shared cause may).
func (d *diag) model() (c *Cause, generic bool) {
	f := d.f
	reason := f.ModelReason
	row, _, known := modelRowOf(reason, f.ModelMessage, f.ModelFailure)
	if known && (row.when == whenAlways || row.when == whenFailed && f.ModelPhase == v1.ModelFailed) {
		return d.modelCause(reason, f.ModelMessage, ""), false
	}
	moving := f.BytesDone > 0 && f.NoProgressFor < stallAfter &&
		(f.ModelPhase == v1.ModelDownloading || f.ModelPhase == v1.ModelVerifying)
	// The agent retries: the status may say Downloading again while its events keep the failure.
	last := lastFailureEvent(f.ModelEvents)
	if moving && f.DownloadTimedOut {
		return d.downloadTimeout(last), false
	}
	if last != nil {
		return d.modelCause(last.Reason, strings.TrimPrefix(last.Message, v1.ModelFailed+": "), "the agent retries, but it failed this way: "), false
	}
	if known && row.when == whenWaiting {
		return d.modelCause(reason, f.ModelMessage, ""), false
	}
	if f.ModelPhase == v1.ModelDownloading || f.ModelPhase == v1.ModelVerifying || reason == v1.ReasonResolving ||
		strings.HasPrefix(d.stepSummary(StepDownload), v1.ReasonDownloadStalled) {
		return d.downloadStalled(""), true
	}
	if f.DownloadTimedOut && f.ModelPhase == v1.ModelPending {
		return d.unknown(fmt.Sprintf("the model stayed %s (%s) until the deadline", f.ModelPhase, orNone(reason))), true
	}
	return d.unknown("the model is not Ready and its status names no reason"), true
}

// lastFailureEvent is the newest Warning event of the model with a known failure reason
// (not a waiting one).
func lastFailureEvent(evs []v1.Event) *v1.Event {
	var best *v1.Event
	for i := range evs {
		e := &evs[i]
		if e.Type != v1.EventWarning {
			continue
		}
		if row, ok := modelCauses[e.Reason]; !ok || row.when == whenWaiting {
			continue
		}
		if best == nil || !eventTime(e).Before(eventTime(best)) {
			best = e
		}
	}
	return best
}

func (d *diag) service() *Cause {
	f := d.f
	reason := f.ServiceReason
	if f.ServicePhase == v1.ServiceReady && !d.failedAt(StepReady) {
		return nil
	}
	// The engine's own words first: out of memory beats any supervisor reason.
	tail := d.tail()
	if f.ServicePhase != v1.ServiceReady && (d.engineFailure(reason) || f.ReadyTimedOut) {
		if oom := oomLines(tail); len(oom) > 0 {
			return d.outOfMemory(oom, tail)
		}
	}
	if row, ok := serviceCauses[reason]; ok {
		if c := row(d, reason, tail); c != nil {
			return c
		}
	}
	// A replica that crashed earlier and is restarting or in back-off.
	for _, ep := range f.Endpoints {
		if ep.Ready {
			continue
		}
		switch ep.LastExitReason {
		case v1.ReasonExited:
			return d.engineCrashed(tail)
		case v1.ReasonStartupTimeout:
			return d.startupTimeout(tail)
		}
	}
	if f.ReadyTimedOut || d.failedAt(StepReady) {
		return d.readinessTimeout(tail)
	}
	return nil
}

func (d *diag) engineFailure(reason string) bool {
	switch reason {
	case v1.ReasonExited, v1.ReasonStartupTimeout, v1.ReasonLivenessFailed, v1.ReasonReadinessFailed, v1.ReasonStarted, v1.ReasonStartupProbeSucceeded, v1.EnginePhaseStarting, v1.EnginePhaseRestarting, v1.EnginePhaseCrashLoopBackOff:
		return true
	}
	for _, ep := range d.f.Endpoints {
		if !ep.Ready && ep.LastExitReason != "" {
			return true
		}
	}
	return d.failedAt(StepReady)
}

func (d *diag) inference() *Cause {
	s := d.failed
	var engFail, gwFail []Check
	engPass, gwServed := 0, 0 // gwServed: gateway requests to the model that passed
	for _, ch := range s.Checks {
		switch {
		case ch.Path == "engine" && ch.Status == Failed:
			engFail = append(engFail, ch)
		case ch.Path == "engine" && ch.Status == Passed:
			engPass++
		case ch.Path == "gateway" && ch.Status == Failed:
			gwFail = append(gwFail, ch)
		case ch.Path == "gateway" && ch.Status == Passed && ch.Name != "models":
			gwServed++
		}
	}
	line := func(ch Check) string { return fmt.Sprintf("%s %s: %s: %s", ch.Path, ch.Name, ch.Status, ch.Detail) }
	addr := ""
	if len(d.f.Endpoints) > 0 {
		addr = d.f.Endpoints[0].Address
	}
	switch {
	case len(engFail) > 0:
		c := &Cause{Code: CodeEngineFailedInference, Step: StepInference}
		names := make([]string, 0, len(engFail))
		for _, ch := range engFail {
			names = append(names, ch.Name)
			c.Evidence = append(c.Evidence, line(ch))
		}
		c.Summary = fmt.Sprintf("The engine is Ready but fails %d of its own API tests (%s): %s", len(engFail), strings.Join(names, ", "), engFail[0].Detail)
		c.Evidence = append(c.Evidence, fmt.Sprintf("engine: %d check(s) passed, %d failed at %s", engPass, len(engFail), orDefault(addr, "?")))
		c.Evidence = append(c.Evidence, tailLines(d.tail())...)
		c.NextSteps = []string{
			fmt.Sprintf("try it by hand: curl -s http://%s/v1/models; curl -s http://%s/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'",
				orDefault(addr, "HOST:PORT"), orDefault(addr, "HOST:PORT"), d.servedName()),
			d.logsCmd(),
			"a chat-template or tool/vision error points at the runtime's args (--chat-template, --limit-mm-per-prompt, --enable-auto-tool-choice)",
		}
		return c
	case len(gwFail) > 0:
		// model_not_found on a request is a missing route; a /v1/models list without the name
		// is one only when no request through the gateway reached the model either.
		missing, listOnly := false, true
		for _, ch := range gwFail {
			nf := strings.Contains(ch.Detail, "model_not_found")
			missing = missing || (nf && (ch.Name != "models" || gwServed == 0))
			listOnly = listOnly && ch.Name == "models"
		}
		c := &Cause{Code: CodeGatewayFailed, Step: StepInference}
		for _, ch := range gwFail {
			c.Evidence = append(c.Evidence, line(ch))
		}
		c.Evidence = append(c.Evidence, fmt.Sprintf("engine: all %d direct check(s) passed at %s", engPass, orDefault(addr, "?")))
		if missing {
			c.Code = CodeGatewayRouteMissing
			c.Summary = fmt.Sprintf("The engine answers, but the gateway has no route for %s (model_not_found).", orDefault(d.f.Service, d.r.Model))
			c.NextSteps = []string{
				"list what the gateway serves: curl -s " + d.gatewayURL() + "/v1/models",
				fmt.Sprintf("the gateway lists a service once it has Ready endpoints, by namespace/name, name and served names: %s", d.describeService()),
				"if a Route claims the name, fix it: citadel get routes -A",
			}
		} else if listOnly && gwServed > 0 {
			c.Summary = fmt.Sprintf("The gateway serves the model (%d request(s) passed), but its /v1/models list is wrong: %s", gwServed, gwFail[0].Detail)
			c.NextSteps = []string{
				"compare: curl -s " + d.gatewayURL() + "/v1/models with the name the clients send",
				d.describeService(),
			}
		} else {
			c.Summary = fmt.Sprintf("The engine answers, but requests through the gateway fail: %s", gwFail[0].Detail)
			c.NextSteps = []string{
				"upstream_unavailable: the gateway sees no ready replica or cannot reach it; check the endpoint address is reachable from the gateway's host",
				"invalid_api_key / model_not_allowed: create a key for the test: citadel key create",
				d.describeService(),
			}
		}
		return c
	}
	return nil
}
