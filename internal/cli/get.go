package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
)

func newGet(e *env) *cobra.Command {
	var output, selector string
	var allNamespaces, watch bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "List objects of a kind, or show some by name",
		Long: `List objects as a table, or print them as JSON or YAML.

Kinds: ` + strings.Join(v1.KindNames(), ", ") + `; and gpus, the server's GPUs and who holds them.
Secret values are never shown: they read as ` + v1.Redacted + `.`,
		Example: `  citadel get models
  citadel get gpus
  citadel get isvc -A -o wide
  citadel get model mimo-vl-7b-rl -o yaml
  citadel get routes -l team=lab
  citadel get model mimo-vl-7b-rl -w        # follow a download`,
		Args: argsBetween(1, -1, "KIND [NAME...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isGPUs(args[0]) {
				return getGPUs(cmd.Context(), e, output, watch, args[1:])
			}
			info, err := v1.LookupKind(args[0])
			if err != nil {
				return usageError{err}
			}
			switch output {
			case "", "wide", "json", "yaml", "name":
			default:
				return usagef("-o %q: use wide, json, yaml or name", output)
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			ns := e.namespaceFor(info, allNamespaces)
			var objs []v1.Object
			if len(args) > 1 {
				objs, err = getNamed(cmd.Context(), c, info, ns, args[1:])
			} else {
				objs, err = c.List(cmd.Context(), info.Kind, client.ListOptions{Namespace: ns, LabelSelector: selector})
			}
			if err != nil {
				return err
			}
			if watch {
				if output != "" && output != "wide" {
					return usagef("-w prints table rows: use it without -o, or with -o wide")
				}
				return watchObjects(cmd.Context(), e, c, info, ns, args[1:], output == "wide", allNamespaces)
			}
			return printObjects(e, info, objs, output, allNamespaces, len(args) > 2 || len(args) == 1)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "output format: wide, json, yaml or name")
	f.StringVarP(&selector, "selector", "l", "", "label selector, e.g. team=lab,tier!=test")
	f.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	f.BoolVarP(&watch, "watch", "w", false, "after listing, print a row each time an object changes (Ctrl-C to stop)")
	return cmd
}

// namespaceFor is the namespace to query: none for cluster kinds, all with
// -A, else -n or "default".
func (e *env) namespaceFor(info v1.KindInfo, all bool) string {
	switch {
	case !info.Namespaced || all:
		return ""
	case e.namespace != "":
		return e.namespace
	}
	return v1.DefaultNamespace
}

func getNamed(ctx context.Context, c *client.Client, info v1.KindInfo, ns string, names []string) ([]v1.Object, error) {
	if info.Namespaced && ns == "" {
		ns = v1.DefaultNamespace
	}
	var objs []v1.Object
	for _, n := range names {
		o, err := c.Get(ctx, info.Kind, ns, n)
		if err != nil {
			if client.IsNotFound(err) {
				return nil, notFound(info, ns, n)
			}
			return nil, err
		}
		objs = append(objs, o)
	}
	return objs, nil
}

func notFound(info v1.KindInfo, ns, name string) error {
	where := ""
	if info.Namespaced {
		where = fmt.Sprintf(" in namespace %q (use -n NAMESPACE, or -A with get to search all)", ns)
	}
	return fmt.Errorf("%s %q not found%s; list them with: citadel get %s", info.Kind, name, where, info.Plural)
}

func printObjects(e *env, info v1.KindInfo, objs []v1.Object, output string, allNamespaces, asList bool) error {
	switch output {
	case "json", "yaml":
		var v any = objs
		if asList {
			items := make([]json.RawMessage, len(objs))
			for i, o := range objs {
				b, err := json.Marshal(o)
				if err != nil {
					return err
				}
				items[i] = b
			}
			v = v1.List{APIVersion: "v1", Kind: "List", Items: items}
		} else {
			v = objs[0]
		}
		if output == "json" {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n", b)
			return err
		}
		b, err := toYAML(v)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	case "name":
		for _, o := range objs {
			fmt.Fprintln(e.stdout, resourceName(info.Kind, o.GetObjectMeta().Name))
		}
		return nil
	}
	if len(objs) == 0 {
		where := ""
		if info.Namespaced && !allNamespaces {
			where = fmt.Sprintf(" in namespace %q (use -A for all namespaces)", e.namespaceFor(info, false))
		}
		fmt.Fprintf(e.stderr, "No %s found%s.\n", info.Plural, where)
		return nil
	}
	return printTable(e.stdout, info, objs, output == "wide", allNamespaces, time.Now())
}

// watchObjects prints the current rows, then a row for every change, like
// kubectl get -w, until the context ends.
func watchObjects(ctx context.Context, e *env, c *client.Client, info v1.KindInfo, ns string, names []string, wide, allNamespaces bool) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	header := true
	err := c.Watch(ctx, info.Kind, ns, func(ev v1.WatchEvent) error {
		o, err := client.DecodeObject(ev.Object)
		if err != nil {
			return err
		}
		if len(want) > 0 && !want[o.GetObjectMeta().Name] {
			return nil
		}
		var buf strings.Builder
		if err := printTable(&buf, info, []v1.Object{o}, wide, allNamespaces, time.Now()); err != nil {
			return err
		}
		lines := strings.SplitAfterN(buf.String(), "\n", 2)
		if header {
			fmt.Fprint(e.stdout, lines[0])
			header = false
		}
		row := lines[1]
		if ev.Type == "DELETED" {
			row = strings.TrimSuffix(row, "\n") + "   (deleted)\n"
		}
		fmt.Fprint(e.stdout, row)
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
