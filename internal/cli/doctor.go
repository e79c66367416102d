package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/doctor"
	"citadel.dev/citadel/internal/gateway"
)

// doctorDeps are what citadel doctor reads of the host; tests replace them.
type doctorDeps struct {
	look   doctor.LookPath
	run    doctor.Runner
	fs     doctor.FS
	listen doctor.Listen
	hc     *http.Client
}

func osDoctorDeps() doctorDeps {
	return doctorDeps{
		look:   exec.LookPath,
		run:    doctor.ExecRunner,
		fs:     doctor.FS{Stat: os.Stat, Statfs: doctor.OSStatfs, Writable: doctor.OSWritable},
		listen: net.Listen,
		// No keep-alive: each check asks once, and the process ends right after.
		hc: &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}},
	}
}

func newDoctor(e *env) *cobra.Command {
	return newDoctorWith(e, osDoctorDeps())
}

func newDoctorWith(e *env, deps doctorDeps) *cobra.Command {
	var dataDir, adminAddr, gatewayAddr, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host for citadel serve: GPUs, engines, disk, hub, ports, server",
		Long: `Check whether this host is ready to run Citadel, one line per check:
ok, warn or fail, what was checked, what was found and, when not ok, the fix.

  gpu          the NVIDIA driver and GPUs (nvidia-smi)
  engine/*     vllm, sglang (python3 -m sglang), llama-server, ollama on PATH, with versions
  disk/*       the data dir, the Hugging Face cache (HF_HOME/HF_HUB_CACHE) and the Ollama
               models directory (OLLAMA_MODELS): writable, free space
  hub          HF_ENDPOINT answers; hub/token: the hub accepts HF_TOKEN
  port/*       the admin and gateway addresses citadel serve would listen on are free
               (or held by a citadel serve)
  server       a citadel serve answers at --server

Missing GPUs and engines are warnings: CPU engines run without a GPU, and
citadel serve --gpus PROFILES --simulate-engines needs neither. The exit code
is 0 when no check failed, 1 when one did (warnings do not fail).`,
		Example: `  citadel doctor
  citadel doctor -o json | jq '.checks[] | select(.status != "ok")'
  citadel doctor --admin-addr 127.0.0.1:9081 --gateway-addr 127.0.0.1:9080`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "", "json":
			default:
				return usagef("-o %q: doctor prints lines or json", output)
			}
			if timeout <= 0 {
				return usagef("--timeout %s: give a positive duration such as 3s", timeout)
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			defer c.Close()
			checks, err := runDoctor(cmd.Context(), e, deps, c, dataDir, adminAddr, gatewayAddr, timeout)
			if err != nil {
				return err
			}
			if output == "json" {
				err = printDoctorJSON(e.stdout, checks)
			} else {
				err = printDoctor(e.stdout, checks)
			}
			if err != nil {
				return err
			}
			if doctor.Failed(checks) {
				return silentError{}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", e.getenv("CITADEL_DATA_DIR"), "citadel serve's state directory (env CITADEL_DATA_DIR; default $XDG_STATE_HOME/citadel or ~/.local/state/citadel)")
	f.StringVar(&adminAddr, "admin-addr", client.DefaultAddress, "the admin address citadel serve would listen on")
	f.StringVar(&gatewayAddr, "gateway-addr", gateway.DefaultAddr, "the gateway address citadel serve would listen on (off: not checked)")
	f.StringVarP(&output, "output", "o", "", "json for scripts")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "how long each network check and each engine's version command may take")
	return cmd
}

