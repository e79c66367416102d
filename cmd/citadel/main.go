// Command citadel is the Citadel control plane: one binary that serves,
// applies, inspects and (in later releases) pulls, runs, routes, tests and
// benchmarks LLM models. See `citadel --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"citadel.dev/citadel/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
