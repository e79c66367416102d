package modeltest

// The cause catalogue of the download: what each reason the model agent (internal/pull,
// internal/agent) or the daemon writes on a model means and what fixes it.

import (
	"fmt"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
)

// modelRow is one row of the download's cause catalogue: a reason the model agent
// (internal/pull, internal/agent) or the daemon writes on a model, and its cause.
type modelRow struct {
	// code is the cause's code; "" for the reason's own name.
	code string
	// when says in which state of the model the reason explains it.
	when rowWhen
	// explain fills the cause's summary and next steps (and may add evidence); the cause
	// holds the common evidence: the model's status, its warning events and its progress.
	explain func(d *diag, x *modelCtx, c *Cause)
	// cause, instead of explain, builds the whole cause.
	cause func(d *diag, x *modelCtx) *Cause
}

// rowWhen: when a reason in a model's status explains it.
type rowWhen int

const (
	whenFailed  rowWhen = iota // in phase Failed (else a newer attempt may have moved on), or as a warning event
	whenAlways                 // in any phase: nothing moves until it is fixed
	whenWaiting                // in any phase, after the download's own timeout and failure events
)

// modelCtx is what a row explains from: the reason, the message its writer gave, and what
// the report says of the model.
type modelCtx struct {
	reason, msg                string
	model, uri, repo, describe string
	ns, name, key              string // the secret that holds the model's token
}

