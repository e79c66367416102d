// Package agent is Citadel's per-node model agent in Kubernetes mode
// (`citadel agent`, run by a DaemonSet). It runs the single-host model agent
// (internal/agent) over a private store in its data directory: it mirrors the
// ClusterBaseModels and BaseModels meant for its node (storage.nodeSelector
// and the required terms of storage.nodeAffinity, matched against its Node's
// labels) and the token Secrets they name from the API server into that
// store, and copies the status the local agent writes back out as its node's
// entry: a key of the ConfigMap named after the node, the node's model
// label, and Events on the model. A Lease says the agent is alive.
// docs/design/0007-kubernetes.md is the contract with the controller.
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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/agent"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// DefaultModelsRoot is the chart's models.root: where OME's model files put
// storage.path.
const DefaultModelsRoot = "/raid/models"

// Options configure the agent.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Node is this node's name ($NODE_NAME in the DaemonSet).
	Node string
	// Namespace holds the agent's Lease and the per-node ConfigMaps, and the
	// token Secrets of ClusterBaseModels.
	Namespace string
	// ModelsRoot is the directory the agent pulls under, as the agent and the
	// engine pods see it (default DefaultModelsRoot). A storage.path under it
	// is made the model's view; one outside it is not written.
	ModelsRoot string
	// DataDir is the agent's private store and records; default
	// <ModelsRoot>/.citadel.
	DataDir string
	// HostPrefix, when set, prefixes every path the agent touches (an agent
	// that sees the node's filesystem under it, and tests' fake nodes); it is
	// never part of a path the agent reports.
	HostPrefix string
	// Holder is the Lease's holderIdentity ($POD_NAME, else the host name).
	Holder string
	// Pull configures downloads (hub endpoint, Ollama registry, stall
	// timeout); its stores and PathRoot are set from ModelsRoot.
	Pull pull.Options
	// MaxDownloads bounds models downloading at once; default 2.
	MaxDownloads int
	// Resync re-reads every model and re-gets every token Secret; default 30 s.
	Resync time.Duration
	// LeaseRenew is how often the Lease is renewed; default 10 s.
	LeaseRenew time.Duration
	// ProgressEvery is the least time between two entry writes that only
	// move progress; default 2 s (phase changes are written at once).
	ProgressEvery time.Duration
	// RetryBase is the local agent's first retry delay (default 15 s).
	RetryBase time.Duration
	// ProbeEvery is the least time between two runs of the systemic probe, which runs
	// when two or more models are stuck on the node (default 5 min); StuckFor is how long
	// a download may make no progress before its model counts as stuck (default 2 min).
	ProbeEvery, StuckFor time.Duration
	Logger               *slog.Logger
}

// Agent is one node's model agent.
type Agent struct {
	opts   Options
	log    *slog.Logger
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	st     *store.Store
	local  *agent.Agent
	rec    record.EventRecorder
	models map[v1.Key]cache.GenericLister // by kind: Key.Kind only

	nodeLister func() (*corev1.Node, error)

	dirtyMu sync.Mutex
	dirty   map[v1.Key]bool
	all     bool
	kick    chan struct{}

	// owned by the loop
	tracked    map[v1.Key]*tracked
	secrets    map[string]secretState // "ns/name" → the last GET's outcome
	secretAt   map[string]time.Time   // "ns/name" → when it was last got
	firstEvent int64                  // local events up to this ID were forwarded by an earlier run
	entries    map[string]string      // the ConfigMap's data as last read or written
	probing    bool                   // a systemic probe runs
	probedAt   time.Time              // when the last one started
	probed     chan struct{}          // a probe ended
}

// tracked is a model meant for this node.
type tracked struct {
	ref        corev1.ObjectReference
	uid        string
	gens       map[int64]int64 // local generation → the API object's
	localGen   int64           // the local generation of the last apply
	remoteGen  int64           // and the API object's
	applied    string          // hash of what was last put into the local store
	secret     string          // "ns/name" of its token Secret, if any
	entry      *kube.NodeEntry // last written
	written    time.Time
	pending    *kube.NodeEntry // a progress entry not written yet
	label      string          // node label value last written
	localUID   string
	lastEvent  int64
	eventsTill time.Time // forward local events until then
}

