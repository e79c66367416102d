package cli

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
)

func newKey(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "key",
		Aliases: []string{"keys", "apikey"},
		Short:   "Manage the gateway's API keys",
		Long: `Create, list and revoke the API keys of the inference gateway.

Keys are optional. While none exists the gateway is open to anyone who can
reach it, which is why citadel serve binds it to loopback (127.0.0.1) by
default. The first key closes it: from then on every request must send a key,
as "Authorization: Bearer ck-…" (OpenAI clients) or "x-api-key: ck-…".

A key is shown once, when it is created. Citadel stores only its SHA-256
hash (an APIKey object), so a lost key cannot be recovered: revoke it and
create another.`,
	}
	cmd.AddCommand(newKeyCreate(e), newKeyList(e), newKeyRevoke(e))
	return cmd
}

func newKeyCreate(e *env) *cobra.Command {
	var models []string
	var rpm, maxConcurrent int32
	var tpm int64
	var expires string
	cmd := &cobra.Command{
		Use:   "create NAME [--models a,b] [--rpm N] [--tpm N] [--max-concurrent N] [--expires 30d]",
		Short: "Create an API key and print it once",
		Long: `Create an API key with a random secret and print the secret once; only its
SHA-256 hash is stored. The secret is the last line of standard output.

--models limits the key to those public model names (default: all).
--rpm and --tpm bound the requests and the tokens (prompt and completion) of
any sliding minute; tokens are charged when a response ends, so a request
under the budget is never cut and the next one is refused with 429.
--max-concurrent bounds the requests in flight. 0 means no limit.
--expires takes a duration (90d, 720h) or an RFC 3339 time.`,
		Example: `  citadel key create lab
  citadel key create ci --models mimo-vl,auto --rpm 60 --tpm 100000 --max-concurrent 4
  KEY=$(citadel key create bench --expires 7d | tail -n 1)`,
		Args: argsBetween(1, 1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if rpm < 0 || tpm < 0 || maxConcurrent < 0 {
				return usagef("--rpm, --tpm and --max-concurrent must not be negative (0 means no limit)")
			}
			var exp *v1.Time
			if expires != "" {
				t, err := parseExpiry(expires, time.Now())
				if err != nil {
					return usageError{err}
				}
				exp = v1.NewTime(t)
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			// Applying over an existing key would silently replace its secret.
			if _, err := c.Get(cmd.Context(), v1.KindAPIKey, "", name); err == nil {
				return fmt.Errorf("API key %q already exists; revoke it first with: citadel key revoke %s", name, name)
			} else if !client.IsNotFound(err) {
				return err
			}
			secret, err := newKeySecret()
			if err != nil {
				return err
			}
			k := &v1.APIKey{
				ObjectMeta: v1.ObjectMeta{Name: name},
				Spec: v1.APIKeySpec{
					Hash: v1.HashAPIKey(secret), Prefix: v1.APIKeyDisplayPrefix(secret), Models: models,
					RequestsPerMinute: rpm, TokensPerMinute: tpm, MaxConcurrent: maxConcurrent, ExpiresAt: exp,
				},
			}
			k.Default()
			b, err := json.Marshal(k)
			if err != nil {
				return err
			}
			resp, err := c.Apply(cmd.Context(), v1.ApplyRequest{Items: []v1.ApplyItem{{Source: v1.Source{File: "key create"}, Object: b}}})
			if err != nil {
				return err
			}
			for _, r := range resp.Results {
				fmt.Fprintf(e.stdout, "%s %s\n", resourceName(r.Kind, r.Name), r.Action)
			}
			fmt.Fprintln(e.stderr, "Save this key now: it is stored only as a hash and cannot be shown again.")
			fmt.Fprintln(e.stderr, `Clients send it as "Authorization: Bearer KEY" or "x-api-key: KEY".`)
			fmt.Fprintln(e.stdout, secret)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&models, "models", nil, "public model names the key may use, comma-separated (default: all)")
	f.Int32Var(&rpm, "rpm", 0, "requests per minute (0: no limit)")
	f.Int64Var(&tpm, "tpm", 0, "tokens per minute, charged when a response ends (0: no limit)")
	f.Int32Var(&maxConcurrent, "max-concurrent", 0, "requests in flight at once (0: no limit)")
	f.StringVar(&expires, "expires", "", "when the key stops working: a duration (30d, 12h) or an RFC 3339 time")
	return cmd
}

func newKeyList(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List API keys (names, prefixes and limits; never the keys)",
		Args:    argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "", "wide", "json", "yaml", "name":
			default:
				return usagef("-o %q: use wide, json, yaml or name", output)
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			objs, err := c.List(cmd.Context(), v1.KindAPIKey, client.ListOptions{})
			if err != nil {
				return err
			}
			info, _ := v1.KindByName(v1.KindAPIKey)
			return printObjects(e, info, objs, output, false, true)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json, yaml or name")
	return cmd
}

func newKeyRevoke(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME...",
		Short: "Revoke (delete) API keys; clients using them are refused at once",
		Args:  argsBetween(1, -1, "NAME..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			info, _ := v1.KindByName(v1.KindAPIKey)
			failed := false
			for _, name := range args {
				_, err := c.Delete(cmd.Context(), v1.KindAPIKey, "", name, "")
				switch {
				case client.IsNotFound(err):
					fmt.Fprintf(e.stderr, "error: API key %q not found; list them with: citadel key list\n", name)
					failed = true
				case err != nil:
					return err
				default:
					fmt.Fprintf(e.stdout, "%s revoked\n", resourceName(info.Kind, name))
				}
			}
			if failed {
				return silentError{}
			}
			return nil
		},
	}
}

// keySecretLen is the number of random characters after the "ck-" prefix:
// 32 base62 characters, about 190 bits.
const keySecretLen = 32

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newKeySecret returns "ck-" followed by keySecretLen random base62
// characters from crypto/rand (rejection sampling: no bias).
func newKeySecret() (string, error) {
	out := make([]byte, 0, len(v1.APIKeyPrefix)+keySecretLen)
	out = append(out, v1.APIKeyPrefix...)
	var buf [64]byte
	for len(out) < cap(out) {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("generating a key: %w", err)
		}
		for _, b := range buf {
			if b >= 248 { // 248 = 4*62: keep the distribution uniform
				continue
			}
			out = append(out, base62[b%62])
			if len(out) == cap(out) {
				break
			}
		}
	}
	return string(out), nil
}

