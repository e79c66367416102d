package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/kube/gwsource"
	"citadel.dev/citadel/internal/version"
)

// newGateway runs the gateway alone: over engines Citadel does not run (Routes with url
// targets from files), or in a Kubernetes cluster (Routes, InferenceServices, APIKeys and
// engine EndpointSlices from the API server).
func newGateway(e *env) *cobra.Command {
	var files []string
	var addr, accessLog, kubeconfig, namespace string
	var metricsKey, recursive, stdlibHTTP, inCluster bool
	var limitShare int
	cmd := &cobra.Command{
		Use:   "gateway (-f ROUTES.yaml | --kubeconfig FILE | --in-cluster) [--addr 127.0.0.1:8080]",
		Short: "Run the inference gateway alone, in front of engines given as Route url targets",
		Long: `Run only the inference gateway (OpenAI /v1 and Ollama /api fronts, routing by
name and task, balancing, failover, metrics) over engines Citadel does not run.

The files hold Route objects (citadel.dev/v1alpha1) whose targets are URLs, and
optionally APIKey objects (citadel key create prints one's hash):

  apiVersion: citadel.dev/v1alpha1
  kind: Route
  metadata: {name: lab}
  spec:
    models:
    - name: qwen
      targets: [{url: "http://10.0.0.5:8000", model: Qwen/Qwen2.5-7B-Instruct, engine: vllm}]
      fallback: [{url: "http://10.0.0.6:11434", api: ollama, model: "qwen2.5:7b"}]

A target's engine (vllm, sglang, llamacpp, ollama) makes the gateway probe that
engine's health path and balance on its load metrics; without it, on the
requests it has in flight there.

In a Kubernetes cluster (--kubeconfig FILE, --in-cluster, or in a pod without
-f), the gateway reads Routes, InferenceServices and APIKeys from the API server
and reaches each InferenceService's engines at the ready endpoints of its
<name>-engine Service's EndpointSlices; it writes each Route's status. With N
replicas behind one Service, pass --limit-share N: each replica enforces 1/N of
every key's and route's limits. docs/kubernetes.md, "The gateway in the cluster".

Within citadel serve the gateway runs already (--gateway-addr), with routes and
services from the store.`,
		Args: argsBetween(0, 0, "no arguments (use -f FILE)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			inPod := e.getenv("KUBERNETES_SERVICE_HOST") != ""
			cluster := kubeconfig != "" || inCluster || (len(files) == 0 && inPod)
			if len(files) == 0 && !cluster {
				return usagef("the gateway needs routes: -f ROUTES.yaml (routes with url targets), or --kubeconfig FILE or --in-cluster (routes from a Kubernetes cluster)")
			}
			if limitShare < 1 {
				return usagef("--limit-share %d: give the number of gateway replicas, 1 or more", limitShare)
			}
			if namespace != "" && !cluster {
				return usagef("--namespace applies to routes read from a cluster: add --kubeconfig FILE or --in-cluster")
			}
			var items []config.Item
			if len(files) > 0 {
				var errs config.Errors
				items, errs = config.Load(files, config.LoadOptions{Recursive: recursive, Stdin: e.stdin})
				if err := errs.Err(); err != nil {
					return usageError{err}
				}
			}
			var routes []*v1.Route
			var keys []*v1.APIKey
			for _, it := range items {
				switch o := it.Object.(type) {
				case *v1.Route:
					routes = append(routes, o)
				case *v1.APIKey:
					keys = append(keys, o)
				default:
					return usagef("%s: document %d is neither a Route nor an APIKey; citadel gateway reads only those (run citadel serve for services)", it.Source.File, it.Source.Document)
				}
			}
			al, closeLog, err := openAccessLog(e, accessLog)
			if err != nil {
				return err
			}
			defer closeLog()
			log := slog.New(slog.NewTextHandler(e.stderr, nil))
			opts := gateway.Options{Routes: routes, Keys: keys, Logger: log, AccessLog: al, Version: version.Info().Version, MetricsRequireKey: metricsKey,
				StdlibHTTP: stdlibHTTP, LimitShare: limitShare}
			if cluster {
				cfg, err := gwsource.Config(kubeconfig, inCluster)
				if err != nil {
					return err
				}
				src, err := gwsource.New(cfg, gwsource.Options{Namespace: namespace, Log: log})
				if err != nil {
					return err
				}
				if err := src.Check(cmd.Context()); err != nil {
					return fmt.Errorf("gateway: %w", err)
				}
				where := "every namespace"
				if namespace != "" {
					where = "namespace " + namespace
				}
				fmt.Fprintf(e.stderr, "citadel gateway: routes, services and keys from the API server at %s (%s)\n", cfg.Host, where)
				opts.Source = src // Addr stays unset: every replica writes the same Route status
			}
			gw := gateway.New(opts)
			for _, m := range gw.Table().Models() {
				fmt.Fprintf(e.stderr, "citadel gateway: model %s\n", m.ID)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("gateway cannot listen on %s: %w (choose another with --addr)", addr, err)
			}
			return serveGateway(cmd.Context(), gw, ln, e)
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "files or directories of Routes (- for stdin)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read directories recursively")
	cmd.Flags().StringVar(&addr, "addr", gateway.DefaultAddr, "listen address")
	cmd.Flags().StringVar(&accessLog, "access-log", "", "write one JSON line per request to this file (- for stderr)")
	cmd.Flags().BoolVar(&metricsKey, "metrics-require-key", false, "with API keys defined, /metrics needs one too (by default it stays open for Prometheus)")
	cmd.Flags().BoolVar(&stdlibHTTP, "stdlib-http", false, "serve with Go's net/http server instead of the gateway's own HTTP/1.1 path (for comparisons)")
	_ = cmd.Flags().MarkHidden("stdlib-http")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "read routes, services and keys from the Kubernetes cluster of this kubeconfig file")
	cmd.Flags().BoolVar(&inCluster, "in-cluster", false, "read routes, services and keys from the cluster the gateway's pod runs in (its service account); the default in a pod without -f")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "in a cluster, watch Routes and InferenceServices of this namespace only (default: all; APIKeys are cluster-wide)")
	cmd.Flags().IntVar(&limitShare, "limit-share", 1, "the number of gateway replicas sharing the same routes and keys: each enforces 1/N of every limit, rounded up")
	return cmd
}

// serveGateway serves gw on ln and keeps its table current until ctx ends or either fails
// (a Source that cannot read its objects any more ends the gateway with its error).
func serveGateway(ctx context.Context, gw *gateway.Server, ln net.Listener, e *env) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- gw.Run(ctx) }()
	served := make(chan error, 1)
	fmt.Fprintf(e.stderr, "citadel gateway: listening on http://%s\n", ln.Addr())
	go func() { served <- gw.Serve(ctx, ln) }()
	select {
	case err := <-served:
		cancel()
		<-ran
		return err
	case err := <-ran:
		cancel()
		serr := <-served
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		return serr
	}
}
