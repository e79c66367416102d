// Package daemon is the composition root of `citadel serve`: it opens the
// store, serves the admin API, runs the status reconciler, and stops them
// in reverse order when its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/admin"
	"citadel.dev/citadel/internal/agent"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/objstatus"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/store"
	"citadel.dev/citadel/internal/telemetry"
)

// Options configure the daemon.
type Options struct {
	// DataDir holds the store (citadel.db) and, later, models.
	DataDir string
	// AdminListener serves the admin API; when nil, AdminAddr is listened on.
	AdminListener net.Listener
	AdminAddr     string
	// AdminToken, when set, is required as a bearer token on admin calls.
	AdminToken string
	Version    v1.VersionInfo
	Logger     *slog.Logger
	Now        func() time.Time
	// Ready, when set, is called once the admin API accepts calls.
	Ready func(adminAddr string)
	// Puller, when set, runs the model agent, which downloads every model
	// onto this host. Without it models wait in Pending and say so.
	Puller *pull.Puller
	// Agent tunes the model agent (Store, Puller, Logger, RecordsDir are set here).
	Agent agent.Options
	// Serving, when set, runs the serving controller, which starts engines for
	// InferenceServices (Store and Logger are set here; Dir defaults to
	// DataDir/engines). Without it services wait in Pending and say so.
	Serving *serving.Options
	// Gateway, when set, serves the inference gateway on GatewayListener (or GatewayAddr)
	// with routes, services and keys from the store.
	Gateway         *gateway.Options
	GatewayListener net.Listener
	GatewayAddr     string

	// MetricsOpen lets /metrics on the admin port answer without AdminToken (for a
	// Prometheus that sends none).
	MetricsOpen bool
}

// Run serves until ctx is cancelled, then shuts down gracefully.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st, err := store.Open(ctx, opts.DataDir, store.Options{Now: opts.Now})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := installShippedRuntimes(ctx, st, log); err != nil {
		return err
	}

	ln := opts.AdminListener
	if ln == nil {
		ln, err = net.Listen("tcp", opts.AdminAddr)
		if err != nil {
			return fmt.Errorf("admin API cannot listen on %s: %w (is another citadel serve running? pick another with --admin-addr)", opts.AdminAddr, err)
		}
	}
	gln := opts.GatewayListener
	if opts.Gateway != nil && gln == nil {
		if gln, err = net.Listen("tcp", opts.GatewayAddr); err != nil {
			ln.Close()
			return fmt.Errorf("gateway cannot listen on %s: %w (pick another with --gateway-addr, or --gateway-addr off)", opts.GatewayAddr, err)
		}
	}
	var ctrl *serving.Controller
	var resMetrics *prometheus.Registry
	var ag *agent.Agent // set below when the agent runs, before the controller starts
	aopts := admin.Options{Token: opts.AdminToken, Version: opts.Version, Logger: log}
	if opts.Serving != nil {
		so := *opts.Serving
		so.Store, so.Logger = st, log.With("component", "serving")
		so.Recheck = func(kind, namespace, name string) {
			if ag != nil {
				ag.Recheck(kind, namespace, name)
			}
		}
		if so.Dir == "" {
			so.Dir = filepath.Join(opts.DataDir, "engines")
		}
		if so.Metrics == nil {
			resMetrics = prometheus.NewRegistry() // citadel_residency_*, on /metrics below
			so.Metrics = resMetrics
		}
		ctrl = serving.New(so)
		aopts.Logs = ctrl.Logs
		aopts.GPUs = func(context.Context) (v1.GPUList, error) { return ctrl.GPUs(), nil }
		aopts.Fit = ctrl.Fit
	}
	var gw *gateway.Server // set below, before the admin API serves
	if opts.Gateway != nil {
		aopts.Explain = func(body []byte, api string) (v1.RouteExplanation, error) { return gw.ExplainForAdmin(body, api) }
		// The dashboard samples the gateway's metrics and its playground calls the gateway.
		aopts.GatewayMetrics = func() prometheus.Gatherer { return gw.Gatherer() }
		aopts.GatewayAddr = gln.Addr().String()
	}
	topts := telemetry.Options{Store: st, GPUs: aopts.GPUs, Version: opts.Version, Logger: log.With("component", "metrics")}
	if opts.Serving != nil && opts.Serving.Discover != nil {
		topts.Utilization = telemetry.NvidiaSMIUtilization // the inventory is nvidia-smi's
	}
	agentMetrics := &telemetry.AgentRecorder{}
	if opts.Puller != nil {
		topts.Agent = agentMetrics.Counters
	}
	var more []prometheus.Gatherer
	if resMetrics != nil {
		more = append(more, resMetrics)
	}
	aopts.Metrics, aopts.MetricsOpen = telemetry.Handler(telemetry.New(topts), more...), opts.MetricsOpen
	api := admin.New(st, aopts)
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	recLog := log.With("component", "status")
	rec := &statusReconciler{st: st, w: objstatus.Writer{Store: st, Log: recLog}, log: recLog, now: opts.Now, debounce: 50 * time.Millisecond,
		agentRuns: opts.Puller != nil, servingRuns: ctrl != nil, gatewayRuns: opts.Gateway != nil}

	g, gctx := errgroup.WithContext(ctx)
	// Requests (watch streams above all) end when the daemon stops.
	srv.BaseContext = func(net.Listener) context.Context { return gctx }
	g.Go(func() error { return rec.run(gctx) })
	if opts.Puller != nil {
		ao := opts.Agent
		ao.Store, ao.Puller, ao.Logger, ao.Now = st, opts.Puller, log.With("component", "agent"), opts.Now
		ao.Metrics = agentMetrics
		if ao.RecordsDir == "" {
			ao.RecordsDir = filepath.Join(opts.DataDir, "agent", "models")
		}
		ag = agent.New(ao)
		g.Go(func() error { return ag.Run(gctx) })
	}
	if ctrl != nil {
		g.Go(func() error { return ctrl.Run(gctx) })
	}
	if opts.Gateway != nil {
		gopts := *opts.Gateway
		gopts.Addr = gln.Addr().String()
		if gopts.Now == nil {
			gopts.Now = opts.Now
		}
		if gopts.Logger == nil {
			gopts.Logger = log.With("component", "gateway")
		}
		gopts.Source = gateway.StoreSource{Store: st, Log: gopts.Logger}
		if ctrl != nil && gopts.Residency == nil {
			gopts.Residency = ctrl.Residency() // on-demand services: docs/design/0006-residency.md
		}
		gw = gateway.New(gopts)
		g.Go(func() error { return gw.Run(gctx) })
		g.Go(func() error { return api.Run(gctx) })
		g.Go(func() error {
			if err := gw.Serve(gctx, gln); err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			return nil
		})
		log.Info("gateway serving", "addr", gln.Addr().String())
	}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		return nil
	})
	log.Info("citadel serving", "admin", ln.Addr().String(), "data_dir", opts.DataDir, "auth", opts.AdminToken != "")
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	err = g.Wait()
	log.Info("citadel stopped")
	return err
}
