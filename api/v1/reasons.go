package v1

// The reasons and condition types that cross package boundaries, declared once.
//
// A reason is a CamelCase word in a status (status.reason, a condition's reason, an
// endpoint's reason) or an event saying why an object is where it is. One package writes
// it; the CLI (describe), `citadel test` (internal/modeltest) and any other reader compare
// against these constants instead of retyping the word. Reasons() lists them with who
// writes them and on which kind, so a test can demand that every problem reason has a
// diagnosis.
//
// "Terminal" below means the writer will not move on by itself: it takes a change to the
// spec, to another object (a secret, a runtime, the model) or to the server's
// configuration. A reason that is not terminal clears on its own (a retry, a restart,
// progress).
//
// The API error reasons of the admin API (ReasonNotFound, ReasonConflict, ReasonInvalid,
// ReasonBadRequest, ReasonUnauthorized, ReasonInternal, ReasonUnavailable,
// ReasonDeleteBlocked) are in admin.go; ReasonUnauthorized is also a pull reason.

// Condition types.
const (
	// CondAccepted: the spec is valid. BaseModel, ClusterBaseModel (the model agent; the
	// daemon while no agent runs).
	CondAccepted = "Accepted"
	// CondCredentialsReady: the token the download needs is at hand, or none is needed.
	// BaseModel, ClusterBaseModel (the model agent; the daemon while no agent runs).
	CondCredentialsReady = "CredentialsReady"
	// CondDownloaded: the files are on this host, verified. BaseModel, ClusterBaseModel
	// (the model agent; the daemon while no agent runs).
	CondDownloaded = "Downloaded"
	// CondThroughput: the download moves above the minimum rate. BaseModel,
	// ClusterBaseModel (the model agent), set only once a download was slow.
	CondThroughput = "Throughput"
	// CondModelReady: the service's model is Ready on this host. InferenceService (the
	// serving controller; the daemon while no controller runs).
	CondModelReady = "ModelReady"
	// CondRuntimeResolved: the runtime named in spec.runtime exists and is enabled.
	// InferenceService (the daemon, while no serving controller runs).
	CondRuntimeResolved = "RuntimeResolved"
	// CondRuntimeSelected: a runtime was selected for the service. InferenceService (the
	// serving controller).
	CondRuntimeSelected = "RuntimeSelected"
	// CondScheduled: the replicas were placed on GPUs. InferenceService (the serving
	// controller).
	CondScheduled = "Scheduled"
	// CondEngineReady: every replica's engine passes its readiness probe. InferenceService
	// (the serving controller).
	CondEngineReady = "EngineReady"
	// CondTargetsReady: the route's targets have ready replicas. Route (the gateway; the
	// daemon while no gateway runs).
	CondTargetsReady = "TargetsReady"
	// CondReady: the object does what it is for. Every kind with conditions (its writer).
	CondReady = "Ready"
)