// runDoctor runs every check, the slow ones (commands, network) at once, and returns them
// in a fixed order.
func runDoctor(ctx context.Context, e *env, d doctorDeps, c *client.Client, dataDir, adminAddr, gatewayAddr string, timeout time.Duration) ([]doctor.Check, error) {
	st, err := resolveStorage(e, dataDir)
	if err != nil {
		return nil, err
	}
	dataFrom := "default of citadel serve"
	switch {
	case dataDir != "" && dataDir == e.getenv("CITADEL_DATA_DIR"):
		dataFrom = "CITADEL_DATA_DIR"
	case dataDir != "":
		dataFrom = "--data-dir"
	}
	hfFrom, hfSetting := "under the data dir", "--data-dir or HF_HUB_CACHE"
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"} {
		if e.getenv(v) != "" {
			hfFrom, hfSetting = v, v
			break
		}
	}
	olFrom, olSetting := "under the data dir", "--data-dir or OLLAMA_MODELS"
	if e.getenv("OLLAMA_MODELS") != "" {
		olFrom, olSetting = "OLLAMA_MODELS", "OLLAMA_MODELS"
	}
	// Engines get at least 5s: vllm --version imports Python packages.
	engineTimeout := max(timeout, 5*time.Second)

	var (
		wg                  sync.WaitGroup
		gpu, server         doctor.Check
		engines, hub, ports []doctor.Check
		adminPort, gwPort   doctor.Check
	)
	wg.Go(func() { gpu = doctor.GPU(ctx, d.look, d.run, engineTimeout) })
	wg.Go(func() { engines = doctor.EngineChecks(ctx, doctor.Engines, d.look, d.run, engineTimeout) })
	wg.Go(func() {
		hub = doctor.HubChecks(ctx, d.hc, doctor.Hub{
			Endpoint: st.settings.Endpoint, Token: st.settings.Token,
			TokenSource: st.settings.TokenSource, Offline: st.settings.Offline,
		}, timeout)
	})
	wg.Go(func() { adminPort = doctor.Port(ctx, d.listen, d.hc, "admin", "--admin-addr", adminAddr, timeout) })
	if gatewayAddr != "off" && gatewayAddr != "" {
		wg.Go(func() { gwPort = doctor.Port(ctx, d.listen, d.hc, "gateway", "--gateway-addr", gatewayAddr, timeout) })
	}
	wg.Go(func() { server = doctor.Server(ctx, c, timeout) })
	disks := []doctor.Check{
		doctor.Dir(d.fs, "data-dir", "data dir", st.dataDir, dataFrom, "--data-dir or CITADEL_DATA_DIR"),
		doctor.Dir(d.fs, "hf-cache", "Hugging Face cache", st.hfCache, hfFrom, hfSetting),
		doctor.Dir(d.fs, "ollama-models", "Ollama models", st.ollamaDir, olFrom, olSetting),
	}
	wg.Wait()
	ports = append(ports, adminPort)
	if gwPort.Name != "" {
		ports = append(ports, gwPort)
	}
	out := []doctor.Check{gpu}
	out = append(out, engines...)
	out = append(out, disks...)
	out = append(out, hub...)
	out = append(out, ports...)
	return append(out, server), nil
}

// printDoctor writes one line per check and a summary.
func printDoctor(w io.Writer, checks []doctor.Check) error {
	var n [3]int
	for _, c := range checks {
		line := fmt.Sprintf("%-4s  %-20s %s: %s", c.Status, c.Name, c.Checked, c.Finding)
		if c.Fix != "" && c.Status != doctor.OK {
			line += " -- fix: " + c.Fix
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
		switch c.Status {
		case doctor.OK:
			n[0]++
		case doctor.Warn:
			n[1]++
		default:
			n[2]++
		}
	}
	_, err := fmt.Fprintf(w, "%d ok, %d warnings, %d failed\n", n[0], n[1], n[2])
	return err
}

// doctorReport is doctor's -o json.
type doctorReport struct {
	Failed bool           `json:"failed"`
	Checks []doctor.Check `json:"checks"`
}

func printDoctorJSON(w io.Writer, checks []doctor.Check) error {
	b, err := json.MarshalIndent(doctorReport{Failed: doctor.Failed(checks), Checks: checks}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
