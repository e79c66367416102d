// Package agent is the model agent of `citadel serve`: it reconciles every
// ClusterBaseModel and BaseModel onto this host. A model moves Pending →
// Downloading → Verifying → Ready, or to Failed with a reason code and a
// message; progress reaches its status at least every two seconds; every
// phase change is an event; retryable failures are retried with backoff; a
// Failed model is tried again at once when its retry annotation changes
// (RetryAnnotation, bumped by `citadel retry` and by re-applying it
// unchanged); a Ready model's status says where its files are (per node:
// path, store, Ollama name) and its files are checked at start, on every
// periodic resync and on Recheck — missing or truncated files are fetched
// again (reason ModelFilesMissing), never left Ready; and blobs no model
// uses any more are removed.
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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/objstatus"
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
	// Metrics, when set, counts downloads (citadel serve's /metrics).
	Metrics Metrics
	// ClusterSecretNamespace is where the token secrets of ClusterBaseModels
	// are read; default v1.ClusterSecretNamespace (Kubernetes mode: the
	// agent's namespace).
	ClusterSecretNamespace string
	// KeepLabel, when set, is a label that keeps a deleted model's files on
	// disk (Kubernetes mode: OME's models.ome/reserve-model-artifact): its
	// record stays, so the blob collector leaves them.
	KeepLabel string
}

// Metrics counts the agent's downloads. Its methods are called from the agent's loop.
type Metrics interface {
	// Started is called when a download starts; retry says it is an automatic attempt
	// after a failed one.
	Started(retry bool)
	// Finished is called when a download ends: err is nil when it succeeded, retryable says
	// the agent will try again by itself, fetched is the bytes it received (known only when
	// it succeeded).
	Finished(err error, retryable bool, fetched int64)
}

// RetryAnnotation on a model asks the agent to try it again: any change of
// its value (the admin API bumps a counter) retries a Failed model at once,
// with its backoff reset, and re-checks the files of a Ready one. It is
// metadata: the model's generation does not change.
const RetryAnnotation = "citadel.dev/retry"

// Agent reconciles models.
type Agent struct {
	opts Options
	log  *slog.Logger
	st   *store.Store
	sw   objstatus.Writer

	// Recheck requests, from any goroutine.
	recheckMu sync.Mutex
	recheckQ  map[v1.Key]bool
	recheckC  chan struct{}

	// owned by Run
	models  map[v1.Key]*model
	running int
	results chan result
}

type model struct {
	key       v1.Key
	cancel    context.CancelFunc
	running   bool
	runningFP string
	failedFP  string
	failedGen int64
	retryable bool
	attempt   int
	nextTry   time.Time
	checked   bool   // files checked since the last start, resync or Recheck
	seen      bool   // retrySeen holds the annotation's value
	retrySeen string // RetryAnnotation's value last acted on
	missing   string // why the running or last pull fetches files again
}

type result struct {
	key      v1.Key
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
	if opts.ClusterSecretNamespace == "" {
		opts.ClusterSecretNamespace = v1.ClusterSecretNamespace
	}
	return &Agent{opts: opts, log: opts.Logger, st: opts.Store, sw: objstatus.Writer{Store: opts.Store, Log: opts.Logger}, models: map[v1.Key]*model{}, results: make(chan result, 64),
		recheckQ: map[v1.Key]bool{}, recheckC: make(chan struct{}, 1)}
}

// Recheck asks the agent to check a model's files now (for the serving
// controller, when an engine fails to read them): missing or truncated
// files move a Ready model to Downloading (reason ModelFilesMissing) or,
// if they cannot be fetched, to Failed. A model no longer in the store
// (deleted while the agent did not run) is forgotten: its files are
// collected. kind is ClusterBaseModel or
// BaseModel; namespace is ignored for a ClusterBaseModel. It never blocks
// and is safe from any goroutine, also before Run.
func (a *Agent) Recheck(kind, namespace, name string) {
	if kind == v1.KindClusterBaseModel {
		namespace = ""
	}
	a.recheckMu.Lock()
	a.recheckQ[v1.Key{Kind: kind, Namespace: namespace, Name: name}] = true
	a.recheckMu.Unlock()
	select {
	case a.recheckC <- struct{}{}:
	default: // a wake-up is pending; it will see this key
	}
}