// parseExpiry reads --expires: a Go duration, a number of days ("30d"),
// or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n > 0 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("--expires %q: give a positive duration (30d, 12h) or an RFC 3339 time (2026-12-31T00:00:00Z)", s)
}

var apiKeyColumns = []column{
	{"PREFIX", false, func(o v1.Object, _ time.Time) string { return dash(o.(*v1.APIKey).Spec.Prefix) }},
	{"MODELS", false, func(o v1.Object, _ time.Time) string {
		if m := o.(*v1.APIKey).Spec.Models; len(m) > 0 {
			return strings.Join(m, ",")
		}
		return "*"
	}},
	{"RPM", false, func(o v1.Object, _ time.Time) string { return limitCell(int64(o.(*v1.APIKey).Spec.RequestsPerMinute)) }},
	{"TPM", false, func(o v1.Object, _ time.Time) string { return limitCell(o.(*v1.APIKey).Spec.TokensPerMinute) }},
	{"CONCURRENT", false, func(o v1.Object, _ time.Time) string { return limitCell(int64(o.(*v1.APIKey).Spec.MaxConcurrent)) }},
	{"STATUS", false, func(o v1.Object, now time.Time) string {
		s := o.(*v1.APIKey).Spec
		switch {
		case s.Disabled:
			return "Disabled"
		case s.ExpiresAt != nil && !now.Before(s.ExpiresAt.Time):
			return "Expired"
		}
		return "Active"
	}},
	{"EXPIRES", true, func(o v1.Object, _ time.Time) string {
		if t := o.(*v1.APIKey).Spec.ExpiresAt; t != nil {
			return t.UTC().Format(time.RFC3339)
		}
		return "-"
	}},
	{"AGE", false, age},
}

func limitCell(n int64) string {
	if n <= 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}
