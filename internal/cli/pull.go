package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/pull"
)

// storage is where models live on this host, from flags and environment.
type storage struct {
	dataDir   string
	hfCache   string
	hfHome    string
	ollamaDir string
	settings  hub.Settings
}

// resolveStorage applies the conventions: HF_HUB_CACHE / HF_HOME when the
// user set them (so models are shared with their other tools), else under
// Citadel's data directory; OLLAMA_MODELS likewise.
func resolveStorage(e *env, dataDir string) (storage, error) {
	if dataDir == "" {
		d, err := defaultDataDir(e.getenv)
		if err != nil {
			return storage{}, err
		}
		dataDir = d
	}
	s := storage{dataDir: dataDir, settings: hub.SettingsFromEnv(e.getenv, os.ReadFile)}
	s.hfHome = filepath.Join(dataDir, "hf")
	s.hfCache = filepath.Join(s.hfHome, "hub")
	if e.getenv("HF_HUB_CACHE") != "" || e.getenv("HUGGINGFACE_HUB_CACHE") != "" || e.getenv("HF_HOME") != "" {
		s.hfCache, s.hfHome = s.settings.HubCache, s.settings.Home
	}
	s.ollamaDir = e.getenv("OLLAMA_MODELS")
	if s.ollamaDir == "" {
		s.ollamaDir = filepath.Join(dataDir, "ollama", "models")
	}
	return s, nil
}