// modelCauses is the download's cause catalogue, keyed by reason. TestEveryReasonHasADiagnosis
// fails when a problem reason of api/v1 on a model has neither a row here nor in serviceCauses.
var modelCauses = map[string]modelRow{
	v1.ReasonSecretNotFound: {when: whenAlways, explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The secret %s/%s named by spec.storage.key of model %s does not exist, so the download cannot start.", x.ns, x.name, x.model)
		c.NextSteps = []string{
			"export HF_TOKEN with a token that can read the repository, then: " + tokenSecretCmd(x.ns, x.name, x.key),
			"or remove spec.storage.key from the model if the repository is public, and re-apply it",
			x.describe,
		}
	}},
	v1.ReasonSecretKeyMissing: {when: whenAlways, explain: func(d *diag, x *modelCtx, c *Cause) {
		has := ""
		if lf := d.f.ModelFailure; lf != nil && lf.Secret != nil && lf.Secret.Found {
			has = " (it has: " + strings.Join(lf.Secret.Keys, ", ") + ")"
		}
		c.Summary = fmt.Sprintf("The secret %s/%s exists but has no key %q%s, so model %s has no token.", x.ns, x.name, x.key, has, x.model)
		c.NextSteps = []string{
			"export HF_TOKEN with the token, then (create or update adds the key): " + tokenSecretCmd(x.ns, x.name, x.key),
			"or set spec.storage.parameters.secretKey in the model to the key that holds the token, and re-apply it",
			x.describe,
		}
	}},
	v1.ReasonUnauthorized: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The hub rejected the token of model %s (missing, invalid or expired).", x.model)
		c.NextSteps = []string{
			fmt.Sprintf("check the token: curl -s -H \"Authorization: Bearer $HF_TOKEN\" %s/api/whoami-v2 (200 = valid, 401 = rejected)", d.hubEndpoint()),
			fmt.Sprintf("create a new read token at %s/settings/tokens, export it as HF_TOKEN, then: %s", d.hubEndpoint(), tokenSecretCmd(x.ns, x.name, x.key)),
			x.describe,
		}
	}},
	v1.ReasonGatedRepo: {explain: func(d *diag, x *modelCtx, c *Cause) {
		page := d.hubEndpoint() + "/" + x.repo
		if lf := d.failure(v1.ReasonGatedRepo); lf != nil && lf.AcceptURL != "" {
			page = lf.AcceptURL
		}
		c.Summary = fmt.Sprintf("Repository %s is gated: the token's account has not accepted its license.", orDefault(x.repo, x.uri))
		c.NextSteps = []string{
			fmt.Sprintf("open %s, sign in as the token's account and accept the license (approval may take a while)", page),
			"make sure spec.storage.key names a token of that account (export it as HF_TOKEN): " + tokenSecretCmd(x.ns, x.name, x.key),
			"then re-apply the model (or update its secret): the agent does not retry this on its own",
		}
	}},
	v1.ReasonRepoNotFound: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("Repository %s does not exist on the hub, or it is private and the token cannot read it.", orDefault(x.repo, x.uri))
		c.NextSteps = []string{
			fmt.Sprintf("check the name in spec.storage.storageUri (%s): curl -sS -o /dev/null -w '%%{http_code}\\n' %s/api/models/%s (404: no such repository)", x.uri, d.hubEndpoint(), x.repo),
			"if the repository is private, give a token that can read it (export it as HF_TOKEN): " + tokenSecretCmd(x.ns, x.name, x.key),
			"fix spec.storage.storageUri and re-apply the model (a change to its secret retries it by itself)",
		}
	}},
	v1.ReasonRevisionNotFound: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The revision in %s does not exist in the repository.", x.uri)
		c.NextSteps = []string{
			fmt.Sprintf("list the branches and tags at %s/%s/tree/main, then fix the @revision of spec.storage.storageUri and re-apply", d.hubEndpoint(), x.repo),
		}
	}},
	v1.ReasonEntryNotFound: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("A file the repository lists is missing from %s at the requested revision.", orDefault(x.repo, x.uri))
		c.NextSteps = []string{fmt.Sprintf("check the files at %s/%s; pin another revision in spec.storage.storageUri", d.hubEndpoint(), x.repo), x.describe}
	}},
	v1.ReasonConnectionFailed: {code: CodeHubUnreachable, explain: (*diag).hubUnreachable},
	v1.ReasonDNSFailure:       {code: CodeHubUnreachable, explain: (*diag).hubUnreachable},
	v1.ReasonUpstreamError: {explain: func(d *diag, x *modelCtx, c *Cause) { // a 5xx is HubUnreachable: see modelRowOf
		c.Summary = "The hub or mirror answered something the agent cannot use."
		c.NextSteps = []string{"check HF_ENDPOINT of `citadel serve` and that no proxy rewrites the hub's responses", x.describe}
	}},
	v1.ReasonRateLimited: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The hub rate-limited the download of model %s.", x.model)
		c.NextSteps = []string{
			"give the model a token (spec.storage.key) for a higher limit (export it as HF_TOKEN): " + tokenSecretCmd(x.ns, x.name, x.key),
			"lower `citadel serve --max-downloads` so fewer requests run at once; the agent retries after the server's Retry-After",
		}
	}},
	v1.ReasonDownloadStalled: {code: CodeDownloadStalled, cause: func(d *diag, x *modelCtx) *Cause { return d.downloadStalled(x.msg) }},
	v1.ReasonDownloadIncomplete: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = "The connection kept ending before files were complete (truncated bodies)."
		c.NextSteps = []string{"check the network path (proxy, load balancer idle timeouts) to the hub", x.describe}
	}},
	v1.ReasonTruncatedBody: {explain: func(d *diag, x *modelCtx, c *Cause) {
		file := d.fileOf(x.reason)
		c.Summary = fmt.Sprintf("%s keeps ending at the same byte, short of its length: the hub, a mirror or a proxy in between cuts it there, so retrying does not help.", orDefault(file, "A file"))
		c.NextSteps = []string{
			"if a mirror or proxy sits between (HF_ENDPOINT, HTTPS_PROXY), try without it: it may truncate large files",
			fmt.Sprintf("fetch the file directly from the server's host and compare the length: curl -sSL -o /dev/null -w '%%{http_code} %%{size_download} bytes\\n' %s", d.fileURL(file)),
			x.describe,
		}
	}},
	v1.ReasonChecksumMismatch: {explain: func(d *diag, x *modelCtx, c *Cause) {
		file := d.fileOf(x.reason)
		c.Summary = fmt.Sprintf("%s was downloaded twice and both times its content did not match the hub's hash: the source serves corrupt data.", orDefault(file, "A file"))
		c.NextSteps = []string{
			"if a mirror or proxy sits between (HF_ENDPOINT, HTTPS_PROXY), try without it: it may rewrite or truncate files",
			fmt.Sprintf("report it to the repository owner (%s/%s/discussions)", d.hubEndpoint(), x.repo),
			"re-apply the model to try again",
		}
	}},
	v1.ReasonInsufficientStorage: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = "The disk does not have room for the model."
		if lf := d.failure(x.reason); lf != nil && lf.BytesNeeded > 0 {
			need, free := modelinfo.FormatBytes(lf.BytesNeeded), modelinfo.FormatBytes(lf.BytesFree)
			c.Summary = fmt.Sprintf("The model needs %s but only %s is free on %s.", need, free, lf.Directory)
			c.Evidence = append(c.Evidence, fmt.Sprintf("need %s, free %s on %s", need, free, lf.Directory))
		}
		c.NextSteps = []string{
			"df -h " + orDefault(d.storagePath(), "$CITADEL_DATA_DIR"),
			"free space (citadel delete model NAME removes models no longer needed), or move the cache to a larger disk: citadel serve --data-dir DIR (or HF_HUB_CACHE)",
			"then re-apply the model: partial files are kept and resumed",
		}
	}},
	v1.ReasonStorageNotWritable: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The model's directory %s is not writable by citadel.", orDefault(d.storagePath(), "(the cache)"))
		c.NextSteps = []string{
			fmt.Sprintf("ls -ld %s; make it writable by the user that runs citadel serve, or set another spec.storage.path", orDefault(d.storagePath(), "$CITADEL_DATA_DIR")),
		}
	}},
	v1.ReasonInvalidModelFiles: {explain: (*diag).unusableFiles},
	v1.ReasonHostileFileName:   {explain: (*diag).unusableFiles},
	v1.ReasonNoFiles: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = "The source has no files to download (or none match the include/exclude filters)."
		c.NextSteps = []string{fmt.Sprintf("check %s and the model's filters", x.uri), x.describe}
	}},
	v1.ReasonLocalPathNotFound: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The local path of %s does not exist on this host.", x.uri)
		c.NextSteps = []string{"copy the model there, or fix spec.storage.storageUri"}
	}},
	v1.ReasonUnsupportedStorageURI: {explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The storage URI %s cannot be pulled by this agent.", x.uri)
		c.NextSteps = []string{"use hf://org/repo[@revision], ollama://name[:tag], file:///dir or local:///dir in spec.storage.storageUri"}
	}},
	v1.ReasonInternalError: {code: CodeAgentInternalError, explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The model agent failed the download of %s in a way it does not classify: %s.", x.model, orDefault(x.msg, x.reason))
		c.NextSteps = []string{
			"the server's log says more: citadel serve --log-level debug, then retry: " + d.retryCmd(),
			"if the message names a missing setting (the cache or Ollama directory), fix `citadel serve`'s flags",
			x.describe,
		}
	}},
	v1.ReasonModelFilesMissing: {when: whenWaiting, explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The files of model %s were removed from this host after it was Ready; the agent fetches them again.", x.model)
		if d.f.ModelPhase == v1.ModelFailed {
			c.Summary = fmt.Sprintf("The files of model %s were removed from this host after it was Ready, and fetching them again failed.", x.model)
		}
		c.NextSteps = []string{
			"find what deletes files under the model's directory (a cleanup job, another tool sharing the cache) and stop it",
			x.describe,
			"once the cause of the failed fetch is fixed: " + d.retryCmd(),
		}
	}},
	v1.ReasonAwaitingAgent: {code: CodeNoModelAgent, when: whenWaiting, cause: func(d *diag, _ *modelCtx) *Cause { return d.noAgent() }},
	v1.ReasonQueued:        {code: CodeDownloadQueued, when: whenWaiting, cause: func(d *diag, _ *modelCtx) *Cause { return d.queued() }},
	// Kubernetes mode: the controller's, from the agents' Leases.
	v1.ReasonNoAgentOnMatchingNodes: {when: whenWaiting, explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("No Citadel agent runs on a node that model %s is meant for, so no node downloads it.", x.model)
		c.NextSteps = []string{
			"see which nodes run agents: kubectl get leases -A | grep citadel-agent- (one Lease per node, renewed every 10 s)",
			"make the chart's agent.nodeSelector and agent.affinity cover the model's nodes, or change the model's spec.storage.nodeSelector/nodeAffinity",
			x.describe,
		}
	}},
	v1.ReasonAgentNotReporting: {when: whenWaiting, explain: func(d *diag, x *modelCtx, c *Cause) {
		c.Summary = fmt.Sprintf("The Citadel agents on the nodes of model %s stopped renewing their Leases, so nothing reports its download.", x.model)
		c.NextSteps = []string{
			"find the agent pod of each node the message names (kubectl get pods -A -o wide --field-selector spec.nodeName=NODE) and read its kubectl describe and kubectl logs",
			x.describe,
		}
	}},
}