// Reasons of a pull, written by the model agent into a BaseModel's or ClusterBaseModel's
// status (status.reason and the Downloaded and Ready conditions, phase Failed) from the
// internal/pull Error that names them.
const (
	// ReasonUnsupportedStorageURI: storageUri has a scheme or form Citadel cannot pull. Terminal.
	ReasonUnsupportedStorageURI = "UnsupportedStorageURI"
	// ReasonSecretNotFound: the secret storage.key names does not exist, or (as the agent
	// words it) lacks the key. Terminal: a change to the secret retries. Also written by the
	// daemon on condition CredentialsReady while no agent runs.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyMissing: the secret exists but has no such key. Terminal. Written by
	// the daemon (condition CredentialsReady) while no agent runs.
	ReasonSecretKeyMissing = "SecretKeyMissing"
	// ReasonUnauthorized (admin.go) is also the pull reason for a token the hub or
	// registry rejects (401/403). Terminal.

	// ReasonGatedRepo: the repository is gated and the token has not been granted access. Terminal.
	ReasonGatedRepo = "GatedRepo"
	// ReasonRepoNotFound: no such repository (or image). Terminal.
	ReasonRepoNotFound = "RepoNotFound"
	// ReasonRevisionNotFound: no such revision (branch, tag, commit). Terminal.
	ReasonRevisionNotFound = "RevisionNotFound"
	// ReasonEntryNotFound: a listed file cannot be fetched. Terminal.
	ReasonEntryNotFound = "EntryNotFound"
	// ReasonHostileFileName: a file name would write outside the model directory; refused. Terminal.
	ReasonHostileFileName = "HostileFileName"
	// ReasonConnectionFailed: nothing answers at the hub or registry address (or
	// HF_HUB_OFFLINE is set). Retried, except while offline.
	ReasonConnectionFailed = "ConnectionFailed"
	// ReasonDNSFailure: the hub or registry host does not resolve. Retried when temporary.
	ReasonDNSFailure = "DNSFailure"
	// ReasonRateLimited: the hub answered 429. Retried (after Retry-After when given).
	ReasonRateLimited = "RateLimited"
	// ReasonUpstreamError: the hub answered something unusable (5xx, a bad etag, sizes
	// that disagree). Retried on 5xx and 408; terminal otherwise.
	ReasonUpstreamError = "UpstreamError"
	// ReasonDownloadStalled: no bytes arrived for the stall period. Retried.
	ReasonDownloadStalled = "DownloadStalled"
	// ReasonDownloadIncomplete: a file's body ended short of its length. Retried.
	ReasonDownloadIncomplete = "DownloadIncomplete"
	// ReasonTruncatedBody: a file's body closed at the same byte, short of its length,
	// attempt after attempt. Retried.
	ReasonTruncatedBody = "TruncatedBody"
	// ReasonRangeIgnored: a warning event, not a status: the server ignores Range
	// requests, so the file is fetched in one stream, without split or resume.
	ReasonRangeIgnored = "RangeIgnored"
	// ReasonChecksumMismatch: a file's content did not match its hash twice. Terminal.
	ReasonChecksumMismatch = "ChecksumMismatch"
	// ReasonInsufficientStorage: the disk has (or kept) no room for the model. Terminal
	// when found before the download; retried when the disk filled up during it.
	ReasonInsufficientStorage = "InsufficientStorage"
	// ReasonStorageNotWritable: the cache, storage.path or local path cannot be written
	// (or read). Terminal.
	ReasonStorageNotWritable = "StorageNotWritable"
	// ReasonLocalPathNotFound: a local storageUri names a path that does not exist. Terminal.
	ReasonLocalPathNotFound = "LocalPathNotFound"
	// ReasonNoFiles: the repository, after include/exclude, or the local path has no files. Terminal.
	ReasonNoFiles = "NoFiles"
	// ReasonInternalError: a pull failed for a reason Citadel does not classify (a bug or
	// a missing configuration). Terminal. (Not the admin API's ReasonInternal, "Internal".)
	ReasonInternalError = "InternalError"
	// ReasonInvalidModelFiles: the files arrived intact but no engine can load them (a
	// hostile or damaged safetensors or GGUF header). Terminal.
	ReasonInvalidModelFiles = "InvalidModelFiles"
	// ReasonCancelled: the pull was cancelled (the model changed or was deleted, or the
	// agent stops). Not terminal: the next start resumes.
	ReasonCancelled = "Cancelled"
)