// rechecks takes the queued Recheck requests.
func (a *Agent) rechecks() []v1.Key {
	a.recheckMu.Lock()
	defer a.recheckMu.Unlock()
	out := make([]v1.Key, 0, len(a.recheckQ))
	for k := range a.recheckQ {
		out = append(out, k)
	}
	clear(a.recheckQ)
	return out
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
	dirty := map[v1.Key]bool{}
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
				k := v1.Key{Kind: ev.Object.Kind, Namespace: ev.Object.Namespace, Name: ev.Object.Name}
				if ev.Type == store.Deleted {
					_, keep := ev.Object.Labels[a.opts.KeepLabel]
					a.forget(k, keep && a.opts.KeepLabel != "")
					delete(dirty, k)
				} else {
					dirty[k] = true
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
		case <-a.recheckC:
			for _, k := range a.rechecks() {
				if m := a.models[k]; m != nil {
					m.checked = false
				}
				a.reconcile(ctx, &wg, k)
			}
		case <-timer.C:
			// The periodic resync also checks every Ready model's files.
			for _, m := range a.models {
				m.checked = false
			}
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

// forget drops a deleted model and collects its files, unless keep says to
// leave them on disk.
func (a *Agent) forget(k v1.Key, keep bool) {
	m := a.models[k]
	if m != nil && m.cancel != nil {
		m.cancel()
	}
	delete(a.models, k)
	if !keep {
		os.Remove(a.recordPath(k))
	}
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
			a.reconcile(ctx, wg, v1.Key{Kind: so.Kind, Namespace: so.Namespace, Name: so.Name})
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

func (a *Agent) load(ctx context.Context, k v1.Key) (*spec, error) {
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
// lacks its key, is an error: never a silent anonymous download; fail is then the facts of
// the lookup (the secret's namespace, name, key and the keys it has).
func (a *Agent) token(ctx context.Context, k v1.Key, s *spec) (token, secretRV string, perr *pull.Error, fail *v1.DownloadFailure) {
	st := s.spec.Storage
	if st == nil || st.StorageKey == nil || *st.StorageKey == "" {
		return "", "", nil, nil
	}
	ns := k.Namespace
	if k.Kind == v1.KindClusterBaseModel {
		ns = a.opts.ClusterSecretNamespace
	}
	name, key := *st.StorageKey, st.SecretKey()
	sec := &v1.FailureSecret{Namespace: ns, Name: name, Key: key}
	so, err := a.st.Get(ctx, v1.KindSecret, ns, name)
	if err != nil {
		return "", "", &pull.Error{Reason: v1.ReasonSecretNotFound, Message: fmt.Sprintf(
			"spec.storage.key names secret %s/%s, which does not exist; nothing is downloaded anonymously in its place: citadel secret create %s -n %s --from-env %s=HF_TOKEN", ns, name, name, ns, key)}, &v1.DownloadFailure{Reason: v1.ReasonSecretNotFound, Secret: sec}
	}
	o, err := resource.FromStore(so)
	if err != nil {
		pe := &pull.Error{Reason: pull.ReasonInternal, Message: err.Error()}
		return "", "", pe, failureOf(pe)
	}
	secret := o.(*v1.Secret)
	v, ok := secret.Value(key)
	if !ok || v == "" {
		sec.Found, sec.Keys = true, slices.Sorted(maps.Keys(secret.Data))
		return "", "", &pull.Error{Reason: v1.ReasonSecretNotFound, Message: fmt.Sprintf(
			"secret %s/%s has no key %q: add it, or set spec.storage.parameters.secretKey to the key that holds the token", ns, name, key)}, &v1.DownloadFailure{Reason: v1.ReasonSecretNotFound, Secret: sec}
	}
	return v, fmt.Sprint(so.ResourceVersion), nil, nil
}

// failureOf is the facts of a failed pull, as its error carries them.
func failureOf(pe *pull.Error) *v1.DownloadFailure {
	return &v1.DownloadFailure{
		Reason: pe.Reason, File: pe.File, Endpoint: pe.Endpoint, HTTPStatus: int32(pe.HTTPStatus),
		FileBytesReceived: pe.FileBytesReceived, FileBytesTotal: pe.FileBytesTotal, IdleSeconds: int64(pe.Idle.Round(time.Second) / time.Second),
		AcceptURL: pe.AcceptURL, BytesNeeded: pe.BytesNeeded, BytesFree: pe.BytesFree, Directory: pe.Directory,
	}
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

func (a *Agent) reconcile(ctx context.Context, wg *sync.WaitGroup, k v1.Key) {
	s, err := a.load(ctx, k)
	if err != nil {
		var nf *store.NotFoundError
		if errors.As(err, &nf) {
			a.forget(k, false)
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
		a.write(ctx, k, s, v1.ModelPending, v1.ReasonModelDisabled, "spec.disabled is true: the model is not downloaded; set it to false to enable it", nil)
		return
	}
	token, secretRV, perr, fail := a.token(ctx, k, s)
	if perr != nil {
		if m.cancel != nil {
			m.cancel()
		}
		a.fail(ctx, k, s, perr.Reason, perr.Message, fail)
		return
	}
	fp := fingerprint(s.spec, secretRV)
	ann := s.meta.Annotations[RetryAnnotation]
	retry := m.seen && ann != m.retrySeen
	m.seen, m.retrySeen = true, ann
	if m.running {
		if m.runningFP != fp && m.cancel != nil {
			m.cancel() // the spec or token changed: the result will be dropped and a new pull started
		}
		return
	}
	if retry {
		// Asked to try again (citadel retry, or an unchanged re-apply):
		// from the start, backoff reset, files checked.
		m.attempt, m.failedFP, m.nextTry, m.checked = 0, "", time.Time{}, false
		a.event(ctx, k, s, v1.EventNormal, v1.ReasonRetryRequested, fmt.Sprintf("%s=%s: was %s", RetryAnnotation, ann, phaseReason(s.status)))
	}
	if m.missing == "" && s.status.Reason == v1.ReasonModelFilesMissing && s.status.Phase != v1.ModelReady {
		m.missing = "files of the model were missing" // carried over a restart of the agent
	}
	switch {
	case s.status.Phase == v1.ModelReady:
		rec := a.readRecord(k)
		if rec.FP != fp {
			break // no record of this spec's files: pull (what is cached is not fetched again)
		}
		if !m.checked {
			m.checked = true
			if bad := verifyRecord(rec); bad != "" {
				m.missing = bad
				if a.running >= a.opts.MaxConcurrent {
					// Not Ready any more, even while waiting for a slot.
					a.write(ctx, k, s, v1.ModelPending, v1.ReasonModelFilesMissing, bad+": waiting for a download slot to fetch it again", nil)
					return
				}
				a.start(ctx, wg, k, s, m, fp, token)
				return
			}
		}
		if loc := a.location(rec); s.status.ObservedGeneration != s.meta.Generation || !hasLocation(s.status, a.opts.Node, loc) {
			// Ready, but the status is of an older generation or does not
			// (yet) say where the files are: rewrite it.
			a.write(ctx, k, s, v1.ModelReady, s.status.Reason, s.status.Message, nil)
		}
		return
	case s.status.Phase == v1.ModelFailed && m.failedFP == fp && m.failedGen == s.meta.Generation && (!m.retryable || now.Before(m.nextTry)):
		return // wait for the retry time, or for a change that could fix it
	}
	if a.running >= a.opts.MaxConcurrent {
		reason, msg := v1.ReasonQueued, fmt.Sprintf("waiting for a download slot: %d models are downloading (at most %d at once)", a.running, a.opts.MaxConcurrent)
		if m.missing != "" {
			reason, msg = v1.ReasonModelFilesMissing, m.missing+": "+msg
		}
		a.write(ctx, k, s, v1.ModelPending, reason, msg, nil)
		return
	}
	a.start(ctx, wg, k, s, m, fp, token)
}

func phaseReason(st *v1.ModelStatus) string {
	switch {
	case st.Phase == "":
		return "new"
	case st.Reason == "":
		return st.Phase
	}
	return st.Phase + ": " + st.Reason
}

func (a *Agent) start(ctx context.Context, wg *sync.WaitGroup, k v1.Key, s *spec, m *model, fp, token string) {
	pctx, cancel := context.WithCancel(ctx)
	m.cancel, m.running, m.runningFP = cancel, true, fp
	a.running++
	uri := *s.spec.Storage.StorageURI
	path := ""
	if s.spec.Storage.Path != nil {
		path = *s.spec.Storage.Path
	}
	if m.missing != "" {
		a.write(ctx, k, s, v1.ModelDownloading, v1.ReasonModelFilesMissing, fmt.Sprintf("%s: fetching it again from %s", m.missing, uri), nil)
	} else {
		a.write(ctx, k, s, v1.ModelDownloading, v1.ReasonResolving, fmt.Sprintf("resolving %s", uri), nil)
	}
	req := pull.Request{URI: uri, Token: token, Path: path}
	if a.opts.Metrics != nil {
		a.opts.Metrics.Started(m.attempt > 0)
	}
	wg.Go(func() {
		defer cancel()
		var last time.Time
		res, err := a.opts.Puller.Pull(pctx, req, func(pr pull.Progress) {
			if now := a.opts.Now(); now.Sub(last) >= a.opts.StatusEvery || pr.Phase == pull.PhaseDone || len(pr.Notices) > 0 {
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
		if a.opts.Metrics != nil {
			a.opts.Metrics.Finished(r.err, pe.Retryable, 0)
		}
		fail := failureOf(pe)
		m.failedFP, m.failedGen, m.retryable = r.fp, s.meta.Generation, pe.Retryable
		reason, msg := pe.Reason, pe.Error()
		if m.missing != "" {
			reason, msg = v1.ReasonModelFilesMissing, fmt.Sprintf("%s, and fetching it again failed: %s", m.missing, msg)
		}
		retry := retryCommand(r.key)
		if pe.Retryable {
			m.attempt++
			fail.Attempt = int32(m.attempt)
			delay := min(a.opts.RetryBase<<min(m.attempt-1, 10), a.opts.RetryMax)
			why := ""
			if ra, ok := pull.RetryAfter(r.err); ok {
				// The server said when to come back: then, not on the ladder.
				delay, why = ra, " (the server's Retry-After)"
			}
			m.nextTry = a.opts.Now().Add(delay)
			msg += fmt.Sprintf(" (attempt %d; retrying in %s%s, or now with `%s`; partial files are kept and resumed)", m.attempt, delay.Round(time.Second), why, retry)
		} else {
			m.nextTry = time.Time{}
			msg += fmt.Sprintf(" (not retried automatically: fix the cause, then `%s` or re-apply the model", retry)
			if st := s.spec.Storage; st != nil && st.StorageKey != nil && *st.StorageKey != "" {
				msg += "; a change to its secret retries it by itself"
			}
			msg += ")"
		}
		a.fail(ctx, r.key, s, reason, msg, fail)
		return
	}
	if a.opts.Metrics != nil {
		a.opts.Metrics.Finished(nil, false, r.res.Fetched)
	}
	m.attempt, m.failedFP, m.checked, m.missing = 0, "", true, ""
	a.writeRecord(r.key, record{FP: r.fp, Result: *r.res})
	if !a.ready(ctx, r.key, s, r.res) {
		m.failedFP, m.failedGen, m.retryable = r.fp, s.meta.Generation, false
		os.Remove(a.recordPath(r.key))
		return
	}
	a.gc()
}

// progress writes download progress into the status.
func (a *Agent) progress(ctx context.Context, k v1.Key, s *spec, pr pull.Progress) {
	phase, reason := v1.ModelDownloading, v1.ReasonDownloading
	msg := fmt.Sprintf("%d/%d files, %s of %s", pr.FilesDone, pr.FilesTotal, gb(pr.BytesDone), gb(pr.BytesTotal))
	switch pr.Phase {
	case pull.PhaseResolving:
		reason, msg = v1.ReasonResolving, "resolving the revision and listing files"
	case pull.PhasePlacing, pull.PhaseVerifying:
		phase, reason, msg = v1.ModelVerifying, v1.ReasonVerifying, "all bytes received; verifying checksums and placing files"
	case pull.PhaseDone:
		phase, reason, msg = v1.ModelVerifying, v1.ReasonPlacing, "verified; placing files"
	}
	if pr.BytesPerSecond > 0 {
		msg += fmt.Sprintf(" at %s/s", gb(pr.BytesPerSecond))
	}
	if pr.Warning != "" {
		msg += "; warning: " + pr.Warning
	}
	for _, n := range pr.Notices { // each comes in one Progress only: one event each
		a.event(ctx, k, s, v1.EventWarning, n.Reason, n.Message)
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

// fail sets phase Failed, reason and message on the status, with the facts behind them.
func (a *Agent) fail(ctx context.Context, k v1.Key, s *spec, reason, msg string, facts *v1.DownloadFailure) {
	a.writeStatus(ctx, k, s, v1.ModelFailed, reason, msg, nil, facts)
}

// write sets phase, reason and message (and progress) on the status. The last failure's
// facts stay while the agent retries (the phase moves on, the failure is still the last):
// they go when the model is Ready or its spec changes.
func (a *Agent) write(ctx context.Context, k v1.Key, s *spec, phase, reason, msg string, pr *pull.Progress) {
	a.writeStatus(ctx, k, s, phase, reason, msg, pr, nil)
}

func (a *Agent) writeStatus(ctx context.Context, k v1.Key, s *spec, phase, reason, msg string, pr *pull.Progress, facts *v1.DownloadFailure) {
	now := a.opts.Now()
	st := *s.status
	switch {
	case facts != nil:
		st.LastFailure = facts
	case phase == v1.ModelReady || st.ObservedGeneration != s.meta.Generation:
		st.LastFailure = nil
	}
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
	cond(v1.CondAccepted, v1.ConditionTrue, v1.ReasonAccepted, "spec is valid")
	switch {
	case reason == v1.ReasonSecretNotFound:
		cond(v1.CondCredentialsReady, v1.ConditionFalse, reason, msg)
	case s.spec.Storage != nil && s.spec.Storage.StorageKey != nil && *s.spec.Storage.StorageKey != "":
		cond(v1.CondCredentialsReady, v1.ConditionTrue, v1.ReasonSecretFound, "token from secret "+*s.spec.Storage.StorageKey)
	default:
		cond(v1.CondCredentialsReady, v1.ConditionTrue, v1.ReasonNoCredentialsNeeded, "no storage.key: the download is anonymous")
	}
	switch phase {
	case v1.ModelReady:
		cond(v1.CondDownloaded, v1.ConditionTrue, v1.ReasonDownloaded, msg)
		cond(v1.CondReady, v1.ConditionTrue, v1.ReasonReady, msg)
	default:
		cond(v1.CondDownloaded, v1.ConditionFalse, reason, msg)
		cond(v1.CondReady, v1.ConditionFalse, reason, msg)
	}
	if pr != nil && pr.Warning != "" {
		cond(v1.CondThroughput, v1.ConditionFalse, v1.ReasonSlowDownload, pr.Warning)
	} else if c := v1.FindCondition(st.Conditions, v1.CondThroughput); c != nil && pr != nil {
		cond(v1.CondThroughput, v1.ConditionTrue, v1.ReasonNormal, "throughput is above the minimum")
	}
	node := v1.NodeModelStatus{Node: a.opts.Node, Phase: phase, Reason: reason, Message: msg, BytesDone: st.BytesDone, BytesTotal: st.BytesTotal, BytesPerSecond: st.BytesPerSecond, LastProgressTime: st.LastProgressTime, LastFailure: st.LastFailure}
	if phase == v1.ModelReady {
		// Only a Ready copy says where it is: files being fetched or
		// found missing are nothing an engine should be pointed at.
		loc := a.location(a.readRecord(k))
		node.Path, node.Store, node.OllamaName = loc.Path, loc.Store, loc.OllamaName
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

// put writes the model's status (unconditionally: the agent is its one writer) and records an
// event when the phase moved, or the reason outside a download's progress.
func (a *Agent) put(ctx context.Context, k v1.Key, s *spec, st v1.ModelStatus) {
	old, err := json.Marshal(*s.status)
	if err != nil {
		return
	}
	so := store.Object{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, UID: s.meta.UID, Status: old}
	res, err := a.sw.Write(ctx, objstatus.Update{Object: so, Status: st, ReasonIsProgress: st.Phase == v1.ModelDownloading})
	if err != nil && !res.Written {
		if ctx.Err() == nil {
			a.log.Warn("writing model status", "model", k.Name, "err", err)
		}
		return
	}
	if res.Stale {
		return // deleted
	}
	*s.status = st
}

func (a *Agent) event(ctx context.Context, k v1.Key, s *spec, typ, reason, msg string) {
	_ = a.st.RecordEvent(ctx, store.Event{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, UID: s.meta.UID, Type: typ, Reason: reason, Message: msg})
}

// record is what a Ready model consists of on disk.
type record struct {
	FP     string      `json:"fingerprint"`
	Result pull.Result `json:"result"`
}

func (a *Agent) recordPath(k v1.Key) string {
	name := k.Kind + "_" + k.Namespace + "_" + k.Name + ".json"
	return filepath.Join(a.opts.RecordsDir, strings.ToLower(name))
}

func (a *Agent) readRecord(k v1.Key) record {
	var r record
	b, err := os.ReadFile(a.recordPath(k))
	if err == nil {
		_ = json.Unmarshal(b, &r)
	}
	return r
}

func (a *Agent) writeRecord(k v1.Key, r record) {
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.MkdirAll(a.opts.RecordsDir, 0o755); err == nil {
		tmp := a.recordPath(k) + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, a.recordPath(k))
		}
	}
}

// location is where a pulled model's files are on this node, as its status
// says: storage.path when the pull placed the model there, else the
// snapshot directory in the HF cache (or the file:// directory); for an
// Ollama model, its GGUF weights blob, with the Ollama store and name.
func (a *Agent) location(r record) v1.NodeModelStatus {
	res := r.Result
	var loc v1.NodeModelStatus
	switch {
	case res.ModelFile != "":
		loc.Path, loc.Store, loc.OllamaName = res.ModelFile, res.Store, res.OllamaName
		if loc.Store == "" && res.Dir != "" {
			loc.Store = filepath.Dir(res.Dir) // records written before Store: Dir is <store>/blobs
		}
	case res.Path != "":
		loc.Path, loc.Store = res.Path, res.Store
	default:
		loc.Path, loc.Store = res.Dir, res.Store
	}
	if loc.Store == "" && res.ModelFile == "" && strings.Contains(res.Dir, string(filepath.Separator)+"snapshots"+string(filepath.Separator)) {
		loc.Store = filepath.Dir(filepath.Dir(filepath.Dir(res.Dir))) // <cache>/models--o--n/snapshots/<commit>
	}
	return loc
}

// hasLocation reports whether the status's entry for node says loc.
func hasLocation(st *v1.ModelStatus, node string, loc v1.NodeModelStatus) bool {
	for _, n := range st.Nodes {
		if n.Node == node {
			return n.Path == loc.Path && n.Store == loc.Store && n.OllamaName == loc.OllamaName
		}
	}
	return false
}

// verifyRecord checks that every file of a Ready model is still there with
// its size — in the store, in its storage.path view, and an Ollama model's
// manifest; it returns what is wrong, naming the file, or "".
func verifyRecord(r record) string {
	res := r.Result
	if res.Manifest != "" {
		if _, err := os.Stat(res.Manifest); err != nil {
			return fmt.Sprintf("the Ollama manifest %s is missing", res.Manifest)
		}
	}
	for i, f := range res.Files {
		dirs := []string{res.Dir}
		if res.Path != "" && filepath.Clean(res.Path) != filepath.Clean(res.Dir) {
			dirs = append(dirs, res.Path)
		}
		for _, d := range dirs {
			p := filepath.Join(d, filepath.FromSlash(f))
			st, err := os.Stat(p) // follows the snapshot and view links to the blob
			if err != nil {
				return fmt.Sprintf("%s is missing at %s", f, p)
			}
			if i < len(res.Sizes) && st.Size() != res.Sizes[i] {
				return fmt.Sprintf("%s at %s has %d bytes, want %d (truncated or replaced)", f, p, st.Size(), res.Sizes[i])
			}
		}
	}
	return ""
}

// retryCommand is the command that retries model k now.
func retryCommand(k v1.Key) string {
	if k.Kind == v1.KindBaseModel {
		return fmt.Sprintf("citadel retry basemodel %s -n %s", k.Name, k.Namespace)
	}
	return "citadel retry clusterbasemodel " + k.Name
}
