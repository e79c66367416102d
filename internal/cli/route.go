package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/taskclass"
)

func newRoute(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Explain and evaluate how the gateway routes requests by task",
		Long: `Ask the gateway how it routes a request (explain), or measure how well it
routes a labelled set of requests (eval).

A virtual model name (a Route model with tasks, such as "auto") sends each
request to a task: an image part makes it vision; a rule's keywords (whole
words, any case) or patterns match on what the user asks (the last user turn
and an agent's latest tool result, never the system prompt); otherwise the
built-in classifier scores code, reasoning and general, leaning toward the
rules' examples, and a task under the name's minConfidence (default 0.5)
gives way to its defaultTask (default general).

Both commands ask citadel serve's gateway (--server) unless --offline, which
runs the built-in classifier here, with the routes of --route-file if given.`,
	}
	cmd.AddCommand(newRouteExplain(e), newRouteEval(e))
	return cmd
}

// routeTarget is where explain and eval ask: the server's gateway, or one built here.
type routeTarget struct {
	e         *env
	offline   bool
	routeFile []string
	gw        *gateway.Server
}

func (t *routeTarget) explain(ctx context.Context, body []byte, api string) (v1.RouteExplanation, error) {
	if !t.offline {
		c, err := t.e.client()
		if err != nil {
			return v1.RouteExplanation{}, usageError{err}
		}
		return c.Explain(ctx, body, api)
	}
	if t.gw == nil {
		routes := []*v1.Route{builtinRoute()}
		if len(t.routeFile) > 0 {
			items, errs := config.Load(t.routeFile, config.LoadOptions{Stdin: t.e.stdin})
			if err := errs.Err(); err != nil {
				return v1.RouteExplanation{}, usageError{err}
			}
			routes = nil
			for _, it := range items {
				if r, ok := it.Object.(*v1.Route); ok {
					routes = append(routes, r)
				}
			}
			if len(routes) == 0 {
				return v1.RouteExplanation{}, usagef("--route-file: no Route in %s", strings.Join(t.routeFile, ", "))
			}
		}
		t.gw = gateway.New(gateway.Options{Routes: routes})
	}
	return t.gw.ExplainForAdmin(body, api)
}

// builtinRoute is what --offline explains against without --route-file: "auto" with a rule
// for each task and nothing else.
func builtinRoute() *v1.Route {
	r := &v1.Route{TypeMeta: v1.TypeMeta{APIVersion: v1.CitadelGroupVersion, Kind: v1.KindRoute}, ObjectMeta: v1.ObjectMeta{Name: "offline", Namespace: "default"}}
	m := v1.RouteModel{Name: "auto"}
	for _, task := range []string{v1.TaskVision, v1.TaskCode, v1.TaskReasoning, v1.TaskGeneral} {
		r.Spec.Models = append(r.Spec.Models, v1.RouteModel{Name: task + "-model", Targets: []v1.RouteTarget{{URL: "http://offline.invalid/" + task}}})
		m.Tasks = append(m.Tasks, v1.TaskRule{Task: task, Model: task + "-model"})
	}
	r.Spec.Models = append(r.Spec.Models, m)
	return r
}