// Reasons the model agent writes on a BaseModel or ClusterBaseModel besides the pull's.
const (
	// ReasonQueued: every download slot is held by other models (phase Pending). Not terminal.
	ReasonQueued = "Queued"
	// ReasonResolving: resolving the revision and listing files (phase Downloading). Progress.
	ReasonResolving = "Resolving"
	// ReasonDownloading: bytes are arriving (phase Downloading). Progress.
	ReasonDownloading = "Downloading"
	// ReasonVerifying: all bytes received; checksums are being verified (phase Verifying). Progress.
	ReasonVerifying = "Verifying"
	// ReasonPlacing: verified; files are being placed (phase Verifying). Progress.
	ReasonPlacing = "Placing"
	// ReasonReady: the model is on this host (phase Ready; condition Ready). Success.
	ReasonReady = "Ready"
	// ReasonDownloaded: condition Downloaded is True. Success.
	ReasonDownloaded = "Downloaded"
	// ReasonAccepted: condition Accepted is True (also the daemon's, while no agent
	// runs). Success.
	ReasonAccepted = "Accepted"
	// ReasonSecretFound: condition CredentialsReady is True: the token comes from a secret
	// (the agent; the daemon while no agent runs). Success.
	ReasonSecretFound = "SecretFound"
	// ReasonNoCredentialsNeeded: condition CredentialsReady is True: the download is
	// anonymous (the agent; the daemon while no agent runs). Success.
	ReasonNoCredentialsNeeded = "NoCredentialsNeeded"
	// ReasonSlowDownload: condition Throughput is False: the download moves below the minimum rate.
	// Not terminal.
	ReasonSlowDownload = "SlowDownload"
	// ReasonNormal: condition Throughput is True again. Success.
	ReasonNormal = "Normal"
	// ReasonModelDisabled: spec.disabled is true (phase Pending). Terminal. Also written by
	// the daemon (model, while no agent runs), runtime selection and the serving controller
	// (on an InferenceService whose model is disabled, phase Failed).
	ReasonModelDisabled = "ModelDisabled"
	// ReasonModelFilesMissing: a Ready model's files are gone from this host; the agent
	// fetches them again. Not terminal. Also the serving controller's, on an
	// InferenceService (phase Pending) whose model's path is empty or gone.
	ReasonModelFilesMissing = "ModelFilesMissing"
	// ReasonMetadataFilled: an event: spec fields were filled from the model's files.
	ReasonMetadataFilled = "MetadataFilled"
	// ReasonStoragePathNotUsed: an event: storage.path was not made a view of the model.
	ReasonStoragePathNotUsed = "StoragePathNotUsed"
	// ReasonRetryRequested: an event: the retry annotation asked for a new attempt.
	ReasonRetryRequested = "RetryRequested"
)

// Reasons the daemon writes while no component downstream of the store owns the status
// (no model agent, serving controller or gateway runs).
const (
	// ReasonAwaitingAgent: a model waits for a model agent (citadel serve --agent=false).
	// Terminal: it takes a server that runs one. In Kubernetes, the controller's: live agents
	// match the model but none has reported it yet (not terminal there).
	ReasonAwaitingAgent = "AwaitingAgent"
	// ReasonAwaitingController: a service's model and runtime are in place, but no serving
	// controller runs. Terminal.
	ReasonAwaitingController = "AwaitingController"
	// ReasonModelNotFound: the service names a model that does not exist (phase Pending).
	// Terminal. Also the serving controller's.
	ReasonModelNotFound = "ModelNotFound"
	// ReasonModelNotReady: the service's model is not Ready yet (phase Pending). Not
	// terminal. Also the serving controller's.
	ReasonModelNotReady = "ModelNotReady"
	// ReasonModelReady: condition ModelReady is True (the daemon and the serving controller). Success.
	ReasonModelReady = "ModelReady"
	// ReasonRuntimeFound: condition RuntimeResolved is True. Success.
	ReasonRuntimeFound = "RuntimeFound"
	// ReasonNoGateway: a route whose targets are ready, but no gateway serves it
	// (--gateway-addr off). Terminal.
	ReasonNoGateway = "NoGateway"
)

