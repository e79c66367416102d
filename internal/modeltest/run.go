package modeltest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/selection"
)

// Server is what a test drives: citadel serve's admin API (*client.Client), or a Kubernetes
// cluster (internal/kube/kclient). Errors follow the client's: *client.APIError with the
// HTTP code (404 when an object is not there), *client.UnreachableError when the server
// cannot be reached.
type Server interface {
	Apply(ctx context.Context, req v1.ApplyRequest) (*v1.ApplyResponse, error)
	Get(ctx context.Context, kind, namespace, name string) (v1.Object, error)
	List(ctx context.Context, kind string, opts client.ListOptions) ([]v1.Object, error)
	Delete(ctx context.Context, kind, namespace, name, resourceVersion string) (v1.Object, error)
	Events(ctx context.Context, f client.EventFilter) ([]v1.Event, error)
	Fit(ctx context.Context, s *v1.InferenceService) (v1.FitResult, error)
	Logs(ctx context.Context, namespace, name string, replica, tail int, follow bool, w io.Writer) error
}

// ClusterEvidence is what a Server that is a cluster adds to a step's evidence: the agents
// and their leases, the node labels, the engine pods' events and the Deployment's
// conditions (internal/kube/kclient). The lines are quoted as they are.
type ClusterEvidence interface {
	ModelEvidence(ctx context.Context, model v1.Object) []string
	ServiceEvidence(ctx context.Context, namespace, name string) []string
}

var _ Server = (*client.Client)(nil)

// Options configure a run.
type Options struct {
	Client Server
	// Gateway is the gateway's base URL (http://127.0.0.1:8080); "" tests the engine only.
	Gateway string
	// HubEndpoint is the Hugging Face endpoint the server downloads from (HF_ENDPOINT: a
	// mirror); next steps name it. "" : https://huggingface.co.
	HubEndpoint string
	// Namespace of the InferenceService the test creates; default "default".
	Namespace string
	// Runtime names the runtime; "" selects one as the server would.
	Runtime string
	// Stall fails the download when its bytes do not move for this long (the agent's own
	// --stall-timeout usually says so first); default 60 s.
	Stall time.Duration
	// DownloadTimeout bounds the download; default 30 min.
	DownloadTimeout time.Duration
	// ReadyTimeout bounds the service's start; 0: the runtime's startup probe budget
	// (initial delay + period × failure threshold) plus 30 s, at least 2 min.
	ReadyTimeout time.Duration
	// Keep leaves in place what the test applied: the service, and the model, runtimes and
	// secrets it created. Without it cleanup deletes all of them (not what existed before).
	Keep bool
	// Poll is how often statuses are read; default 250 ms.
	Poll time.Duration
	// Progress receives one line per notable change; nil: none.
	Progress io.Writer
	Now      func() time.Time
}

// Target is what to test: objects to apply (a model, and optionally runtimes and secrets),
// or the name of a model that exists already.
type Target struct {
	Objects []v1.Object
	Model   string
	// Shared are applied with Objects but never deleted by the run: a suite shares them
	// between its models and deletes the ones it created once every model is done.
	Shared []v1.Object
}

type run struct {
	o       Options
	r       *Report
	created []v1.Object // what cleanup deletes
	model   v1.Object
	spec    *v1.BaseModelSpec
	svcName string
	ep      *v1.Endpoint
	served  string
	vision  bool
	embed   bool
	startup *v1.Probe
}

