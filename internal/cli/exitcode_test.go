package cli

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
)

// A network failure is an error (1) with its reason, never a usage error, even when its text reads like
// cobra's ("nothing accepts connections there").
func TestNetworkFailureIsNotUsage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()
	env := map[string]string{"HF_ENDPOINT": endpoint, "HOME": t.TempDir()}
	r := citadelEnv(t, env, "", "pull", "hf://org/model", "--data-dir", t.TempDir(), "--stall-timeout", "1s")
	if r.code != ExitError || strings.Contains(r.stderr, "for usage") || !strings.Contains(r.stderr, "ConnectionFailed") ||
		!strings.Contains(r.stderr, "accepts connections") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 with the ConnectionFailed reason and no usage hint", r.code, r.stderr)
	}
}

// Cobra's own argument and flag mistakes stay usage errors (2), decided by type.
func TestCobraMistakesAreUsage(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"}, {"pul", "hf://org/model"}, {"pull"}, {"pull", "a", "b"}, {"pull", "hf://org/m", "--stall-timeout", "soon"},
		{"pull", "hf://org/m", "--bogus"}, {"pull", "hf://org/m", "--connections"}, {"--server"}, {"get", "models", "-Z"},
	} {
		r := citadel(t, "127.0.0.1:1", "", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "Run 'citadel --help' for usage.") {
			t.Errorf("citadel %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, ExitUsage, r.stderr)
		}
	}
	if r := citadel(t, "127.0.0.1:1", "", "pul"); !strings.Contains(r.stderr, "did you mean pull?") {
		t.Errorf("no suggestion for pul: %s", r.stderr)
	}
	if r := citadel(t, "127.0.0.1:1", ""); r.code != ExitOK || !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("citadel alone: exit %d, stdout %s", r.code, r.stdout)
	}
}

// A file with a hostile safetensors header fails the pull with InvalidModelFiles, as the agent does.
func TestPullHostileSafetensorsHeader(t *testing.T) {
	for name, weights := range map[string][]byte{
		"header length 2^40": func() []byte { b := safetensorsFile(4, 4); binary.LittleEndian.PutUint64(b, 1<<40); return b }(),
		"invalid JSON":       append(binary.LittleEndian.AppendUint64(nil, 16), []byte(`{"w": {"dtype":  `)...),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			repo := filepath.Join(dir, "hf", "evil", "model")
			if err := os.MkdirAll(repo, 0o755); err != nil {
				t.Fatal(err)
			}
			for f, b := range map[string][]byte{
				"config.json":       []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama"}`),
				"model.safetensors": weights,
			} {
				if err := os.WriteFile(filepath.Join(repo, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, url := mirrortest.Start(t, mirror.Options{Dir: dir}, nil)
			env := map[string]string{"HF_ENDPOINT": url, "HOME": t.TempDir()}
			r := citadelEnv(t, env, "", "pull", "hf://evil/model", "--data-dir", t.TempDir())
			if r.code != ExitError || strings.Contains(r.stdout, "pulled") || !strings.Contains(r.stderr, "InvalidModelFiles") ||
				!strings.Contains(r.stderr, "model.safetensors") {
				t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant exit 1, InvalidModelFiles naming model.safetensors", r.code, r.stdout, r.stderr)
			}
			r = citadelEnv(t, env, "", "pull", "hf://evil/model", "--data-dir", t.TempDir(), "--json")
			if r.code != ExitError || !strings.Contains(r.stdout, `"reason":"InvalidModelFiles"`) {
				t.Errorf("--json: exit %d\nstdout: %s", r.code, r.stdout)
			}
		})
	}
}