// Reasons the Kubernetes controller (internal/kube/controller) writes on a BaseModel or
// ClusterBaseModel, whose status it aggregates from the per-node agents' entries. It also
// writes AwaitingAgent (a live agent on a matching node has not reported the model yet)
// and copies the nodes' pull and agent reasons above.
const (
	// ReasonNoAgentOnMatchingNodes: no node the model's storage.nodeSelector and required
	// nodeAffinity match has a live Citadel agent (phase Pending), or no node matches at
	// all. Terminal: it takes an agent on such a node (the chart's agent.nodeSelector and
	// agent.affinity) or another node selection.
	ReasonNoAgentOnMatchingNodes = "NoAgentOnMatchingNodes"
	// ReasonAgentNotReporting: the agents of the model's nodes stopped renewing their
	// Leases (phase Pending); their last entries are kept. Not terminal: it clears when an
	// agent reports again. Also an event when a deleted model's copy is left on such a node.
	ReasonAgentNotReporting = "AgentNotReporting"
)

// Reasons of runtime selection (internal/selection), written by the serving controller on
// an InferenceService (phase Failed; Pending while a model's metadata is still being
// filled), and in part by the daemon.
const (
	// ReasonNoSupportingRuntime: no enabled runtime supports the model's format and
	// architecture. Terminal.
	ReasonNoSupportingRuntime = "NoSupportingRuntime"
	// ReasonRuntimeNotFound: spec.runtime names a runtime that does not exist. Terminal.
	// Also the daemon's.
	ReasonRuntimeNotFound = "RuntimeNotFound"
	// ReasonRuntimeDisabled: spec.runtime names a disabled runtime. Terminal. Also the
	// daemon's, on the service and on the runtime itself (phase Disabled).
	ReasonRuntimeDisabled = "RuntimeDisabled"
	// ReasonRuntimeIncompatible: spec.runtime names a runtime that cannot serve the model. Terminal.
	ReasonRuntimeIncompatible = "RuntimeIncompatible"
	// ReasonModelDisabled (above) is also a selection reason.
)

// Reasons the serving controller writes on an InferenceService.
const (
	// ReasonRuntimeSelectionFailed: runtime selection failed for a reason it does not
	// name (phase Failed). Terminal.
	ReasonRuntimeSelectionFailed = "RuntimeSelectionFailed"
	// ReasonModelUnreadable: the model's files cannot be read to size it (phase Failed). Terminal.
	ReasonModelUnreadable = "ModelUnreadable"
	// ReasonModelNotInOllamaStore: an Ollama-format model is missing from the store the
	// shared Ollama serves (phase Failed). Terminal.
	ReasonModelNotInOllamaStore = "ModelNotInOllamaStore"
	// ReasonEngineUnknown: the runtime names an engine Citadel has no adapter for (phase Failed). Terminal.
	ReasonEngineUnknown = "EngineUnknown"
	// ReasonInvalidEngineArgs: the runtime's or service's engine arguments are invalid
	// (phase Failed). Terminal.
	ReasonInvalidEngineArgs = "InvalidEngineArgs"
	// ReasonRuntimeHasNoEngine: the runtime has neither engineConfig.runner nor engine
	// (phase Failed). Terminal.
	ReasonRuntimeHasNoEngine = "RuntimeHasNoEngine"
	// ReasonUnschedulable: the replicas do not fit the free GPUs (phase Scheduling). Not
	// terminal: placement is tried again as GPUs free up.
	ReasonUnschedulable = "Unschedulable"
	// ReasonEngineNotFound: the engine's program is not installed on this host (phase Failed). Terminal.
	ReasonEngineNotFound = "EngineNotFound"
	// ReasonEngineLaunchFailed: the engine could not be launched (phase Failed). Terminal.
	ReasonEngineLaunchFailed = "EngineLaunchFailed"
	// ReasonRuntimeSelected: condition RuntimeSelected is True. Success.
	ReasonRuntimeSelected = "RuntimeSelected"
	// ReasonScheduled: condition Scheduled is True. Success.
	ReasonScheduled = "Scheduled"
	// ReasonEngineReady: every replica is ready (phase Ready; condition EngineReady). Success.
	ReasonEngineReady = "EngineReady"
	// ReasonWaiting: a condition after the one the service is stuck at is Unknown. Progress.
	ReasonWaiting = "Waiting"
	// ReasonEngineStarted: an event: a replica's engine (or the shared engine) was started.
	ReasonEngineStarted = "EngineStarted"
	// ReasonChanged: an event whose writer gave no reason.
	ReasonChanged = "Changed"
	// EngineEventPrefix: the serving controller records each change of an engine process
	// as an event whose reason is this prefix and the supervisor's reason (or phase),
	// e.g. "EngineExited", "EngineKillFailed".
	EngineEventPrefix = "Engine"
)