// modelRowOf is the row that explains reason with msg and the facts of its failure (lf, nil
// if none): the agent words a missing key as SecretNotFound (its secret was found, without
// the key), and a hub that answers 5xx or 408 is unreachable rather than odd.
func modelRowOf(reason, msg string, lf *v1.DownloadFailure) (modelRow, string, bool) {
	if lf != nil && lf.Reason != reason {
		lf = nil
	}
	switch {
	case reason == v1.ReasonSecretNotFound && lf != nil && lf.Secret != nil && lf.Secret.Found:
		reason = v1.ReasonSecretKeyMissing
	case reason == v1.ReasonUpstreamError && lf != nil && (lf.HTTPStatus >= 500 || lf.HTTPStatus == 408):
		reason = v1.ReasonConnectionFailed
	}
	row, ok := modelCauses[reason]
	return row, orDefault(row.code, reason), ok
}

// modelCause builds the cause of a model reason with its message; prefix, when set,
// introduces the reason and message as a line of evidence (they come from an event).
func (d *diag) modelCause(reason, msg, prefix string) *Cause {
	f := d.f
	row, code, _ := modelRowOf(reason, msg, f.ModelFailure)
	uri, repo := d.storageURI()
	x := &modelCtx{reason: reason, msg: msg, model: orDefault(f.Model, d.r.Model), uri: uri, repo: repo, describe: d.describeModel()}
	x.ns, x.name, x.key = d.secretRef(msg)
	if row.cause != nil {
		return row.cause(d, x)
	}
	c := &Cause{Code: code, Step: StepDownload}
	c.Evidence = append(c.Evidence, d.modelStatusLine())
	if prefix != "" {
		c.Evidence = append(c.Evidence, prefix+reason+": "+msg)
	}
	c.Evidence = append(c.Evidence, d.modelEventLines()...)
	c.Evidence = append(c.Evidence, d.progressLine())
	row.explain(d, x, c)
	return c
}

