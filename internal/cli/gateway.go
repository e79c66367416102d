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
	"citadel.dev/citadel/internal/version"
)

// newGateway runs the gateway alone, over engines Citadel does not run: Routes with url
// targets from files.
func newGateway(e *env) *cobra.Command {
	var files []string
	var addr, accessLog string
	var metricsKey, recursive, stdlibHTTP bool
	cmd := &cobra.Command{
		Use:   "gateway -f ROUTES.yaml [--addr 127.0.0.1:8080]",
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

Within citadel serve the gateway runs already (--gateway-addr), with routes and
services from the store.`,
		Args: argsBetween(0, 0, "no arguments (use -f FILE)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usagef("-f ROUTES.yaml is required: the gateway needs routes with url targets")
			}
			items, errs := config.Load(files, config.LoadOptions{Recursive: recursive, Stdin: e.stdin})
			if err := errs.Err(); err != nil {
				return usageError{err}
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
			gw := gateway.New(gateway.Options{Routes: routes, Keys: keys, Logger: log, AccessLog: al, Version: version.Info().Version, MetricsRequireKey: metricsKey,
				StdlibHTTP: stdlibHTTP})
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
	return cmd
}

func serveGateway(ctx context.Context, gw *gateway.Server, ln net.Listener, e *env) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.Run(ctx) }()
	fmt.Fprintf(e.stderr, "citadel gateway: listening on http://%s\n", ln.Addr())
	err := gw.Serve(ctx, ln)
	cancel()
	<-done
	return err
}
