package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/examples"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/modelinfo"
)

// upGPUs are the GPUs of the seed-001 plan, simulated.
const upGPUs = "2xrtx-4070-ti-super"

func newUp(e *env) *cobra.Command {
	var dataDir, adminAddr, gatewayAddr, adminToken, logLevel string
	var scale float64
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the seed-001 example on this machine: every model pulled, served on simulated GPUs, routed by task",
		Long: `Run the whole seed-001 plan on this machine, with no GPU and no network: MiMo-VL-7B-RL on
vLLM across two simulated RTX 4070 Ti SUPER cards, deepseek-r1:32b, deepcoder:14b and
qwen2.5:7b on one shared Ollama, and one gateway that routes "auto" by task (vision,
code, reasoning, general) and falls back from vLLM to Ollama.

It writes small stand-ins of the four models (real configs and headers declaring the real
sizes) into a mirror under --data-dir and serves it as a Hugging Face Hub and an Ollama
registry; starts citadel serve with simulated GPUs and simulated engines (citadel sim,
started with each engine's own command line); applies examples/seed-001 (the copy built
into this binary); pulls every model through the real download path; and, when every
service is Ready, prints the gateway's address and requests to try. Ctrl-C stops
everything; running it again reuses what was downloaded.

The engines are simulated: answers are generated text, timed like the real engines on those
GPUs. The same files run real engines on a GPU host: citadel serve, then citadel apply -f
examples/seed-001 (examples/gpu-host/README.md).`,
		Example: `  citadel up
  citadel up --gateway-addr 127.0.0.1:9080 --admin-addr 127.0.0.1:9081
  citadel up --admin-addr 0.0.0.0:9081 --admin-token "$(openssl rand -hex 16)"`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			if dataDir == "" {
				d, err := defaultDataDir(e.getenv)
				if err != nil {
					return err
				}
				dataDir = filepath.Join(d, "up")
			}
			start := time.Now()
			say := func(format string, args ...any) { fmt.Fprintf(e.stdout, "citadel up: "+format+"\n", args...) }
			// Another server on these addresses would answer for ours: refuse before starting.
			for _, a := range []struct{ flag, addr string }{{"--admin-addr", adminAddr}, {"--gateway-addr", gatewayAddr}} {
				ln, err := net.Listen("tcp", a.addr)
				if err != nil {
					return fmt.Errorf("%s is taken (%v): is a citadel serve or citadel up running there? stop it, or pick another with %s", a.addr, err, a.flag)
				}
				ln.Close()
			}

			// The stand-ins, served as a hub and a registry on a loopback port of our own.
			mdir := filepath.Join(dataDir, "mirror")
			seeded, err := mirror.Seed(mdir, mirror.SeedExamples["seed-001"])
			if err != nil {
				return fmt.Errorf("writing the model stand-ins into %s: %w", mdir, err)
			}
			say("%d model stand-ins in %s (simulated weights: real configs and headers, real sizes)", len(seeded), mdir)
			mopts, err := mirrorOptions(mdir, nil, func(string) string { return "" })
			if err != nil {
				return err
			}
			mopts.Logger, err = mirrorLogger(e, "warn")
			if err != nil {
				return err
			}
			msrv, err := mirror.New(mopts)
			if err != nil {
				return err
			}
			defer msrv.Close()
			mln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			mirrorURL := "http://" + mln.Addr().String()
			go func() { _ = msrv.Serve(ctx, mln) }()
			say("mirror of the stand-ins on %s: a Hugging Face Hub (HF_ENDPOINT=%[1]s) and an Ollama registry", mirrorURL)

			// citadel serve, in this process, downloading from the mirror into --data-dir only:
			// the user's own HF cache and Ollama store are not touched by stand-ins.
			se := *e
			se.getenv = func(k string) string {
				switch k {
				case "HF_ENDPOINT":
					return mirrorURL
				case "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "OLLAMA_MODELS", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "CITADEL_ADMIN_TOKEN":
					return ""
				}
				return e.getenv(k)
			}
			se.stdout = io.Discard
			serve := newServe(&se)
			serve.SilenceUsage, serve.SilenceErrors = true, true
			serve.SetArgs([]string{"--data-dir", filepath.Join(dataDir, "state"), "--admin-addr", adminAddr, "--gateway-addr", gatewayAddr,
				"--gpus", upGPUs, "--simulate-engines", "--sim-time-scale", fmt.Sprint(scale), "--ollama-registry", mirrorURL,
				"--admin-token", adminToken, "--log-level", logLevel, "--next-step=false"}) // up takes the next step itself
			serveErr := make(chan error, 1)
			go func() { serveErr <- serve.ExecuteContext(ctx) }()

			c, err := client.New(adminAddr, client.WithToken(adminToken))
			if err != nil {
				return usageError{err}
			}
			if err := waitHealthy(ctx, c, serveErr); err != nil {
				return err
			}
			say("citadel serve on http://%s with simulated GPUs %s; simulated engines (citadel sim)", adminAddr, upGPUs)

			if err := applySeed(ctx, c); err != nil {
				return err
			}
			say("applied examples/seed-001: 4 models, 4 services, route seed-001")

			wctx, wcancel := context.WithTimeout(ctx, timeout)
			err = watchUp(wctx, c, e.stdout, serveErr)
			wcancel()
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					return fmt.Errorf("not ready after %s (--timeout): see citadel describe isvc NAME and citadel describe model NAME (--server %s)", timeout, adminAddr)
				}
				return err
			}
			say("ready in %s", time.Since(start).Round(100*time.Millisecond))
			printTry(e.stdout, gatewayAddr, adminAddr, adminToken)
			select {
			case <-ctx.Done():
				return nil
			case err := <-serveErr:
				return err
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "where the stand-ins, the downloads and the state go (default: citadel serve's data dir + /up)")
	f.StringVar(&adminAddr, "admin-addr", client.DefaultAddress, "admin API listen address")
	f.StringVar(&gatewayAddr, "gateway-addr", gateway.DefaultAddr, "gateway listen address")
	f.StringVar(&adminToken, "admin-token", "", "require this bearer token on admin calls and the dashboard (up prints the dashboard's link with it; CITADEL_ADMIN_TOKEN is not read)")
	f.Float64Var(&scale, "sim-time-scale", 0.05, "wall seconds per simulated second of the engines (1: as slow as the real GPUs)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up if not every service is Ready by then")
	f.StringVar(&logLevel, "log-level", "warn", "the server's log level: debug, info, warn or error")
	return cmd
}