// hubUnreachable explains a hub that cannot be reached or fails.
func (d *diag) hubUnreachable(x *modelCtx, c *Cause) {
	c.Summary = fmt.Sprintf("The hub %s could not be reached (or failed) while downloading model %s.", d.hubEndpoint(), x.model)
	c.NextSteps = []string{
		fmt.Sprintf("from the server's host: curl -sS -o /dev/null -w '%%{http_code}\\n' %s/api/models?limit=1", d.hubEndpoint()),
		"check DNS, the proxy (HTTPS_PROXY / NO_PROXY) and HF_ENDPOINT of `citadel serve`; unset HF_HUB_OFFLINE",
		"once the hub answers, the agent resumes on its own (partial files are kept); " + x.describe,
	}
}

// unusableFiles explains files that arrived but cannot be used (damaged or hostile).
func (d *diag) unusableFiles(x *modelCtx, c *Cause) {
	c.Summary = fmt.Sprintf("The files of %s were downloaded and verified but cannot be used: the repository's files are damaged or unsafe.", orDefault(x.repo, x.model))
	c.NextSteps = []string{
		fmt.Sprintf("look at the repository's files at %s/%s (config.json, *.safetensors headers)", d.hubEndpoint(), x.repo),
		"pin a revision that works in spec.storage.storageUri (hf://org/repo@revision), or report it to the repository owner",
	}
}

