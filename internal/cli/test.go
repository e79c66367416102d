package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/kube/kclient"
	"citadel.dev/citadel/internal/modeltest"
)

// testExit carries a test's exit code (0 pass, 1 fail, 2 could not run) through cobra.
type testExit struct{ code int }

func (e testExit) Error() string { return fmt.Sprintf("test exit %d", e.code) }

type testFlags struct {
	files                            []string
	out, gateway, runtime, namespace string
	kubeconfig, kubeNamespace        string
	keep                             bool
	stall, downloadTimeout, ready    time.Duration
	parallel                         int
}

func (f *testFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.files, "filename", "f", nil, "model YAML to apply (with any runtimes or secrets it needs); without it the model must exist")
	fl.StringVar(&f.out, "out", "", "write report.md, report.json and junit.xml here (suite: one directory per model)")
	fl.StringVar(&f.gateway, "gateway", "http://"+gateway.DefaultAddr, "the gateway to test through (empty: the engine only)")
	fl.StringVar(&f.runtime, "runtime", "", "runtime to use (default: selected as the server would)")
	fl.StringVarP(&f.namespace, "service-namespace", "s", v1.DefaultNamespace, "namespace of the test's InferenceService")
	fl.BoolVar(&f.keep, "keep", false, "leave in place what the test applied (the InferenceService, and the model, runtimes and secrets it created)")
	fl.DurationVar(&f.stall, "stall", 60*time.Second, "fail the download after this long without progress")
	fl.DurationVar(&f.downloadTimeout, "download-timeout", 30*time.Minute, "fail the download after this long")
	fl.DurationVar(&f.ready, "ready-timeout", 0, "fail the start after this long (default: the runtime's startup-probe budget)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "test on the Kubernetes cluster of this kubeconfig (Citadel's controller and agents running there) instead of citadel serve")
	fl.StringVar(&f.kubeNamespace, "citadel-namespace", "", "with --kubeconfig: the namespace Citadel's agents run in (default $POD_NAMESPACE or citadel)")
}

func (f *testFlags) options(e *env) (modeltest.Options, error) {
	var c modeltest.Server
	if f.kubeconfig != "" {
		cfg, err := kube.Config(f.kubeconfig)
		if err != nil {
			return modeltest.Options{}, usageError{err}
		}
		if c, err = kclient.New(cfg, f.kubeNamespace); err != nil {
			return modeltest.Options{}, usageError{err}
		}
	} else {
		cl, err := e.client()
		if err != nil {
			return modeltest.Options{}, usageError{err}
		}
		c = cl
	}
	return modeltest.Options{Client: c, Gateway: f.gateway, HubEndpoint: hubEndpoint(e), Namespace: f.namespace, Runtime: f.runtime, Stall: f.stall,
		DownloadTimeout: f.downloadTimeout, ReadyTimeout: f.ready, Keep: f.keep}, nil
}

func newTest(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Validate models end to end: download, runtime, serving, inference; a report that names the root cause",
		Args:  argsBetween(0, 0, "a subcommand: model or suite"),
	}
	cmd.AddCommand(newTestModel(e), newTestSuite(e))
	return cmd
}

