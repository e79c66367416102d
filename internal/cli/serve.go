package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/agent"
	"citadel.dev/citadel/internal/daemon"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/version"
)

func newServe(e *env) *cobra.Command {
	var dataDir, adminAddr, adminToken, logLevel, logFormat, ollamaRegistry string
	var agentOn, enginesOn, simulate bool
	var gpus, gatewayAddr, accessLog string
	var metricsKey, metricsOpen, nextStepLine bool
	var simScale float64
	var stall time.Duration
	var maxDownloads int
	var minMBps float64
	var configFile string
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Citadel server: store, admin API and controllers",
		Long: `Run the Citadel server on this host.

The admin API (apply, get, describe, delete, events, watch) listens on
--admin-addr. State lives in an embedded SQLite database under --data-dir
and survives restarts. Stop with Ctrl-C or SIGTERM.

Every flag can instead be set in a YAML file given with --config, under its name in
lowerCamelCase (--gateway-addr is gatewayAddr). Flags on the command line win over the
file, and the file over the defaults. --print-config writes the settings in effect as
such a file, to start one from.`,
		Example: `  citadel serve
  citadel serve --print-config > /etc/citadel/serve.yaml
  citadel serve --config /etc/citadel/serve.yaml --log-level debug`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			src := settingSources{}
			if configFile != "" {
				var err error
				if src, err = applyConfigFile(cmd.LocalNonPersistentFlags(), configFile); err != nil {
					return usageError{err}
				}
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("%s %q: use debug, info, warn or error", src.name("log-level"), logLevel)
			}
			hopts := &slog.HandlerOptions{Level: level}
			var h slog.Handler
			switch logFormat {
			case "text":
				h = slog.NewTextHandler(e.stderr, hopts)
			case "json":
				h = slog.NewJSONHandler(e.stderr, hopts)
			default:
				return usagef("%s %q: use text or json", src.name("log-format"), logFormat)
			}
			if dataDir == "" {
				d, err := defaultDataDir(e.getenv)
				if err != nil {
					return err
				}
				dataDir = d
			}
			if printConfig { // the data dir as serve would use it
				return writeConfig(e.stdout, cmd.LocalNonPersistentFlags())
			}
			var puller *pull.Puller
			st, err := resolveStorage(e, dataDir)
			if err != nil {
				return err
			}
			if agentOn {
				puller = pull.New(pull.Options{
					HFEndpoint: st.settings.Endpoint, HFCache: st.hfCache, OllamaDir: st.ollamaDir,
					OllamaRegistry: strings.TrimPrefix(strings.TrimPrefix(ollamaRegistry, "https://"), "http://"), OllamaInsecure: ollamaRegistry != "" && !strings.HasPrefix(ollamaRegistry, "https://"),
					StallTimeout: stall, Logger: slog.New(h).With("component", "pull"),
					MinThroughput: int64(minMBps * 1e6),
				})
			}
			var so *serving.Options
			haveGPUs := false
			gpuLines := []string{"serving controller off (--engines=false): no engines start and no GPU is used"}
			if enginesOn {
				inv, discover, err := inventory(cmd.Context(), gpus, src.name("gpus"), simulate)
				if err != nil {
					return err
				}
				haveGPUs = len(inv) > 0
				source := inventorySource(gpus, inv)
				gpuLines = inventoryLines(inv, source)
				so = &serving.Options{Inventory: inv, Discover: discover, CacheDir: st.hfCache, OllamaModels: st.ollamaDir, InventorySource: source}
				if simulate {
					self, err := os.Executable()
					if err != nil {
						return fmt.Errorf("--simulate-engines runs this binary as citadel sim, but its path is unknown: %w", err)
					}
					so.Simulate = &serving.Simulation{Citadel: self, TimeScale: simScale}
				}
			}
			var gw *gateway.Options
			if gatewayAddr != "off" && gatewayAddr != "" {
				al, closeLog, err := openAccessLog(e, accessLog)
				if err != nil {
					return err
				}
				defer closeLog()
				gw = &gateway.Options{Version: version.Info().Version, AccessLog: al, MetricsRequireKey: metricsKey}
			}
			// The gateway's listener is opened here so that the start-up lines name the
			// address it really has (--gateway-addr 127.0.0.1:0 picks one).
			var gln net.Listener
			if gw != nil {
				if gln, err = net.Listen("tcp", gatewayAddr); err != nil {
					return fmt.Errorf("gateway cannot listen on %s: %w (is another citadel serve running? pick another with %s, or off)", gatewayAddr, err, src.name("gateway-addr"))
				}
				gatewayAddr = gln.Addr().String()
			}
			return daemon.Run(cmd.Context(), daemon.Options{
				Serving:         so,
				Gateway:         gw,
				GatewayAddr:     gatewayAddr,
				GatewayListener: gln,
				DataDir:         dataDir,
				AdminAddr:       adminAddr,
				AdminToken:      adminToken,
				MetricsOpen:     metricsOpen,
				Version:         version.Info(),
				Logger:          slog.New(h),
				Puller:          puller,
				Agent:           agent.Options{MaxConcurrent: maxDownloads, StallTimeout: stall},
				Ready: func(addr string) {
					for _, l := range gpuLines {
						fmt.Fprintf(e.stderr, "citadel: %s\n", l)
					}
					fmt.Fprintf(e.stderr, "citadel: admin API and dashboard on http://%s, data in %s\n", addr, dataDir)
					if gw != nil {
						fmt.Fprintf(e.stderr, "citadel: gateway on http://%s (OpenAI /v1, Ollama /api)\n", gatewayAddr)
					} else {
						fmt.Fprintf(e.stderr, "citadel: no gateway (--gateway-addr off): routes are stored, not served\n")
					}
					if nextStepLine {
						_, statErr := os.Stat(filepath.Join("examples", "seed-001"))
						fmt.Fprintf(e.stderr, "citadel: next: %s\n", nextStep(enginesOn, simulate, haveGPUs, e.getenv("HF_ENDPOINT") != "" && ollamaRegistry != "", statErr == nil))
					}
				},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", e.getenv("CITADEL_DATA_DIR"), "state directory (env CITADEL_DATA_DIR; default $XDG_STATE_HOME/citadel or ~/.local/state/citadel)")
	f.StringVar(&adminAddr, "admin-addr", client.DefaultAddress, "admin API listen address")
	f.StringVar(&adminToken, "admin-token", e.getenv("CITADEL_ADMIN_TOKEN"), "require this bearer token on admin calls (env CITADEL_ADMIN_TOKEN)")
	f.BoolVar(&metricsOpen, "admin-metrics-open", false, "/metrics on the admin port (models, services, GPUs) answers without --admin-token, for a Prometheus that sends none")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	f.BoolVar(&agentOn, "agent", true, "run the model agent (downloads models; HF_ENDPOINT, HF_HOME, OLLAMA_MODELS apply)")
	f.DurationVar(&stall, "stall-timeout", 60*time.Second, "fail a model download that receives no bytes for this long")
	f.IntVar(&maxDownloads, "max-downloads", 2, "models downloading at once")
	f.Float64Var(&minMBps, "min-throughput", 0, "MB/s below which a download's status carries a SlowDownload warning (0: none)")
	f.StringVar(&ollamaRegistry, "ollama-registry", "", "Ollama registry for ollama:// models (host:port; default registry.ollama.ai)")
	f.BoolVar(&enginesOn, "engines", true, "run the serving controller: start engines for InferenceServices")
	f.StringVar(&gpus, "gpus", "auto", "GPU inventory: auto (nvidia-smi), none, or simulated profiles such as 2xrtx-4070-ti-super or rtx-4090,a100-80g")
	f.BoolVar(&simulate, "simulate-engines", false, "run `citadel sim` with each engine's own flags in place of the engine (no GPU needed; use with --gpus PROFILES)")
	f.Float64Var(&simScale, "sim-time-scale", 1, "with --simulate-engines: wall seconds per simulated second (0: no delay)")
	f.StringVar(&gatewayAddr, "gateway-addr", gateway.DefaultAddr, "inference gateway listen address (OpenAI /v1 and Ollama /api); off to disable. Keys are optional: with no APIKey objects the gateway is open, so keep it on loopback or create keys (citadel key create)")
	f.StringVar(&accessLog, "access-log", "", "write one JSON line per gateway request to this file (- for stderr)")
	f.BoolVar(&metricsKey, "metrics-require-key", false, "with API keys defined, the gateway's /metrics needs one too (by default it stays open for Prometheus)")
	f.StringVar(&configFile, "config", "", "read settings from this YAML file, one key per flag in lowerCamelCase (gatewayAddr: …); flags on the command line win")
	f.BoolVar(&printConfig, "print-config", false, "print the settings in effect (defaults, --config file, flags) as a --config file and exit")
	f.BoolVar(&nextStepLine, "next-step", true, "print the next thing to do once the server is up")
	_ = f.MarkHidden("next-step") // for citadel up, which does it
	return cmd
}

// openAccessLog opens the gateway's access log: "" none, "-" stderr, else a file (appended).
func openAccessLog(e *env, path string) (io.Writer, func(), error) {
	switch path {
	case "":
		return nil, func() {}, nil
	case "-":
		return e.stderr, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("--access-log: %w", err)
	}
	return f, func() { f.Close() }, nil
}

// inventory finds the GPUs engines may use: a fixed list, or (auto) nvidia-smi, read again on
// every pass of the serving controller. name is how errors name the setting (--gpus).
func inventory(ctx context.Context, spec, name string, simulate bool) ([]placement.GPU, func(context.Context) ([]placement.GPU, error), error) {
	switch spec {
	case "none", "":
		return nil, nil, nil
	case "auto":
		if simulate {
			return nil, nil, usagef("--simulate-engines needs simulated GPUs: pass --gpus PROFILES, e.g. --gpus 2xrtx-4070-ti-super (profiles: %s)", strings.Join(perfmodel.GPUNames(), ", "))
		}
		inv, err := nvidiaSMI(ctx)
		if errors.Is(err, exec.ErrNotFound) {
			return nil, nil, nil // no NVIDIA driver: CPU-only engines (llama.cpp, Ollama) may still run
		}
		if err != nil {
			return nil, nil, err
		}
		return inv, nvidiaSMI, nil
	}
	inv, err := placement.FakeInventory(spec)
	if err != nil {
		return nil, nil, usagef("%s %q: %v", name, spec, err)
	}
	return inv, nil, nil
}

func nvidiaSMI(ctx context.Context) ([]placement.GPU, error) {
	name, args, _ := strings.Cut(placement.Query, " ")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, strings.Fields(args)...).Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("reading the GPU inventory with %s: %w (pass --gpus none to run without GPUs)", placement.Query, err)
	}
	return placement.ParseNvidiaSMI(out)
}

