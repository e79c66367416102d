// Package agent is the model agent of `citadel serve`: it reconciles every
// ClusterBaseModel and BaseModel onto this host. A model moves Pending →
// Downloading → Verifying → Ready, or to Failed with a reason code and a
// message; progress reaches its status at least every two seconds; every
// phase change is an event; retryable failures are retried with backoff; a
// model that was Ready is re-checked on start (a truncated file is found and
// fetched again); and blobs no model uses any more are removed.
//
// One goroutine owns all state (Run); pulls run in their own goroutines and
// report back over a channel.
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// Options configure the agent.
type Options struct {
	Store  *store.Store
	Puller *pull.Puller
	Logger *slog.Logger
	Now    func() time.Time
	// RecordsDir keeps what each Ready model consists of, to re-check it on start.
	RecordsDir string
	// Node names this host in per-node status.
	Node string
	// MaxConcurrent bounds models downloading at once; default 2.
	MaxConcurrent int
	// RetryBase is the first retry delay of a retryable failure; it doubles
	// up to RetryMax. Defaults 15 s and 10 min.
	RetryBase, RetryMax time.Duration
	// StatusEvery is the cadence of progress writes; default 1 s (so the
	// status is never older than 2 s while bytes move).
	StatusEvery time.Duration
	// StallTimeout is reported in messages; the puller enforces it.
	StallTimeout time.Duration
}

// Agent reconciles models.
type Agent struct {
	opts Options
	log  *slog.Logger
	st   *store.Store

	// owned by Run
	models  map[config.ObjectKey]*model
	running int
	results chan result
}

type model struct {
	key       config.ObjectKey
	cancel    context.CancelFunc
	running   bool
	runningFP string
	failedFP  string
	retryable bool
	attempt   int
	nextTry   time.Time
	checked   bool // re-verified since the agent started
}

type result struct {
	key      config.ObjectKey
	fp       string
	res      *pull.Result
	err      error
	progress *pull.Progress
}

// New returns an agent.
func New(opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 2
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 15 * time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 10 * time.Minute
	}
	if opts.StatusEvery <= 0 {
		opts.StatusEvery = time.Second
	}
	if opts.Node == "" {
		opts.Node, _ = os.Hostname()
	}
	return &Agent{opts: opts, log: opts.Logger, st: opts.Store, models: map[config.ObjectKey]*model{}, results: make(chan result, 64)}
}

// Run reconciles until ctx ends; running pulls are cancelled and awaited.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := a.st.Watch(ctx, store.WatchOptions{SendInitial: true})
	if err != nil {
		return err
	}
	defer w.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	dirty := map[config.ObjectKey]bool{}
	all := false
	flush := func() {
		if all {
			a.reconcileAll(ctx, &wg)
		} else {
			for k := range dirty {
				a.reconcile(ctx, &wg, k)
			}
		}
		clear(dirty)
		all = false
		a.arm(timer)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				if err := w.Err(); err != nil && !errors.Is(err, store.ErrClosed) {
					return fmt.Errorf("model agent watch: %w", err)
				}
				return nil
			}
			switch ev.Object.Kind {
			case v1.KindClusterBaseModel, v1.KindBaseModel:
				dirty[config.ObjectKey{Kind: ev.Object.Kind, Namespace: ev.Object.Namespace, Name: ev.Object.Name}] = true
				if ev.Type == store.Deleted {
					a.forget(config.ObjectKey{Kind: ev.Object.Kind, Namespace: ev.Object.Namespace, Name: ev.Object.Name})
				}
			case v1.KindSecret:
				all = true // a token appeared or changed: models waiting on it move
			}
			// Drain what else is queued before reconciling.
			if len(w.Events()) == 0 {
				flush()
			}
		case r := <-a.results:
			a.handle(ctx, &wg, r)
		case <-timer.C:
			a.reconcileAll(ctx, &wg)
			a.arm(timer)
		}
	}
}

// arm sets the timer to the earliest retry.
func (a *Agent) arm(t *time.Timer) {
	next := time.Duration(0)
	now := a.opts.Now()
	for _, m := range a.models {
		if m.nextTry.IsZero() || m.running {
			continue
		}
		d := max(m.nextTry.Sub(now), 10*time.Millisecond)
		if next == 0 || d < next {
			next = d
		}
	}
	if next == 0 {
		next = time.Minute // also picks up queued models
	}
	t.Reset(next)
}