// Reasons of an engine process (internal/supervisor), in an InferenceService's
// status.endpoints[].reason and, for the worst replica, status.reason (phase Starting or
// Degraded) as the serving controller copies them.
const (
	// ReasonStarted: the process was started (engine phase Starting). Progress.
	ReasonStarted = "Started"
	// ReasonStartupProbeSucceeded: the startup probe passed (Starting, awaiting readiness, or Ready). Progress.
	ReasonStartupProbeSucceeded = "StartupProbeSucceeded"
	// ReasonReadinessProbeSucceeded: the readiness probe passed (Ready). Success.
	ReasonReadinessProbeSucceeded = "ReadinessProbeSucceeded"
	// ReasonRunning: running, and no probe says otherwise (Ready). Success.
	ReasonRunning = "Running"
	// ReasonReadinessFailed: was Ready, now fails its readiness probe (Unready). Not terminal.
	ReasonReadinessFailed = "ReadinessFailed"
	// ReasonExited: the process ended on its own (Restarting, CrashLoopBackOff). Not
	// terminal: it is restarted with back-off.
	ReasonExited = "Exited"
	// ReasonStartupTimeout: killed, the startup probe kept failing (Restarting,
	// CrashLoopBackOff). Not terminal.
	ReasonStartupTimeout = "StartupTimeout"
	// ReasonLivenessFailed: killed, the liveness probe kept failing (Restarting,
	// CrashLoopBackOff). Not terminal.
	ReasonLivenessFailed = "LivenessFailed"
	// ReasonStartFailed: the process could not be started (Restarting, CrashLoopBackOff). Not terminal.
	ReasonStartFailed = "StartFailed"
	// ReasonPortInUse: another process holds the port (Restarting, CrashLoopBackOff). Not terminal.
	ReasonPortInUse = "PortInUse"
	// ReasonStopRequested: Stop was called (Stopping, Stopped).
	ReasonStopRequested = "StopRequested"
	// ReasonContextDone: the context the process was started under ended (Stopping, Stopped).
	ReasonContextDone = "ContextDone"
	// ReasonKillFailed: processes survived SIGKILL (Failed). Terminal.
	ReasonKillFailed = "KillFailed"
)

// Phases of an engine process (internal/supervisor), in an InferenceService's
// status.endpoints[].phase; the serving controller copies the worst replica's into
// status.reason when the supervisor gave no reason.
const (
	EnginePhaseStarting         = "Starting"         // running; startup or readiness probe not passed yet
	EnginePhaseReady            = "Ready"            // running and passing its readiness probe (or has none)
	EnginePhaseUnready          = "Unready"          // running, was Ready, now failing its readiness probe
	EnginePhaseRestarting       = "Restarting"       // being killed after a failure, or waiting out the back-off
	EnginePhaseCrashLoopBackOff = "CrashLoopBackOff" // as Restarting, after ≥3 failures in a row without becoming Ready
	EnginePhaseStopping         = "Stopping"         // stop requested; waiting for the process group to go
	EnginePhaseStopped          = "Stopped"          // stopped; no process left
	EnginePhaseFailed           = "Failed"           // gave up: processes survived SIGKILL
)

