package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/modelinfo"
)

func newMirror(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Serve a directory as a Hugging Face Hub and an Ollama registry",
		Long: `Serve a directory as a Hugging Face Hub and as an Ollama registry, for
air-gapped sites (and tests). Point clients at it with HF_ENDPOINT, or pull
from it with ollama. The layout is documented in docs/mirror.md:

  DIR/hf/<org>/<name>/...files...       revision main of org/name
  DIR/hf/<org>/<name>/.mirror.json      private, gated, tokens, revisions, faults
  DIR/ollama/                           an Ollama models directory (manifests/, blobs/)`,
		Args: argsBetween(0, 0, "a subcommand: serve, hash or seed"),
		RunE: func(cmd *cobra.Command, _ []string) error { return usagef("give a subcommand: serve, hash or seed") },
	}
	cmd.AddCommand(newMirrorServe(e), newMirrorHash(e), newMirrorSeed(e))
	return cmd
}

func newMirrorServe(e *env) *cobra.Command {
	var dir, addr, redirectHost, logLevel, cacheDir, upstream, ollamaUpstream string
	var tokens []string
	var pageSize int
	var apiTTL time.Duration
	cmd := &cobra.Command{
		Use:   "serve --dir DIR | --cache DIR [--upstream URL] [--ollama-upstream URL]",
		Short: "Serve DIR until Ctrl-C",
		Long: `Serve DIR as a Hugging Face Hub (HF_ENDPOINT=http://ADDR) and as an Ollama
registry until Ctrl-C or SIGTERM.

Large files (LFS) and Ollama blobs are redirected to the other name of the
same listener (127.0.0.1 <-> localhost), as the real Hub redirects to its CDN;
with another address give --redirect-host, a second name of this machine.
File hashes are computed on first use and kept in DIR/.mirror-cache.json;
run 'citadel mirror hash' first on a large mirror (serve also starts hashing
in the background).

With --cache instead of --dir it is a pull-through cache of a Hub (--upstream,
default https://huggingface.co) and of an Ollama registry (--ollama-upstream,
default https://registry.ollama.ai): API calls are forwarded with the client's
token and kept for --api-ttl (answers about a commit for good); each file is
fetched from upstream once, verified (sha256, git blob sha1), and served from
the cache, also while the upstream is down.`,
		Example: `  citadel mirror serve --dir /srv/models
  citadel mirror serve --cache /var/cache/citadel-mirror --addr 0.0.0.0:8090 --redirect-host mirror-cdn.lan
  HF_ENDPOINT=http://127.0.0.1:8090 huggingface-cli download acme/tiny
  citadel mirror serve --dir /srv/models --addr 0.0.0.0:8090 --redirect-host mirror-cdn.lan --token alice=hf_abc`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := mirrorLogger(e, logLevel)
			if err != nil {
				return err
			}
			if cacheDir != "" || cmd.Flags().Changed("upstream") || cmd.Flags().Changed("ollama-upstream") {
				if dir != "" && cmd.Flags().Changed("dir") {
					return usagef("give --dir (serve a directory) or --cache (a pull-through cache of --upstream), not both")
				}
				if cacheDir == "" {
					return usagef("--upstream and --ollama-upstream need --cache DIR: where the files fetched from upstream are kept")
				}
				if len(tokens) > 0 {
					return usagef("--token is for --dir; with --cache the upstream checks each client's own token")
				}
				return serveMirrorCache(cmd, e, log, mirror.CacheOptions{
					Dir: cacheDir, Upstream: upstream, OllamaUpstream: ollamaUpstream, APITTL: apiTTL, RedirectHost: redirectHost, Logger: log,
				}, addr)
			}
			opts, err := mirrorOptions(dir, tokens, e.getenv)
			if err != nil {
				return err
			}
			opts.TreePageSize, opts.RedirectHost, opts.Logger = pageSize, redirectHost, log
			srv, err := mirror.New(opts)
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w (pick another with --addr)", addr, err)
			}
			a := ln.Addr().String()
			fmt.Fprintf(e.stderr, "citadel mirror: serving %s on http://%s (HF_ENDPOINT=http://%s; Ollama registry at %s)\n", srv.Dir(), a, a, a)

			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return srv.Serve(ctx, ln) })
			g.Go(func() error {
				// Precompute hashes so the first requests do not wait for them.
				start := time.Now()
				st, err := srv.Hash(ctx)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					log.Warn("mirror hashing incomplete; affected repos will fail until fixed", "err", err)
				default:
					log.Info("mirror hashed", "repos", st.Repos, "files", st.Files, "hashed", st.Hashed, "bytes", st.Bytes, "took", time.Since(start).Round(time.Millisecond))
				}
				return nil
			})
			return g.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", e.getenv("CITADEL_MIRROR_DIR"), "directory to serve (env CITADEL_MIRROR_DIR)")
	f.StringVar(&addr, "addr", "127.0.0.1:8090", "listen address")
	// Shadows the global --token (the admin API's): here it is a Hub token.
	f.StringArrayVar(&tokens, "token", nil, "accept this Hub token, as TOKEN or USER=TOKEN (repeatable; env CITADEL_MIRROR_TOKENS, comma-separated)")
	f.StringVar(&redirectHost, "redirect-host", "", "host name LFS and blob redirects point to (default: 127.0.0.1 <-> localhost)")
	f.IntVar(&pageSize, "tree-page-size", 1000, "entries per page of the tree API")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cacheDir, "cache", "", "be a pull-through cache of --upstream and --ollama-upstream, keeping files in this directory (instead of --dir)")
	f.StringVar(&upstream, "upstream", "https://huggingface.co", "with --cache: the Hub to fetch from")
	f.StringVar(&ollamaUpstream, "ollama-upstream", "https://registry.ollama.ai", "with --cache: the Ollama registry to fetch from")
	f.DurationVar(&apiTTL, "api-ttl", 30*time.Second, "with --cache: how long API answers about a branch or tag are reused (a commit's: for good)")
	return cmd
}

