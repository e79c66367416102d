package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
)

func newSecret(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage secrets (access tokens)",
	}
	cmd.AddCommand(newSecretCreate(e))
	return cmd
}

func newSecretCreate(e *env) *cobra.Command {
	var literals, files, envs []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "create NAME (--from-literal KEY=VALUE | --from-file [KEY=]PATH | --from-env [KEY=]VAR)...",
		Short: "Create or update a secret; values are never printed",
		Long: `Create or update a Secret, as kubectl create secret generic does.

A model names its token secret in spec.storage.key; the token is read from the
key "token" unless spec.storage.parameters.secretKey says otherwise. Secrets of
cluster-scoped models (ClusterBaseModel) live in namespace "ome", as in OME.

--from-file drops one trailing newline. --from-env reads an environment
variable, so the token never appears on the command line or in shell history.`,
		Example: `  citadel secret create hf-token -n ome --from-env token=HF_TOKEN
  citadel secret create hf-token -n ome --from-file token=$HOME/.cache/huggingface/token`,
		Args: argsBetween(1, 1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data := map[string]string{}
			add := func(k, v, from string) error {
				if k == "" {
					return usagef("%s: empty key", from)
				}
				if _, dup := data[k]; dup {
					return usagef("key %q given twice", k)
				}
				data[k] = v
				return nil
			}
			for _, l := range literals {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return usagef("--from-literal needs KEY=VALUE")
				}
				if err := add(k, v, "--from-literal"); err != nil {
					return err
				}
			}
			for _, f := range files {
				k, p, ok := strings.Cut(f, "=")
				if !ok {
					k, p = filepath.Base(f), f
				}
				v, err := readFileTrim(p)
				if err != nil {
					return fmt.Errorf("--from-file %s: %w", p, err)
				}
				if err := add(k, v, "--from-file"); err != nil {
					return err
				}
			}
			for _, ev := range envs {
				k, name, ok := strings.Cut(ev, "=")
				if !ok {
					k, name = "token", ev
				}
				v := e.getenv(name)
				if v == "" {
					return fmt.Errorf("--from-env: environment variable %s is empty or unset", name)
				}
				if err := add(k, v, "--from-env"); err != nil {
					return err
				}
			}
			if len(data) == 0 {
				return usagef("no data: give --from-literal, --from-file or --from-env")
			}
			s := &v1.Secret{
				TypeMeta:   v1.TypeMeta{APIVersion: v1.CoreGroupVersion, Kind: v1.KindSecret},
				ObjectMeta: v1.ObjectMeta{Name: args[0], Namespace: e.namespace},
				StringData: data,
			}
			s.Default()
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			resp, err := c.Apply(cmd.Context(), v1.ApplyRequest{DryRun: dryRun, Items: []v1.ApplyItem{{Source: v1.Source{File: "secret create"}, Object: b}}})
			if err != nil {
				return err
			}
			for _, r := range resp.Results {
				suffix := ""
				if resp.DryRun {
					suffix = " (dry run)"
				}
				fmt.Fprintf(e.stdout, "secret/%s %s in namespace %s%s\n", r.Name, r.Action, r.Namespace, suffix)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&literals, "from-literal", nil, "KEY=VALUE (repeatable)")
	f.StringArrayVar(&files, "from-file", nil, "[KEY=]PATH: the key defaults to the file's base name (repeatable)")
	f.StringArrayVar(&envs, "from-env", nil, "[KEY=]VAR: the value of environment variable VAR; the key defaults to token (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "validate without storing")
	return cmd
}