func newPull(e *env) *cobra.Command {
	var dataDir, revision, path string
	var include, exclude []string
	var jsonOut, reverify bool
	var stall time.Duration
	var registryHost string
	var conns, chunkMiB int
	cmd := &cobra.Command{
		Use:   "pull URI",
		Short: "Download a model from the Hugging Face Hub or an Ollama registry, with progress",
		Long: `Download a model onto this host, verified and resumable.

  hf://org/repo[@revision]   into the Hugging Face cache layout (models--org--repo/{blobs,refs,snapshots}),
                             so vLLM, SGLang and transformers load it offline
  ollama://name[:tag]        into Ollama's models directory (manifests + sha256 blobs)
  file:///dir                checks a local directory

Files are fetched in parallel ranged chunks; an interrupted pull resumes where
it stopped; every file is checked against its sha256 (or git sha1) before it
is placed. A download that receives nothing for --stall-timeout fails with
DownloadStalled instead of hanging.

Environment: HF_ENDPOINT (hub or mirror URL), HF_TOKEN (or $HF_HOME/token),
HF_HOME / HF_HUB_CACHE (cache location; default under --data-dir),
OLLAMA_MODELS (Ollama models directory).`,
		Example: `  citadel pull hf://XiaomiMiMo/MiMo-VL-7B-RL
  HF_ENDPOINT=http://127.0.0.1:8090 citadel pull hf://org/model --include '*.json' --include '*.safetensors'
  citadel pull ollama://qwen2.5:7b --json`,
		Args: argsBetween(1, 1, "URI"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := resolveStorage(e, dataDir)
			if err != nil {
				return err
			}
			insecure := false
			if registryHost != "" && !strings.HasPrefix(registryHost, "https://") {
				insecure = true
			}
			p := pull.New(pull.Options{
				HFEndpoint: st.settings.Endpoint, HFCache: st.hfCache, OllamaDir: st.ollamaDir,
				OllamaRegistry: strings.TrimPrefix(strings.TrimPrefix(registryHost, "http://"), "https://"), OllamaInsecure: insecure,
				StallTimeout: stall, Connections: conns, ChunkSize: int64(chunkMiB) << 20,
			})
			var render func(pull.Progress)
			if jsonOut {
				enc := json.NewEncoder(e.stdout)
				var mu sync.Mutex
				render = func(pr pull.Progress) {
					mu.Lock()
					defer mu.Unlock()
					_ = enc.Encode(map[string]any{"event": "progress", "progress": pr})
				}
			} else {
				render = newBars(e.stderr, isTerminal(e.stderr)).render
			}
			res, err := p.Pull(cmd.Context(), pull.Request{
				URI: args[0], Revision: revision, Token: st.settings.Token,
				Include: include, Exclude: exclude, Path: path, Reverify: reverify,
			}, render)
			if err == nil {
				// Files no engine can load fail here as they fail in the agent.
				_, err = pull.CheckFiles(res)
				var pe *pull.Error
				if !errors.As(err, &pe) {
					err = nil // metadata that cannot be read is not a failed pull
				}
			}
			if err != nil {
				pe := pull.AsError(err)
				if jsonOut {
					_ = json.NewEncoder(e.stdout).Encode(map[string]any{"event": "error", "reason": pe.Reason, "file": pe.File, "message": pe.Message})
					return silentError{}
				}
				return fmt.Errorf("%s", pe.Error())
			}
			if jsonOut {
				return json.NewEncoder(e.stdout).Encode(map[string]any{"event": "done", "result": res})
			}
			fmt.Fprintf(e.stdout, "pulled %s: %s, %s (%s fetched) into %s\n", res.Source, plural(len(res.Files), "file"), modelinfo.FormatBytes(res.Bytes), modelinfo.FormatBytes(res.Fetched), res.Dir)
			if res.Path != "" {
				fmt.Fprintf(e.stdout, "model view at %s\n", res.Path)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", e.getenv("CITADEL_DATA_DIR"), "state directory; the HF cache defaults to DATA_DIR/hf/hub")
	f.StringVar(&revision, "revision", "", "branch, tag or commit (overrides @rev in the URI)")
	f.StringArrayVar(&include, "include", nil, "only files matching this glob (repeatable)")
	f.StringArrayVar(&exclude, "exclude", nil, "skip files matching this glob (repeatable)")
	f.StringVar(&path, "path", "", "also make DIR a view of the model (links), like OME's storage.path")
	f.BoolVar(&jsonOut, "json", false, "print progress events as JSON lines on stdout")
	f.BoolVar(&reverify, "reverify", false, "hash files already in the cache instead of trusting their size")
	f.DurationVar(&stall, "stall-timeout", 60*time.Second, "fail a file that receives no bytes, or a request that gets no answer, for this long; also the most one metadata request waits between its retries")
	f.IntVar(&conns, "connections", 16, "parallel requests overall")
	f.IntVar(&chunkMiB, "chunk-size", 32, "MiB per ranged request")
	f.StringVar(&registryHost, "registry", "", "Ollama registry to pull from (host:port, http unless https:// is given; default registry.ollama.ai)")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// bars renders pull progress: on a terminal, one redrawn line per active
// file and a total line; elsewhere, a line per finished file and a total
// line every 5 seconds.
type bars struct {
	w        io.Writer
	tty      bool
	mu       sync.Mutex
	lines    int
	finished map[string]bool
	lastLog  time.Time
	last     pull.Progress
}

func newBars(w io.Writer, tty bool) *bars { return &bars{w: w, tty: tty, finished: map[string]bool{}} }

func (b *bars) render(pr pull.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = pr
	if pr.Phase == pull.PhaseResolving && pr.Warning != "" {
		// A metadata retry (a 503, a 429 and its Retry-After): said once, before any bar is drawn.
		fmt.Fprintf(b.w, "warning: %s\n", pr.Warning)
		return
	}
	if !b.tty {
		for _, n := range pr.Notices {
			fmt.Fprintf(b.w, "warning: %s\n", n.Message)
		}
		for _, f := range pr.Files {
			if (f.State == "done" || f.State == "cached") && !b.finished[f.Path] {
				b.finished[f.Path] = true
				fmt.Fprintf(b.w, "%-8s %s (%s)\n", f.State, f.Path, modelinfo.FormatBytes(f.Size))
			}
		}
		if time.Since(b.lastLog) >= 5*time.Second && pr.Phase == pull.PhaseDownloading {
			b.lastLog = time.Now()
			fmt.Fprintln(b.w, totalLine(pr))
		}
		return
	}
	var out strings.Builder
	if b.lines > 0 {
		fmt.Fprintf(&out, "\x1b[%dA", b.lines)
	}
	for _, w := range pr.Notices { // printed once, above the redrawn lines
		fmt.Fprintf(&out, "\x1b[2Kwarning: %s\n", w.Message)
	}
	n := 0
	for _, f := range pr.Files {
		if f.State == "done" || f.State == "cached" {
			if !b.finished[f.Path] {
				b.finished[f.Path] = true
				fmt.Fprintf(&out, "\x1b[2K%s %s\n", bar(f.Size, f.Size, 20), fileLabel(f))
			}
			continue
		}
		if f.State == "queued" {
			continue
		}
		fmt.Fprintf(&out, "\x1b[2K%s %s\n", bar(f.Done, f.Size, 20), fileLabel(f))
		n++
	}
	fmt.Fprintf(&out, "\x1b[2K%s\n", totalLine(pr))
	// Clear lines left over from a longer previous frame.
	for i := n + 1; i < b.lines; i++ {
		out.WriteString("\x1b[2K\n")
	}
	extra := max(b.lines-(n+1), 0)
	if extra > 0 {
		fmt.Fprintf(&out, "\x1b[%dA", extra)
	}
	b.lines = n + 1
	io.WriteString(b.w, out.String())
}

func fileLabel(f pull.FileProgress) string {
	return fmt.Sprintf("%-40s %9s / %-9s %s", trimLeft(f.Path, 40), modelinfo.FormatBytes(f.Done), modelinfo.FormatBytes(f.Size), f.State)
}

func trimLeft(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}

func bar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("=", width) + "]"
	}
	fill := int(float64(width) * float64(done) / float64(total))
	fill = min(max(fill, 0), width)
	return "[" + strings.Repeat("=", fill) + strings.Repeat(" ", width-fill) + "]"
}

func totalLine(pr pull.Progress) string {
	s := fmt.Sprintf("%s total %s / %s, %d/%d files", bar(pr.BytesDone, pr.BytesTotal, 20), modelinfo.FormatBytes(pr.BytesDone), modelinfo.FormatBytes(pr.BytesTotal), pr.FilesDone, pr.FilesTotal)
	if pr.BytesPerSecond > 0 {
		s += fmt.Sprintf(", %s/s", modelinfo.FormatBytes(pr.BytesPerSecond))
		if left := pr.BytesTotal - pr.BytesDone; left > 0 {
			s += ", ETA " + humanAge(time.Duration(float64(left)/float64(pr.BytesPerSecond)*float64(time.Second)))
		}
	}
	if pr.Warning != "" {
		s += " (warning: " + pr.Warning + ")"
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