// serveMirrorCache runs 'mirror serve --cache'.
func serveMirrorCache(cmd *cobra.Command, e *env, log *slog.Logger, opts mirror.CacheOptions, addr string) error {
	c, err := mirror.NewCache(opts)
	if err != nil {
		return err
	}
	defer c.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (pick another with --addr)", addr, err)
	}
	a := ln.Addr().String()
	fmt.Fprintf(e.stderr, "citadel mirror: caching %s and %s in %s on http://%s (HF_ENDPOINT=http://%s; Ollama registry at %s)\n", opts.Upstream, opts.OllamaUpstream, c.Dir(), a, a, a)
	return c.Serve(cmd.Context(), ln)
}

func newMirrorHash(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "hash --dir DIR",
		Short: "Hash every file of DIR into DIR/.mirror-cache.json",
		Long: `Compute the SHA-256 and git blob ids of every file of every revision in DIR
and store them in DIR/.mirror-cache.json, so that 'citadel mirror serve'
answers at once. Entries of files that are gone are dropped.`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := mirrorOptions(dir, nil, func(string) string { return "" })
			if err != nil {
				return err
			}
			srv, err := mirror.New(opts)
			if err != nil {
				return err
			}
			defer srv.Close()
			start := time.Now()
			st, err := srv.Hash(cmd.Context())
			if err != nil {
				return fmt.Errorf("hashing %s: %w", srv.Dir(), err)
			}
			fmt.Fprintf(e.stdout, "%d repos, %d revisions, %d files (%.1f MiB): %d hashed, %d from the cache, in %s\n",
				st.Repos, st.Revisions, st.Files, float64(st.Bytes)/(1<<20), st.Hashed, int64(st.Files)-st.Hashed, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", e.getenv("CITADEL_MIRROR_DIR"), "directory to hash (env CITADEL_MIRROR_DIR)")
	return cmd
}

func newMirrorSeed(e *env) *cobra.Command {
	var examples []string
	cmd := &cobra.Command{
		Use:   "seed DIR [--example NAME]... [URI]...",
		Short: "Write small stand-in models into a mirror directory",
		Long: `Write stand-ins of known models into DIR, in the layout 'citadel mirror serve'
serves: Hugging Face repositories with their real config.json and a stand-in
safetensors file, Ollama models with their manifest, config, template, license
and params and a stand-in GGUF. Each is a few kilobytes, yet Citadel's planner
and 'citadel sim' size it as the real model: the weight file declares the real
parameter count (citadel.stand_in.parameter_count), and the shapes are the
real ones. No engine can load a stand-in; run them with --simulate-engines.

Examples: ` + strings.Join(slices.Sorted(maps.Keys(mirror.SeedExamples)), ", ") + `
Models:   ` + strings.Join(mirror.SeedURIs(), ", "),
		Example: `  citadel mirror seed /tmp/mirror --example seed-001
  citadel mirror seed /tmp/mirror ollama://qwen2.5:7b hf://XiaomiMiMo/MiMo-VL-7B-RL`,
		Args: argsBetween(1, -1, "DIR and models (URIs) or --example"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, uris := args[0], args[1:]
			for _, ex := range examples {
				list, ok := mirror.SeedExamples[ex]
				if !ok {
					return usagef("--example %q: unknown; choose one of %s", ex, strings.Join(slices.Sorted(maps.Keys(mirror.SeedExamples)), ", "))
				}
				uris = append(uris, list...)
			}
			if len(uris) == 0 {
				return usagef("name the models: --example NAME or URIs (one of %s)", strings.Join(mirror.SeedURIs(), ", "))
			}
			slices.Sort(uris)
			uris = slices.Compact(uris)
			res, err := mirror.Seed(dir, uris)
			if err != nil {
				return err
			}
			var ollama, hf bool
			for _, r := range res {
				fmt.Fprintf(e.stdout, "%-32s stand-in for %s: %d files, %s\n", r.URI, r.StandsFor, len(r.Files), modelinfo.FormatBytes(r.Bytes))
				ollama = ollama || strings.HasPrefix(r.URI, "ollama://")
				hf = hf || strings.HasPrefix(r.URI, "hf://")
			}
			fmt.Fprintf(e.stdout, "\nwrote %s; next:\n  citadel mirror serve --dir %s            # serves on 127.0.0.1:8090\n", dir, dir)
			serve := "citadel serve --gpus 2xrtx-4070-ti-super --simulate-engines"
			if hf {
				serve = "HF_ENDPOINT=http://127.0.0.1:8090 " + serve
			}
			if ollama {
				serve += " --ollama-registry 127.0.0.1:8090"
			}
			fmt.Fprintf(e.stdout, "  %s\n", serve)
			for _, ex := range examples {
				fmt.Fprintf(e.stdout, "  citadel apply -f examples/%s/\n", ex)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&examples, "example", nil, "the models of examples/NAME (repeatable): "+strings.Join(slices.Sorted(maps.Keys(mirror.SeedExamples)), ", "))
	return cmd
}

// mirrorOptions checks the directory and parses the tokens.
func mirrorOptions(dir string, tokens []string, getenv func(string) string) (mirror.Options, error) {
	if dir == "" {
		return mirror.Options{}, usagef("--dir is required: the directory to serve (see docs/mirror.md)")
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return mirror.Options{}, fmt.Errorf("mirror directory %s does not exist: create it, with hf/<org>/<name>/ and/or ollama/ inside", dir)
	case err != nil:
		return mirror.Options{}, fmt.Errorf("mirror directory: %w", err)
	case !fi.IsDir():
		return mirror.Options{}, fmt.Errorf("mirror directory %s is not a directory", dir)
	}
	if len(tokens) == 0 {
		if v := getenv("CITADEL_MIRROR_TOKENS"); v != "" {
			tokens = strings.Split(v, ",")
		}
	}
	opts := mirror.Options{Dir: dir}
	for _, t := range tokens {
		t = strings.TrimSpace(t)
		user, value, ok := strings.Cut(t, "=")
		if !ok {
			user, value = "", t
		}
		if value == "" || strings.ContainsAny(value, " \t") {
			return mirror.Options{}, usagef("--token: want TOKEN or USER=TOKEN, got an empty or blank token")
		}
		opts.Tokens = append(opts.Tokens, mirror.Token{User: user, Value: value})
	}
	return opts, nil
}

func mirrorLogger(e *env, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
}