func newTestModel(e *env) *cobra.Command {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "model [NAME] [-f MODEL.yaml]",
		Short: "Test one model: apply, download, runtime, serve, inference (engine and gateway), cleanup",
		Long: `Test one model end to end and report, with evidence, the single root cause of
a failure and what to do about it. Exit code 0: passed; 1: failed; 2: the test
could not run (no server, bad input).`,
		Example: `  citadel test model -f config/models/XiaomiMiMo/MiMo-VL-7B-RL.yaml --out /tmp/mimo
  citadel test model mimo-vl-7b-rl --runtime srt-mimo-vl-7b-rl --keep`,
		Args: argsBetween(0, 1, "the model's NAME, or -f FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(e)
			if err != nil {
				return err
			}
			t := modeltest.Target{}
			if len(args) == 1 {
				t.Model = args[0]
			}
			if len(f.files) > 0 {
				objs, err := loadObjects(e, f.files)
				if err != nil {
					return err
				}
				t.Objects = objs
			}
			if t.Model == "" && len(t.Objects) == 0 {
				return usagef("name the model or pass -f MODEL.yaml")
			}
			o.Progress = e.stderr
			r := modeltest.Run(cmd.Context(), o, t)
			_, _ = e.stdout.Write(r.Markdown())
			if f.out != "" {
				if err := modeltest.WriteAll(f.out, r); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "reports in %s\n", f.out)
			}
			if code := r.ExitCode(); code != 0 {
				return testExit{code}
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newTestSuite(e *env) *cobra.Command {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "suite -f FILE|DIR [--parallel N]",
		Short: "Test many models (one per model in the files), a few at a time; a summary table and per-model reports",
		Args:  argsBetween(0, 0, "no arguments (use -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.files) == 0 {
				return usagef("-f FILE|DIR is required")
			}
			o, err := f.options(e)
			if err != nil {
				return err
			}
			objs, err := loadObjects(e, f.files)
			if err != nil {
				return err
			}
			// Each model is tested with the runtimes and secrets of the files.
			var models, shared []v1.Object
			for _, obj := range objs {
				switch obj.(type) {
				case *v1.ClusterBaseModel, *v1.BaseModel:
					models = append(models, obj)
				default:
					shared = append(shared, obj)
				}
			}
			if len(models) == 0 {
				return usagef("the files hold no models to test")
			}
			reports := runSuite(cmd.Context(), o, models, shared, max(f.parallel, 1), e)
			_, _ = e.stdout.Write(modeltest.SuiteMarkdown(reports))
			code := 0
			for _, r := range reports {
				if f.out != "" {
					if err := modeltest.WriteAll(filepath.Join(f.out, r.Model), r); err != nil {
						return err
					}
				}
				code = max(code, r.ExitCode())
			}
			if f.out != "" {
				if err := os.WriteFile(filepath.Join(f.out, "junit.xml"), modeltest.JUnit(reports), 0o644); err != nil {
					return err
				}
			}
			if code != 0 {
				return testExit{code}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&f.parallel, "parallel", 3, "models tested at once")
	return cmd
}

// runSuite tests models with bounded concurrency; when several are stuck downloading at once,
// a systemic probe decides whether one shared cause explains them all.
func runSuite(ctx context.Context, o modeltest.Options, models, shared []v1.Object, parallel int, e *env) []*modeltest.Report {
	reports := modeltest.Suite(ctx, o, models, shared, parallel, func(model string) io.Writer {
		return &prefixWriter{w: e.stderr, prefix: model + ": "}
	})
	modeltest.Systemic(ctx, reports, modeltest.ProbeInput{HubEndpoint: o.HubEndpoint, Token: e.getenv("HF_TOKEN")})
	return reports
}

// hubEndpoint is the hub as `citadel serve` reads it from the same environment (HF_ENDPOINT,
// else https://huggingface.co): next steps and the systemic probe use it.
func hubEndpoint(e *env) string {
	return hub.SettingsFromEnv(e.getenv, nil).Endpoint
}

// prefixWriter prefixes every write (one progress line) with the model's name.
type prefixWriter struct {
	mu     sync.Mutex
	w      interface{ Write([]byte) (int, error) }
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.w.Write([]byte(p.prefix + string(b)))
	return len(b), err
}

func loadObjects(e *env, files []string) ([]v1.Object, error) {
	items, errs := config.Load(files, config.LoadOptions{Stdin: e.stdin})
	if err := errs.Err(); err != nil {
		return nil, usageError{err}
	}
	var objs []v1.Object
	for _, it := range items {
		objs = append(objs, it.Object)
	}
	return objs, nil
}