// Reasons the gateway writes on a Route (and the daemon, while no gateway runs).
const (
	// ReasonServing: the gateway serves every target of the route (phase Ready). Success.
	ReasonServing = "Serving"
	// ReasonServiceNotFound: a target names an InferenceService that does not exist
	// (phase Degraded). Terminal. Also the daemon's.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonRouteProblems: the route's spec has problems the gateway reported when it built
	// its table (phase Degraded). Terminal.
	ReasonRouteProblems = "RouteProblems"
	// ReasonNoReadyTargets: a target has no ready replica (phase Degraded): the others
	// serve, and a name whose targets are all down sends requests to its fallback. Not
	// terminal. Also the daemon's.
	ReasonNoReadyTargets = "NoReadyTargets"
)

// ReasonInfo describes one reason of the catalogue Reasons returns.
type ReasonInfo struct {
	Name string
	// Kinds are the kinds whose status or events carry the reason.
	Kinds []string
	// Writers are the packages that write it (the owner first) and Definer, when
	// different, the package whose values name it (internal/pull's Error, internal/selection's Error).
	Writers []string
	Definer string
	// Terminal: the writer will not move on by itself (see the package comment above).
	// Reasons that are sometimes retried (UpstreamError, InsufficientStorage) are not.
	Terminal bool
	// Problem: the reason says the object failed or is stuck; `citadel test` owes a
	// diagnosis for it. Progress, success and warnings (SlowDownload, RangeIgnored) are not
	// problems.
	Problem bool
	// Event: the reason is written only as an event's, never into a status.
	Event bool
}

// Package paths of the writers, as ReasonInfo names them.
const (
	WriterAgent          = "internal/agent"
	WriterDaemon         = "internal/daemon"
	WriterServing        = "internal/serving"
	WriterGateway        = "internal/gateway"
	WriterPull           = "internal/pull"
	WriterSelection      = "internal/selection"
	WriterSupervisor     = "internal/supervisor"
	WriterKubeController = "internal/kube/controller"
)

