package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/agent"
	"citadel.dev/citadel/internal/pull"
)

// newAgent runs the per-node model agent of Kubernetes mode.
func newAgent(e *env) *cobra.Command {
	var node, namespace, modelsRoot, dataDir, hostPrefix, kubeconfig, ollamaRegistry, logLevel string
	var stall time.Duration
	var maxDownloads int
	var minMBps float64
	cmd := &cobra.Command{
		Use:   "agent [--node NAME] [--models-root DIR]",
		Short: "Run the per-node model agent of Kubernetes mode (the chart's DaemonSet)",
		Long: `Run Citadel's model agent for one Kubernetes node, as the chart's citadel-agent
DaemonSet does. It pulls the ClusterBaseModels and BaseModels meant for this node
(storage.nodeSelector and storage.nodeAffinity, matched against the Node's
labels) under --models-root, exactly as citadel serve's agent does on one host
(resume, verification, retries, the same reason codes), and reports each model
on this node: a key of the ConfigMap named after the node in the namespace,
the node label models.ome.io/... = Ready|Updating|Failed, and Events on the
model. Its Lease citadel-agent-<node> tells the controller it is alive.

A storage.path under --models-root is where the model is placed; one outside it
is not written (the files stay in the store under the root, and the status
says StoragePathNotUsed): set the chart value models.root to the directory
your models' storage.path lie in.

HF_ENDPOINT applies as for citadel serve (the hub, or a mirror of it);
--ollama-registry points ollama:// models at a mirror.

  citadel agent --node gpu-1 --kubeconfig ~/.kube/config --models-root /raid/models`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level %q: use debug, info, warn or error", logLevel)
			}
			if node == "" {
				return usagef("--node is required (the DaemonSet sets $NODE_NAME from spec.nodeName)")
			}
			if !strings.HasPrefix(modelsRoot, "/") {
				return usagef("--models-root %q: give an absolute path (the chart's models.root, mounted at the same path in agents and engine pods)", modelsRoot)
			}
			cfg, err := kube.Config(kubeconfig)
			if err != nil {
				return err
			}
			if namespace == "" {
				namespace = kube.Namespace()
			}
			holder := e.getenv("POD_NAME")
			if holder == "" {
				holder, _ = os.Hostname()
			}
			settings := hub.SettingsFromEnv(e.getenv, os.ReadFile)
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			log.Info("citadel agent", "node", node, "server", cfg.Host, "namespace", namespace, "modelsRoot", modelsRoot, "hostPrefix", hostPrefix, "hub", settings.Endpoint)
			a := agent.New(agent.Options{
				Config: cfg, Node: node, Namespace: namespace, ModelsRoot: modelsRoot, DataDir: dataDir,
				HostPrefix: hostPrefix, Holder: holder, MaxDownloads: maxDownloads, Logger: log,
				Pull: pull.Options{
					HFEndpoint:     settings.Endpoint,
					OllamaRegistry: strings.TrimPrefix(strings.TrimPrefix(ollamaRegistry, "https://"), "http://"),
					OllamaInsecure: ollamaRegistry != "" && !strings.HasPrefix(ollamaRegistry, "https://"),
					StallTimeout:   stall, MinThroughput: int64(minMBps * 1e6),
				},
			})
			if err := a.Run(cmd.Context()); err != nil {
				return fmt.Errorf("citadel agent: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", e.getenv("NODE_NAME"), "this node's name (env NODE_NAME)")
	f.StringVarP(&namespace, "namespace", "n", "", "Citadel's own namespace: the agent's Lease, the per-node ConfigMaps, the token secrets of ClusterBaseModels (default $POD_NAMESPACE, else "+kube.DefaultNamespace+")")
	f.StringVar(&modelsRoot, "models-root", agent.DefaultModelsRoot, "directory models are pulled under (the chart's models.root); storage.path outside it is not written")
	f.StringVar(&dataDir, "data-dir", "", "the agent's private state (default <models-root>/.citadel)")
	f.StringVar(&hostPrefix, "host-prefix", "", "prefix of every path the agent touches, for an agent that sees the node's filesystem under it; never part of the paths it reports")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else the pod's service account, else ~/.kube/config)")
	f.StringVar(&ollamaRegistry, "ollama-registry", "", "Ollama registry for ollama:// models (host:port; default registry.ollama.ai)")
	f.DurationVar(&stall, "stall-timeout", 60*time.Second, "fail a model download that receives no bytes for this long")
	f.IntVar(&maxDownloads, "max-downloads", 2, "models downloading at once")
	f.Float64Var(&minMBps, "min-throughput", 0, "MB/s below which a download's status carries a SlowDownload warning (0: none)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
