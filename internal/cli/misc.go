package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/version"
)

func newDelete(e *env) *cobra.Command {
	var files []string
	var recursive bool
	var rv string
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILE|DIR)",
		Short: "Delete objects by name, or those declared in files",
		Example: `  citadel delete model mimo-vl-7b-rl
  citadel delete -f config/ -R`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			type target struct {
				info     v1.KindInfo
				ns, name string
			}
			var targets []target
			switch {
			case len(files) > 0 && len(args) > 0:
				return usagef("give either KIND NAME... or -f, not both")
			case len(files) > 0:
				items, problems := config.Load(files, config.LoadOptions{Recursive: recursive, Stdin: e.stdin})
				if len(problems.Fatal()) > 0 {
					printProblems(e, problems.Fatal())
					return fmt.Errorf("cannot read the files; nothing was deleted")
				}
				for _, it := range items {
					k := it.Key()
					info, _ := v1.KindByName(k.Kind)
					targets = append(targets, target{info, k.Namespace, k.Name})
				}
			case len(args) >= 2:
				info, err := v1.LookupKind(args[0])
				if err != nil {
					return usageError{err}
				}
				for _, n := range args[1:] {
					targets = append(targets, target{info, e.namespaceFor(info, false), n})
				}
			default:
				return usagef("expected KIND NAME... or -f FILE")
			}
			failed := false
			for _, t := range targets {
				_, err := c.Delete(cmd.Context(), t.info.Kind, t.ns, t.name, rv)
				switch {
				case client.IsNotFound(err):
					fmt.Fprintf(e.stderr, "error: %v\n", notFound(t.info, t.ns, t.name))
					failed = true
				case err != nil:
					return err
				default:
					fmt.Fprintf(e.stdout, "%s deleted\n", resourceName(t.info.Kind, t.name))
				}
			}
			if failed {
				return silentError{}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&files, "filename", "f", nil, "delete the objects declared in these files")
	f.BoolVarP(&recursive, "recursive", "R", false, "descend into subdirectories")
	f.StringVar(&rv, "resource-version", "", "delete only if the object is still at this resourceVersion")
	return cmd
}

func newEvents(e *env) *cobra.Command {
	var forObj string
	var all bool
	var limit int
	cmd := &cobra.Command{
		Use:   "events [--for KIND/NAME] [-A]",
		Short: "Show events, oldest first",
		Example: `  citadel events -A
  citadel events --for model/mimo-vl-7b-rl`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			f := client.EventFilter{Limit: limit}
			if !all {
				f.Namespace = e.namespace
			}
			if forObj != "" {
				kind, name, ok := strings.Cut(forObj, "/")
				if !ok || name == "" {
					return usagef("--for %q: write KIND/NAME, e.g. model/mimo-vl-7b-rl", forObj)
				}
				info, err := v1.LookupKind(kind)
				if err != nil {
					return usageError{err}
				}
				f.Kind, f.Name = info.Kind, name
				f.Namespace = e.namespaceFor(info, false)
			}
			evs, err := c.Events(cmd.Context(), f)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				fmt.Fprintln(e.stderr, "No events found.")
				return nil
			}
			return printEvents(e.stdout, evs, true, time.Now(), "")
		},
	}
	cmd.Flags().StringVar(&forObj, "for", "", "only events of this object (KIND/NAME)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "events of all namespaces")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many events (default 500)")
	return cmd
}

func newVersion(e *env) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client and server versions",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Info()
			fmt.Fprintf(e.stdout, "Client: citadel %s (%s)\n", v.Version, v.GoVersion)
			if clientOnly {
				return nil
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			sv, err := c.Version(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Server: citadel %s (%s) at %s\n", sv.Version, sv.GoVersion, c.Address())
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the client version")
	return cmd
}

// readFileTrim reads a token file, dropping one trailing newline (editors
// add one; tokens never end with one).
func readFileTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}
