package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
)

// isGPUs says whether a get's KIND argument asks for the GPU view, which is not a stored kind.
func isGPUs(kind string) bool {
	switch strings.ToLower(kind) {
	case "gpu", "gpus":
		return true
	}
	return false
}

// getGPUs prints the server's GPU inventory (citadel get gpus): memory, what other processes
// use, what Citadel's engines plan on each GPU, and who holds it.
func getGPUs(ctx context.Context, e *env, output string, watch bool, names []string) error {
	switch output {
	case "", "wide", "json", "yaml":
	default:
		return usagef("-o %q: get gpus prints a table, wide, json or yaml", output)
	}
	if watch {
		return usagef("get gpus has no -w: run it again to see the GPUs now")
	}
	if len(names) > 0 {
		return usagef("get gpus takes no names: it lists every GPU of the server")
	}
	c, err := e.client()
	if err != nil {
		return usageError{err}
	}
	l, err := c.GPUs(ctx)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && client.IsNotFound(err) {
			return fmt.Errorf("no GPU view at %s: %s", c.Address(), ae.Message)
		}
		return err
	}
	switch output {
	case "json":
		b, err := json.MarshalIndent(l, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	case "yaml":
		b, err := toYAML(l)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	return printGPUs(e.stdout, e.stderr, l, output == "wide")
}

// printGPUs is get gpus' table. FREE is total less what other processes use and what
// Citadel's engines plan; HELD BY names each engine replica with its engine and PID, a model
// of a shared (Ollama) server marked shared. Wide adds the profile, the UUID and each
// holder's bytes.
func printGPUs(w, errw io.Writer, l v1.GPUList, wide bool) error {
	if l.Error != "" {
		fmt.Fprintf(errw, "warning: the last inventory read failed: %s\n", l.Error)
	}
	if len(l.Items) == 0 {
		src := ""
		if l.Source != "" {
			src = " (inventory: " + l.Source + ")"
		}
		fmt.Fprintf(errw, "No GPUs found%s: engines run on the CPU only (llama.cpp, Ollama). Start serve with --gpus PROFILES to simulate some.\n", src)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := []string{"INDEX", "NAME", "MEMORY", "USED", "PLANNED", "FREE", "HELD BY", "MIG", "NOTE"}
	if wide {
		head = append(head, "PROFILE", "UUID")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, g := range l.Items {
		mem, used, planned, free := "-", gpuGiB(g.MemoryUsed), gpuGiB(g.Planned), "-"
		if g.MemoryTotal > 0 {
			mem = gpuGiB(g.MemoryTotal)
			free = gpuGiB(max(g.MemoryTotal-g.MemoryUsed-g.Planned, 0))
		}
		var held []string
		for _, h := range g.Holders {
			held = append(held, holderString(h, wide))
		}
		row := []string{strconv.Itoa(g.Index), dash(g.Name), mem, used, planned, free, dash(strings.Join(held, ", ")), dash(g.MIG), dash(g.Note)}
		if wide {
			row = append(row, dash(g.Profile), dash(g.UUID))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Source != "" {
		fmt.Fprintf(w, "inventory: %s\n", l.Source)
	}
	return nil
}

// holderString is one holder: "default/mimo#0 (vllm, pid 4242)", or for a model of a shared
// server "default/coder#0 (ollama, shared, pid 77)"; wide adds the planner's bytes.
func holderString(h v1.GPUHolder, wide bool) string {
	var what []string
	if h.Engine != "" {
		what = append(what, h.Engine)
	}
	if h.Shared {
		what = append(what, "shared")
	}
	if h.PID > 0 {
		what = append(what, "pid "+strconv.Itoa(h.PID))
	} else {
		what = append(what, "not running")
	}
	if wide && h.Bytes > 0 {
		what = append(what, gpuGiB(h.Bytes))
	}
	return fmt.Sprintf("%s#%d (%s)", h.Service, h.Replica, strings.Join(what, ", "))
}

// gpuGiB prints GPU memory as the planner's arithmetic does, in GiB.
func gpuGiB(b int64) string {
	return strconv.FormatFloat(float64(b)/(1<<30), 'f', 2, 64) + " GiB"
}