// waitHealthy waits for the admin API to answer, or for serve to fail.
func waitHealthy(ctx context.Context, c *client.Client, serveErr <-chan error) error {
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Health(hctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case err := <-serveErr:
			if err == nil {
				err = errors.New("citadel serve stopped")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// applySeed applies the seed-001 files built into the binary.
func applySeed(ctx context.Context, c *client.Client) error {
	seed := examples.Seed001()
	names, err := fs.Glob(seed, "*.yaml")
	if err != nil {
		return err
	}
	var req v1.ApplyRequest
	for _, name := range names {
		f, err := seed.Open(name)
		if err != nil {
			return err
		}
		items, errs := config.Decode(f, "examples/seed-001/"+name)
		f.Close()
		if err := errs.Err(); err != nil {
			return err
		}
		for _, it := range items {
			b, err := json.Marshal(it.Object)
			if err != nil {
				return err
			}
			req.Items = append(req.Items, v1.ApplyItem{Source: it.Source, Object: b})
		}
	}
	if _, err := c.Apply(ctx, req); err != nil {
		return fmt.Errorf("applying examples/seed-001: %w", err)
	}
	return nil
}

// watchUp prints each model's and each service's progress as it changes, until every service
// is Ready. A Failed model or service ends it with its reason and message.
func watchUp(ctx context.Context, c *client.Client, w io.Writer, serveErr <-chan error) error {
	last := map[string]string{}
	show := func(key, line string) {
		if last[key] != line {
			last[key] = line
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	for {
		models, err := c.List(ctx, v1.KindClusterBaseModel, client.ListOptions{})
		if err != nil {
			return err
		}
		for _, o := range models {
			m, ok := o.(*v1.ClusterBaseModel)
			if !ok {
				continue
			}
			st := m.Status
			line := fmt.Sprintf("model   %-24s %s", m.Name, st.Phase)
			switch {
			case st.Phase == v1.ModelDownloading && st.BytesTotal > 0:
				pct := 10 * (100 * st.BytesDone / st.BytesTotal / 10) // in steps of 10 %
				line += fmt.Sprintf(" %d %% of %s", pct, modelinfo.FormatBytes(st.BytesTotal))
			case st.Phase == v1.ModelFailed:
				return fmt.Errorf("model %s failed: %s: %s (citadel describe model %s)", m.Name, st.Reason, st.Message, m.Name)
			case st.Phase != v1.ModelReady && st.Reason != "":
				line += " (" + st.Reason + ")"
			}
			show("m/"+m.Name, line)
		}
		svcs, err := c.List(ctx, v1.KindInferenceService, client.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, o := range svcs {
			s, ok := o.(*v1.InferenceService)
			if !ok {
				continue
			}
			st := s.Status
			line := fmt.Sprintf("service %-24s %s", s.Name, dash(st.Phase))
			switch st.Phase {
			case v1.ServiceReady:
				ready++
				for _, ep := range st.Endpoints {
					line += fmt.Sprintf(" %s on GPUs %v", ep.Engine, ep.GPUs)
					break
				}
			case v1.ServiceFailed:
				return fmt.Errorf("service %s failed: %s: %s (citadel describe isvc %s)", s.Name, st.Reason, st.Message, s.Name)
			default:
				if st.Reason != "" {
					line += " (" + st.Reason + ")"
				}
			}
			show("s/"+s.Name, line)
		}
		// The gateway marks a Route Ready once its own table routes to a ready replica of
		// every target: before that, a request sent at once could find none.
		routes, err := c.List(ctx, v1.KindRoute, client.ListOptions{})
		if err != nil {
			return err
		}
		serving := 0
		for _, o := range routes {
			r, ok := o.(*v1.Route)
			if !ok {
				continue
			}
			if r.Status.Phase == gateway.RoutePhaseReady {
				serving++
			}
			show("r/"+r.Name, fmt.Sprintf("route   %-24s %s", r.Name, dash(r.Status.Phase)))
		}
		if len(svcs) > 0 && ready == len(svcs) && serving == len(routes) {
			return nil
		}
		select {
		case err := <-serveErr:
			if err == nil {
				err = errors.New("citadel serve stopped")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// upImage is a 1×1 PNG, small enough to print.
const upImage = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

// upRequests are the requests printUp prints, by the task they should reach.
var upRequests = []struct{ task, text string }{
	{"general", "Write a two-line poem about the sea."},
	{"code", "Why does this fail? def f(x): return x +"},
	{"reasoning", "A train leaves at 3 pm at 60 mph and a second at 4 pm at 80 mph. When does the second catch up?"},
	{"vision", "What is in this image?"},
}

// upCurl is the curl command of one request to the gateway's "auto".
func upCurl(gatewayAddr, task, text string) string {
	content := any(text)
	if task == "vision" {
		content = []map[string]any{{"type": "text", "text": text}, {"type": "image_url", "image_url": map[string]string{"url": upImage}}}
	}
	body, _ := json.Marshal(map[string]any{"model": "auto", "max_tokens": 64, "messages": []map[string]any{{"role": "user", "content": content}}})
	return fmt.Sprintf("curl -si http://%s/v1/chat/completions -H 'content-type: application/json' -d '%s'", gatewayAddr, strings.ReplaceAll(string(body), "'", `'\''`))
}

// printTry prints where everything is and what to try. With an admin token, the dashboard's
// link carries it once (the dashboard then keeps a cookie and drops it from the address bar),
// and the admin commands and curls carry it too.
func printTry(w io.Writer, gatewayAddr, adminAddr, token string) {
	dashboard, curlAuth, cliAuth := "http://"+adminAddr+"/", "", ""
	if token != "" {
		dashboard += "?token=" + url.QueryEscape(token)
		curlAuth = " -H " + shellQuote("authorization: Bearer "+token)
		cliAuth = " --token " + shellQuote(token)
	}
	fmt.Fprintf(w, `
Gateway (OpenAI /v1 and Ollama /api): http://%[1]s   model "auto" routes by task; the x-citadel-route header says where and why.
Dashboard: %[3]s   (models, services, GPUs, routes, events; refreshes itself)
Admin API: http://%[2]s   (citadel get isvc --server %[2]s%[4]s, citadel get gpus, citadel describe isvc mimo-vl-7b-rl)

Try:
`, gatewayAddr, adminAddr, dashboard, cliAuth)
	for _, r := range upRequests {
		fmt.Fprintf(w, "  # %s\n  %s\n", r.task, upCurl(gatewayAddr, r.task, r.text))
	}
	fmt.Fprintf(w, `  # the Ollama front
  curl -s http://%[1]s/api/chat -d '{"model":"auto","stream":false,"messages":[{"role":"user","content":"hello"}]}'
  # the admin API: the GPUs and what holds them
  curl -s%[3]s http://%[2]s/api/v1/gpus
  # how a request is routed, without sending it
  citadel route explain --server %[2]s%[4]s "how do I undo my last git commit?"

The engines are simulated (citadel sim with each engine's own flags, timed like the real ones on
these GPUs); the answers are generated text. On a GPU host the same files run real engines:
citadel serve, then citadel apply -f examples/seed-001 (see examples/gpu-host/README.md).
Ctrl-C stops everything; citadel up again reuses what was downloaded.
`, gatewayAddr, adminAddr, curlAuth, cliAuth)
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/=+@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