type secretState struct {
	missing   bool
	forbidden string // the server's message when the agent may not get it
}

// New returns an agent; Run starts it.
func New(opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ModelsRoot == "" {
		opts.ModelsRoot = DefaultModelsRoot
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(opts.ModelsRoot, ".citadel")
	}
	if opts.Namespace == "" {
		opts.Namespace = kube.Namespace()
	}
	if opts.Holder == "" {
		opts.Holder, _ = os.Hostname()
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.LeaseRenew <= 0 {
		opts.LeaseRenew = kube.AgentLeaseDurationSeconds * time.Second / 3
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 2 * time.Second
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = 5 * time.Minute
	}
	if opts.StuckFor <= 0 {
		opts.StuckFor = 2 * time.Minute
	}
	return &Agent{opts: opts, log: opts.Logger, dirty: map[v1.Key]bool{}, kick: make(chan struct{}, 1), probed: make(chan struct{}),
		tracked: map[v1.Key]*tracked{}, secrets: map[string]secretState{}, secretAt: map[string]time.Time{}, entries: map[string]string{}}
}

// host is where path is on this agent's filesystem.
func (a *Agent) host(path string) string {
	if a.opts.HostPrefix == "" {
		return path
	}
	return filepath.Join(a.opts.HostPrefix, path)
}

// unprefix takes the host prefix out of a path or a message.
func (a *Agent) unprefix(s string) string {
	if a.opts.HostPrefix == "" || s == "" {
		return s
	}
	p := filepath.Clean(a.opts.HostPrefix)
	if s == p {
		return "/"
	}
	return strings.ReplaceAll(s, p+"/", "/")
}

// Run runs the agent until ctx ends. It writes the Lease first, then waits
// for its Node, then reads the models.
func (a *Agent) Run(ctx context.Context) error {
	o := a.opts
	if o.Config == nil || o.Node == "" {
		return errors.New("the model agent needs an API server and a node name (--node, or $NODE_NAME from the DaemonSet)")
	}
	cfg := rest.CopyConfig(o.Config)
	cfg.UserAgent = "citadel-agent/" + o.Node
	var err error
	if a.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if a.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	// Stopping: everything started below ends with ctx, then the store closes.
	var wg sync.WaitGroup
	var stops []func()
	defer func() {
		cancel()
		wg.Wait()
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	// 1. The Lease, before any model is read: the controller counts a node
	// without one as having no agent.
	if err := a.renewLease(ctx); err != nil {
		return fmt.Errorf("writing the agent's Lease %s/%s: %w (the agent's service account needs create, get and update on leases in %s)", o.Namespace, kube.AgentLease(o.Node), err, o.Namespace)
	}
	wg.Go(func() { a.leaseLoop(ctx) })

	// Events on the models, rate-limited by the recorder's spam filter.
	bc := record.NewBroadcaster(record.WithContext(ctx))
	stops = append(stops, bc.Shutdown)
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.cs.CoreV1().Events("")})
	a.rec = bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "citadel-agent", Host: o.Node})

	// 2. This node's labels.
	nf := informers.NewSharedInformerFactoryWithOptions(a.cs, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.Node).String()
	}))
	ni := nf.Core().V1().Nodes()
	var nodeLabels map[string]string
	_, _ = ni.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { a.markAll() },
		UpdateFunc: func(old, cur any) {
			if !sameLabels(old.(*corev1.Node).Labels, cur.(*corev1.Node).Labels) {
				a.markAll()
			}
		},
		DeleteFunc: func(any) { a.markAll() },
	})
	a.nodeLister = func() (*corev1.Node, error) { return ni.Lister().Get(o.Node) }
	nf.Start(ctx.Done())
	stops = append(stops, nf.Shutdown)
	if !cache.WaitForCacheSync(ctx.Done(), ni.Informer().HasSynced) {
		return ctx.Err()
	}
	for warned := false; ; {
		n, err := a.nodeLister()
		if err == nil {
			nodeLabels = n.Labels
			break
		}
		if !warned {
			a.log.Warn("waiting for this agent's Node to exist: is --node (or $NODE_NAME) the node's name?", "node", o.Node)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	a.log.Info("node found", "node", o.Node, "labels", len(nodeLabels))

	// 3. The local store and the models.
	st, err := store.Open(ctx, a.host(filepath.Join(o.DataDir, "state")), store.Options{})
	if err != nil {
		return fmt.Errorf("opening the agent's store under %s: %w", o.DataDir, err)
	}
	stops = append(stops, func() { st.Close() })
	a.st = st
	if evs, err := st.Events(ctx, store.EventFilter{}); err == nil { // the newest 500
		for _, ev := range evs {
			a.firstEvent = max(a.firstEvent, ev.ID)
		}
	}
	df := dynamicinformer.NewDynamicSharedInformerFactory(a.dyn, 0)
	a.models = map[v1.Key]cache.GenericLister{}
	var synced []cache.InformerSynced
	for _, kind := range []string{v1.KindClusterBaseModel, v1.KindBaseModel} {
		gvr, err := kube.GVR(kind)
		if err != nil {
			return err
		}
		inf := df.ForResource(gvr)
		_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { a.markObj(kind, obj) },
			UpdateFunc: func(_, obj any) { a.markObj(kind, obj) },
			DeleteFunc: func(obj any) { a.markObj(kind, obj) },
		})
		a.models[v1.Key{Kind: kind}] = inf.Lister()
		synced = append(synced, inf.Informer().HasSynced)
	}
	df.Start(ctx.Done())
	stops = append(stops, df.Shutdown)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	// 4. The single-host agent over the local store (started once the store
	// holds what is meant for this node).
	po := o.Pull
	po.HFCache = a.host(filepath.Join(o.ModelsRoot, "hub"))
	po.OllamaDir = a.host(filepath.Join(o.ModelsRoot, "ollama"))
	po.PathRoot = a.host(o.ModelsRoot)
	po.PathAdvice = "to place models at storage.path, set the chart value models.root to a directory that holds it"
	if po.Logger == nil {
		po.Logger = a.log.With("component", "pull")
	}
	a.local = agent.New(agent.Options{
		Store: st, Puller: pull.New(po), Logger: a.log.With("component", "local-agent"),
		RecordsDir: a.host(filepath.Join(o.DataDir, "agent", "models")), Node: o.Node,
		MaxConcurrent: o.MaxDownloads, RetryBase: o.RetryBase, StallTimeout: po.StallTimeout,
		ClusterSecretNamespace: o.Namespace, KeepLabel: kube.ReserveArtifactLabel,
	})
	if err := a.readEntries(ctx); err != nil {
		return err
	}
	a.syncAll(ctx, true)
	a.cleanup(ctx)

	errc := make(chan error, 1)
	wg.Go(func() { errc <- a.local.Run(ctx) })
	return a.loop(ctx, errc)
}