func (a *Agent) forget(k config.ObjectKey) {
	if m := a.models[k]; m != nil && m.cancel != nil {
		m.cancel()
	}
	delete(a.models, k)
	os.Remove(a.recordPath(k))
	a.gc()
}

func (a *Agent) reconcileAll(ctx context.Context, wg *sync.WaitGroup) {
	for _, kind := range []string{v1.KindClusterBaseModel, v1.KindBaseModel} {
		objs, _, err := a.st.List(ctx, kind, store.ListOptions{})
		if err != nil {
			a.log.Warn("listing models", "err", err)
			return
		}
		for _, so := range objs {
			a.reconcile(ctx, wg, config.ObjectKey{Kind: so.Kind, Namespace: so.Namespace, Name: so.Name})
		}
	}
}

// spec is what the agent needs of a model.
type spec struct {
	meta    *v1.ObjectMeta
	spec    *v1.BaseModelSpec
	status  *v1.ModelStatus
	obj     v1.Object
	storeRV int64
}

func (a *Agent) load(ctx context.Context, k config.ObjectKey) (*spec, error) {
	so, err := a.st.Get(ctx, k.Kind, k.Namespace, k.Name)
	if err != nil {
		return nil, err
	}
	o, err := resource.FromStore(so)
	if err != nil {
		return nil, err
	}
	s := &spec{obj: o, storeRV: so.ResourceVersion}
	switch m := o.(type) {
	case *v1.ClusterBaseModel:
		s.meta, s.spec, s.status = &m.ObjectMeta, &m.Spec, &m.Status
	case *v1.BaseModel:
		s.meta, s.spec, s.status = &m.ObjectMeta, &m.Spec, &m.Status
	default:
		return nil, fmt.Errorf("not a model: %s", so.Kind)
	}
	return s, nil
}

// token resolves the model's secret. A named secret that is missing, or
// lacks its key, is an error: never a silent anonymous download.
func (a *Agent) token(ctx context.Context, k config.ObjectKey, s *spec) (token, secretRV string, perr *pull.Error) {
	st := s.spec.Storage
	if st == nil || st.StorageKey == nil || *st.StorageKey == "" {
		return "", "", nil
	}
	ns := k.Namespace
	if k.Kind == v1.KindClusterBaseModel {
		ns = v1.ClusterSecretNamespace
	}
	name, key := *st.StorageKey, st.SecretKey()
	so, err := a.st.Get(ctx, v1.KindSecret, ns, name)
	if err != nil {
		return "", "", &pull.Error{Reason: pull.ReasonSecretNotFound, Message: fmt.Sprintf(
			"spec.storage.key names secret %s/%s, which does not exist; nothing is downloaded anonymously in its place: citadel secret create %s -n %s --from-env %s=HF_TOKEN", ns, name, name, ns, key)}
	}
	o, err := resource.FromStore(so)
	if err != nil {
		return "", "", &pull.Error{Reason: pull.ReasonInternal, Message: err.Error()}
	}
	v, ok := o.(*v1.Secret).Value(key)
	if !ok || v == "" {
		return "", "", &pull.Error{Reason: pull.ReasonSecretNotFound, Message: fmt.Sprintf(
			"secret %s/%s has no key %q: add it, or set spec.storage.parameters.secretKey to the key that holds the token", ns, name, key)}
	}
	return v, fmt.Sprint(so.ResourceVersion), nil
}