// downloadStalled: no bytes moved. msg is the agent's stall message, if any.
func (d *diag) downloadStalled(msg string) *Cause {
	f := d.f
	file, idle, got, total := "", time.Duration(0), int64(-1), int64(-1)
	if lf := d.failure(v1.ReasonDownloadStalled); lf != nil {
		file, idle = lf.File, time.Duration(lf.IdleSeconds)*time.Second
		if lf.FileBytesTotal > 0 {
			got, total = lf.FileBytesReceived, lf.FileBytesTotal
		}
	}
	what := "bytes received"
	if got < 0 {
		got, total = f.BytesDone, f.BytesTotal
		what = "bytes received of the model"
	}
	secs := max(idle, f.NoProgressFor)
	fileWord := file
	if fileWord == "" {
		fileWord = "the model's files"
		if got == 0 && (f.ModelReason == v1.ReasonResolving || f.ModelPhase == v1.ModelPending) {
			fileWord = "the model (no file started: still resolving the revision and listing files)"
		}
	}
	c := &Cause{Code: CodeDownloadStalled, Step: StepDownload}
	c.Summary = fmt.Sprintf("The download of %s stalled: %d of %d %s (%s of %s), no bytes for %d s.",
		fileWord, got, total, what, modelinfo.FormatBytes(got), modelinfo.FormatBytes(total), int(secs.Seconds()))
	c.Evidence = append(c.Evidence, fmt.Sprintf("file: %s; received %d of %d bytes; no progress for %d s", orDefault(file, "unknown"), got, total, int(secs.Seconds())))
	c.Evidence = append(c.Evidence, d.modelStatusLine())
	if msg != "" && msg != f.ModelMessage {
		c.Evidence = append(c.Evidence, "agent: "+msg)
	}
	c.Evidence = append(c.Evidence, d.modelEventLines()...)
	if !f.LastProgress.IsZero() {
		c.Evidence = append(c.Evidence, "last progress at "+f.LastProgress.UTC().Format(time.RFC3339))
	}
	if s := d.stepSummary(StepDownload); s != "" && !strings.Contains(msg+f.ModelMessage, strings.TrimPrefix(s, "DownloadStalled: ")) {
		c.Evidence = append(c.Evidence, "test: "+s)
	}
	fetch := fmt.Sprintf("from the server's host, fetch the file directly: curl -sSL -o /dev/null -w '%%{http_code} %%{size_download} bytes %%{speed_download} B/s\\n' -r %d- %s", max(got, 0), d.fileURL(file))
	if file == "" {
		_, repo := d.storageURI()
		fetch = fmt.Sprintf("from the server's host, list the repository as the agent does: curl -sS -w '\\n%%{http_code} in %%{time_total}s\\n' %s/api/models/%s/revision/%s", d.hubEndpoint(), repo, d.revision())
	}
	c.NextSteps = []string{
		fetch,
		"check the network path to the hub (proxy, firewall, MTU) and HF_ENDPOINT of `citadel serve`",
		fmt.Sprintf("for a slow but working link raise `citadel serve --stall-timeout` (default 60s) and the test's own: citadel test model %s --stall 5m; the agent resumes partial files on retry", orDefault(f.Model, d.r.Model)),
		d.describeModel(),
	}
	return c
}

