package modeltest

// The classifier: one root cause per failed report, with the lines that show it and the
// commands that fix it, and the systemic probe for several models stuck at once.
//
// Diagnose reads only the report. The most specific evidence wins: a reason the model
// agent, the serving controller or the supervisor wrote beats the test's own timeout, and
// the engine's own words (its log tail) beat the supervisor's reason. When nothing specific
// is known the cause is Unknown, with every piece of evidence and the commands that gather
// more; it never lists guesses.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
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

// ---- the model and its download ----

// modelCodes maps the reasons the model agent (internal/pull, internal/agent) and the
// daemon's waiting status write to cause codes.
var modelCodes = map[string]string{
	v1.ReasonSecretNotFound:        v1.ReasonSecretNotFound,
	v1.ReasonSecretKeyMissing:      v1.ReasonSecretKeyMissing,
	v1.ReasonUnauthorized:          v1.ReasonUnauthorized,
	v1.ReasonGatedRepo:             v1.ReasonGatedRepo,
	v1.ReasonRepoNotFound:          v1.ReasonRepoNotFound,
	v1.ReasonRevisionNotFound:      v1.ReasonRevisionNotFound,
	v1.ReasonEntryNotFound:         v1.ReasonEntryNotFound,
	v1.ReasonConnectionFailed:      CodeHubUnreachable,
	v1.ReasonDNSFailure:            CodeHubUnreachable,
	"HubUnreachable":               CodeHubUnreachable,
	v1.ReasonUpstreamError:         v1.ReasonUpstreamError,
	v1.ReasonRateLimited:           v1.ReasonRateLimited,
	v1.ReasonDownloadStalled:       CodeDownloadStalled,
	v1.ReasonDownloadIncomplete:    v1.ReasonDownloadIncomplete,
	v1.ReasonChecksumMismatch:      v1.ReasonChecksumMismatch,
	v1.ReasonInsufficientStorage:   v1.ReasonInsufficientStorage,
	v1.ReasonStorageNotWritable:    v1.ReasonStorageNotWritable,
	v1.ReasonInvalidModelFiles:     v1.ReasonInvalidModelFiles,
	v1.ReasonHostileFileName:       v1.ReasonHostileFileName,
	v1.ReasonNoFiles:               v1.ReasonNoFiles,
	v1.ReasonLocalPathNotFound:     v1.ReasonLocalPathNotFound,
	v1.ReasonUnsupportedStorageURI: v1.ReasonUnsupportedStorageURI,
	v1.ReasonInternalError:         CodeAgentInternalError,
}

var (
	// pull's stall message: "no bytes of FILE for 1m0s (received N of M bytes)".
	stallRe = regexp.MustCompile(`no bytes of (\S+) for ([0-9][0-9hmsµn.]*) \(received (\d+) of (\d+) bytes\)`)
	// pull's stall message for a file whose requests keep going silent between a few bytes.
	silentRe = regexp.MustCompile(`(\S+) keeps going silent: .*?\(received (\d+) of (\d+) bytes`)
	// pull.Error.Error(): "DownloadStalled: FILE: message" when the message does not name the file.
	reasonFileRe = regexp.MustCompile(`^(?:Failed: )?[A-Za-z]+: ([^\s:]+\.[A-Za-z0-9]+): `)
	// pull's checksum message: "FILE was downloaded twice and both times …".
	checksumFileRe = regexp.MustCompile(`(?:^|: )(\S+) was downloaded twice`)
	// the agent's progress message: "3/4 files, 9.80 GB of 16.61 GB at 5.2 MB/s".
	rateRe     = regexp.MustCompile(`at ([0-9.]+) (GB|MB|kB|B)/s`)
	status5xx  = regexp.MustCompile(`: (5\d\d|408) [A-Z]`)
	secretRe   = regexp.MustCompile(`secret ([a-z0-9][-a-z0-9.]*)/([a-z0-9][-a-z0-9.]*)`)
	noKeyRe    = regexp.MustCompile(`has no key "([^"]+)"`)
	acceptRe   = regexp.MustCompile(`accept the conditions at (\S+?)(?:[,;]|\s|$)`)
	exitRe     = regexp.MustCompile(`exit status (\d+)`)
	signalRe   = regexp.MustCompile(`signal: ([a-z ]+)`)
	needFreeRe = regexp.MustCompile(`need ([0-9.]+ [kMG]?B), ([0-9.]+ [kMG]?B) free on (\S+?):`)
)