// Run tests one model and returns its report, diagnosed.
func Run(ctx context.Context, o Options, t Target) *Report {
	if o.Namespace == "" {
		o.Namespace = v1.DefaultNamespace
	}
	if o.Stall == 0 {
		o.Stall = 60 * time.Second
	}
	if o.DownloadTimeout == 0 {
		o.DownloadTimeout = 30 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	rn := &run{o: o, r: &Report{Model: t.Model, Namespace: o.Namespace, Started: o.Now()}}
	rn.r.Facts.HubEndpoint = strings.TrimRight(o.HubEndpoint, "/")
	rn.r.Facts.Gateway = strings.TrimRight(o.Gateway, "/")
	for _, s := range Steps {
		rn.r.Steps = append(rn.r.Steps, Step{Name: s.Name, Title: s.Title, Status: NotRun})
	}
	steps := []struct {
		name string
		fn   func(context.Context, *Step) error
	}{
		{StepApply, func(ctx context.Context, s *Step) error { return rn.apply(ctx, s, t) }},
		{StepDownload, rn.download},
		{StepRuntime, rn.runtime},
		{StepService, rn.service},
		{StepReady, rn.ready},
		{StepInference, rn.inference},
	}
	blocked := ""
	for _, st := range steps {
		s := rn.step(st.name)
		if blocked != "" {
			s.BlockedBy = blocked
			continue
		}
		s.Started = o.Now()
		err := st.fn(ctx, s)
		s.Duration = o.Now().Sub(s.Started)
		switch {
		case err == nil:
			s.Status = Passed
		default:
			s.Status = Failed
			if s.Summary == "" {
				s.Summary = err.Error()
			}
			blocked = st.name
			var ce *couldNotRun
			if errors.As(err, &ce) {
				rn.r.Result = ResultError
			}
		}
		rn.progress("%s: %s %s", st.name, s.Status, s.Summary)
	}
	rn.cleanup(rn.step(StepCleanup))
	rn.r.Facts.Model = rn.r.Model
	if rn.r.Result == "" {
		rn.r.Result = ResultPassed
		for _, s := range rn.r.Steps {
			if s.Status == Failed {
				rn.r.Result = ResultFailed
			}
		}
	}
	if rn.r.Result != ResultPassed {
		rn.r.Cause = Diagnose(rn.r)
	}
	rn.r.Duration = o.Now().Sub(rn.r.Started)
	return rn.r
}

// couldNotRun is a failure of the test itself (no server, bad input), not of the model.
type couldNotRun struct{ err error }

func (e *couldNotRun) Error() string { return e.err.Error() }
func (e *couldNotRun) Unwrap() error { return e.err }

func (rn *run) step(name string) *Step {
	for i := range rn.r.Steps {
		if rn.r.Steps[i].Name == name {
			return &rn.r.Steps[i]
		}
	}
	panic("unknown step " + name)
}

func (rn *run) progress(format string, args ...any) {
	if rn.o.Progress != nil {
		fmt.Fprintf(rn.o.Progress, "%s  "+format+"\n", append([]any{rn.o.Now().Format("15:04:05")}, args...)...)
	}
}

func (rn *run) apply(ctx context.Context, s *Step, t Target) error {
	c := rn.o.Client
	if len(t.Objects) > 0 {
		var req v1.ApplyRequest
		for _, o := range append(t.Objects[:len(t.Objects):len(t.Objects)], t.Shared...) {
			b, err := json.Marshal(o)
			if err != nil {
				return &couldNotRun{err}
			}
			req.Items = append(req.Items, v1.ApplyItem{Object: b})
			switch m := o.(type) {
			case *v1.ClusterBaseModel, *v1.BaseModel:
				rn.model = m
				if rn.r.Model == "" {
					rn.r.Model = m.GetObjectMeta().Name
				}
			}
		}
		if rn.model == nil && t.Model == "" {
			return &couldNotRun{errors.New("the files hold no ClusterBaseModel or BaseModel to test")}
		}
		// Models the test creates are the test's to delete; ones that exist stay.
		existed := map[string]bool{}
		for _, o := range t.Objects {
			m := o.GetObjectMeta()
			if _, err := c.Get(ctx, kindOf(o), m.Namespace, m.Name); err == nil {
				existed[kindOf(o)+"/"+m.Namespace+"/"+m.Name] = true
			}
		}
		resp, err := c.Apply(ctx, req)
		if err != nil {
			var unreachable *client.UnreachableError
			if errors.As(err, &unreachable) {
				return &couldNotRun{err}
			}
			s.Evidence = append(s.Evidence, err.Error())
			return fmt.Errorf("apply refused: %w", err)
		}
		for _, res := range resp.Results {
			s.Evidence = append(s.Evidence, fmt.Sprintf("%s/%s %s", strings.ToLower(res.Kind), res.Name, res.Action))
		}
		// Everything the test created (models, runtimes, secrets) is the test's to delete;
		// what existed before stays. Cleanup deletes in reverse order: the model before the
		// runtimes and secrets it was applied with.
		for _, o := range t.Objects {
			m := o.GetObjectMeta()
			if !existed[kindOf(o)+"/"+m.Namespace+"/"+m.Name] {
				rn.created = append(rn.created, o)
			}
		}
		s.Summary = fmt.Sprintf("applied %d object(s)", len(req.Items))
		return nil
	}
	o, kind, err := rn.findModel(ctx, t.Model)
	if err != nil {
		return err
	}
	rn.model = o
	switch m := o.(type) {
	case *v1.ClusterBaseModel:
		rn.r.Facts.ModelSpec = &m.Spec
	case *v1.BaseModel:
		rn.r.Facts.ModelSpec = &m.Spec
	}
	s.Summary = fmt.Sprintf("using the existing %s %s", kind, t.Model)
	return nil
}

func kindOf(o v1.Object) string { return o.GetTypeMeta().Kind }

// findModel looks the model up as the server would: BaseModel in the namespace, then cluster.
func (rn *run) findModel(ctx context.Context, name string) (v1.Object, string, error) {
	c := rn.o.Client
	if o, err := c.Get(ctx, v1.KindBaseModel, rn.o.Namespace, name); err == nil {
		return o, v1.KindBaseModel, nil
	}
	o, err := c.Get(ctx, v1.KindClusterBaseModel, "", name)
	if err != nil {
		var unreachable *client.UnreachableError
		if errors.As(err, &unreachable) {
			return nil, "", &couldNotRun{err}
		}
		return nil, "", fmt.Errorf("model %q not found (no BaseModel in %s, no ClusterBaseModel): %w", name, rn.o.Namespace, err)
	}
	return o, v1.KindClusterBaseModel, nil
}

// modelState reads the model's spec and status.
func (rn *run) modelState(ctx context.Context) (*v1.BaseModelSpec, *v1.ModelStatus, error) {
	m := rn.model.GetObjectMeta()
	o, err := rn.o.Client.Get(ctx, kindOf(rn.model), m.Namespace, m.Name)
	if err != nil {
		return nil, nil, err
	}
	switch o := o.(type) {
	case *v1.ClusterBaseModel:
		rn.model = o
		return &o.Spec, &o.Status, nil
	case *v1.BaseModel:
		rn.model = o
		return &o.Spec, &o.Status, nil
	}
	return nil, nil, fmt.Errorf("%s is not a model", m.Name)
}

func (rn *run) download(ctx context.Context, s *Step) error {
	f := &rn.r.Facts
	f.ModelKind = kindOf(rn.model)
	deadline := rn.o.Now().Add(rn.o.DownloadTimeout)
	var lastBytes int64 = -1
	lastMove := rn.o.Now()
	lastLine := ""
	for {
		spec, st, err := rn.modelState(ctx)
		if err != nil {
			return fmt.Errorf("reading the model: %w", err)
		}
		rn.spec = spec
		f.ModelSpec = spec // the diagnosis names the repository from it, Ready or not
		f.ModelPhase, f.ModelReason, f.ModelMessage, f.ModelFailure = st.Phase, st.Reason, st.Message, st.LastFailure
		f.BytesDone, f.BytesTotal, f.BytesPerSecond = st.BytesDone, st.BytesTotal, st.BytesPerSecond
		if st.LastProgressTime != nil {
			f.LastProgress = st.LastProgressTime.Time
		}
		if st.BytesDone != lastBytes {
			lastBytes, lastMove = st.BytesDone, rn.o.Now()
		}
		f.NoProgressFor = rn.o.Now().Sub(lastMove).Round(time.Second)
		line := fmt.Sprintf("phase %s", st.Phase)
		if st.Reason != "" {
			line += " (" + st.Reason + ")"
		}
		if st.BytesTotal > 0 {
			line += fmt.Sprintf(", %s of %s", modelinfo.FormatBytes(st.BytesDone), modelinfo.FormatBytes(st.BytesTotal))
			if st.BytesPerSecond > 0 {
				line += fmt.Sprintf(" at %s/s", modelinfo.FormatBytes(st.BytesPerSecond))
			}
		}
		if st.Message != "" {
			line += ": " + st.Message
		}
		if line != lastLine {
			s.Evidence = append(s.Evidence, line)
			rn.progress("download: %s", line)
			lastLine = line
		}
		switch {
		case st.Phase == v1.ModelReady:
			rn.events(ctx, s, true)
			rn.describeModel(spec)
			s.Summary = fmt.Sprintf("Ready: %s", firstNonEmpty(st.Message, "downloaded"))
			return nil
		case st.Phase == v1.ModelFailed:
			rn.events(ctx, s, true)
			return errors.New(withReason(st.Reason, st.Message))
		case rn.o.Now().After(deadline):
			rn.events(ctx, s, true)
			f.DownloadTimedOut = true
			return fmt.Errorf("not Ready after %s (phase %s, %s of %s)", rn.o.DownloadTimeout, st.Phase, modelinfo.FormatBytes(st.BytesDone), modelinfo.FormatBytes(st.BytesTotal))
		case f.NoProgressFor >= rn.o.Stall && st.Phase == v1.ModelDownloading:
			rn.events(ctx, s, true)
			return fmt.Errorf("DownloadStalled: no bytes for %s at %s of %s", f.NoProgressFor, modelinfo.FormatBytes(st.BytesDone), modelinfo.FormatBytes(st.BytesTotal))
		case f.NoProgressFor >= rn.o.Stall && st.Phase == v1.ModelPending:
			rn.events(ctx, s, true)
			return fmt.Errorf("still %s after %s: %s", st.Phase, f.NoProgressFor, firstNonEmpty(st.Reason, "no reason given"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(rn.o.Poll):
		}
	}
}

// events records the object's events as evidence and facts.
func (rn *run) events(ctx context.Context, s *Step, model bool) {
	var f client.EventFilter
	if model {
		m := rn.model.GetObjectMeta()
		f = client.EventFilter{Kind: kindOf(rn.model), Namespace: m.Namespace, Name: m.Name, Limit: 50}
	} else {
		f = client.EventFilter{Kind: v1.KindInferenceService, Namespace: rn.o.Namespace, Name: rn.svcName, Limit: 50}
	}
	if ce, ok := rn.o.Client.(ClusterEvidence); ok {
		if model {
			s.Evidence = append(s.Evidence, ce.ModelEvidence(ctx, rn.model)...)
		} else {
			s.Evidence = append(s.Evidence, ce.ServiceEvidence(ctx, rn.o.Namespace, rn.svcName)...)
		}
	}
	evs, err := rn.o.Client.Events(ctx, f)
	if err != nil {
		return
	}
	for _, e := range evs {
		s.Evidence = append(s.Evidence, fmt.Sprintf("event %s %s: %s", e.Type, e.Reason, e.Message))
	}
	if model {
		rn.r.Facts.ModelEvents = evs
	} else {
		rn.r.Facts.ServiceEvents = evs
	}
}

func (rn *run) describeModel(spec *v1.BaseModelSpec) {
	info := []string{"Model: " + rn.r.Model}
	if spec.ModelArchitecture != nil {
		info = append(info, "Architecture: "+*spec.ModelArchitecture)
	}
	if spec.ModelParameterSize != nil {
		info = append(info, "Parameters: "+string(*spec.ModelParameterSize))
	}
	if spec.ModelFramework != nil && spec.ModelFramework.Version != nil {
		info = append(info, "Framework: "+spec.ModelFramework.Name+" "+*spec.ModelFramework.Version)
	}
	if spec.ModelFormat.Name != "" {
		info = append(info, "Format: "+spec.ModelFormat.Name)
	}
	if len(spec.ModelCapabilities) > 0 {
		info = append(info, "Capabilities: "+strings.Join(spec.ModelCapabilities, ", "))
	}
	for _, c := range spec.ModelCapabilities {
		switch c {
		case "IMAGE_TEXT_TO_TEXT", "VISION", "IMAGE_TO_TEXT":
			rn.vision = true
		case "EMBEDDING", "TEXT_EMBEDDINGS":
			rn.embed = true
		}
	}
	rn.r.Info = info
	rn.r.Facts.ModelSpec = spec
}

func (rn *run) runtime(ctx context.Context, s *Step) error {
	c := rn.o.Client
	var rts []selection.Runtime
	nsr, err := c.List(ctx, v1.KindServingRuntime, client.ListOptions{Namespace: rn.o.Namespace})
	if err != nil {
		return err
	}
	for _, o := range nsr {
		r := o.(*v1.ServingRuntime)
		rts = append(rts, selection.FromNamespaced(r))
	}
	csr, err := c.List(ctx, v1.KindClusterServingRuntime, client.ListOptions{})
	if err != nil {
		return err
	}
	for _, o := range csr {
		r := o.(*v1.ClusterServingRuntime)
		rts = append(rts, selection.FromCluster(r))
	}
	res, err := selection.Select(selection.Model{Name: rn.r.Model, Spec: *rn.spec, Ready: rn.r.Facts.ModelPhase == v1.ModelReady}, rts, rn.o.Runtime)
	cands := res.Candidates
	var se *selection.Error
	if errors.As(err, &se) {
		cands = se.Candidates
	}
	for _, cd := range cands {
		line := "runtime " + cd.Runtime + ": "
		switch {
		case cd.Selected:
			line += fmt.Sprintf("selected (score %d)", cd.Score)
		case cd.Reason == "":
			line += fmt.Sprintf("compatible (score %d)", cd.Score)
		default:
			line += cd.Reason
		}
		s.Evidence = append(s.Evidence, line)
		rn.r.Facts.Runtimes = append(rn.r.Facts.Runtimes, v1.RuntimeCandidate{Name: cd.Runtime, Namespaced: cd.Namespaced, Score: cd.Score, Selected: cd.Selected, Reason: cd.Reason})
	}
	if err != nil {
		if se != nil {
			rn.r.Facts.ServiceReason, rn.r.Facts.ServiceMessage = se.Reason, se.Message
		}
		return err
	}
	rn.r.Facts.Runtime = res.Runtime.Name
	if ec := res.Runtime.Spec.EngineConfig; ec != nil && ec.Runner != nil {
		rn.startup = ec.Runner.StartupProbe
	}
	s.Summary = "runtime " + res.Runtime.Name
	return nil
}

var nameSanitizer = regexp.MustCompile(`[^a-z0-9-]+`)

func (rn *run) service(ctx context.Context, s *Step) error {
	name := "test-" + strings.Trim(nameSanitizer.ReplaceAllString(strings.ToLower(rn.r.Model), "-"), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	rn.svcName = name
	rn.r.Facts.Service = rn.o.Namespace + "/" + name
	isvc := &v1.InferenceService{
		TypeMeta:   v1.TypeMeta{APIVersion: v1.OMEGroupVersion, Kind: v1.KindInferenceService},
		ObjectMeta: v1.ObjectMeta{Name: name, Namespace: rn.o.Namespace, Labels: map[string]string{"citadel.dev/test": "true"}},
		Spec: v1.InferenceServiceSpec{Model: &v1.ModelRef{Name: rn.r.Model},
			Runtime: &v1.ServingRuntimeRef{Name: rn.r.Facts.Runtime}},
	}
	// Check the fit first: a service that cannot be placed beside the running ones is refused
	// here, with the planner's arithmetic, and nothing is applied. (A server without a serving
	// controller cannot say; the service is then applied and its status tells.)
	if fit, err := rn.o.Client.Fit(ctx, isvc); err == nil && fit.Checked && !fit.Fits {
		f := &rn.r.Facts
		f.ServicePhase, f.ServiceReason, f.ServiceMessage, f.Placement = v1.ServiceScheduling, fit.Reason, fit.Message, fit.Placement
		s.Evidence = append(s.Evidence, "not applied: it does not fit beside the running services, which keep their GPUs")
		s.Evidence = append(s.Evidence, fit.Placement...)
		return errors.New(withReason(fit.Reason, fit.Message))
	}
	b, err := json.Marshal(isvc)
	if err != nil {
		return err
	}
	resp, err := rn.o.Client.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{{Object: b}}})
	if err != nil {
		return fmt.Errorf("creating InferenceService %s/%s: %w", rn.o.Namespace, name, err)
	}
	rn.created = append(rn.created, isvc)
	for _, res := range resp.Results {
		s.Evidence = append(s.Evidence, fmt.Sprintf("inferenceservice/%s %s (runtime %s)", res.Name, res.Action, rn.r.Facts.Runtime))
	}
	s.Summary = "InferenceService " + rn.r.Facts.Service
	return nil
}

// readyBudget is how long the service may take to start.
func (rn *run) readyBudget() time.Duration {
	if rn.o.ReadyTimeout > 0 {
		return rn.o.ReadyTimeout
	}
	d := 2 * time.Minute
	if p := rn.startup; p != nil {
		period, threshold := max(p.PeriodSeconds, 10), max(p.FailureThreshold, 3)
		d = max(d, time.Duration(p.InitialDelaySeconds+period*threshold)*time.Second+30*time.Second)
	}
	return d
}

func (rn *run) ready(ctx context.Context, s *Step) error {
	f := &rn.r.Facts
	budget := rn.readyBudget()
	deadline := rn.o.Now().Add(budget)
	lastLine := ""
	for {
		o, err := rn.o.Client.Get(ctx, v1.KindInferenceService, rn.o.Namespace, rn.svcName)
		if err != nil {
			return fmt.Errorf("reading the service: %w", err)
		}
		svc := o.(*v1.InferenceService)
		st := svc.Status
		f.ServicePhase, f.ServiceReason, f.ServiceMessage = st.Phase, st.Reason, st.Message
		f.Placement, f.Endpoints = st.Placement, st.Endpoints
		if st.Runtime != "" {
			f.Runtime = st.Runtime
		}
		line := fmt.Sprintf("phase %s (%s): %s", st.Phase, st.Reason, st.Message)
		if line != lastLine {
			s.Evidence = append(s.Evidence, line)
			rn.progress("service: %s", line)
			lastLine = line
		}
		crashLoop := len(st.Endpoints) > 0 && st.Endpoints[0].Phase == v1.EnginePhaseCrashLoopBackOff
		switch {
		case st.Phase == v1.ServiceReady && len(st.Endpoints) > 0:
			ep := st.Endpoints[0]
			rn.ep = &ep
			if len(ep.Served) > 0 {
				rn.served = ep.Served[0]
			}
			s.Evidence = append(s.Evidence, st.Placement...)
			s.Summary = fmt.Sprintf("Ready at %s (%s on GPUs %v)", ep.Address, ep.Engine, ep.GPUs)
			return nil
		case st.Phase == v1.ServiceFailed || crashLoop || (st.Phase == v1.ServiceScheduling && st.Reason == v1.ReasonUnschedulable):
			rn.failEvidence(ctx, s)
			return errors.New(withReason(st.Reason, st.Message))
		case rn.o.Now().After(deadline):
			f.ReadyTimedOut = true
			rn.failEvidence(ctx, s)
			return fmt.Errorf("not Ready after %s (the runtime's start-up budget): phase %s (%s)", budget, st.Phase, st.Reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(rn.o.Poll):
		}
	}
}

// failEvidence adds the service's placement, events and the engine's log tail.
func (rn *run) failEvidence(ctx context.Context, s *Step) {
	s.Evidence = append(s.Evidence, rn.r.Facts.Placement...)
	rn.events(ctx, s, false)
	var b strings.Builder
	if err := rn.o.Client.Logs(ctx, rn.o.Namespace, rn.svcName, 0, 20, false, &b); err == nil && b.Len() > 0 {
		tail := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
		rn.r.Facts.LogTail = tail
		for _, l := range tail {
			s.Evidence = append(s.Evidence, "log: "+l)
		}
	}
}

func (rn *run) cleanup(s *Step) {
	if rn.o.Keep {
		s.Status, s.Summary = Skipped, "--keep: what the test applied stays"
		return
	}
	s.Started = rn.o.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deleted, failed := deleteAll(ctx, rn.o.Client, rn.created)
	s.Evidence = append(s.Evidence, deleted...)
	s.Duration = rn.o.Now().Sub(s.Started)
	if len(failed) > 0 {
		s.Status, s.Summary = Failed, "could not delete: "+strings.Join(failed, "; ")
		return
	}
	s.Status = Passed
	s.Summary = fmt.Sprintf("deleted %d object(s) the test created", len(s.Evidence))
}

// deleteAll deletes objs in reverse order (what was applied last goes first); an object
// already gone counts as deleted.
func deleteAll(ctx context.Context, c Server, objs []v1.Object) (deleted, failed []string) {
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		m := o.GetObjectMeta()
		kind := kindOf(o)
		if _, err := c.Delete(ctx, kind, m.Namespace, m.Name, ""); err != nil {
			var ae *client.APIError
			if errors.As(err, &ae) && ae.Code == 404 {
				continue
			}
			failed = append(failed, fmt.Sprintf("%s/%s: %v", strings.ToLower(kind), m.Name, err))
			continue
		}
		deleted = append(deleted, fmt.Sprintf("deleted %s/%s", strings.ToLower(kind), m.Name))
	}
	return deleted, failed
}

// withReason is "Reason: message", unless the message starts with the reason already.
func withReason(reason, msg string) string {
	if reason == "" || strings.HasPrefix(msg, reason) {
		return msg
	}
	return reason + ": " + msg
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