func (a *Agent) loop(ctx context.Context, errc chan error) error {
	w, err := a.st.Watch(ctx, store.WatchOptions{SendInitial: true})
	if err != nil {
		return err
	}
	defer func() { w.Stop() }()
	resync := time.NewTicker(a.opts.Resync)
	defer resync.Stop()
	flush := time.NewTicker(250 * time.Millisecond)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("local model agent: %w", err)
			}
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				a.log.Warn("local store watch ended; watching again", "err", w.Err())
				if w, err = a.st.Watch(ctx, store.WatchOptions{SendInitial: true}); err != nil {
					return err
				}
				continue
			}
			a.onLocal(ctx, ev)
		case <-a.kick:
			keys, all := a.takeDirty()
			if all {
				a.syncAll(ctx, false)
				continue
			}
			for _, k := range keys {
				a.sync(ctx, k, false)
			}
		case <-resync.C:
			a.syncAll(ctx, true)
			a.probeStuck(ctx)
		case <-a.probed:
			a.probing = false
		case <-flush.C:
			a.flush(ctx)
		}
	}
}

func (a *Agent) markObj(kind string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	k := v1.Key{Kind: kind, Namespace: u.GetNamespace(), Name: u.GetName()}
	a.dirtyMu.Lock()
	a.dirty[k] = true
	a.dirtyMu.Unlock()
	a.wake()
}