// model classifies a download that did not end Ready. generic reports that nothing of the
// model's own explains it (a shared cause may).
func (d *diag) model() (c *Cause, generic bool) {
	f := d.f
	reason := f.ModelReason
	code, known := modelCodes[reason]
	if known && (f.ModelPhase == v1.ModelFailed || reason == v1.ReasonSecretNotFound || reason == v1.ReasonSecretKeyMissing) {
		return d.modelCause(code, reason, f.ModelMessage, ""), false
	}
	moving := f.BytesDone > 0 && f.NoProgressFor < stallAfter &&
		(f.ModelPhase == v1.ModelDownloading || f.ModelPhase == v1.ModelVerifying)
	// The agent retries: the status may say Downloading again while its events keep the failure.
	last := lastFailureEvent(f.ModelEvents)
	if moving && f.DownloadTimedOut {
		return d.downloadTimeout(last), false
	}
	if last != nil {
		code := modelCodes[last.Reason]
		return d.modelCause(code, last.Reason, strings.TrimPrefix(last.Message, v1.ModelFailed+": "), "the agent retries, but it failed this way: "), false
	}
	switch reason {
	case v1.ReasonAwaitingAgent:
		return d.noAgent(), false
	case v1.ReasonQueued:
		return d.queued(), false
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

// lastFailureEvent is the newest Warning event of the model with a known failure reason.
func lastFailureEvent(evs []v1.Event) *v1.Event {
	var best *v1.Event
	for i := range evs {
		e := &evs[i]
		if e.Type != v1.EventWarning {
			continue
		}
		if _, ok := modelCodes[e.Reason]; !ok {
			continue
		}
		if best == nil || !eventTime(e).Before(eventTime(best)) {
			best = e
		}
	}
	return best
}

func eventTime(e *v1.Event) time.Time {
	if e.LastTimestamp != nil {
		return e.LastTimestamp.Time
	}
	if e.FirstTimestamp != nil {
		return e.FirstTimestamp.Time
	}
	return time.Time{}
}

// modelCause builds the cause of a model reason with its message.
func (d *diag) modelCause(code, reason, msg, prefix string) *Cause {
	f := d.f
	if reason == v1.ReasonSecretNotFound && noKeyRe.MatchString(msg) {
		code = v1.ReasonSecretKeyMissing // the agent words a missing key as SecretNotFound
	}
	if code == v1.ReasonUpstreamError && status5xx.MatchString(msg) {
		code = CodeHubUnreachable
	}
	c := &Cause{Code: code, Step: StepDownload}
	c.Evidence = append(c.Evidence, d.modelStatusLine())
	if prefix != "" {
		c.Evidence = append(c.Evidence, prefix+reason+": "+msg)
	}
	c.Evidence = append(c.Evidence, d.modelEventLines()...)
	c.Evidence = append(c.Evidence, d.progressLine())
	model := orDefault(f.Model, d.r.Model)
	uri, repo := d.storageURI()
	ns, name, key := d.secretRef(msg)
	describe := d.describeModel()
	switch code {
	case v1.ReasonSecretNotFound:
		c.Summary = fmt.Sprintf("The secret %s/%s named by spec.storage.key of model %s does not exist, so the download cannot start.", ns, name, model)
		c.NextSteps = []string{
			"export HF_TOKEN with a token that can read the repository, then: " + tokenSecretCmd(ns, name, key),
			"or remove spec.storage.key from the model if the repository is public, and re-apply it",
			describe,
		}
	case v1.ReasonSecretKeyMissing:
		has := ""
		if m := regexp.MustCompile(`\(it has: ([^)]*)\)`).FindStringSubmatch(msg); m != nil {
			has = " (it has: " + m[1] + ")"
		}
		c.Summary = fmt.Sprintf("The secret %s/%s exists but has no key %q%s, so model %s has no token.", ns, name, key, has, model)
		c.NextSteps = []string{
			"export HF_TOKEN with the token, then (create or update adds the key): " + tokenSecretCmd(ns, name, key),
			"or set spec.storage.parameters.secretKey in the model to the key that holds the token, and re-apply it",
			describe,
		}
	case v1.ReasonUnauthorized:
		c.Summary = fmt.Sprintf("The hub rejected the token of model %s (missing, invalid or expired).", model)
		c.NextSteps = []string{
			fmt.Sprintf("check the token: curl -s -H \"Authorization: Bearer $HF_TOKEN\" %s/api/whoami-v2 (200 = valid, 401 = rejected)", d.hubEndpoint()),
			fmt.Sprintf("create a new read token at %s/settings/tokens, export it as HF_TOKEN, then: %s", d.hubEndpoint(), tokenSecretCmd(ns, name, key)),
			describe,
		}
	case v1.ReasonGatedRepo:
		page := d.hubEndpoint() + "/" + repo
		if m := acceptRe.FindStringSubmatch(msg); m != nil {
			page = m[1]
		}
		c.Summary = fmt.Sprintf("Repository %s is gated: the token's account has not accepted its license.", orDefault(repo, uri))
		c.NextSteps = []string{
			fmt.Sprintf("open %s, sign in as the token's account and accept the license (approval may take a while)", page),
			"make sure spec.storage.key names a token of that account (export it as HF_TOKEN): " + tokenSecretCmd(ns, name, key),
			"then re-apply the model (or update its secret): the agent does not retry this on its own",
		}
	case v1.ReasonRepoNotFound:
		c.Summary = fmt.Sprintf("Repository %s does not exist on the hub, or it is private and the token cannot read it.", orDefault(repo, uri))
		c.NextSteps = []string{
			fmt.Sprintf("check the name in spec.storage.storageUri (%s): curl -sS -o /dev/null -w '%%{http_code}\\n' %s/api/models/%s (404: no such repository)", uri, d.hubEndpoint(), repo),
			"if the repository is private, give a token that can read it (export it as HF_TOKEN): " + tokenSecretCmd(ns, name, key),
			"fix spec.storage.storageUri and re-apply the model (a change to its secret retries it by itself)",
		}
	case v1.ReasonRevisionNotFound:
		c.Summary = fmt.Sprintf("The revision in %s does not exist in the repository.", uri)
		c.NextSteps = []string{
			fmt.Sprintf("list the branches and tags at %s/%s/tree/main, then fix the @revision of spec.storage.storageUri and re-apply", d.hubEndpoint(), repo),
		}
	case v1.ReasonEntryNotFound:
		c.Summary = fmt.Sprintf("A file the repository lists is missing from %s at the requested revision.", orDefault(repo, uri))
		c.NextSteps = []string{fmt.Sprintf("check the files at %s/%s; pin another revision in spec.storage.storageUri", d.hubEndpoint(), repo), describe}
	case CodeHubUnreachable:
		c.Summary = fmt.Sprintf("The hub %s could not be reached (or failed) while downloading model %s.", d.hubEndpoint(), model)
		c.NextSteps = []string{
			fmt.Sprintf("from the server's host: curl -sS -o /dev/null -w '%%{http_code}\\n' %s/api/models?limit=1", d.hubEndpoint()),
			"check DNS, the proxy (HTTPS_PROXY / NO_PROXY) and HF_ENDPOINT of `citadel serve`; unset HF_HUB_OFFLINE",
			"once the hub answers, the agent resumes on its own (partial files are kept); " + describe,
		}
	case v1.ReasonUpstreamError:
		c.Summary = "The hub or mirror answered something the agent cannot use."
		c.NextSteps = []string{"check HF_ENDPOINT of `citadel serve` and that no proxy rewrites the hub's responses", describe}
	case v1.ReasonRateLimited:
		c.Summary = fmt.Sprintf("The hub rate-limited the download of model %s.", model)
		c.NextSteps = []string{
			"give the model a token (spec.storage.key) for a higher limit (export it as HF_TOKEN): " + tokenSecretCmd(ns, name, key),
			"lower `citadel serve --max-downloads` so fewer requests run at once; the agent retries after the server's Retry-After",
		}
	case CodeDownloadStalled:
		return d.downloadStalled(msg)
	case v1.ReasonDownloadIncomplete:
		c.Summary = "The connection kept ending before files were complete (truncated bodies)."
		c.NextSteps = []string{"check the network path (proxy, load balancer idle timeouts) to the hub", describe}
	case v1.ReasonChecksumMismatch:
		file := fileOf(msg)
		c.Summary = fmt.Sprintf("%s was downloaded twice and both times its content did not match the hub's hash: the source serves corrupt data.", orDefault(file, "A file"))
		c.NextSteps = []string{
			"if a mirror or proxy sits between (HF_ENDPOINT, HTTPS_PROXY), try without it: it may rewrite or truncate files",
			fmt.Sprintf("report it to the repository owner (%s/%s/discussions)", d.hubEndpoint(), repo),
			"re-apply the model to try again",
		}
	case v1.ReasonInsufficientStorage:
		c.Summary = "The disk does not have room for the model."
		if m := needFreeRe.FindStringSubmatch(msg); m != nil {
			c.Summary = fmt.Sprintf("The model needs %s but only %s is free on %s.", m[1], m[2], m[3])
			c.Evidence = append(c.Evidence, fmt.Sprintf("need %s, free %s on %s", m[1], m[2], m[3]))
		}
		c.NextSteps = []string{
			"df -h " + orDefault(d.storagePath(), "$CITADEL_DATA_DIR"),
			"free space (citadel delete model NAME removes models no longer needed), or move the cache to a larger disk: citadel serve --data-dir DIR (or HF_HUB_CACHE)",
			"then re-apply the model: partial files are kept and resumed",
		}
	case v1.ReasonStorageNotWritable:
		c.Summary = fmt.Sprintf("The model's directory %s is not writable by citadel.", orDefault(d.storagePath(), "(the cache)"))
		c.NextSteps = []string{
			fmt.Sprintf("ls -ld %s; make it writable by the user that runs citadel serve, or set another spec.storage.path", orDefault(d.storagePath(), "$CITADEL_DATA_DIR")),
		}
	case v1.ReasonInvalidModelFiles, v1.ReasonHostileFileName:
		c.Summary = fmt.Sprintf("The files of %s were downloaded and verified but cannot be used: the repository's files are damaged or unsafe.", orDefault(repo, model))
		c.NextSteps = []string{
			fmt.Sprintf("look at the repository's files at %s/%s (config.json, *.safetensors headers)", d.hubEndpoint(), repo),
			"pin a revision that works in spec.storage.storageUri (hf://org/repo@revision), or report it to the repository owner",
		}
	case v1.ReasonNoFiles:
		c.Summary = "The source has no files to download (or none match the include/exclude filters)."
		c.NextSteps = []string{fmt.Sprintf("check %s and the model's filters", uri), describe}
	case v1.ReasonLocalPathNotFound:
		c.Summary = fmt.Sprintf("The local path of %s does not exist on this host.", uri)
		c.NextSteps = []string{"copy the model there, or fix spec.storage.storageUri"}
	case v1.ReasonUnsupportedStorageURI:
		c.Summary = fmt.Sprintf("The storage URI %s cannot be pulled by this agent.", uri)
		c.NextSteps = []string{"use hf://org/repo[@revision], ollama://name[:tag], file:///dir or local:///dir in spec.storage.storageUri"}
	default:
		c.Code = orDefault(code, reason)
		c.Summary = fmt.Sprintf("The model agent failed the download of %s: %s.", model, reason)
		c.NextSteps = []string{describe, "citadel events --for " + d.modelObject()}
	}
	return c
}

// downloadStalled: no bytes moved. msg is the agent's stall message, if any.
func (d *diag) downloadStalled(msg string) *Cause {
	f := d.f
	file, idle, got, total := "", "", int64(-1), int64(-1)
	srcs := []string{msg, f.ModelMessage}
	for _, e := range f.ModelEvents {
		srcs = append(srcs, e.Message)
	}
	for _, s := range srcs {
		if m := stallRe.FindStringSubmatch(s); m != nil {
			file, idle = m[1], m[2]
			got, _ = strconv.ParseInt(m[3], 10, 64)
			total, _ = strconv.ParseInt(m[4], 10, 64)
			break
		}
		if m := silentRe.FindStringSubmatch(s); m != nil {
			file = m[1]
			got, _ = strconv.ParseInt(m[2], 10, 64)
			total, _ = strconv.ParseInt(m[3], 10, 64)
			break
		}
	}
	if file == "" {
		for _, s := range srcs {
			if fl := fileOf(s); fl != "" {
				file = fl
				break
			}
		}
	}
	what := "bytes received"
	if got < 0 {
		got, total = f.BytesDone, f.BytesTotal
		what = "bytes received of the model"
	}
	secs := f.NoProgressFor
	if idle != "" {
		if dur, err := time.ParseDuration(idle); err == nil {
			secs = max(dur, secs)
		}
	}
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
	rate := parseRate(f.ModelMessage)
	if s := d.step(StepDownload); rate == 0 && s != nil {
		for i := len(s.Evidence) - 1; i >= 0 && rate == 0; i-- {
			rate = parseRate(s.Evidence[i])
		}
	}
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

func parseRate(s string) float64 {
	m := rateRe.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	switch m[2] {
	case "GB":
		v *= 1e9
	case "MB":
		v *= 1e6
	case "kB":
		v *= 1e3
	}
	return v
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

// ---- the service, the runtime, the placement and the engine ----

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
	switch reason {
	case v1.ReasonModelNotFound:
		c := d.svcCause(v1.ReasonModelNotFound, fmt.Sprintf("The service names model %s, which does not exist.", d.r.Model))
		c.NextSteps = []string{"citadel get models; apply the model, or fix spec.model.name of the service"}
		return c
	case v1.ReasonModelNotReady:
		c := d.svcCause(v1.ReasonModelNotReady, "The service waits for its model, which is not Ready.")
		c.NextSteps = []string{d.describeModel()}
		return c
	case v1.ReasonModelUnreadable:
		c := d.svcCause(v1.ReasonModelUnreadable, "The controller cannot read the model's files to size it for placement.")
		c.NextSteps = []string{"check config.json and the weights in the model's directory (see the message); re-download: delete and re-apply the model"}
		return c
	case v1.ReasonNoSupportingRuntime, v1.ReasonRuntimeIncompatible, v1.ReasonRuntimeNotFound, v1.ReasonRuntimeDisabled, v1.ReasonRuntimeSelectionFailed:
		return d.runtimeRejected(reason)
	case v1.ReasonEngineUnknown, v1.ReasonRuntimeHasNoEngine:
		c := d.svcCause(reason, fmt.Sprintf("Runtime %s does not say which engine to run.", orDefault(f.Runtime, "?")))
		c.NextSteps = []string{fmt.Sprintf("fix the runtime's engineConfig.runner (vllm serve, python3 -m sglang.launch_server, llama-server or ollama serve): %s", d.describeRuntime())}
		return c
	case v1.ReasonUnschedulable:
		return d.unschedulable()
	case v1.ReasonEngineNotFound:
		c := d.svcCause(v1.ReasonEngineNotFound, fmt.Sprintf("The engine runtime %s starts is not installed on the server's host.", orDefault(f.Runtime, "?")))
		c.NextSteps = []string{
			"install the engine named in the message on the server's host (e.g. pip install vllm), in the environment `citadel serve` runs in",
			fmt.Sprintf("or point the runtime's command at it: %s", d.describeRuntime()),
			"or, without a GPU, test with simulated engines: citadel serve --simulate-engines --gpus PROFILES",
		}
		return c
	case v1.ReasonEngineLaunchFailed, v1.ReasonStartFailed, v1.ReasonPortInUse, v1.ReasonKillFailed:
		c := d.svcCause(orDefault(map[string]string{v1.ReasonStartFailed: v1.ReasonEngineLaunchFailed, v1.ReasonKillFailed: CodeEngineKillFailed}[reason], reason),
			"The engine could not be started.")
		c.Evidence = append(c.Evidence, tailLines(tail)...)
		c.NextSteps = []string{d.logsCmd(), d.describeService()}
		return c
	case v1.ReasonExited:
		return d.engineCrashed(tail)
	case v1.ReasonStartupTimeout:
		return d.startupTimeout(tail)
	case v1.ReasonLivenessFailed, v1.ReasonReadinessFailed:
		c := d.svcCause(reason, fmt.Sprintf("The engine started but then failed its %s probe.", strings.ToLower(strings.TrimSuffix(reason, "Failed"))))
		c.Evidence = append(c.Evidence, tailLines(tail)...)
		c.NextSteps = []string{d.logsCmd(), "check GPU health (nvidia-smi) and whether the engine hangs under load"}
		return c
	case v1.ReasonAwaitingController:
		if d.failedAt(StepReady) {
			c := d.svcCause(CodeNoServingController, "No serving controller runs on the server, so no engine is ever started.")
			c.NextSteps = []string{"start the server with engines: citadel serve --engines=true (the default)"}
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

func (d *diag) svcCause(code, summary string) *Cause {
	c := &Cause{Code: code, Step: StepReady, Summary: summary}
	c.Evidence = append(c.Evidence, d.serviceStatusLine())
	c.Evidence = append(c.Evidence, d.serviceEventLines()...)
	return c
}

func (d *diag) runtimeRejected(reason string) *Cause {
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

// ---- inference ----

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

// ---- other steps ----

func (d *diag) couldNotRun() *Cause {
	c := &Cause{Code: CodeTestCouldNotRun, Step: StepApply}
	if d.failed != nil {
		c.Step = d.failed.Name
		c.Summary = "The test could not run: " + d.failed.Summary
		c.Evidence = append(c.Evidence, d.failed.Evidence...)
	} else {
		c.Summary = "The test could not run."
	}
	c.NextSteps = []string{"citadel version (is `citadel serve` running and reachable?)", "check the files given to citadel test: citadel apply -f FILE --dry-run"}
	return c
}

func (d *diag) applyFailed() *Cause {
	c := &Cause{Code: CodeApplyFailed, Step: StepApply, Summary: "The server refused the objects: " + d.failed.Summary}
	c.Evidence = append(c.Evidence, d.failed.Evidence...)
	c.NextSteps = []string{"citadel apply -f FILE --dry-run (shows each field error)"}
	return c
}

func (d *diag) cleanupFailed() *Cause {
	c := &Cause{Code: CodeCleanupFailed, Step: StepCleanup, Summary: "Every test passed, but cleanup failed: " + d.failed.Summary}
	c.Evidence = append(c.Evidence, d.failed.Evidence...)
	ns, name := d.serviceRef()
	c.NextSteps = []string{fmt.Sprintf("citadel get isvc -A -l citadel.dev/test=true; delete what is left: citadel delete isvc %s -n %s", name, ns)}
	return c
}

// unknown is the honest answer: every piece of evidence and the commands that gather more.
func (d *diag) unknown(why string) *Cause {
	f := d.f
	c := &Cause{Code: CodeUnknown, Step: StepDownload}
	if d.failed != nil {
		c.Step = d.failed.Name
	}
	c.Summary = "No single cause is shown by the evidence: " + why + "."
	for _, s := range d.r.Steps {
		if s.Status == Failed {
			c.Evidence = append(c.Evidence, fmt.Sprintf("step %s failed: %s", s.Name, s.Summary))
			c.Evidence = append(c.Evidence, s.Evidence...)
		}
	}
	if f.ModelPhase != "" || f.ModelReason != "" {
		c.Evidence = append(c.Evidence, d.modelStatusLine(), d.progressLine())
	}
	c.Evidence = append(c.Evidence, d.modelEventLines()...)
	if f.ServicePhase != "" || f.ServiceReason != "" {
		c.Evidence = append(c.Evidence, d.serviceStatusLine())
	}
	c.Evidence = append(c.Evidence, d.serviceEventLines()...)
	c.Evidence = append(c.Evidence, tailLines(d.tail())...)
	for _, sc := range d.r.Systemic {
		c.Evidence = append(c.Evidence, checkLine(sc))
	}
	c.Evidence = slices.DeleteFunc(c.Evidence, func(s string) bool { return s == "" })
	c.NextSteps = []string{d.describeModel(), "citadel events --for " + d.modelObject()}
	if f.Service != "" {
		c.NextSteps = append(c.NextSteps, d.describeService(), d.logsCmd())
	}
	c.NextSteps = append(c.NextSteps, "the server's own log (citadel serve --log-level debug) for the model agent and the serving controller",
		fmt.Sprintf("rerun with --keep to inspect the objects afterwards: citadel test model %s --keep", orDefault(f.Model, d.r.Model)))
	return c
}

// ---- evidence helpers ----

func (d *diag) step(name string) *Step {
	for i := range d.r.Steps {
		if d.r.Steps[i].Name == name {
			return &d.r.Steps[i]
		}
	}
	return nil
}

func (d *diag) stepSummary(name string) string {
	if s := d.step(name); s != nil && s.Status == Failed {
		return s.Summary
	}
	return ""
}

func (d *diag) modelStatusLine() string {
	f := d.f
	s := fmt.Sprintf("model %s: %s", orDefault(f.Model, d.r.Model), orDefault(f.ModelPhase, "no status"))
	if f.ModelReason != "" {
		s += " (" + f.ModelReason + ")"
	}
	if f.ModelMessage != "" {
		s += ": " + f.ModelMessage
	}
	return s
}

func (d *diag) progressLine() string {
	f := d.f
	if f.BytesTotal == 0 && f.BytesDone == 0 {
		return ""
	}
	s := fmt.Sprintf("progress: %d of %d bytes (%s of %s)", f.BytesDone, f.BytesTotal, modelinfo.FormatBytes(f.BytesDone), modelinfo.FormatBytes(f.BytesTotal))
	if f.NoProgressFor > 0 {
		s += fmt.Sprintf("; no progress for %d s", int(f.NoProgressFor.Seconds()))
	}
	return s
}

func (d *diag) serviceStatusLine() string {
	f := d.f
	s := fmt.Sprintf("service %s: %s", orDefault(f.Service, "?"), orDefault(f.ServicePhase, "no status"))
	if f.ServiceReason != "" {
		s += " (" + f.ServiceReason + ")"
	}
	if f.ServiceMessage != "" {
		msg, _, _ := strings.Cut(f.ServiceMessage, "; its last output:")
		s += ": " + strings.ReplaceAll(msg, "\n", " | ")
	}
	return s
}

func eventLines(evs []v1.Event, warningsOnly bool) []string {
	var out []string
	for _, e := range evs {
		if warningsOnly && e.Type != v1.EventWarning {
			continue
		}
		s := fmt.Sprintf("event %s %s", e.Type, e.Reason)
		if e.Count > 1 {
			s += fmt.Sprintf(" (×%d)", e.Count)
		}
		msg, _, _ := strings.Cut(e.Message, "; its last output:") // the tail is quoted on its own
		out = append(out, s+": "+strings.ReplaceAll(msg, "\n", " | "))
	}
	return out
}

func (d *diag) modelEventLines() []string   { return eventLines(d.f.ModelEvents, true) }
func (d *diag) serviceEventLines() []string { return eventLines(d.f.ServiceEvents, true) }

// tail is the engine's last output: the logs the run read, else the supervisor's message.
func (d *diag) tail() []string {
	if len(d.f.LogTail) > 0 {
		return d.f.LogTail
	}
	if _, after, ok := strings.Cut(d.f.ServiceMessage, "its last output:\n"); ok {
		var out []string
		for _, l := range strings.Split(after, "\n") {
			out = append(out, strings.TrimPrefix(l, "  "))
		}
		return out
	}
	return nil
}

func tailLines(tail []string) []string {
	tail = tail[max(len(tail)-maxTail, 0):]
	out := make([]string, 0, len(tail))
	for _, l := range tail {
		out = append(out, "log: "+l)
	}
	return out
}

// lastMeaningful is the last line of the tail that says something (an error, else the last).
func lastMeaningful(tail []string) string {
	for i := len(tail) - 1; i >= 0; i-- {
		l := strings.TrimSpace(tail[i])
		low := strings.ToLower(l)
		if strings.Contains(low, "error") || strings.Contains(low, "exception") || strings.Contains(low, "fatal") {
			return l
		}
	}
	for i := len(tail) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(tail[i]); l != "" {
			return l
		}
	}
	return ""
}

// exitText is how the engine ended: "exit code 1 (exit status 1)", "signal: killed", ….
func (d *diag) exitText() string {
	srcs := []string{}
	for _, ep := range d.f.Endpoints {
		srcs = append(srcs, ep.LastExit)
	}
	srcs = append(srcs, d.f.ServiceMessage)
	for _, e := range d.f.ServiceEvents {
		srcs = append(srcs, e.Message)
	}
	for _, s := range srcs {
		if m := exitRe.FindStringSubmatch(s); m != nil {
			return "exit code " + m[1]
		}
		if m := signalRe.FindStringSubmatch(s); m != nil {
			return "signal: " + strings.TrimSpace(m[1])
		}
	}
	return "exit status unknown"
}

func (d *diag) storageURI() (uri, repo string) {
	if s := d.f.ModelSpec; s != nil && s.Storage != nil && s.Storage.StorageURI != nil {
		uri = *s.Storage.StorageURI
	}
	if rest, ok := strings.CutPrefix(uri, "hf://"); ok {
		repo, _, _ = strings.Cut(rest, "@")
	}
	if repo == "" {
		repo = d.r.Model
	}
	return orDefault(uri, "spec.storage.storageUri"), repo
}

func (d *diag) storagePath() string {
	if s := d.f.ModelSpec; s != nil && s.Storage != nil && s.Storage.Path != nil {
		return *s.Storage.Path
	}
	return ""
}

// defaultHub is the hub when nothing configures another.
const defaultHub = "https://huggingface.co"

// hubEndpoint is the hub the agent talked to, as its message names it; else the endpoint the
// run was configured with (HF_ENDPOINT); else huggingface.co.
func (d *diag) hubEndpoint() string {
	if ep := endpointIn(d.f.ModelMessage); ep != "" {
		return ep
	}
	return orDefault(strings.TrimRight(d.f.HubEndpoint, "/"), defaultHub)
}

// endpointIn is the scheme://host of the first http(s) URL in s; "" if none.
func endpointIn(s string) string {
	for _, w := range strings.Fields(s) {
		w = strings.Trim(w, `"'.,;:()`)
		if u, err := url.Parse(w); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	return ""
}

// tokenSecretCmd creates or updates the model's token secret from $HF_TOKEN (no token
// placeholder to edit: export HF_TOKEN first).
func tokenSecretCmd(ns, name, key string) string {
	return fmt.Sprintf("citadel secret create %s -n %s --from-env %s=HF_TOKEN", name, ns, key)
}

// gatewayURL is the gateway the run tested through.
func (d *diag) gatewayURL() string {
	return orDefault(d.f.Gateway, "http://127.0.0.1:8080")
}

// describeRuntimes lists the runtimes and describes the one the run named or selected.
func (d *diag) describeRuntimes() string {
	if rt := d.runtimeName(); rt != "" {
		return "citadel get runtimes; citadel describe runtime " + rt
	}
	return "citadel get runtimes"
}

// nameRuntime says how to name a runtime that can serve the model: a compatible candidate if
// the selection saw one.
func (d *diag) nameRuntime(model string) string {
	for _, c := range d.f.Runtimes {
		if c.Reason == "" && c.Name != d.f.Runtime {
			return fmt.Sprintf("runtime %s is compatible: citadel test model %s --runtime %s", c.Name, model, c.Name)
		}
	}
	return "add a runtime whose supportedModelFormats match the model (format, architecture, framework version): apply it, or pass its YAML with -f to citadel test model " + model
}

// describeRuntime describes the run's runtime; lists them when the run had none.
func (d *diag) describeRuntime() string {
	if rt := d.runtimeName(); rt != "" {
		return "citadel describe runtime " + rt
	}
	return "citadel get runtimes"
}

// runtimeName is the runtime the service used or was given; else the first candidate.
func (d *diag) runtimeName() string {
	if d.f.Runtime != "" {
		return d.f.Runtime
	}
	for _, c := range d.f.Runtimes {
		return c.Name
	}
	return ""
}

func (d *diag) revision() string {
	if s := d.f.ModelSpec; s != nil && s.Storage != nil && s.Storage.StorageURI != nil {
		if _, r, ok := strings.Cut(*s.Storage.StorageURI, "@"); ok && r != "" {
			return r
		}
	}
	return "main"
}

func (d *diag) fileURL(file string) string {
	_, repo := d.storageURI()
	return fmt.Sprintf("%s/%s/resolve/%s/%s", d.hubEndpoint(), repo, d.revision(), file)
}

// secretRef names the model's secret: from the message, else from the spec.
func (d *diag) secretRef(msg string) (ns, name, key string) {
	f := d.f
	ns = d.r.Namespace
	if f.ModelKind == "" || f.ModelKind == v1.KindClusterBaseModel {
		ns = v1.ClusterSecretNamespace
	}
	name, key = "hf-token", "token"
	if s := f.ModelSpec; s != nil && s.Storage != nil {
		if s.Storage.StorageKey != nil && *s.Storage.StorageKey != "" {
			name = *s.Storage.StorageKey
		}
		key = s.Storage.SecretKey()
	}
	if m := secretRe.FindStringSubmatch(msg); m != nil {
		ns, name = m[1], m[2]
	}
	if m := noKeyRe.FindStringSubmatch(msg); m != nil {
		key = m[1]
	}
	return orDefault(ns, v1.DefaultNamespace), name, key
}

func (d *diag) modelObject() string {
	if d.f.ModelKind == v1.KindBaseModel {
		return "basemodel/" + orDefault(d.f.Model, d.r.Model) + " -n " + orDefault(d.r.Namespace, v1.DefaultNamespace)
	}
	return "model/" + orDefault(d.f.Model, d.r.Model)
}

func (d *diag) describeModel() string {
	if d.f.ModelKind == v1.KindBaseModel {
		return fmt.Sprintf("citadel describe basemodel %s -n %s", orDefault(d.f.Model, d.r.Model), orDefault(d.r.Namespace, v1.DefaultNamespace))
	}
	return "citadel describe model " + orDefault(d.f.Model, d.r.Model)
}

func (d *diag) serviceRef() (ns, name string) {
	ns, name, ok := strings.Cut(d.f.Service, "/")
	if !ok {
		return orDefault(d.r.Namespace, v1.DefaultNamespace), orDefault(d.f.Service, "NAME")
	}
	return ns, name
}

func (d *diag) describeService() string {
	ns, name := d.serviceRef()
	return fmt.Sprintf("citadel describe isvc %s -n %s", name, ns)
}

func (d *diag) logsCmd() string {
	ns, name := d.serviceRef()
	return fmt.Sprintf("citadel logs isvc/%s -n %s --tail 200", name, ns)
}

func (d *diag) servedName() string {
	for _, ep := range d.f.Endpoints {
		if len(ep.Served) > 0 {
			return ep.Served[0]
		}
	}
	return orDefault(d.f.Model, d.r.Model)
}

func fileOf(msg string) string {
	if m := stallRe.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	if m := silentRe.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	if m := reasonFileRe.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	if m := checksumFileRe.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

func pct(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orNone(s string) string { return orDefault(s, "no reason") }

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// ---- the systemic probe ----

// ProbeInput is what the systemic probe checks.
type ProbeInput struct {
	HubEndpoint string // default https://huggingface.co
	Token       string // "" skips the token check
	StoragePath string // "" skips the storage check
	NeedBytes   int64  // the model's size; 0: only writability is checked
	Client      *http.Client
	Stuck       []Facts // models stuck at once
}

// Systemic check names.
const (
	CheckHub     = "hub"
	CheckToken   = "token"
	CheckStorage = "storage"
	CheckAgent   = "agent"
)

// probeTimeout bounds each request of the probe.
const probeTimeout = 5 * time.Second

// SystemicProbe checks what is shared by every model: the hub is reachable, the token is
// valid, the storage path has space and is writable, the model agent makes progress.
func SystemicProbe(ctx context.Context, in ProbeInput) []SystemicCheck {
	ep := strings.TrimRight(orDefault(in.HubEndpoint, "https://huggingface.co"), "/")
	hc := in.Client
	if hc == nil {
		hc = &http.Client{}
	}
	hub := probeHub(ctx, hc, ep)
	checks := []SystemicCheck{hub}
	if in.Token != "" {
		if hub.Passed {
			checks = append(checks, probeToken(ctx, hc, ep, in.Token))
		} else {
			checks = append(checks, SystemicCheck{Name: CheckToken, Detail: "not checked: the hub is unreachable"})
		}
	}
	if in.StoragePath != "" {
		checks = append(checks, probeStorage(in.StoragePath, in.NeedBytes))
	}
	if len(in.Stuck) > 0 {
		checks = append(checks, probeAgent(in.Stuck))
	}
	return checks
}

func request(ctx context.Context, hc *http.Client, method, target, token string) (*http.Response, []byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "citadel-test")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("no answer within %s", probeTimeout)
		case errors.As(err, &ue):
			err = ue.Err // the URL is in the detail already
		}
		return nil, nil, time.Since(start), err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, body, time.Since(start), nil
}

// Hub check details start with these words; DiagnoseSystemic reads them.
const (
	detailUnreachable = "unreachable: "
	detailNoSpace     = "not enough space: "
	detailNotWritable = "not writable: "
	detailNoAgent     = "no model agent: "
)

func probeHub(ctx context.Context, hc *http.Client, ep string) SystemicCheck {
	c := SystemicCheck{Name: CheckHub}
	u := ep + "/api/models?limit=1"
	resp, _, took, err := request(ctx, hc, http.MethodGet, u, "")
	if err != nil {
		c.Detail = fmt.Sprintf("%sGET %s: %v", detailUnreachable, u, err)
		return c
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		// A mirror without the API: is the host up at all?
		hresp, _, htook, herr := request(ctx, hc, http.MethodHead, ep, "")
		switch {
		case herr != nil:
			c.Detail = fmt.Sprintf("%sGET %s: %s; HEAD %s: %v", detailUnreachable, u, resp.Status, ep, herr)
		case hresp.StatusCode >= 500:
			c.Detail = fmt.Sprintf("%sHEAD %s: %s", detailUnreachable, ep, hresp.Status)
		default:
			c.Passed = true
			c.Detail = fmt.Sprintf("HEAD %s: %s in %s (GET %s: %s: not a full hub API)", ep, hresp.Status, htook.Round(time.Millisecond), u, resp.Status)
		}
		return c
	}
	if resp.StatusCode >= 500 {
		c.Detail = fmt.Sprintf("%sGET %s: %s: the hub answers but fails", detailUnreachable, u, resp.Status)
		return c
	}
	c.Passed = true
	c.Detail = fmt.Sprintf("GET %s: %s in %s", u, resp.Status, took.Round(time.Millisecond))
	if resp.StatusCode == http.StatusTooManyRequests {
		c.Detail += " (reachable, but rate-limiting this host)"
	}
	return c
}

func probeToken(ctx context.Context, hc *http.Client, ep, token string) SystemicCheck {
	c := SystemicCheck{Name: CheckToken}
	u := ep + "/api/whoami-v2"
	resp, body, _, err := request(ctx, hc, http.MethodGet, u, token)
	if err != nil {
		c.Detail = fmt.Sprintf("GET %s: %v", u, err)
		return c
	}
	var who struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &who)
	switch {
	case resp.StatusCode == http.StatusOK:
		c.Passed = true
		c.Detail = "token accepted by " + u
		if who.Name != "" {
			c.Detail += " (account " + who.Name + ")"
		}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		c.Detail = fmt.Sprintf("token rejected: GET %s: %s", u, resp.Status)
		if who.Error != "" {
			c.Detail += ": " + who.Error
		}
	default:
		c.Passed = true // a mirror may not implement whoami: not evidence against the token
		c.Detail = fmt.Sprintf("not verified: GET %s: %s", u, resp.Status)
	}
	return c
}

func probeStorage(path string, need int64) SystemicCheck {
	c := SystemicCheck{Name: CheckStorage}
	dir, note := filepath.Clean(path), ""
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			c.Detail = fmt.Sprintf("%s%s: no existing directory on its path", detailNotWritable, path)
			return c
		}
		dir = parent
		note = fmt.Sprintf(" (%s does not exist yet; checked %s)", path, dir)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		c.Detail = fmt.Sprintf("%scannot stat %s: %v", detailNotWritable, dir, err)
		return c
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	tmp, err := os.CreateTemp(dir, ".citadel-test-*")
	if err != nil {
		c.Detail = fmt.Sprintf("%s%v%s", detailNotWritable, err, note)
		return c
	}
	name := tmp.Name()
	tmp.Close()
	if err := os.Remove(name); err != nil {
		c.Detail = fmt.Sprintf("%sremoving %s: %v%s", detailNotWritable, name, err, note)
		return c
	}
	if need > 0 && free < need {
		c.Detail = fmt.Sprintf("%sneed %s, %s free on %s%s", detailNoSpace, modelinfo.FormatBytes(need), modelinfo.FormatBytes(free), dir, note)
		return c
	}
	c.Passed = true
	c.Detail = fmt.Sprintf("%s free on %s, writable%s", modelinfo.FormatBytes(free), dir, note)
	if need > 0 {
		c.Detail = fmt.Sprintf("%s free on %s (the model needs %s), writable%s", modelinfo.FormatBytes(free), dir, modelinfo.FormatBytes(need), note)
	}
	return c
}

func probeAgent(stuck []Facts) SystemicCheck {
	c := SystemicCheck{Name: CheckAgent}
	var moving, lines []string
	awaiting := 0
	for _, f := range stuck {
		if f.ModelReason == v1.ReasonAwaitingAgent {
			awaiting++
		}
		if f.NoProgressFor < time.Minute && (f.BytesDone > 0 || !f.LastProgress.IsZero()) {
			moving = append(moving, fmt.Sprintf("%s (%s of %s)", f.Model, modelinfo.FormatBytes(f.BytesDone), modelinfo.FormatBytes(f.BytesTotal)))
		}
		lines = append(lines, stuckLine(f))
	}
	switch {
	case awaiting == len(stuck):
		c.Detail = fmt.Sprintf("%severy stuck model waits with AwaitingAgent: %s", detailNoAgent, strings.Join(lines, "; "))
	case len(moving) > 0:
		c.Passed = true
		c.Detail = "bytes moved in the last minute for " + strings.Join(moving, ", ")
	default:
		c.Detail = fmt.Sprintf("no bytes moved in the last minute for any of %d stuck models: %s", len(stuck), strings.Join(lines, "; "))
	}
	return c
}

func stuckLine(f Facts) string {
	s := fmt.Sprintf("%s: %s", f.Model, orDefault(f.ModelPhase, "no status"))
	if f.ModelReason != "" {
		s += " (" + f.ModelReason + ")"
	}
	s += fmt.Sprintf(", %s of %s, no progress for %s", modelinfo.FormatBytes(f.BytesDone), modelinfo.FormatBytes(f.BytesTotal), f.NoProgressFor.Round(time.Second))
	return s
}

func rerun(names []string) string {
	cmds := make([]string, 0, len(names))
	for _, n := range names {
		cmds = append(cmds, "citadel test model "+n)
	}
	return strings.Join(cmds, "; ")
}

func checkLine(c SystemicCheck) string {
	st := "ok"
	if !c.Passed {
		st = "FAILED"
	}
	return fmt.Sprintf("systemic check %s: %s: %s", c.Name, st, c.Detail)
}

// checkCode names a failed check's cause.
func checkCode(c SystemicCheck) string {
	switch c.Name {
	case CheckHub:
		return CodeHubUnreachable
	case CheckToken:
		return v1.ReasonUnauthorized
	case CheckStorage:
		if strings.HasPrefix(c.Detail, detailNoSpace) {
			return v1.ReasonInsufficientStorage
		}
		return v1.ReasonStorageNotWritable
	case CheckAgent:
		if strings.HasPrefix(c.Detail, detailNoAgent) {
			return CodeNoModelAgent
		}
		return CodeAgentStalled
	}
	return c.Name
}

// DiagnoseSystemic: when several models are stuck at once and a systemic check fails, the
// cause is systemic (Cause.Systemic, Code "Systemic" + the failing check, e.g.
// "SystemicHubUnreachable"), naming every stuck model. nil otherwise.
func DiagnoseSystemic(stuck []Facts, checks []SystemicCheck) *Cause {
	if len(stuck) < 2 {
		return nil
	}
	return systemicCause(stuck, checks)
}

func systemicCause(stuck []Facts, checks []SystemicCheck) *Cause {
	var fail *SystemicCheck
	for _, name := range []string{CheckHub, CheckToken, CheckStorage, CheckAgent} { // causes before symptoms
		for i := range checks {
			if checks[i].Name == name && !checks[i].Passed && !strings.HasPrefix(checks[i].Detail, "not checked") {
				fail = &checks[i]
				break
			}
		}
		if fail != nil {
			break
		}
	}
	if fail == nil || len(stuck) == 0 {
		return nil
	}
	code := checkCode(*fail)
	// The hub the probe checked (HF_ENDPOINT: a mirror), else the one the runs were given.
	hub := ""
	for _, ch := range checks {
		if ch.Name == CheckHub {
			hub = endpointIn(ch.Detail)
		}
	}
	if hub == "" {
		hub = orDefault(strings.TrimRight(stuck[0].HubEndpoint, "/"), defaultHub)
	}
	names := make([]string, 0, len(stuck))
	for _, f := range stuck {
		names = append(names, f.Model)
	}
	c := &Cause{Code: CodeSystemic + code, Step: StepDownload, Systemic: true}
	what := map[string]string{
		CodeHubUnreachable:           "the hub is unreachable",
		v1.ReasonUnauthorized:        "the hub rejects the token",
		v1.ReasonInsufficientStorage: "the storage has no room",
		v1.ReasonStorageNotWritable:  "the storage is not writable",
		CodeNoModelAgent:             "no model agent runs",
		CodeAgentStalled:             "the model agent moves no bytes for any of them",
	}[code]
	models := "model " + names[0] + " is"
	if len(names) > 1 {
		models = fmt.Sprintf("%d models (%s) are", len(names), strings.Join(names, ", "))
	}
	c.Summary = fmt.Sprintf("Not a fault of the models: %s stuck because %s: %s", models, what, strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(fail.Detail, detailUnreachable), detailNoSpace), detailNotWritable), detailNoAgent))
	c.Evidence = append(c.Evidence, checkLine(*fail))
	for _, ch := range checks {
		if ch.Name != fail.Name {
			c.Evidence = append(c.Evidence, checkLine(ch))
		}
	}
	for _, f := range stuck {
		l := "stuck " + stuckLine(f)
		if f.ModelMessage != "" {
			l += ": " + f.ModelMessage
		}
		c.Evidence = append(c.Evidence, l)
	}
	switch code {
	case CodeHubUnreachable:
		c.NextSteps = []string{
			fmt.Sprintf("from the server's host: curl -sS -o /dev/null -w '%%{http_code}\\n' %s/api/models?limit=1", hub),
			"check DNS, the firewall and the proxy (HTTPS_PROXY / NO_PROXY) of `citadel serve`; unset HF_HUB_OFFLINE",
			"the agent resumes every model on its own once the hub answers; then rerun them: " + rerun(names),
		}
	case v1.ReasonUnauthorized:
		c.NextSteps = []string{
			fmt.Sprintf("create a new read token at %s/settings/tokens and export it as HF_TOKEN", hub),
			"replace the shared secret: " + tokenSecretCmd(v1.ClusterSecretNamespace, "hf-token", "token"),
			"then rerun them: " + rerun(names),
		}
	case v1.ReasonInsufficientStorage:
		c.NextSteps = []string{
			"df -h on the storage path; free space (citadel delete model NAME) or move the cache: citadel serve --data-dir DIR",
			"test fewer models at once: their sizes add up",
		}
	case v1.ReasonStorageNotWritable:
		c.NextSteps = []string{"make the storage path writable by the user that runs citadel serve (ls -ld PATH), or set another spec.storage.path"}
	case CodeNoModelAgent:
		c.NextSteps = []string{"start the server with the agent: citadel serve --agent=true (the default)"}
	default:
		c.NextSteps = []string{
			"the agent is alive but no download moves: check the server's log for the model agent (citadel serve --log-level debug)",
			"see the slots: citadel get models; lower or raise citadel serve --max-downloads",
			"restart `citadel serve`: partial files are kept and resumed",
		}
	}
	return c
}
