// Package cli is the citadel command line: one file per subcommand, each
// turning flags into options and calling a package (the admin API through
// client/, the daemon for serve). It owns human output and exit codes:
// 0 ok, 1 error, 2 usage.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"citadel.dev/citadel/client"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// silentError is an error already reported to the user.
type silentError struct{}

func (silentError) Error() string { return "" }

// env holds what every subcommand shares.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	server    string
	token     string
	namespace string
}

func (e *env) client() (*client.Client, error) {
	return client.New(e.server, client.WithToken(e.token))
}

// Run runs the citadel command line and returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, stdin, stdout, stderr, os.Getenv)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var se silentError
	if errors.As(err, &se) {
		return ExitError
	}
	var te testExit
	if errors.As(err, &te) {
		return te.code // the report said why
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "error: %v\nRun 'citadel --help' for usage.\n", err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	return ExitError
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "citadel",
		Short: "Citadel: pull, serve, route, test and benchmark LLMs on your own GPUs",
		Long: `Citadel is a self-hosted LLM serving control plane in one binary.

Start the server, then declare models, runtimes, services and routes in
OME-format YAML and apply them:

  citadel serve &
  citadel apply -f config/ -R
  citadel get models
  citadel describe model mimo-vl-7b-rl`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Usage is decided by type, where the mistake is found: cobra's flag errors pass through the
		// FlagErrorFunc below, an unknown subcommand through Args (a root with Args is runnable, so cobra
		// asks Args instead of its own untyped check), argument counts through argsBetween.
		Args: unknownCommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	def := func(env, fallback string) string {
		if v := e.getenv(env); v != "" {
			return v
		}
		return fallback
	}
	pf := root.PersistentFlags()
	pf.StringVar(&e.server, "server", def("CITADEL_SERVER", client.DefaultAddress), "admin API address of citadel serve (env CITADEL_SERVER)")
	pf.StringVar(&e.token, "token", def("CITADEL_TOKEN", ""), "admin API bearer token (env CITADEL_TOKEN)")
	pf.StringVarP(&e.namespace, "namespace", "n", "", "namespace of namespaced objects (default \"default\")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServe(e), newApply(e), newGet(e), newDescribe(e), newDelete(e),
		newEvents(e), newSecret(e), newKey(e), newVersion(e), newPull(e),
		newMirror(e),
		newSim(e), newLogs(e), newGateway(e), newTest(e), newBench(e),
		newRetry(e), newRoute(e), newUp(e),
		newDoctor(e),
		newController(e),
		newAgent(e),
	)
	return root
}

// unknownCommand rejects a first argument that names no subcommand, as cobra does, with a usage error.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{errors.New(msg)}
}

// exactArgs and friends return usage errors.
func argsBetween(min, max int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return usagef("expected %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}
