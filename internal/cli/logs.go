package cli

import (
	"strings"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
)

func newLogs(e *env) *cobra.Command {
	var follow bool
	var tail, replica int
	cmd := &cobra.Command{
		Use:   "logs isvc/NAME [-f] [--tail N] [--replica N]",
		Short: "Print an InferenceService's engine log (stdout and stderr)",
		Example: `  citadel logs isvc/mimo-vl-7b-rl -n mimo-vl-7b-rl
  citadel logs isvc/mimo-vl-7b-rl -n mimo-vl-7b-rl -f --tail 20`,
		Args: argsBetween(1, 1, "isvc/NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, ok := strings.Cut(args[0], "/")
			if !ok {
				kind, name = "isvc", args[0]
			}
			info, err := v1.LookupKind(kind)
			if err != nil || info.Kind != v1.KindInferenceService || name == "" {
				return usagef("%q: write isvc/NAME; only InferenceServices run engines", args[0])
			}
			if tail < 0 || replica < 0 {
				return usagef("--tail and --replica must be 0 or more")
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			return c.Logs(cmd.Context(), e.namespaceFor(info, false), name, replica, tail, follow, e.stdout)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVar(&tail, "tail", 100, "start with the last N lines")
	cmd.Flags().IntVar(&replica, "replica", 0, "which replica's engine (0-based)")
	return cmd
}