// fingerprint identifies what a pull depends on; a change starts a new pull.
func fingerprint(s *v1.BaseModelSpec, secretRV string) string {
	h := sha256.New()
	st := s.Storage
	for _, p := range []*string{st.StorageURI, st.Path, st.StorageKey} {
		if p != nil {
			h.Write([]byte(*p))
		}
		h.Write([]byte{0})
	}
	h.Write([]byte(st.SecretKey() + "\x00" + secretRV))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (a *Agent) reconcile(ctx context.Context, wg *sync.WaitGroup, k config.ObjectKey) {
	s, err := a.load(ctx, k)
	if err != nil {
		var nf *store.NotFoundError
		if errors.As(err, &nf) {
			a.forget(k)
		}
		return
	}
	m := a.models[k]
	if m == nil {
		m = &model{key: k}
		a.models[k] = m
	}
	now := a.opts.Now()
	if s.spec.Disabled != nil && *s.spec.Disabled {
		if m.cancel != nil {
			m.cancel()
		}
		a.write(ctx, k, s, v1.ModelPending, "ModelDisabled", "spec.disabled is true: the model is not downloaded; set it to false to enable it", nil)
		return
	}
	token, secretRV, perr := a.token(ctx, k, s)
	if perr != nil {
		if m.cancel != nil {
			m.cancel()
		}
		a.write(ctx, k, s, v1.ModelFailed, perr.Reason, perr.Message, nil)
		return
	}
	fp := fingerprint(s.spec, secretRV)
	if m.running {
		if m.runningFP != fp && m.cancel != nil {
			m.cancel() // the spec or token changed: the result will be dropped and a new pull started
		}
		return
	}
	switch {
	case s.status.Phase == v1.ModelReady && a.readRecord(k).FP == fp:
		if !m.checked {
			m.checked = true
			if bad := a.verifyRecord(k); bad != "" {
				a.event(ctx, k, s, v1.EventWarning, "Reverify", bad+": fetching it again")
				a.start(ctx, wg, k, s, m, fp, token)
				return
			}
		}
		if s.status.ObservedGeneration != s.meta.Generation {
			st := *s.status
			st.ObservedGeneration = s.meta.Generation
			a.put(ctx, k, s, st)
		}
		return
	case s.status.Phase == v1.ModelFailed && m.failedFP == fp && (!m.retryable || now.Before(m.nextTry)):
		return // wait for the retry time, or for a change that could fix it
	}
	if a.running >= a.opts.MaxConcurrent {
		a.write(ctx, k, s, v1.ModelPending, "Queued", fmt.Sprintf("waiting for a download slot: %d models are downloading (at most %d at once)", a.running, a.opts.MaxConcurrent), nil)
		return
	}
	a.start(ctx, wg, k, s, m, fp, token)
}

func (a *Agent) start(ctx context.Context, wg *sync.WaitGroup, k config.ObjectKey, s *spec, m *model, fp, token string) {
	pctx, cancel := context.WithCancel(ctx)
	m.cancel, m.running, m.runningFP = cancel, true, fp
	a.running++
	uri := *s.spec.Storage.StorageURI
	path := ""
	if s.spec.Storage.Path != nil {
		path = *s.spec.Storage.Path
	}
	a.write(ctx, k, s, v1.ModelDownloading, "Resolving", fmt.Sprintf("resolving %s", uri), nil)
	req := pull.Request{URI: uri, Token: token, Path: path}
	wg.Go(func() {
		defer cancel()
		var last time.Time
		res, err := a.opts.Puller.Pull(pctx, req, func(pr pull.Progress) {
			if now := a.opts.Now(); now.Sub(last) >= a.opts.StatusEvery || pr.Phase == pull.PhaseDone {
				last = now
				select {
				case a.results <- result{key: k, fp: fp, progress: &pr}:
				case <-pctx.Done():
				}
			}
		})
		select {
		case a.results <- result{key: k, fp: fp, res: res, err: err}:
		case <-ctx.Done():
		}
	})
}

func (a *Agent) handle(ctx context.Context, wg *sync.WaitGroup, r result) {
	m := a.models[r.key]
	s, err := a.load(ctx, r.key)
	if m == nil || err != nil {
		if r.progress == nil && m != nil {
			m.running = false
			a.running--
		}
		return
	}
	if r.progress != nil {
		if m.running && m.runningFP == r.fp {
			a.progress(ctx, r.key, s, *r.progress)
		}
		return
	}
	m.running, m.cancel = false, nil
	a.running--
	defer a.reconcileAll(ctx, wg) // a slot is free: start queued models
	if m.runningFP != r.fp {
		return
	}
	if r.err != nil {
		if errors.Is(r.err, context.Canceled) && ctx.Err() != nil {
			return // shutting down: the next start resumes
		}
		pe := pull.AsError(r.err)
		m.failedFP, m.retryable = r.fp, pe.Retryable
		msg := pe.Error()
		if pe.Retryable {
			m.attempt++
			delay := min(a.opts.RetryBase<<min(m.attempt-1, 10), a.opts.RetryMax)
			m.nextTry = a.opts.Now().Add(delay)
			msg += fmt.Sprintf(" (attempt %d; retrying in %s; partial files are kept and resumed)", m.attempt, delay.Round(time.Second))
		} else {
			m.nextTry = time.Time{}
			msg += " (not retried automatically: fix the cause, then re-apply the model or update its secret)"
		}
		a.write(ctx, r.key, s, v1.ModelFailed, pe.Reason, msg, nil)
		return
	}
	m.attempt, m.failedFP, m.checked = 0, "", true
	a.writeRecord(r.key, record{FP: r.fp, Result: *r.res})
	if !a.ready(ctx, r.key, s, r.res) {
		m.failedFP, m.retryable = r.fp, false
		os.Remove(a.recordPath(r.key))
		return
	}
	a.gc()
}

// progress writes download progress into the status.
func (a *Agent) progress(ctx context.Context, k config.ObjectKey, s *spec, pr pull.Progress) {
	phase, reason := v1.ModelDownloading, "Downloading"
	msg := fmt.Sprintf("%d/%d files, %s of %s", pr.FilesDone, pr.FilesTotal, gb(pr.BytesDone), gb(pr.BytesTotal))
	switch pr.Phase {
	case pull.PhaseResolving:
		reason, msg = "Resolving", "resolving the revision and listing files"
	case pull.PhasePlacing, pull.PhaseVerifying:
		phase, reason, msg = v1.ModelVerifying, "Verifying", "all bytes received; verifying checksums and placing files"
	case pull.PhaseDone:
		phase, reason, msg = v1.ModelVerifying, "Placing", "verified; placing files"
	}
	if pr.BytesPerSecond > 0 {
		msg += fmt.Sprintf(" at %s/s", gb(pr.BytesPerSecond))
	}
	if pr.Warning != "" {
		msg += "; warning: " + pr.Warning
	}
	a.write(ctx, k, s, phase, reason, msg, &pr)
}

func gb(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d B", n)
}

// write sets phase, reason and message (and progress) on the status.
func (a *Agent) write(ctx context.Context, k config.ObjectKey, s *spec, phase, reason, msg string, pr *pull.Progress) {
	now := a.opts.Now()
	st := *s.status
	st.Phase, st.Reason, st.Message, st.ObservedGeneration = phase, reason, msg, s.meta.Generation
	if pr != nil {
		st.BytesDone, st.BytesTotal, st.BytesPerSecond = pr.BytesDone, pr.BytesTotal, pr.BytesPerSecond
		st.FilesDone, st.FilesTotal = int32(pr.FilesDone), int32(pr.FilesTotal)
		if !pr.LastProgress.IsZero() {
			st.LastProgressTime = v1.NewTime(pr.LastProgress)
		}
		if pr.Commit != "" {
			st.Revision = pr.Commit
		}
	} else if phase == v1.ModelFailed || phase == v1.ModelPending {
		st.BytesPerSecond = 0
	}
	cond := func(typ string, status v1.ConditionStatus, r, m string) {
		v1.SetCondition(&st.Conditions, v1.Condition{Type: typ, Status: status, Reason: r, Message: m, ObservedGeneration: s.meta.Generation}, now)
	}
	cond("Accepted", v1.ConditionTrue, "Accepted", "spec is valid")
	switch {
	case reason == pull.ReasonSecretNotFound:
		cond("CredentialsReady", v1.ConditionFalse, reason, msg)
	case s.spec.Storage != nil && s.spec.Storage.StorageKey != nil && *s.spec.Storage.StorageKey != "":
		cond("CredentialsReady", v1.ConditionTrue, "SecretFound", "token from secret "+*s.spec.Storage.StorageKey)
	default:
		cond("CredentialsReady", v1.ConditionTrue, "NoCredentialsNeeded", "no storage.key: the download is anonymous")
	}
	switch phase {
	case v1.ModelReady:
		cond("Downloaded", v1.ConditionTrue, "Downloaded", msg)
		cond("Ready", v1.ConditionTrue, "Ready", msg)
	default:
		cond("Downloaded", v1.ConditionFalse, reason, msg)
		cond("Ready", v1.ConditionFalse, reason, msg)
	}
	if pr != nil && pr.Warning != "" {
		cond("Throughput", v1.ConditionFalse, "SlowDownload", pr.Warning)
	} else if c := v1.FindCondition(st.Conditions, "Throughput"); c != nil && pr != nil {
		cond("Throughput", v1.ConditionTrue, "Normal", "throughput is above the minimum")
	}
	node := v1.NodeModelStatus{Node: a.opts.Node, Phase: phase, Reason: reason, Message: msg, BytesDone: st.BytesDone, BytesTotal: st.BytesTotal, BytesPerSecond: st.BytesPerSecond, LastProgressTime: st.LastProgressTime}
	if s.spec.Storage != nil && s.spec.Storage.Path != nil {
		node.Path = *s.spec.Storage.Path
	}
	st.Nodes = []v1.NodeModelStatus{node}
	st.NodesReady, st.NodesFailed = nil, nil
	switch phase {
	case v1.ModelReady:
		st.State, st.NodesReady = "Ready", []string{a.opts.Node}
	case v1.ModelFailed:
		st.State, st.NodesFailed = "Failed", []string{a.opts.Node}
	default:
		st.State = "In_Transit"
	}
	a.put(ctx, k, s, st)
}

func (a *Agent) put(ctx context.Context, k config.ObjectKey, s *spec, st v1.ModelStatus) {
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	prevPhase, prevReason := s.status.Phase, s.status.Reason
	if _, err := a.st.UpdateStatus(ctx, k.Kind, k.Namespace, k.Name, 0, b); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("writing model status", "model", k.Name, "err", err)
		}
		return
	}
	*s.status = st
	if prevPhase != st.Phase || (prevReason != st.Reason && st.Phase != v1.ModelDownloading) {
		typ := v1.EventNormal
		if st.Phase == v1.ModelFailed {
			typ = v1.EventWarning
		}
		a.event(ctx, k, s, typ, st.Reason, st.Phase+": "+st.Message)
		a.log.Info("model", "model", k.Name, "namespace", k.Namespace, "phase", st.Phase, "reason", st.Reason)
	}
}

