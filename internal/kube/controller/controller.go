// Package controller is `citadel controller`: the leader-elected Kubernetes
// controller. Its manager aggregates each model's status from the per-node
// agents' entries and Leases (models.go, aggregate.go) and runs the extra
// reconcilers its caller adds (the InferenceService controller of
// internal/kube/serving). docs/design/0007-kubernetes.md says who writes what.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
)

// Options configure the controller's manager. The zero value of every field
// but Config is usable.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Namespace is Citadel's own: the agents' Leases and the per-node
	// ConfigMaps are read there, and the leader-election Lease is written
	// there. Default kube.Namespace().
	Namespace string
	// LeaderElect: run the controllers only while holding the Lease
	// kube.ControllerLeaderLease, so that several replicas can run.
	LeaderElect bool
	// LeaseDuration, RenewDeadline and RetryPeriod are the leader election's
	// timings. Default 15 s, 10 s and 2 s (controller-runtime's).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsAddr serves /metrics; "" or "0": none.
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz; "" or "0": none.
	HealthAddr string
	// Resync is how often a model that is not Ready is looked at again, besides
	// the changes that are watched and the Leases' expiry. Default 10 s.
	Resync time.Duration
	// Setup are more reconcilers to register with the manager (the serving
	// controller's).
	Setup []func(ctrl.Manager) error
	// Logger gets the manager's and the reconcilers' logs; nil: discarded.
	Logger *slog.Logger
}

// New builds the manager with the model reconcilers and opts.Setup's.
func New(opts Options) (ctrl.Manager, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("controller: no API server configuration")
	}
	if opts.Namespace == "" {
		opts.Namespace = kube.Namespace()
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr := func(a string) string {
		if a == "" {
			return "0"
		}
		return a
	}
	dur := func(d time.Duration) *time.Duration {
		if d <= 0 {
			return nil
		}
		return &d
	}
	skip := true // two managers in one process (tests) register controllers of the same names
	// A scheme of the manager's own: reconcilers add their types to it (serving.Setup), and
	// client-go's shared scheme must not be written while other managers read it.
	sch := runtime.NewScheme()
	if err := scheme.AddToScheme(sch); err != nil {
		return nil, err
	}
	mo := ctrl.Options{
		Scheme: sch,
		Logger: logr.FromSlogHandler(log.Handler()),
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{opts.Namespace: {}},
				Label:      labels.SelectorFromSet(labels.Set{kube.NodeStatusLabel: "true"}),
			},
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{opts.Namespace: {}}},
		}},
		Client:                        client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		Metrics:                       metricsserver.Options{BindAddress: addr(opts.MetricsAddr)},
		HealthProbeBindAddress:        addr(opts.HealthAddr),
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              kube.ControllerLeaderLease,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 dur(opts.LeaseDuration),
		RenewDeadline:                 dur(opts.RenewDeadline),
		RetryPeriod:                   dur(opts.RetryPeriod),
		Controller:                    config.Controller{SkipNameValidation: &skip},
	}
	mgr, err := ctrl.NewManager(opts.Config, mo)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	for _, kind := range []string{v1.KindClusterBaseModel, v1.KindBaseModel} {
		r := &modelReconciler{
			kind: kind, c: mgr.GetClient(), rec: mgr.GetEventRecorder("citadel-controller"),
			namespace: opts.Namespace, resync: opts.Resync, now: time.Now, log: log.With("kind", kind),
		}
		if err := r.setup(mgr); err != nil {
			return nil, fmt.Errorf("controller: %s reconciler: %w", kind, err)
		}
	}
	for _, s := range opts.Setup {
		if err := s(mgr); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	return mgr, nil
}

// Run runs the manager until ctx ends.
func Run(ctx context.Context, opts Options) error {
	mgr, err := New(opts)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}
