package doctor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Engine is how to find one engine and ask its version.
type Engine struct {
	Name    string   // vllm, sglang, llamacpp, ollama (the runtime's engine name)
	Program string   // what to look for on PATH
	Args    []string // the arguments that print its version
	Install string   // how to install it
	// Python: Program is a Python whose Args print the package's version (or fail when
	// it is not installed); Alt is a program that also runs the engine, looked for when
	// the package is not importable.
	Python bool
	Alt    string
}

// Engines are the engines Citadel runs, as their runtimes start them.
var Engines = []Engine{
	{Name: "vllm", Program: "vllm", Args: []string{"--version"}, Install: "pip install vllm (https://docs.vllm.ai)"},
	{Name: "sglang", Program: "python3", Python: true, Alt: "sglang",
		Args:    []string{"-c", "import importlib.metadata as m; print(m.version('sglang'))"},
		Install: "pip install sglang (https://docs.sglang.io), then python3 -m sglang.launch_server runs it"},
	{Name: "llamacpp", Program: "llama-server", Args: []string{"--version"}, Install: "llama.cpp's llama-server: a release from https://github.com/ggml-org/llama.cpp/releases, or brew install llama.cpp"},
	{Name: "ollama", Program: "ollama", Args: []string{"--version"}, Install: "curl -fsSL https://ollama.com/install.sh | sh (https://ollama.com/download)"},
}

// EngineChecks looks for each engine on PATH and asks its version, all at once, each within
// timeout. A missing engine is a warning, not a failure: only the runtimes you apply need
// theirs, and --simulate-engines needs none.
func EngineChecks(ctx context.Context, engines []Engine, look LookPath, run Runner, timeout time.Duration) []Check {
	out := make([]Check, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Go(func() { out[i] = engineCheck(ctx, e, look, run, timeout) })
	}
	wg.Wait()
	return out
}

func engineCheck(ctx context.Context, e Engine, look LookPath, run Runner, timeout time.Duration) Check {
	c := Check{Name: "engine/" + e.Name, Checked: e.Program + " " + strings.Join(e.Args, " ")}
	if e.Python {
		c.Checked = e.Program + " -m " + e.Name
	}
	missing := func(what string) Check {
		c.Status = Warn
		c.Finding = what + ": runtimes of engine " + e.Name + " cannot start here (citadel serve --simulate-engines needs no engine)"
		c.Fix = "install it if you use it: " + e.Install
		return c
	}
	path, err := look(e.Program)
	if err != nil {
		return missing(e.Program + " is not on PATH")
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := run(rctx, path, e.Args...)
	if err != nil {
		if e.Python {
			if rctx.Err() == nil {
				if alt, aerr := look(e.Alt); aerr == nil {
					c.Status, c.Checked = OK, alt
					c.Finding = fmt.Sprintf("%s found at %s (version unknown: %s has no %s package)", e.Alt, alt, path, e.Name)
					return c
				}
				return missing(fmt.Sprintf("%s has no %s package (and no %s on PATH)", path, e.Name, e.Alt))
			}
		}
		c.Status = Warn
		c.Finding = fmt.Sprintf("found at %s, but asking its version failed: %s", path, runErr(rctx, timeout, err, b))
		c.Fix = "run " + path + " " + strings.Join(e.Args, " ") + " to see why; reinstall it if it is broken: " + e.Install
		return c
	}
	c.Status = OK
	c.Finding = fmt.Sprintf("%s at %s", version(string(b)), path)
	if e.Python {
		c.Finding = fmt.Sprintf("%s %s, importable by %s", e.Name, version(string(b)), path)
	}
	return c
}

// version picks the version line out of a program's output: the first line that names a
// version (ollama warns first when no server runs; llama-server prints device lines), else
// the last non-empty line.
func version(out string) string {
	last := ""
	for l := range strings.SplitSeq(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.Contains(strings.ToLower(l), "version") {
			return strings.TrimSpace(firstLine(l))
		}
		last = l
	}
	if last == "" {
		return "version not printed"
	}
	return "version " + firstLine(last)
}
