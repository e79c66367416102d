// Package modeltest is `citadel test`: the end-to-end validation of a model (apply it, watch
// the download, validate the runtime, serve it, test inference directly and through the
// gateway, clean up) that ends with one root cause, its evidence and the fix.
//
// Files: types.go (the report model), run.go (the flow), probes.go (inference tests),
// diagnose.go (the classifier and the systemic probe), report.go (Markdown, JSON, JUnit).
package modeltest

import (
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Step names, in flow order.
const (
	StepApply     = "apply"     // apply the model (or find an existing one)
	StepDownload  = "download"  // the model reaches Ready: progress, rate, stall, deadline
	StepRuntime   = "runtime"   // runtime selection, every rejection reason
	StepService   = "service"   // create the InferenceService
	StepReady     = "ready"     // the service reaches Ready within the runtime's startup budget
	StepInference = "inference" // inference tests, direct and through the gateway
	StepCleanup   = "cleanup"   // always runs unless --keep
)

// Steps lists the step names in order, with their titles.
var Steps = []struct{ Name, Title string }{
	{StepApply, "Model application"},
	{StepDownload, "Model download"},
	{StepRuntime, "Runtime validation"},
	{StepService, "InferenceService creation"},
	{StepReady, "InferenceService readiness"},
	{StepInference, "Inference testing"},
	{StepCleanup, "Cleanup"},
}

// Step outcomes.
const (
	Passed  = "passed"
	Failed  = "failed"
	NotRun  = "not run" // a step before it failed: BlockedBy names it
	Skipped = "skipped" // by choice (--keep skips cleanup; no embedding model, no embedding test)
)

// Step is one step's outcome with its evidence.
type Step struct {
	Name      string        `json:"name"`
	Title     string        `json:"title"`
	Status    string        `json:"status"`
	BlockedBy string        `json:"blockedBy,omitempty"`
	Started   time.Time     `json:"started,omitzero"`
	Duration  time.Duration `json:"duration"`
	Summary   string        `json:"summary,omitempty"`
	// Evidence are the lines that show what happened: statuses, events, log tails, responses.
	Evidence []string `json:"evidence,omitempty"`
	Checks   []Check  `json:"checks,omitempty"` // inference tests
}

// Check is one inference test on one path.
type Check struct {
	Name   string             `json:"name"` // chat, stream, models, usage, vision, embeddings, json, tools, latency
	Path   string             `json:"path"` // "engine" (direct) or "gateway"
	Status string             `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Values map[string]float64 `json:"values,omitempty"` // ttft_s, tokens_per_s, chunks, …
}

// Facts are what the run observed, for the classifier.
type Facts struct {
	Model     string `json:"model"` // the model's name
	ModelKind string `json:"modelKind"`
	// The model's last status and the download's progress.
	ModelPhase   string `json:"modelPhase,omitempty"`
	ModelReason  string `json:"modelReason,omitempty"`
	ModelMessage string `json:"modelMessage,omitempty"`
	// ModelFailure is the facts of the model's last failed download (its status's
	// lastFailure): the diagnosis reads them, not the message.
	ModelFailure *v1.DownloadFailure `json:"modelFailure,omitempty"`
	BytesDone    int64               `json:"bytesDone,omitempty"`
	BytesTotal   int64               `json:"bytesTotal,omitempty"`
	// BytesPerSecond is the download's rate as the agent last reported it (its status).
	BytesPerSecond int64             `json:"bytesPerSecond,omitempty"`
	LastProgress   time.Time         `json:"lastProgress,omitzero"`
	NoProgressFor  time.Duration     `json:"noProgressFor,omitempty"`
	ModelEvents    []v1.Event        `json:"modelEvents,omitempty"`
	ModelSpec      *v1.BaseModelSpec `json:"-"`
	// HubEndpoint is the hub the run was configured with (HF_ENDPOINT: a mirror, or
	// https://huggingface.co); next steps name it unless the agent's message names another.
	HubEndpoint string `json:"hubEndpoint,omitempty"`
	// Gateway is the gateway the run tested through ("" : the engine only).
	Gateway string `json:"gateway,omitempty"`
	// The service's last status.
	Service        string                `json:"service,omitempty"` // namespace/name
	ServicePhase   string                `json:"servicePhase,omitempty"`
	ServiceReason  string                `json:"serviceReason,omitempty"`
	ServiceMessage string                `json:"serviceMessage,omitempty"`
	Runtime        string                `json:"runtime,omitempty"`
	Runtimes       []v1.RuntimeCandidate `json:"runtimes,omitempty"`
	Placement      []string              `json:"placement,omitempty"`
	Endpoints      []v1.Endpoint         `json:"endpoints,omitempty"`
	ServiceEvents  []v1.Event            `json:"serviceEvents,omitempty"`
	LogTail        []string              `json:"logTail,omitempty"` // the engine's last lines
	// Timeouts of the run's own waits.
	DownloadTimedOut bool `json:"downloadTimedOut,omitempty"`
	ReadyTimedOut    bool `json:"readyTimedOut,omitempty"`
}

// Cause is the diagnosis: one root cause, its evidence and what to do.
type Cause struct {
	Code      string   `json:"code"` // e.g. DownloadStalled, SecretNotFound, Unschedulable, EngineCrashed, GatewayRouteMissing
	Step      string   `json:"step"` // where it showed
	Summary   string   `json:"summary"`
	Evidence  []string `json:"evidence"`
	NextSteps []string `json:"nextSteps"`
	// Systemic: the cause is not this model's (the hub, the token, the disk, the agent).
	Systemic bool `json:"systemic,omitempty"`
}

// SystemicCheck is one check of the systemic probe.
type SystemicCheck struct {
	Name   string `json:"name"` // hub, token, storage, agent
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Report is one model's test.
type Report struct {
	Model     string        `json:"model"`
	Namespace string        `json:"namespace,omitempty"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration"`
	Result    string        `json:"result"` // passed, failed, error (could not run)
	// Info describes the model as the run found it (architecture, size, capabilities, …).
	Info     []string        `json:"info,omitempty"`
	Steps    []Step          `json:"steps"`
	Cause    *Cause          `json:"cause,omitempty"`
	Systemic []SystemicCheck `json:"systemic,omitempty"`
	Facts    Facts           `json:"facts"`
}

// Report results and their exit codes.
const (
	ResultPassed = "passed" // exit 0
	ResultFailed = "failed" // exit 1
	ResultError  = "error"  // exit 2: the test could not run (no server, bad input)
)
