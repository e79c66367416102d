package modeltest

// Evidence: the lines a cause quotes (status, events, the engine's log tail, progress), the
// facts read from the messages of other packages, and the commands a cause suggests.

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
)

// The facts behind a message are read from the status (v1.ModelStatus.LastFailure, written
// by the model agent from pull.Error and by the daemon from its secret lookup;
// v1.Endpoint.ExitCode and Signal, written by serving from the supervisor), never from
// another package's message. The one text still read is the engine's own log (oomRe).

// failure is the facts of the model's last failure when it is the one that reason names;
// nil when the status carries none (an agent-less server) or another failure's.
func (d *diag) failure(reason string) *v1.DownloadFailure {
	if lf := d.f.ModelFailure; lf != nil && lf.Reason == reason {
		return lf
	}
	return nil
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

func (d *diag) modelEventLines() []string { return eventLines(d.f.ModelEvents, true) }

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

// exitText is how the engine ended, as its endpoints say: "exit code 1", "signal: killed".
func (d *diag) exitText() string {
	for _, ep := range d.f.Endpoints {
		switch {
		case ep.Signal != "":
			return "signal: " + ep.Signal
		case ep.ExitCode != nil:
			return fmt.Sprintf("exit code %d", *ep.ExitCode)
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

// hubEndpoint is the hub the agent talked to: the last failure's endpoint, else the first
// URL its message names; else the endpoint the run was configured with (HF_ENDPOINT); else
// huggingface.co.
func (d *diag) hubEndpoint() string {
	if lf := d.f.ModelFailure; lf != nil && lf.Endpoint != "" {
		return lf.Endpoint
	}
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

// secretRef names the model's secret: as the agent or the daemon looked it up (the last
// failure), else from the spec.
func (d *diag) secretRef(msg string) (ns, name, key string) {
	if lf := d.f.ModelFailure; lf != nil && lf.Secret != nil {
		return lf.Secret.Namespace, lf.Secret.Name, lf.Secret.Key
	}
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
	return orDefault(ns, v1.DefaultNamespace), name, key
}

func (d *diag) modelObject() string {
	if d.f.ModelKind == v1.KindBaseModel {
		return "basemodel/" + orDefault(d.f.Model, d.r.Model) + " -n " + orDefault(d.r.Namespace, v1.DefaultNamespace)
	}
	return "model/" + orDefault(d.f.Model, d.r.Model)
}

// retryCmd asks the model agent to try the model's download again now.
func (d *diag) retryCmd() string {
	if d.f.ModelKind == v1.KindBaseModel {
		return fmt.Sprintf("citadel retry basemodel %s -n %s", orDefault(d.f.Model, d.r.Model), orDefault(d.r.Namespace, v1.DefaultNamespace))
	}
	return "citadel retry model " + orDefault(d.f.Model, d.r.Model)
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

// fileOf is the file the failure of reason concerns; "" if unknown.
func (d *diag) fileOf(reason string) string {
	if lf := d.failure(reason); lf != nil {
		return lf.File
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