func newRouteExplain(e *env) *cobra.Command {
	t := &routeTarget{e: e}
	var model, file, system, api, output string
	var image bool
	cmd := &cobra.Command{
		Use:   "explain [TEXT] [--model auto] [-f request.json] [--system TEXT] [--image]",
		Short: "Show where the gateway sends a request, and why",
		Long: `Route one chat request without sending it and print the decision: the public
model and target it resolves to, the task, the rule, the reason, the
classifier's scores and the features that weighed most.

The request is TEXT as a user turn (with --system as a system prompt, --image
adding an image part), or a whole chat request body read from -f (an OpenAI
chat-completions body; with --api ollama, an Ollama /api/chat body; - for
standard input). The same call is POST /api/v1/explain on the admin API.`,
		Example: `  citadel route explain "how do I undo my last git commit?"
  citadel route explain --model auto --system "Answer in fenced code" "a packing list for Lisbon"
  citadel route explain -f request.json -o json
  citadel route explain --offline "If I roll two dice, what are the odds of a double?"`,
		Args: argsBetween(0, 1, "[TEXT]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (file != "") {
				return usagef("give the request as TEXT or with -f FILE (one of them)")
			}
			switch output {
			case "", "json":
			default:
				return usagef("-o %q: explain prints text or json", output)
			}
			var body []byte
			var err error
			if file != "" {
				if body, err = readFileOrStdin(e, file); err != nil {
					return err
				}
				if body, err = withModel(body, model, cmd.Flags().Changed("model")); err != nil {
					return usagef("%s: %v", file, err)
				}
			} else {
				body = chatBody(model, system, args[0], image)
			}
			x, err := t.explain(cmd.Context(), body, api)
			if err != nil {
				return err
			}
			if output == "json" {
				b, _ := json.MarshalIndent(x, "", "  ")
				_, err = fmt.Fprintf(e.stdout, "%s\n", b)
				return err
			}
			printExplanation(e.stdout, x, t.offline)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "auto", "the model name the request sends")
	f.StringVarP(&file, "filename", "f", "", "a chat request body (JSON; - for stdin)")
	f.StringVar(&system, "system", "", "a system prompt before TEXT")
	f.BoolVar(&image, "image", false, "add an image part to TEXT")
	f.StringVar(&api, "api", "openai", "the body's API: openai or ollama")
	f.StringVarP(&output, "output", "o", "", "json for the whole explanation")
	f.BoolVar(&t.offline, "offline", false, "run the built-in classifier here instead of asking the server")
	f.StringSliceVar(&t.routeFile, "route-file", nil, "with --offline: Route files to route by (default: auto with one rule per task)")
	return cmd
}

func printExplanation(w io.Writer, x v1.RouteExplanation, offline bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	to := x.Public
	if x.Task != "" {
		to += " (task " + x.Task + ")"
	}
	fmt.Fprintf(tw, "model\t%s → %s\n", x.Model, to)
	if x.Target != "" && !strings.HasPrefix(x.Target, "http://offline.invalid/") {
		fmt.Fprintf(tw, "target\t%s\n", x.Target)
	}
	if x.Rule != "" {
		fmt.Fprintf(tw, "rule\t%s\n", x.Rule)
	}
	fmt.Fprintf(tw, "reason\t%s\n", x.Reason)
	if len(x.Scores) > 0 {
		var parts []string
		for _, task := range taskclass.Tasks {
			parts = append(parts, fmt.Sprintf("%s %.2f", task, x.Scores[task]))
		}
		fmt.Fprintf(tw, "scores\t%s\n", strings.Join(parts, "  "))
	}
	if len(x.Nearest) > 0 {
		var parts []string
		for _, task := range slices.Sorted(maps.Keys(x.Nearest)) {
			parts = append(parts, fmt.Sprintf("%s %.2f", task, x.Nearest[task]))
		}
		fmt.Fprintf(tw, "examples\t%s (similarity of the nearest)\n", strings.Join(parts, "  "))
	}
	if len(x.Features) > 0 {
		var parts []string
		for _, f := range x.Features[:min(8, len(x.Features))] {
			parts = append(parts, fmt.Sprintf("%s→%s %.2f", f.Feature, f.Task, f.Weight))
		}
		fmt.Fprintf(tw, "features\t%s\n", strings.Join(parts, ", "))
	}
	if x.Ask != "" {
		fmt.Fprintf(tw, "read\t%q\n", taskclass.Excerpt(x.Ask, 100))
	}
	where := "the server's gateway"
	if offline {
		where = "here (offline)"
	}
	fmt.Fprintf(tw, "took\t%.0f µs, %s\n", x.Micros, where)
	tw.Flush()
}

