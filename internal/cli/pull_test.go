package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/pull"
)

func mirrorWithRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "hf", "org", "model")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"config.json":       []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","max_position_embeddings":8192}`),
		"model.safetensors": safetensorsFile(1024, 1536), // 3 MiB of BF16
		"README.md":         []byte("# model\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(repo, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, url := mirrortest.Start(t, mirror.Options{Dir: dir}, nil)
	return url
}

func TestPullCommand(t *testing.T) {
	endpoint := mirrorWithRepo(t)
	data := t.TempDir()
	env := map[string]string{"HF_ENDPOINT": endpoint, "HOME": t.TempDir()}
	r := citadelEnv(t, env, "", "pull", "hf://org/model", "--data-dir", data, "--exclude", "*.md")
	if r.code != 0 {
		t.Fatalf("pull: %+v", r)
	}
	if !strings.Contains(r.stdout, "pulled hf://org/model@main: 2 files") {
		t.Errorf("stdout: %s", r.stdout)
	}
	for _, s := range []string{"done     model.safetensors (3.1 MB)", "done     config.json"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("progress lacks %q:\n%s", s, r.stderr)
		}
	}
	repo := filepath.Join(data, "hf", "hub", "models--org--model")
	commit, err := os.ReadFile(filepath.Join(repo, "refs", "main"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(repo, "snapshots", string(commit), "model.safetensors")); err != nil {
		t.Errorf("snapshot: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(repo, "snapshots", string(commit), "README.md")); !os.IsNotExist(err) {
		t.Error("--exclude '*.md' was not honoured")
	}

	// --json: one event per line, the last one the result.
	r = citadelEnv(t, env, "", "pull", "hf://org/model", "--data-dir", data, "--json")
	if r.code != 0 {
		t.Fatalf("pull --json: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var last struct {
		Event  string      `json:"event"`
		Result pull.Result `json:"result"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Event != "done" || len(last.Result.Files) != 3 || last.Result.Fetched != int64(len("# model\n")) {
		t.Errorf("last event %s (%v): %+v", lines[len(lines)-1], err, last)
	}

	// A failure names its reason, in both forms.
	r = citadelEnv(t, env, "", "pull", "hf://org/absent", "--data-dir", data)
	if r.code != 1 || !strings.Contains(r.stderr, "RepoNotFound") {
		t.Errorf("missing repo: %+v", r)
	}
	r = citadelEnv(t, env, "", "pull", "hf://org/absent", "--data-dir", data, "--json")
	if r.code != 1 || !strings.Contains(r.stdout, `"reason":"RepoNotFound"`) {
		t.Errorf("missing repo --json: %+v", r)
	}
}

func TestProgressBarsOnTerminal(t *testing.T) {
	var out bytes.Buffer
	b := newBars(&out, true)
	b.render(pull.Progress{Phase: pull.PhaseDownloading, BytesDone: 50, BytesTotal: 100, BytesPerSecond: 10, FilesTotal: 2,
		Files: []pull.FileProgress{{Path: "a.safetensors", Size: 60, Done: 30, State: "downloading"}, {Path: "b.json", Size: 40, Done: 20, State: "downloading"}}})
	b.render(pull.Progress{Phase: pull.PhaseDownloading, BytesDone: 100, BytesTotal: 100, FilesTotal: 2, FilesDone: 1,
		Files: []pull.FileProgress{{Path: "a.safetensors", Size: 60, Done: 60, State: "done"}, {Path: "b.json", Size: 40, Done: 40, State: "verifying"}}})
	s := out.String()
	for _, want := range []string{
		"[==========          ] a.safetensors", // half of the first file
		"ETA 5s",                               // 50 bytes left at 10 B/s
		"\x1b[3A",                              // the second frame redraws the three lines of the first
		"[====================] a.safetensors", // then the file is complete
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%q", want, s)
		}
	}
}

func TestServeDownloadsModels(t *testing.T) {
	endpoint := mirrorWithRepo(t)
	data := t.TempDir()
	p := pull.New(pull.Options{HFEndpoint: endpoint, HFCache: filepath.Join(data, "hf", "hub"), StallTimeout: 5 * time.Second})
	srv := startServerWith(t, data, "", p)
	view := filepath.Join(t.TempDir(), "models", "llama")
	model := "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: llama}\nspec:\n  storage:\n    storageUri: hf://org/model\n    path: " + view + "\n"
	if r := citadel(t, srv.addr, model, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %+v", r)
	}
	eventually(t, func() string {
		out := mustRun(t, srv.addr, "get", "models")
		if !regexp.MustCompile(`(?m)^llama\s+Ready\s+3\.1 MB\s+100%\s+`).MatchString(out) {
			return "get models:\n" + out + mustRun(t, srv.addr, "describe", "model", "llama")
		}
		return ""
	})
	// Whoever sees Ready sees the metadata too.
	desc := mustRun(t, srv.addr, "describe", "model", "llama")
	for _, s := range []string{"Progress:            3.1 MB of 3.1 MB (100.0%), 3/3 files", "modelArchitecture: LlamaForCausalLM", "maxTokens: 8192"} {
		if !strings.Contains(desc, s) {
			t.Errorf("describe lacks %q:\n%s", s, desc)
		}
	}
	// The Ready event is recorded just after the status.
	eventually(t, func() string {
		if desc := mustRun(t, srv.addr, "describe", "model", "llama"); !strings.Contains(desc, "Normal  Ready") {
			return "no Ready event:\n" + desc
		}
		return ""
	})
	// Re-applying the user's file keeps what the agent filled in: nothing changes.
	r := citadel(t, srv.addr, model, "apply", "-f", "-")
	if r.code != 0 || r.stdout != "clusterbasemodel.ome.io/llama unchanged\n" {
		t.Fatalf("re-apply after metadata fill: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(view, "model.safetensors")); err != nil {
		t.Errorf("storage.path: %v", err)
	}
}

// safetensorsFile is a valid safetensors file with one BF16 tensor.
func safetensorsFile(rows, cols int) []byte {
	n := rows * cols * 2
	hdr := []byte(fmt.Sprintf(`{"w":{"dtype":"BF16","shape":[%d,%d],"data_offsets":[0,%d]}}`, rows, cols, n))
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	return append(append(out, hdr...), bytes.Repeat([]byte{7}, n)...)
}
