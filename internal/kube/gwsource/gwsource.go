// Package gwsource is the gateway's [gateway.Source] in a Kubernetes cluster: Routes,
// InferenceServices and APIKeys read from the API server through informers, each
// InferenceService's status.endpoints replaced by the ready addresses of its engine
// Service's EndpointSlices, and Route status written back to the API server. The gateway
// itself (routing, failover, keys, limits, metrics) is the one citadel serve runs.
package gwsource

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/objstatus"
)

// Component is the event source and field manager of what the gateway writes.
const Component = "citadel-gateway"

// Options configure a Source.
type Options struct {
	// Namespace limits Routes, InferenceServices and EndpointSlices to one namespace; ""
	// watches every namespace. APIKeys are cluster-scoped and always read cluster-wide.
	Namespace string
	// Log gets the objects that cannot be read and the status events; nil: none.
	Log *slog.Logger
	// Instance names this gateway replica in the events it records; default $POD_NAME, else
	// the host name.
	Instance string
	// Debounce is how long a pass waits after a change, so that changes that come together
	// make one pass; default 20 ms.
	Debounce time.Duration
}

// Source reads the gateway's objects from the API server. Make it with New; Run starts its
// informers.
type Source struct {
	opts Options
	log  *slog.Logger
	dyn  dynamic.Interface
	cs   kubernetes.Interface

	nsFactory, keyFactory dynamicinformer.DynamicSharedInformerFactory
	sliceFactory          informers.SharedInformerFactory
	routes, services      cache.SharedIndexInformer
	keys, slices          cache.SharedIndexInformer

	changed chan struct{}

	mu     sync.Mutex
	warned map[string]bool // objects already reported unreadable, by kind/ns/name@rv
	// settled is, per route "ns/name", the status (without transition times) that this
	// replica last found stored or stored itself: while it computes the same, a different
	// stored status is another replica's newer word, left as it is (SetRouteStatus).
	settled map[string]string
}

var _ gateway.Source = (*Source)(nil)

// The resources a gateway reads.
var (
	routeGVR = mustGVR(v1.KindRoute)
	isvcGVR  = mustGVR(v1.KindInferenceService)
	keyGVR   = mustGVR(v1.KindAPIKey)
	sliceGVR = discoveryv1.SchemeGroupVersion.WithResource("endpointslices")
)

func mustGVR(kind string) schema.GroupVersionResource {
	gvr, err := kube.GVR(kind)
	if err != nil {
		panic(err)
	}
	return gvr
}

// sliceSelector picks the EndpointSlices of the Services the controller made: the
// EndpointSlice controller copies a Service's labels to its slices.
var sliceSelector = kube.ManagedByLabel + "=" + kube.ManagedBy

// serviceIndex indexes EndpointSlices by "namespace/service".
const serviceIndex = "service"

// Config returns how to reach the API server: the kubeconfig file when one is named, the
// pod's service account with inCluster, else as kube.Config finds it (in a pod, the service
// account).
func Config(kubeconfig string, inCluster bool) (*rest.Config, error) {
	if inCluster {
		if kubeconfig != "" {
			return nil, errors.New("--in-cluster and --kubeconfig exclude each other: pass one")
		}
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--in-cluster: %w; outside a pod, pass --kubeconfig FILE", err)
		}
		return cfg, nil
	}
	return kube.Config(kubeconfig)
}

// New returns a Source reading through cfg. Nothing is read until Run.
func New(cfg *rest.Config, opts Options) (*Source, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = Component
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("a client of the API server at %s: %w", cfg.Host, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("a client of the API server at %s: %w", cfg.Host, err)
	}
	opts.Debounce = cmp.Or(opts.Debounce, 20*time.Millisecond)
	if opts.Instance == "" {
		opts.Instance = os.Getenv("POD_NAME")
	}
	if opts.Instance == "" {
		opts.Instance, _ = os.Hostname()
	}
	s := &Source{opts: opts, log: opts.Log, dyn: dyn, cs: cs, changed: make(chan struct{}, 1), warned: map[string]bool{},
		settled: map[string]string{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ns := cmp.Or(opts.Namespace, metav1.NamespaceAll)
	s.nsFactory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, ns, nil)
	s.keyFactory = dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	s.sliceFactory = informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sliceSelector }))
	s.routes = s.nsFactory.ForResource(routeGVR).Informer()
	s.services = s.nsFactory.ForResource(isvcGVR).Informer()
	s.keys = s.keyFactory.ForResource(keyGVR).Informer()
	s.slices = s.sliceFactory.Discovery().V1().EndpointSlices().Informer()
	if err := s.slices.AddIndexers(cache.Indexers{serviceIndex: func(obj any) ([]string, error) {
		sl, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok || sl.Labels[kube.ServiceNameLabel] == "" {
			return nil, nil
		}
		return []string{sl.Namespace + "/" + sl.Labels[kube.ServiceNameLabel]}, nil
	}}); err != nil {
		return nil, err
	}
	for _, inf := range []cache.SharedIndexInformer{s.routes, s.services, s.keys, s.slices} {
		// Managed fields are most of an object's bytes and nothing here reads them.
		_ = inf.SetTransform(func(obj any) (any, error) {
			if m, ok := obj.(metav1.Object); ok {
				m.SetManagedFields(nil)
			}
			return obj, nil
		})
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { s.notify() },
			UpdateFunc: func(old, cur any) {
				o, ok1 := old.(metav1.Object)
				c, ok2 := cur.(metav1.Object)
				if ok1 && ok2 && o.GetResourceVersion() == c.GetResourceVersion() {
					return // a resync: nothing changed
				}
				s.notify()
			},
			DeleteFunc: func(any) { s.notify() },
		}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Source) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Check lists each resource the gateway reads once, and says what to do when one cannot