// downloadTimeout: the test's deadline passed while bytes still moved.
func (d *diag) downloadTimeout(last *v1.Event) *Cause {
	f := d.f
	elapsed := time.Duration(0)
	if s := d.step(StepDownload); s != nil {
		elapsed = s.Duration
	}
	rate := float64(f.BytesPerSecond)
	how := "reported by the agent"
	if rate == 0 && elapsed > 0 {
		rate = float64(f.BytesDone) / elapsed.Seconds()
		how = "average over the test's wait"
	}
	left := f.BytesTotal - f.BytesDone
	eta := "unknown"
	if rate > 0 && left >= 0 {
		eta = time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second).String()
	}
	c := &Cause{Code: CodeDownloadTimeout, Step: StepDownload}
	c.Summary = fmt.Sprintf("The download was still moving when the test's %s deadline passed: %s of %s at %s/s, about %s left.",
		elapsed.Round(time.Second), modelinfo.FormatBytes(f.BytesDone), modelinfo.FormatBytes(f.BytesTotal), modelinfo.FormatBytes(int64(rate)), eta)
	c.Evidence = []string{
		fmt.Sprintf("progress: %d of %d bytes (%.0f%%); rate %s/s (%s); remaining %s; ETA %s; last byte %d s ago",
			f.BytesDone, f.BytesTotal, pct(f.BytesDone, f.BytesTotal), modelinfo.FormatBytes(int64(rate)), how, modelinfo.FormatBytes(left), eta, int(f.NoProgressFor.Seconds())),
		d.modelStatusLine(),
	}
	if last != nil {
		c.Evidence = append(c.Evidence, fmt.Sprintf("earlier, retried: event %s %s: %s", last.Type, last.Reason, last.Message))
	}
	c.NextSteps = []string{
		fmt.Sprintf("let it finish (ETA %s) and watch it: %s", eta, d.describeModel()),
		fmt.Sprintf("rerun with a longer deadline: citadel test model %s --download-timeout %s", orDefault(f.Model, d.r.Model), suggestTimeout(elapsed, eta)),
		"for faster downloads: a closer mirror (HF_ENDPOINT), or `citadel serve --max-downloads 1` so one model gets the bandwidth",
	}
	return c
}

func suggestTimeout(elapsed time.Duration, eta string) string {
	e, err := time.ParseDuration(eta)
	if err != nil || elapsed <= 0 {
		return "1h"
	}
	return ((elapsed + e) * 3 / 2).Round(time.Minute).String()
}

func (d *diag) noAgent() *Cause {
	f := d.f
	c := &Cause{Code: CodeNoModelAgent, Step: StepDownload}
	c.Summary = fmt.Sprintf("No model agent runs on the server, so model %s is never downloaded (it stays Pending, In_Transit).", orDefault(f.Model, d.r.Model))
	c.Evidence = append([]string{d.modelStatusLine()}, d.modelEventLines()...)
	c.NextSteps = []string{
		"start the server with the agent: citadel serve --agent=true (the default)",
		"check the server's log for the model agent's start-up error",
	}
	if strings.Contains(f.ModelMessage, "also: secret") {
		ns, name, key := d.secretRef(f.ModelMessage)
		c.NextSteps = append(c.NextSteps, "the model's secret is missing too (export HF_TOKEN first): "+tokenSecretCmd(ns, name, key))
	}
	return c
}

func (d *diag) queued() *Cause {
	f := d.f
	c := &Cause{Code: CodeDownloadQueued, Step: StepDownload}
	c.Summary = fmt.Sprintf("Model %s waited for a download slot the whole time: other downloads held every slot.", orDefault(f.Model, d.r.Model))
	c.Evidence = append([]string{d.modelStatusLine()}, d.modelEventLines()...)
	c.NextSteps = []string{
		"see what holds the slots: citadel get models (phase Downloading)",
		"raise `citadel serve --max-downloads`, or wait for (or delete) the other downloads",
	}
	return c
}

func (d *diag) modelDisabled() *Cause {
	f := d.f
	c := &Cause{Code: v1.ReasonModelDisabled, Step: StepDownload}
	c.Summary = fmt.Sprintf("Model %s has spec.disabled: true, so it is neither downloaded nor served.", orDefault(f.Model, d.r.Model))
	c.Evidence = append(c.Evidence, d.modelStatusLine())
	if f.ServiceReason == v1.ReasonModelDisabled {
		c.Evidence = append(c.Evidence, d.serviceStatusLine())
	}
	c.NextSteps = []string{"set spec.disabled: false in the model (or remove it) and re-apply it: citadel apply -f MODEL.yaml"}
	return c
}
