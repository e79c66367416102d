package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/controller"
	"citadel.dev/citadel/internal/kube/serving"
)

// newController runs the Kubernetes controller: model status from the
// per-node agents, finalizers, and the extra reconcilers built in.
func newController(e *env) *cobra.Command {
	var kubeconfig, namespace, metricsAddr, healthAddr, logLevel string
	var leaderElect bool
	cmd := &cobra.Command{
		Use:   "controller [--kubeconfig FILE] [--namespace NS]",
		Short: "Run the Kubernetes controller (leader-elected): model status from the node agents, engines for InferenceServices",
		Long: `Run Citadel's Kubernetes controller, as the chart's citadel-controller Deployment
does. It aggregates each ClusterBaseModel's and BaseModel's status from the
entries the per-node agents (citadel agent) write into the ConfigMaps of
Citadel's namespace and from their Leases, says why a model waits
(NoAgentOnMatchingNodes, AgentNotReporting, AwaitingAgent), and removes a
deleted model's finalizer once no live agent holds a copy. For each
InferenceService it selects the runtime as citadel serve does and runs the
engine as a Deployment and Service (<name>-engine) on the nodes that hold
the model, with its status and one cause when it is not Ready.

Several replicas may run: only the holder of the Lease citadel-controller in
the namespace acts (--leader-elect, the default).

  citadel controller --kubeconfig ~/.kube/config --namespace citadel`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level %q: use debug, info, warn or error", logLevel)
			}
			cfg, err := kube.Config(kubeconfig)
			if err != nil {
				return err
			}
			if namespace == "" {
				namespace = kube.Namespace()
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			log.Info("citadel controller", "server", cfg.Host, "namespace", namespace, "leaderElect", leaderElect)
			err = controller.Run(cmd.Context(), controller.Options{
				Config: cfg, Namespace: namespace, LeaderElect: leaderElect,
				MetricsAddr: metricsAddr, HealthAddr: healthAddr, Logger: log,
				Setup: []func(ctrl.Manager) error{func(m ctrl.Manager) error { return serving.Setup(m, serving.Options{}) }},
			})
			if err != nil {
				return fmt.Errorf("citadel controller: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else the pod's service account, else ~/.kube/config)")
	f.StringVarP(&namespace, "namespace", "n", "", "Citadel's own namespace: agent Leases, per-node ConfigMaps, the leader Lease (default $POD_NAMESPACE, else "+kube.DefaultNamespace+")")
	f.BoolVar(&leaderElect, "leader-elect", true, "act only while holding the Lease "+kube.ControllerLeaderLease+", so several replicas can run")
	f.StringVar(&metricsAddr, "metrics-addr", ":9090", "address of /metrics (0: none)")
	f.StringVar(&healthAddr, "health-addr", ":9091", "address of /healthz and /readyz (0: none)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