// be: CRDs not installed, or a service account without the rights.
func (s *Source) Check(ctx context.Context) error {
	for _, r := range []struct {
		gvr        schema.GroupVersionResource
		namespaced bool
		crd        bool
	}{{routeGVR, true, true}, {isvcGVR, true, true}, {keyGVR, false, true}, {sliceGVR, true, false}} {
		ri := s.dyn.Resource(r.gvr)
		var err error
		if r.namespaced && s.opts.Namespace != "" {
			_, err = ri.Namespace(s.opts.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
		} else {
			_, err = ri.List(ctx, metav1.ListOptions{Limit: 1})
		}
		what := r.gvr.GroupResource().String()
		where := "in every namespace"
		if !r.namespaced {
			where = "(cluster-scoped)"
		} else if s.opts.Namespace != "" {
			where = "in namespace " + s.opts.Namespace
		}
		switch {
		case err == nil:
		case apierrors.IsNotFound(err) && r.crd:
			return fmt.Errorf("the API server does not serve %s: install Citadel's CRDs (kubectl apply -f charts/citadel/crds/, or the Helm chart) and start the gateway again", what)
		case apierrors.IsForbidden(err):
			return fmt.Errorf("the gateway may not list %s %s: %v; its service account needs get, list and watch on routes, inferenceservices, apikeys and endpointslices, and update on routes/status", what, where, apierrors.ReasonForError(err))
		default:
			return fmt.Errorf("listing %s %s: %w", what, where, err)
		}
	}
	return nil
}

// Run checks access (Check), starts the informers and calls pass once they have synced,
// then again after every change of a Route, InferenceService, APIKey or engine
// EndpointSlice, debounced, until ctx ends. A failed pass is retried a second later, or
// at the next change.
func (s *Source) Run(ctx context.Context, pass func(context.Context) error) error {
	if err := s.Check(ctx); err != nil {
		return err
	}
	s.nsFactory.Start(ctx.Done())
	s.keyFactory.Start(ctx.Done())
	s.sliceFactory.Start(ctx.Done())
	defer func() {
		s.nsFactory.Shutdown()
		s.keyFactory.Shutdown()
		s.sliceFactory.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), s.routes.HasSynced, s.services.HasSynced, s.keys.HasSynced, s.slices.HasSynced) {
		return nil // ctx ended
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		if err := pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("gateway: pass failed; retrying in 1s or at the next change", "err", err)
			retry.Reset(time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		case <-retry.C:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.opts.Debounce):
		}
		select { // what came during the wait is in the next pass
		case <-s.changed:
		default:
		}
	}
}

// Snapshot returns the Routes, InferenceServices (their endpoints from the EndpointSlices)
// and APIKeys in the informers' caches. Objects that cannot be decoded are left out and
// logged once.
func (s *Source) Snapshot(ctx context.Context) (gateway.Snapshot, error) {
	var snap gateway.Snapshot
	routes := map[string]bool{}
	for _, u := range sortedObjects(s.routes) {
		if r, ok := s.decode(u).(*v1.Route); ok {
			snap.Routes = append(snap.Routes, r)
			routes[u.GetNamespace()+"/"+u.GetName()] = true
		}
	}
	s.mu.Lock()
	for k := range s.settled {
		if !routes[k] {
			delete(s.settled, k)
		}
	}
	s.mu.Unlock()
	for _, u := range sortedObjects(s.services) {
		svc, ok := s.decode(u).(*v1.InferenceService)
		if !ok {
			continue
		}
		objs, _ := s.slices.GetIndexer().ByIndex(serviceIndex, u.GetNamespace()+"/"+kube.EngineName(svc.Name))
		var sl []*discoveryv1.EndpointSlice
		for _, o := range objs {
			if x, ok := o.(*discoveryv1.EndpointSlice); ok {
				sl = append(sl, x)
			}
		}
		svc.Status.Endpoints = Endpoints(svc, sl)
		snap.Services = append(snap.Services, svc)
	}
	for _, u := range sortedObjects(s.keys) {
		if k, ok := s.decode(u).(*v1.APIKey); ok {
			snap.Keys = append(snap.Keys, k)
		}
	}
	return snap, nil
}