// defaultDataDir follows the XDG base directory convention for state.
func defaultDataDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "citadel"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory to keep state in: pass --data-dir")
		}
		home = h
	}
	return filepath.Join(strings.TrimSuffix(home, "/"), ".local", "state", "citadel"), nil
}

// inventorySource says where serve's GPU inventory comes from, for citadel get gpus and
// serve's start-up lines.
func inventorySource(spec string, inv []placement.GPU) string {
	switch spec {
	case "none", "":
		return "none (--gpus none)"
	case "auto":
		if inv == nil {
			return "nvidia-smi (not found: no NVIDIA driver)"
		}
		return "nvidia-smi"
	}
	return spec + " (simulated profiles, --gpus)"
}

// inventoryLines are serve's start-up lines about the GPUs: one per GPU, or why there is none.
func inventoryLines(inv []placement.GPU, source string) []string {
	if len(inv) == 0 {
		return []string{"no GPUs, from " + source + ": only CPU engines (llama.cpp, Ollama) can run"}
	}
	out := make([]string, 0, len(inv))
	for _, g := range inv {
		mem := "memory unknown"
		if g.MemoryTotal > 0 {
			mem = gpuGiB(g.MemoryTotal)
			if g.MemoryUsed > 0 {
				mem += " (" + gpuGiB(g.MemoryUsed) + " used by other processes)"
			}
		}
		out = append(out, fmt.Sprintf("GPU %d: %s, %s, from %s", g.Index, g.Name, mem, source))
	}
	return out
}

// nextStep is the command serve suggests once it runs, true for a user who cloned the
// repository and started serve from its root (examples there): apply the seed-001 example
// when models come from a mirror or a real host downloads them, else seed a mirror first.
func nextStep(engines, simulate, gpus, mirror, examples bool) string {
	switch {
	case !engines:
		return "citadel apply -f FILE (models download; nothing is served with --engines=false)"
	case !examples:
		return "citadel get gpus, then citadel apply -f FILE with your models"
	case !gpus && !simulate:
		return "no GPU here: to see examples/seed-001 run on simulated GPUs and stand-in models, stop this server and follow examples/seed-001/README.md (citadel mirror seed …, then citadel serve --gpus 2xrtx-4070-ti-super --simulate-engines …)"
	case simulate && !mirror:
		return "citadel get gpus; to run examples/seed-001 on stand-in models (no download): citadel mirror seed /tmp/citadel-mirror --example seed-001 (steps in examples/seed-001/README.md)"
	}
	return "citadel apply -f examples/seed-001/, then citadel get gpus"
}