// Reasons lists every status and event reason above (not the admin API's error reasons
// except Unauthorized, which is also a pull reason), in declaration order. The slice is new
// on every call.
func Reasons() []ReasonInfo {
	models := []string{KindBaseModel, KindClusterBaseModel}
	svc := []string{KindInferenceService}
	route := []string{KindRoute}
	// pullR: a pull reason the agent writes from pull's Error.
	pullR := func(name string, terminal bool) ReasonInfo {
		return ReasonInfo{Name: name, Kinds: models, Writers: []string{WriterAgent}, Definer: WriterPull, Terminal: terminal, Problem: true}
	}
	agent := func(name string, problem, terminal bool) ReasonInfo {
		return ReasonInfo{Name: name, Kinds: models, Writers: []string{WriterAgent}, Terminal: terminal, Problem: problem}
	}
	serving := func(name string, problem, terminal bool) ReasonInfo {
		return ReasonInfo{Name: name, Kinds: svc, Writers: []string{WriterServing}, Terminal: terminal, Problem: problem}
	}
	sel := func(name string, writers ...string) ReasonInfo {
		return ReasonInfo{Name: name, Kinds: svc, Writers: append([]string{WriterServing}, writers...), Definer: WriterSelection, Terminal: true, Problem: true}
	}
	sup := func(name string, problem, terminal bool) ReasonInfo {
		return ReasonInfo{Name: name, Kinds: svc, Writers: []string{WriterServing}, Definer: WriterSupervisor, Terminal: terminal, Problem: problem}
	}
	gw := func(name string, problem, terminal bool, writers ...string) ReasonInfo {
		return ReasonInfo{Name: name, Kinds: route, Writers: append([]string{WriterGateway}, writers...), Terminal: terminal, Problem: problem}
	}
	event := func(r ReasonInfo) ReasonInfo { r.Event = true; return r }
	withWriters := func(r ReasonInfo, w ...string) ReasonInfo { r.Writers = append(r.Writers, w...); return r }
	withKinds := func(r ReasonInfo, k ...string) ReasonInfo {
		r.Kinds = append(append([]string(nil), r.Kinds...), k...)
		return r
	}
	return []ReasonInfo{
		// pull
		pullR(ReasonUnsupportedStorageURI, true),
		withWriters(pullR(ReasonSecretNotFound, true), WriterDaemon),
		{Name: ReasonSecretKeyMissing, Kinds: models, Writers: []string{WriterDaemon}, Terminal: true, Problem: true},
		pullR(ReasonUnauthorized, true),
		pullR(ReasonGatedRepo, true),
		pullR(ReasonRepoNotFound, true),
		pullR(ReasonRevisionNotFound, true),
		pullR(ReasonEntryNotFound, true),
		pullR(ReasonHostileFileName, true),
		pullR(ReasonConnectionFailed, false),
		pullR(ReasonDNSFailure, false),
		pullR(ReasonRateLimited, false),
		pullR(ReasonUpstreamError, false),
		pullR(ReasonDownloadStalled, false),
		pullR(ReasonDownloadIncomplete, false),
		pullR(ReasonTruncatedBody, false),
		{Name: ReasonRangeIgnored, Kinds: models, Writers: []string{WriterAgent}, Definer: WriterPull, Event: true},
		pullR(ReasonChecksumMismatch, true),
		pullR(ReasonInsufficientStorage, false),
		pullR(ReasonStorageNotWritable, true),
		pullR(ReasonLocalPathNotFound, true),
		pullR(ReasonNoFiles, true),
		pullR(ReasonInternalError, true),
		pullR(ReasonInvalidModelFiles, true),
		{Name: ReasonCancelled, Kinds: models, Writers: []string{WriterAgent}, Definer: WriterPull},
		// the model agent
		agent(ReasonQueued, false, false),
		agent(ReasonResolving, false, false),
		agent(ReasonDownloading, false, false),
		agent(ReasonVerifying, false, false),
		agent(ReasonPlacing, false, false),
		agent(ReasonReady, false, false),
		agent(ReasonDownloaded, false, false),
		withWriters(agent(ReasonAccepted, false, false), WriterDaemon),
		withWriters(agent(ReasonSecretFound, false, false), WriterDaemon),
		withWriters(agent(ReasonNoCredentialsNeeded, false, false), WriterDaemon),
		agent(ReasonSlowDownload, false, false),
		agent(ReasonNormal, false, false),
		withKinds(withWriters(agent(ReasonModelDisabled, true, true), WriterDaemon, WriterServing, WriterSelection), KindInferenceService),
		withKinds(withWriters(agent(ReasonModelFilesMissing, true, false), WriterServing), KindInferenceService),
		event(agent(ReasonMetadataFilled, false, false)),
		event(agent(ReasonStoragePathNotUsed, false, false)),
		event(agent(ReasonRetryRequested, false, false)),
		// the daemon
		{Name: ReasonAwaitingAgent, Kinds: models, Writers: []string{WriterDaemon, WriterKubeController}, Terminal: true, Problem: true},
		{Name: ReasonAwaitingController, Kinds: svc, Writers: []string{WriterDaemon}, Terminal: true, Problem: true},
		withWriters(serving(ReasonModelNotFound, true, true), WriterDaemon),
		withWriters(serving(ReasonModelNotReady, true, false), WriterDaemon),
		withWriters(serving(ReasonModelReady, false, false), WriterDaemon),
		{Name: ReasonRuntimeFound, Kinds: svc, Writers: []string{WriterDaemon}},
		{Name: ReasonNoGateway, Kinds: route, Writers: []string{WriterDaemon}, Terminal: true, Problem: true},
		// the Kubernetes controller
		{Name: ReasonNoAgentOnMatchingNodes, Kinds: models, Writers: []string{WriterKubeController}, Terminal: true, Problem: true},
		{Name: ReasonAgentNotReporting, Kinds: models, Writers: []string{WriterKubeController}, Problem: true},
		// runtime selection
		sel(ReasonNoSupportingRuntime),
		sel(ReasonRuntimeNotFound, WriterDaemon),
		withKinds(sel(ReasonRuntimeDisabled, WriterDaemon), KindServingRuntime, KindClusterServingRuntime),
		sel(ReasonRuntimeIncompatible),
		// the serving controller
		serving(ReasonRuntimeSelectionFailed, true, true),
		serving(ReasonModelUnreadable, true, true),
		serving(ReasonModelNotInOllamaStore, true, true),
		serving(ReasonEngineUnknown, true, true),
		serving(ReasonInvalidEngineArgs, true, true),
		serving(ReasonRuntimeHasNoEngine, true, true),
		serving(ReasonUnschedulable, true, false),
		serving(ReasonEngineNotFound, true, true),
		serving(ReasonEngineLaunchFailed, true, true),
		serving(ReasonRuntimeSelected, false, false),
		serving(ReasonScheduled, false, false),
		serving(ReasonEngineReady, false, false),
		serving(ReasonWaiting, false, false),
		event(serving(ReasonEngineStarted, false, false)),
		event(serving(ReasonChanged, false, false)),
		// the supervisor's, copied by the serving controller
		sup(ReasonStarted, false, false),
		sup(ReasonStartupProbeSucceeded, false, false),
		sup(ReasonReadinessProbeSucceeded, false, false),
		sup(ReasonRunning, false, false),
		sup(ReasonReadinessFailed, true, false),
		sup(ReasonExited, true, false),
		sup(ReasonStartupTimeout, true, false),
		sup(ReasonLivenessFailed, true, false),
		sup(ReasonStartFailed, true, false),
		sup(ReasonPortInUse, true, false),
		sup(ReasonStopRequested, false, false),
		sup(ReasonContextDone, false, false),
		sup(ReasonKillFailed, true, true),
		// the gateway
		gw(ReasonServing, false, false),
		gw(ReasonServiceNotFound, true, true, WriterDaemon),
		gw(ReasonRouteProblems, true, true),
		gw(ReasonNoReadyTargets, true, false, WriterDaemon),
	}
}