func sortedObjects(inf cache.SharedIndexInformer) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range inf.GetStore().List() {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// decode converts u, reporting an object that cannot be read once per resourceVersion.
func (s *Source) decode(u *unstructured.Unstructured) v1.Object {
	o, err := kube.Decode(u)
	if err == nil {
		return o
	}
	id := u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName() + "@" + u.GetResourceVersion()
	s.mu.Lock()
	first := !s.warned[id]
	s.warned[id] = true
	s.mu.Unlock()
	if first {
		s.log.Warn("gateway: skipping an object it cannot read; fix it and the gateway reads it again", "kind", u.GetKind(),
			"namespace", u.GetNamespace(), "name", u.GetName(), "err", err)
	}
	return nil
}

// SetRouteStatus writes st as r's status when it differs from the status r was read with;
// several replicas may write the same status, and a write that lost a race (conflict) or a
// Route gone since is no error: the change brings another pass. When the phase or reason
// moves, it records an Event on the Route.
//
// Replicas see a change at slightly different times. A replica whose own view has not
// changed since its last write (it computes the same status) leaves a different stored
// status alone: another replica saw something newer and wrote it, and this replica writes
// again when its view changes. So two replicas do not write a status back and forth, and
// each change of phase is one event.
func (s *Source) SetRouteStatus(ctx context.Context, r *v1.Route, st v1.Status) error {
	old, err := json.Marshal(r.Status)
	if err != nil {
		return err
	}
	cur, err := json.Marshal(st)
	if err != nil {
		return err
	}
	key := r.Namespace + "/" + r.Name
	view := withoutTimes(st)
	s.mu.Lock()
	prev, seen := s.settled[key]
	s.mu.Unlock()
	settle := func() {
		s.mu.Lock()
		s.settled[key] = view
		s.mu.Unlock()
	}
	if bytes.Equal(old, cur) {
		settle()
		return nil
	}
	if seen && prev == view {
		return nil
	}
	obj, ok, err := s.routes.GetStore().GetByKey(r.Namespace + "/" + r.Name)
	if err != nil || !ok {
		return err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetResourceVersion() != r.ResourceVersion {
		return nil // changed since the snapshot: another pass comes
	}
	u = u.DeepCopy()
	var status map[string]any
	if err := json.Unmarshal(cur, &status); err != nil {
		return err
	}
	u.Object["status"] = status
	written, err := s.dyn.Resource(routeGVR).Namespace(r.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: Component})
	switch {
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		settle() // another replica wrote first; a spec change brings a new generation
		return nil
	case err != nil:
		return fmt.Errorf("writing the status of route %s/%s: %w", r.Namespace, r.Name, err)
	}
	settle()
	if r.Status.Phase != st.Phase || r.Status.Reason != st.Reason {
		s.event(ctx, written, st)
	}
	return nil
}

// withoutTimes is st as JSON without its conditions' transition times, which a replica
// computes from the stored status.
func withoutTimes(st v1.Status) string {
	st.Conditions = slices.Clone(st.Conditions)
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = nil
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// event records the status change of route u as a core Event, as kubectl describe shows
// them. A failure is logged: the status is written already.
func (s *Source) event(ctx context.Context, u *unstructured.Unstructured, st v1.Status) {
	typ := v1.EventNormal
	if objstatus.Warning(st.Phase, st.Reason) {
		typ = v1.EventWarning
	}
	reason := cmp.Or(st.Reason, st.Phase, v1.ReasonChanged)
	msg := st.Phase
	if st.Message != "" {
		msg += ": " + st.Message
	}
	s.log.Info("status", "kind", v1.KindRoute, "namespace", u.GetNamespace(), "name", u.GetName(), "phase", st.Phase, "reason", st.Reason)
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: u.GetName() + ".", Namespace: u.GetNamespace()},
		InvolvedObject: corev1.ObjectReference{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(),
			Name: u.GetName(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion()},
		Reason: reason, Message: kube.EventNote(msg), Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: Component},
		ReportingController: "citadel.dev/gateway", ReportingInstance: truncate(s.opts.Instance, 128),
	}
	if _, err := s.cs.CoreV1().Events(u.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
		s.log.Warn("gateway: recording an event on a route", "namespace", u.GetNamespace(), "name", u.GetName(), "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