// chatBody is an OpenAI chat request of one user turn.
func chatBody(model, system, text string, image bool) []byte {
	type part struct {
		Type     string             `json:"type"`
		Text     string             `json:"text,omitempty"`
		ImageURL *map[string]string `json:"image_url,omitempty"`
	}
	var msgs []map[string]any
	if system != "" {
		msgs = append(msgs, map[string]any{"role": "system", "content": system})
	}
	if image {
		img := map[string]string{"url": "https://example.com/image.png"}
		msgs = append(msgs, map[string]any{"role": "user", "content": []part{{Type: "text", Text: text}, {Type: "image_url", ImageURL: &img}}})
	} else {
		msgs = append(msgs, map[string]any{"role": "user", "content": text})
	}
	b, _ := json.Marshal(map[string]any{"model": model, "messages": msgs})
	return b
}

// withModel sets a request body's model: always when force, else only where it has none.
// It drops the labels of a labelled line (task, lang, style, note).
func withModel(body []byte, model string, force bool) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if _, ok := m["model"]; force || !ok {
		m["model"], _ = json.Marshal(model)
	}
	for _, k := range []string{"task", "lang", "style", "note"} {
		delete(m, k)
	}
	return json.Marshal(m)
}

func readFileOrStdin(e *env, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(name)
}

func newRouteEval(e *env) *cobra.Command {
	t := &routeTarget{e: e}
	var files []string
	var model, route, api, output string
	var worst int
	var failUnder float64
	cmd := &cobra.Command{
		Use:   "eval -f labelled.jsonl [--model auto | --route NAME] [--offline]",
		Short: "Measure task routing on labelled requests: accuracy, confusion, worst misroutes",
		Long: `Route every line of a labelled JSON Lines file without sending it and compare
the task the gateway chose with the label: accuracy overall and per task, the
confusion matrix (rows: label; columns: routed to), the worst misroutes (the
most confident first) and the decision latency.

Each line is a chat request body (OpenAI's; Ollama's with --api ollama) with
a "task" label beside "messages" — code, reasoning, general or vision:

  {"task":"code","messages":[{"role":"user","content":"why does git say detached HEAD?"}]}

Take a sample of your own traffic, label it, and run this against your route
before and after changing its rules or examples. The model the lines ask for
is --model (default auto), or the first virtual model of --route. With
--fail-under, the command exits 1 when the accuracy is lower.`,
		Example: `  citadel route eval -f labelled.jsonl --route seed-001
  citadel route eval -f labelled.jsonl --offline --route-file route.yaml --worst 40
  citadel route eval -f labelled.jsonl --fail-under 0.9 -o json`,
		Args: argsBetween(0, 0, "no arguments (use -f FILE)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usagef("-f labelled.jsonl is required: lines of chat requests with a \"task\" label")
			}
			switch output {
			case "", "json":
			default:
				return usagef("-o %q: eval prints text or json", output)
			}
			var examples []taskclass.Example
			for _, f := range files {
				var ex []taskclass.Example
				var err error
				if f == "-" {
					ex, err = taskclass.ReadLabelled(e.stdin, "stdin")
				} else if st, serr := os.Stat(f); serr == nil && st.IsDir() {
					ex, err = taskclass.ReadDir(f)
				} else {
					fh, oerr := os.Open(f)
					if oerr != nil {
						return usageError{oerr}
					}
					ex, err = taskclass.ReadLabelled(fh, f)
					fh.Close()
				}
				if err != nil {
					return usageError{err}
				}
				examples = append(examples, ex...)
			}
			if len(examples) == 0 {
				return usagef("no labelled lines in %s", strings.Join(files, ", "))
			}
			if route != "" && !cmd.Flags().Changed("model") {
				m, err := t.virtualModelOf(cmd.Context(), route)
				if err != nil {
					return err
				}
				model = m
			}
			var micros []float64
			r, err := taskclass.Evaluate(examples, func(ex *taskclass.Example) (taskclass.Decision, error) {
				body, err := withModel(ex.Body, model, true)
				if err != nil {
					return taskclass.Decision{}, err
				}
				x, err := t.explain(cmd.Context(), body, api)
				if err != nil {
					return taskclass.Decision{}, err
				}
				if x.Task == "" {
					return taskclass.Decision{}, fmt.Errorf("model %q is not a virtual name (it has no task rules): name one with --model or --route", model)
				}
				micros = append(micros, x.Micros)
				conf := 1.0
				if s, ok := x.Scores[x.Task]; ok {
					conf = s
				}
				return taskclass.Decision{Task: x.Task, Confidence: conf, Reason: x.Reason}, nil
			})
			if err != nil {
				return err
			}
			sort.Float64s(micros)
			p := func(q float64) float64 { return micros[min(len(micros)-1, int(q*float64(len(micros))))] }
			if output == "json" {
				out := map[string]any{"model": model, "total": r.Total, "correct": r.Correct, "accuracy": r.Accuracy(),
					"confusion": r.Confusion, "misses": r.Misses, "decision_micros": map[string]float64{"p50": p(0.5), "p99": p(0.99)}}
				b, _ := json.MarshalIndent(out, "", "  ")
				fmt.Fprintf(e.stdout, "%s\n", b)
			} else {
				fmt.Fprintf(e.stdout, "model %s, %d labelled requests\n", model, r.Total)
				r.Write(e.stdout, worst)
				fmt.Fprintf(e.stdout, "\ndecision time  p50 %.0f µs  p99 %.0f µs\n", p(0.5), p(0.99))
			}
			if failUnder > 0 && r.Accuracy() < failUnder {
				return fmt.Errorf("accuracy %.1f %% is under --fail-under %.1f %%", 100*r.Accuracy(), 100*failUnder)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&files, "filename", "f", nil, "labelled JSON Lines files or directories of *.jsonl (- for stdin)")
	f.StringVar(&model, "model", "auto", "the virtual model name the requests ask for")
	f.StringVar(&route, "route", "", "take the model from this Route: its first virtual model")
	f.StringVar(&api, "api", "openai", "the lines' API: openai or ollama")
	f.StringVarP(&output, "output", "o", "", "json for the whole report")
	f.IntVar(&worst, "worst", 20, "how many misroutes to list")
	f.Float64Var(&failUnder, "fail-under", 0, "exit 1 when the accuracy (0–1) is lower")
	f.BoolVar(&t.offline, "offline", false, "run the built-in classifier here instead of asking the server")
	f.StringSliceVar(&t.routeFile, "route-file", nil, "with --offline: Route files to route by (default: auto with one rule per task)")
	return cmd
}

