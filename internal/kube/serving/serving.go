// Package serving is Kubernetes mode's InferenceService controller: for each
// InferenceService it resolves the model and the runtime as `citadel serve`
// does on one host (internal/selection, the same reasons), and owns, by owner
// reference, an engine Deployment and a Service named kube.EngineName(isvc).
// The Deployment's pods run the runtime's container (or, for a runtime that
// names a Citadel engine, the command line the engine adapter writes) on the
// nodes where the model is Ready, reading it from the host path the model
// agents report. The status says how far the service got and, when it is not
// Ready, one cause read from the pods (unschedulable, image pull, crash loop,
// out of memory) or the Deployment, with what to do.
//
// docs/design/0007-kubernetes.md is the contract with the other pieces.
package serving

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
)

// Options configure the controller.
type Options struct {
	// Images are the container images of the engines that runtimes name by Citadel's
	// shortcut (spec.engine: {name: vllm}), by engine name; an engine missing here gets
	// DefaultImages'. A runtime's engineConfig.runner.image, or the InferenceService's
	// spec.engine.runner.image, wins over both.
	Images map[string]string
	// ClusterDomain is the cluster's DNS domain, for status.url; default cluster.local.
	ClusterDomain string
}

// DefaultImages are the engines' public images, for runtimes that name an engine and
// no image. The tag is the runtime's engine.version when it sets one, else latest.
var DefaultImages = map[string]string{
	"vllm":     "docker.io/vllm/vllm-openai",
	"sglang":   "docker.io/lmsysorg/sglang",
	"llamacpp": "ghcr.io/ggml-org/llama.cpp:server",
	"ollama":   "docker.io/ollama/ollama",
}

// FieldOwner is the field manager of the Deployments and Services the controller applies.
const FieldOwner = "citadel-controller"

// Reasons in Kubernetes' own words, for the causes read from pods and Deployments, and
// the controller's events.
const (
	// ReasonCrashLoopBackOff: a replica's engine keeps exiting (the kubelet's word).
	ReasonCrashLoopBackOff = v1.EnginePhaseCrashLoopBackOff
	// ReasonOOMKilled: a replica was killed for exceeding its memory limit.
	ReasonOOMKilled = "OOMKilled"
	// ReasonProgressDeadlineExceeded: the Deployment made no progress in its deadline.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonEngineDeployed: an event: the engine Deployment was created or changed.
	ReasonEngineDeployed = "EngineDeployed"
	// ReasonNoGPULimit: an event: a GPU engine's container asks for no nvidia.com/gpu.
	ReasonNoGPULimit = "NoGPULimit"
)

// reconciler reconciles InferenceServices.
type reconciler struct {
	c      client.Client // writes
	r      client.Reader // reads, from the manager's cache
	events recorder.EventRecorder
	opts   Options
}

// Setup adds the InferenceService controller to mgr.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = "cluster.local"
	}
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, discoveryv1.AddToScheme} {
		if err := add(mgr.GetScheme()); err != nil {
			return fmt.Errorf("InferenceService controller: %w", err)
		}
	}
	r := &reconciler{c: mgr.GetClient(), r: mgr.GetCache(), events: mgr.GetEventRecorder(FieldOwner), opts: opts}
	isvc, err := kube.NewObject(v1.KindInferenceService)
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).Named("inferenceservice").
		For(isvc).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(byLabel)).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(byLabel))
	for _, kind := range []string{v1.KindClusterServingRuntime, v1.KindServingRuntime, v1.KindClusterBaseModel, v1.KindBaseModel} {
		o, err := kube.NewObject(kind)
		if err != nil {
			return err
		}
		b = b.Watches(o, handler.EnqueueRequestsFromMapFunc(r.users(kind)))
	}
	return b.Complete(r)
}

// byLabel maps an engine pod, or a slice of an engine Service, to its InferenceService
// by the ome.io/inferenceservice label (the Service's labels are copied to its slices).
func byLabel(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[kube.InferenceServiceLabel]
	if name == "" || o.GetLabels()[kube.ComponentLabel] != kube.ComponentEngine {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// users maps a model or runtime to the services it may concern: those that name it, and,
// for a runtime, those that select one automatically or use it now.
func (r *reconciler) users(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list, err := kube.NewList(v1.KindInferenceService)
		if err != nil {
			return nil
		}
		var opts []client.ListOption
		if o.GetNamespace() != "" {
			opts = append(opts, client.InNamespace(o.GetNamespace()))
		}
		if err := r.r.List(ctx, list, opts...); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			u := &list.Items[i]
			var match bool
			switch kind {
			case v1.KindClusterBaseModel, v1.KindBaseModel:
				m, _, _ := unstructured.NestedString(u.Object, "spec", "model", "name")
				match = m == o.GetName()
			default:
				rt, named, _ := unstructured.NestedString(u.Object, "spec", "runtime", "name")
				cur, _, _ := unstructured.NestedString(u.Object, "status", "runtime")
				match = !named || rt == "" || rt == o.GetName() || cur == o.GetName()
			}
			if match {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}})
			}
		}
		return out
	}
}

// Reconcile brings one InferenceService's Deployment, Service and status up to date.
func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	u, err := kube.NewObject(v1.KindInferenceService)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.r.Get(ctx, req.NamespacedName, u); err != nil {
		// Gone: the garbage collector deletes what it owned.
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if u.GetDeletionTimestamp() != nil {
		return reconcile.Result{}, nil
	}
	o, err := kube.Decode(u)
	if err != nil {
		return reconcile.Result{}, reconcile.TerminalError(err)
	}
	s := o.(*v1.InferenceService)
	d, st := r.desired(ctx, s)
	if d != nil {
		st.Placement = d.placement()
		if err := r.apply(ctx, u, s, d); err != nil {
			if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
				return reconcile.Result{}, err
			}
			// The API server refuses what the runtime and the service make: say so.
			st.Phase, st.Reason = v1.ServiceFailed, v1.ReasonEngineLaunchFailed
			st.Message = fmt.Sprintf("runtime %s and the InferenceService make an engine the API server refuses: %v; fix the runtime's engineConfig or the service's spec.engine", d.runtime, err)
		}
	}
	if err := r.observe(ctx, s, d, &st); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.writeStatus(ctx, u, s, d, st)
}

// get reads an object from the cache; false when it does not exist.
func (r *reconciler) get(ctx context.Context, ns, name string, o client.Object) (bool, error) {
	err := r.r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, o)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