func (a *Agent) event(ctx context.Context, k config.ObjectKey, s *spec, typ, reason, msg string) {
	_ = a.st.RecordEvent(ctx, store.Event{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, UID: s.meta.UID, Type: typ, Reason: reason, Message: msg})
}

// record is what a Ready model consists of on disk.
type record struct {
	FP     string      `json:"fingerprint"`
	Result pull.Result `json:"result"`
}

func (a *Agent) recordPath(k config.ObjectKey) string {
	name := k.Kind + "_" + k.Namespace + "_" + k.Name + ".json"
	return filepath.Join(a.opts.RecordsDir, strings.ToLower(name))
}

func (a *Agent) readRecord(k config.ObjectKey) record {
	var r record
	b, err := os.ReadFile(a.recordPath(k))
	if err == nil {
		_ = json.Unmarshal(b, &r)
	}
	return r
}

func (a *Agent) writeRecord(k config.ObjectKey, r record) {
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.MkdirAll(a.opts.RecordsDir, 0o755); err == nil {
		tmp := a.recordPath(k) + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, a.recordPath(k))
		}
	}
}

// verifyRecord checks that every file of a Ready model is still there with
// its size; it returns what is wrong, or "".
func (a *Agent) verifyRecord(k config.ObjectKey) string {
	r := a.readRecord(k)
	for i, f := range r.Result.Files {
		p := filepath.Join(r.Result.Dir, filepath.FromSlash(f))
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Sprintf("%s is missing (%v)", f, err)
		}
		if i < len(r.Result.Sizes) && st.Size() != r.Result.Sizes[i] {
			return fmt.Sprintf("%s has %d bytes, want %d (truncated or replaced)", f, st.Size(), r.Result.Sizes[i])
		}
	}
	return ""
}