// virtualModelOf is the first virtual model of a Route: from --route-file offline, else the
// server's.
func (t *routeTarget) virtualModelOf(ctx context.Context, name string) (string, error) {
	var routes []*v1.Route
	if t.offline {
		items, errs := config.Load(t.routeFile, config.LoadOptions{Stdin: t.e.stdin})
		if err := errs.Err(); err != nil {
			return "", usageError{err}
		}
		for _, it := range items {
			if r, ok := it.Object.(*v1.Route); ok {
				routes = append(routes, r)
			}
		}
	} else {
		c, err := t.e.client()
		if err != nil {
			return "", usageError{err}
		}
		obj, err := c.Get(ctx, v1.KindRoute, t.e.namespace, name)
		if err != nil {
			return "", err
		}
		r, ok := obj.(*v1.Route)
		if !ok {
			return "", fmt.Errorf("route %s: the server answered a %T", name, obj)
		}
		routes = append(routes, r)
	}
	for _, r := range routes {
		if r.Name != name {
			continue
		}
		for _, m := range r.Spec.Models {
			if len(m.Tasks) > 0 {
				return m.Name, nil
			}
		}
		return "", fmt.Errorf("route %s has no virtual model (a model with tasks) to evaluate", name)
	}
	return "", fmt.Errorf("route %s: not found", name)
}