func (a *Agent) markAll() {
	a.dirtyMu.Lock()
	a.all = true
	a.dirtyMu.Unlock()
	a.wake()
}

func (a *Agent) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Agent) takeDirty() ([]v1.Key, bool) {
	a.dirtyMu.Lock()
	defer a.dirtyMu.Unlock()
	keys := make([]v1.Key, 0, len(a.dirty))
	for k := range a.dirty {
		keys = append(keys, k)
	}
	clear(a.dirty)
	all := a.all
	a.all = false
	return keys, all
}

// sameLabels compares two label sets without the model labels the agent writes.
func sameLabels(x, y map[string]string) bool {
	n := 0
	for k, v := range x {
		if strings.HasPrefix(k, kube.ModelLabelDomain+"/") {
			continue
		}
		if w, ok := y[k]; !ok || w != v {
			return false
		}
		n++
	}
	for k := range y {
		if !strings.HasPrefix(k, kube.ModelLabelDomain+"/") {
			n--
		}
	}
	return n == 0
}

// syncAll brings every model; secrets says to get every token Secret again.
func (a *Agent) syncAll(ctx context.Context, secrets bool) {
	seen := map[v1.Key]bool{}
	for lk, l := range a.models {
		objs, err := l.List(labelsEverything())
		if err != nil {
			continue
		}
		for _, obj := range objs {
			u := obj.(*unstructured.Unstructured)
			k := v1.Key{Kind: lk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
			seen[k] = true
			a.sync(ctx, k, secrets)
		}
	}
	for k := range a.tracked {
		if !seen[k] {
			a.remove(ctx, k, "deleted")
		}
	}
}

// sync brings one model from the API server into the local store, or takes
// it out when it is deleted, being deleted or no longer meant for this node.
func (a *Agent) sync(ctx context.Context, k v1.Key, forceSecret bool) {
	l := a.models[v1.Key{Kind: k.Kind}]
	name := k.Name
	if k.Namespace != "" {
		name = k.Namespace + "/" + k.Name
	}
	obj, err := l.Get(name)
	if err != nil {
		a.remove(ctx, k, "deleted")
		return
	}
	u := obj.(*unstructured.Unstructured)
	if u.GetDeletionTimestamp() != nil {
		a.remove(ctx, k, "being deleted")
		return
	}
	o, err := kube.Decode(u)
	if err != nil {
		a.log.Warn("model not read", "model", name, "err", err)
		return
	}
	var spec *v1.BaseModelSpec
	switch m := o.(type) {
	case *v1.ClusterBaseModel:
		spec = &m.Spec
		m.Status = v1.ModelStatus{}
	case *v1.BaseModel:
		spec = &m.Spec
		m.Status = v1.ModelStatus{}
	default:
		return
	}
	node, err := a.nodeLister()
	if err != nil {
		return // the Node is gone: keep what is there until it is back
	}
	sel, err := kube.ModelNodeSelection(spec.Storage)
	if err != nil || !sel.Matches(a.opts.Node, node.Labels) {
		if err != nil {
			a.log.Warn("model's node selection not read: not pulled here", "model", name, "err", err)
		}
		a.remove(ctx, k, "not meant for this node any more")
		return
	}
	t := a.tracked[k]
	if t == nil || t.uid != string(u.GetUID()) {
		if t != nil {
			a.remove(ctx, k, "replaced by a new object of the same name")
		}
		t = &tracked{uid: string(u.GetUID()), gens: map[int64]int64{}}
		a.tracked[k] = t
	}
	t.ref = corev1.ObjectReference{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), UID: u.GetUID()}

	// The spec as citadel serve would take it: defaulted, and refused when
	// not valid (the API server's schema lets through what the single-host
	// agent cannot pull, a model without storage.storageUri).
	if d, ok := o.(interface{ Default() }); ok {
		d.Default()
	}
	if v, ok := o.(interface{ Validate() v1.FieldErrors }); ok {
		if errs := v.Validate().Errors(); len(errs) > 0 {
			if _, err := a.st.Delete(ctx, k.Kind, k.Namespace, k.Name, 0); err == nil {
				t.applied = ""
			}
			msg := fmt.Sprintf("the spec is not valid, so this node does not pull the model: %s; fix it and apply it again", strings.ReplaceAll(errs.Error(), "\n", "; "))
			a.offer(ctx, k, t, kube.NodeEntry{Name: k.Name, Status: kube.EntryFailed, UID: t.uid, Generation: u.GetGeneration(),
				Citadel: v1.NodeModelStatus{Node: a.opts.Node, Phase: v1.ModelFailed, Reason: v1.ReasonInvalid, Message: msg}})
			return
		}
	}

	// storage.path: under the models root it is made the model's view (on
	// this agent's filesystem); outside it, the puller leaves it unwritten.
	if st := spec.Storage; st != nil && st.Path != nil && *st.Path != "" && within(a.opts.ModelsRoot, *st.Path) {
		p := a.host(*st.Path)
		st.Path = &p
	}
	// The token Secret, before the model (so that the local agent finds it):
	// got when first named and on every resync.
	if st := spec.Storage; st != nil && st.StorageKey != nil && *st.StorageKey != "" {
		ns := k.Namespace
		if k.Kind == v1.KindClusterBaseModel {
			ns = a.opts.Namespace
		}
		ref := ns + "/" + *st.StorageKey
		at := a.secretAt[ref]
		if at.IsZero() || forceSecret && time.Since(at) >= a.opts.Resync/2 {
			a.syncSecret(ctx, ns, *st.StorageKey)
			a.secretAt[ref] = time.Now()
		}
		t.secret = ref
	} else {
		t.secret = ""
	}

	meta := o.GetObjectMeta()
	meta.UID, meta.ResourceVersion, meta.Generation = "", "", 0
	delete(meta.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	so, err := resource.ToStore(o)
	if err != nil {
		a.log.Warn("model not stored", "model", name, "err", err)
		return
	}
	so.ResourceVersion, so.UID, so.Generation = 0, "", 0
	if h := hashObject(so); h != t.applied {
		res, err := a.st.Apply(ctx, []store.Object{so}, store.ApplyOptions{})
		if err != nil {
			a.log.Warn("model not stored", "model", name, "err", err)
			return
		}
		t.applied, t.localUID = h, res[0].Object.UID
		t.localGen, t.remoteGen = res[0].Object.Generation, u.GetGeneration()
		t.gens[t.localGen] = t.remoteGen
	}
}

// syncSecret gets a token Secret (get only: the agent may not list or
// watch Secrets) and puts it into the local store, or takes it out.
func (a *Agent) syncSecret(ctx context.Context, ns, name string) {
	ref := ns + "/" + name
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sec, err := a.cs.CoreV1().Secrets(ns).Get(rctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		ls := &v1.Secret{Type: string(sec.Type), Data: map[string]string{}}
		ls.APIVersion, ls.Kind = v1.CoreGroupVersion, v1.KindSecret
		ls.Namespace, ls.Name = ns, name
		for k, v := range sec.Data {
			ls.Data[k] = base64Encode(v)
		}
		so, err := resource.ToStore(ls)
		if err == nil {
			_, err = a.st.Apply(ctx, []store.Object{so}, store.ApplyOptions{})
		}
		if err != nil {
			a.log.Warn("token secret not stored", "secret", ref, "err", err)
			return
		}
		a.secrets[ref] = secretState{}
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
		s := secretState{missing: true}
		if apierrors.IsForbidden(err) {
			s.forbidden = err.Error()
		}
		a.secrets[ref] = s
		if _, err := a.st.Delete(ctx, v1.KindSecret, ns, name, 0); err != nil && !isNotFound(err) {
			a.log.Warn("token secret not removed from the local store", "secret", ref, "err", err)
		}
	default:
		a.log.Warn("getting a token secret failed; keeping what the agent had", "secret", ref, "err", err)
	}
}

// remove takes a model off this node: out of the local store (the local
// agent removes its files unless it has ReserveArtifactLabel), then its
// node label, then its entry.
func (a *Agent) remove(ctx context.Context, k v1.Key, why string) {
	t := a.tracked[k]
	_, inStore := a.st.Get(ctx, k.Kind, k.Namespace, k.Name)
	key := kube.ModelEntryKey(k.Kind, k.Namespace, k.Name)
	_, hasEntry := a.entries[key]
	if t == nil && inStore != nil && !hasEntry {
		return
	}
	a.log.Info("removing model from this node", "kind", k.Kind, "namespace", k.Namespace, "name", k.Name, "why", why)
	if inStore == nil {
		if _, err := a.st.Delete(ctx, k.Kind, k.Namespace, k.Name, 0); err != nil && !isNotFound(err) {
			a.log.Warn("model not removed from the local store", "name", k.Name, "err", err)
			return
		}
	}
	// The label first: once the entry is gone (and the controller lets the
	// model go), no engine is placed here for it.
	if err := a.patchLabel(ctx, kube.ModelLabel(k.Kind, k.Namespace, k.Name), ""); err != nil {
		a.log.Warn("node label not removed; trying again on the next resync", "err", err)
		return
	}
	if err := a.patchEntry(ctx, key, nil); err != nil {
		a.log.Warn("entry not removed; trying again on the next resync", "key", key, "err", err)
		return
	}
	delete(a.tracked, k)
}

// cleanup takes out of the local store and the ConfigMap what no model
// meant for this node has any more (deleted while the agent was away).
func (a *Agent) cleanup(ctx context.Context) {
	for _, kind := range []string{v1.KindClusterBaseModel, v1.KindBaseModel} {
		objs, _, err := a.st.List(ctx, kind, store.ListOptions{})
		if err != nil {
			continue
		}
		for _, so := range objs {
			k := v1.Key{Kind: kind, Namespace: so.Namespace, Name: so.Name}
			if a.tracked[k] != nil {
				continue
			}
			a.remove(ctx, k, "deleted while the agent was away")
			if _, keep := so.Labels[kube.ReserveArtifactLabel]; !keep {
				// The local agent did not see it go: it collects its files once it runs.
				a.local.Recheck(kind, so.Namespace, so.Name)
			}
		}
	}
	keep := map[string]bool{}
	for k := range a.tracked {
		keep[kube.ModelEntryKey(k.Kind, k.Namespace, k.Name)] = true
	}
	for key := range a.entries {
		if !keep[key] {
			if err := a.patchEntry(ctx, key, nil); err != nil {
				a.log.Warn("stale entry not removed", "key", key, "err", err)
			}
		}
	}
	if n, err := a.nodeLister(); err == nil {
		labels := map[string]bool{}
		for k := range a.tracked {
			labels[kube.ModelLabel(k.Kind, k.Namespace, k.Name)] = true
		}
		for l := range n.Labels {
			if strings.HasPrefix(l, kube.ModelLabelDomain+"/") && (strings.Contains(l, "basemodel.")) && !labels[l] {
				_ = a.patchLabel(ctx, l, "")
			}
		}
	}
}

func hashObject(so store.Object) string {
	b, _ := json.Marshal([]any{so.Labels, so.Annotations, so.Spec})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// within reports whether path is root or lies under it.
func within(root, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

func isNotFound(err error) bool {
	var nf *store.NotFoundError
	return errors.As(err, &nf)
}