// ConditionTypeInfo describes one condition type of the catalogue ConditionTypes returns.
type ConditionTypeInfo struct {
	Name    string
	Kinds   []string
	Writers []string // the owner first
}

// ConditionTypes lists every condition type above, in declaration order.
func ConditionTypes() []ConditionTypeInfo {
	models := []string{KindBaseModel, KindClusterBaseModel}
	svc := []string{KindInferenceService}
	return []ConditionTypeInfo{
		{CondAccepted, models, []string{WriterAgent, WriterDaemon}},
		{CondCredentialsReady, models, []string{WriterAgent, WriterDaemon}},
		{CondDownloaded, models, []string{WriterAgent, WriterDaemon}},
		{CondThroughput, models, []string{WriterAgent}},
		{CondModelReady, svc, []string{WriterServing, WriterDaemon}},
		{CondRuntimeResolved, svc, []string{WriterDaemon}},
		{CondRuntimeSelected, svc, []string{WriterServing}},
		{CondScheduled, svc, []string{WriterServing}},
		{CondEngineReady, svc, []string{WriterServing}},
		{CondTargetsReady, []string{KindRoute}, []string{WriterGateway, WriterDaemon}},
		{CondReady, []string{KindBaseModel, KindClusterBaseModel, KindInferenceService, KindRoute}, []string{WriterAgent, WriterServing, WriterGateway, WriterDaemon}},
	}
}
