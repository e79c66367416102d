package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/config"
)

func newApply(e *env) *cobra.Command {
	var files []string
	var recursive, dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-R] [--dry-run]",
		Short: "Create or update objects from YAML or JSON files",
		Long: `Apply OME-format resources (ClusterBaseModel, BaseModel, ClusterServingRuntime,
ServingRuntime, InferenceService), Citadel Routes and Secrets.

Files may hold many documents; directories are read in lexical order (-R
descends into subdirectories); - reads standard input. Every problem of every
document is reported at once, with file, line, document, field path and fix.
The apply is atomic: if anything is wrong, nothing is applied.
Applying an unchanged object changes nothing. --dry-run validates on the
server (references included) without storing.`,
		Example: `  citadel apply -f examples/seed-001 -R
  cat model.yaml | citadel apply -f -
  citadel apply -f route.yaml --dry-run`,
		Args: argsBetween(0, 0, "no arguments (use -f FILE)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usagef("no input: pass -f FILE, -f DIR or -f - for standard input")
			}
			items, problems := config.Load(files, config.LoadOptions{Recursive: recursive, Stdin: e.stdin})
			if fatal := problems.Fatal(); len(fatal) > 0 {
				printProblems(e, problems)
				fmt.Fprintf(e.stderr, "error: %d problem(s) in the input; nothing was applied\n", len(fatal))
				return silentError{}
			}
			printProblems(e, problems.Skipped()) // documents the server never sees (v1/Namespace, ...)
			if len(items) == 0 {
				return fmt.Errorf("no objects found in %s", strings.Join(files, ", "))
			}
			req := v1.ApplyRequest{DryRun: dryRun}
			for _, it := range items {
				b, err := json.Marshal(it.Object)
				if err != nil {
					return err
				}
				req.Items = append(req.Items, v1.ApplyItem{Source: it.Source, Object: b})
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			resp, err := c.Apply(cmd.Context(), req)
			if err != nil {
				var ae *client.APIError
				if errors.As(err, &ae) && len(ae.Problems) > 0 {
					errs := make(config.Errors, len(ae.Problems))
					for i := range ae.Problems {
						errs[i] = &ae.Problems[i]
					}
					config.Locate(items, errs)
					printProblems(e, errs)
					fmt.Fprintf(e.stderr, "error: %s\n", ae.Message)
					return silentError{}
				}
				return err
			}
			warns := make(config.Errors, len(resp.Warnings))
			for i := range resp.Warnings {
				warns[i] = &resp.Warnings[i]
			}
			config.Locate(items, warns)
			printProblems(e, warns)
			suffix := ""
			if resp.DryRun {
				suffix = " (dry run)"
			}
			for _, r := range resp.Results {
				fmt.Fprintf(e.stdout, "%s %s%s\n", resourceName(r.Kind, r.Name), r.Action, suffix)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&files, "filename", "f", nil, "file, directory or - (repeatable)")
	f.BoolVarP(&recursive, "recursive", "R", false, "descend into subdirectories")
	f.BoolVar(&dryRun, "dry-run", false, "validate on the server without storing")
	return cmd
}

func printProblems(e *env, errs config.Errors) {
	for _, p := range errs {
		fmt.Fprintln(e.stderr, p.Error())
	}
}

// resourceName is kubectl's "kind.group/name".
func resourceName(kind, name string) string {
	info, _ := v1.KindByName(kind)
	group := ""
	if i := strings.IndexByte(info.APIVersion, '/'); i > 0 {
		group = "." + info.APIVersion[:i]
	}
	return strings.ToLower(kind) + group + "/" + name
}
