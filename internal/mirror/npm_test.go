package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/npmtest"
)

// TestHuggingFaceJSClient downloads repos from the mirror with the official
// @huggingface/hub client (test/interop/hub-download.mjs).
func TestHuggingFaceJSClient(t *testing.T) {
	dir := npmtest.Dir(t, "@huggingface/hub")
	files := map[string][]byte{
		"hf/acme/js/README.md":                  []byte("# a model\n"),
		"hf/acme/js/config.json":                configJSON,
		"hf/acme/js/tokenizer/vocab.txt":        []byte("a\nb\nc\n"),
		"hf/acme/js/model.safetensors":          bigWeights, // LFS: 302 to the other host
		"hf/acme/js/.mirror.json":               []byte(`{"revisions": {"v1.0": ".mirror-revs/v1.0"}}`),
		"hf/acme/js/.mirror-revs/v1.0/a.txt":    []byte("v1\n"),
		"hf/acme/secret/.mirror.json":           []byte(`{"private": true, "tokens": ["` + goodToken + `"]}`),
		"hf/acme/secret/config.json":            configJSON,
		"hf/acme/secret/weights/model.gguf":     v1Weights,
		"hf/acme/secret/weights/extra.bin":      smallBin,
		"hf/acme/secret/generation_config.json": []byte("{}\n"),
	}
	// A small page size makes listFiles follow Link: rel="next".
	f := newFixture(t, files, Options{TreePageSize: 2})
	digests := func(repo string, names ...string) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			m[n] = sha256hex(files["hf/"+repo+"/"+filepath.FromSlash(n)])
		}
		return m
	}
	run := func(t *testing.T, token string, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", append([]string{"hub-download.mjs"}, args...)...)
		cmd.Dir = dir
		env := []string{"HF_ENDPOINT=" + f.url, "HOME=" + t.TempDir()}
		if token != "" {
			env = append(env, "HF_TOKEN="+token)
		}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "HF_") && !strings.HasPrefix(kv, "HOME=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	tests := []struct {
		name, token string
		args        []string
		want        map[string]string
	}{
		{"public", "", []string{"acme/js"},
			digests("acme/js", "README.md", "config.json", "model.safetensors", "tokenizer/vocab.txt")},
		{"tag", "", []string{"acme/js", "v1.0"}, map[string]string{"a.txt": sha256hex([]byte("v1\n"))}},
		{"private with token", goodToken, []string{"acme/secret"},
			digests("acme/secret", "config.json", "generation_config.json", "weights/extra.bin", "weights/model.gguf")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.srv.ResetRequests()
			stdout, stderr, err := run(t, tt.token, tt.args...)
			if err != nil {
				t.Fatalf("node hub-download.mjs %v: %v\n%s", tt.args, err, stderr)
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("output %q: %v\n%s", stdout, err, stderr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("sha256 per file (-want +got)\n%s", diff)
			}
		})
	}
	// The LFS bytes came from the LFS host (after the cross-host redirect),
	// and the tree was read in pages.
	f.srv.ResetRequests()
	if _, stderr, err := run(t, "", "acme/js"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	st := f.srv.Requests()
	lfsGets := 0
	for p, c := range st.Paths {
		if strings.HasPrefix(p, "/__lfs/acme/js/") && strings.HasSuffix(p, "/model.safetensors") {
			lfsGets += int(c.Requests)
		}
	}
	if lfsGets == 0 || st.Files["hf/acme/js/model.safetensors"].Bytes < int64(len(bigWeights)) {
		t.Errorf("the LFS file was not downloaded from the LFS host: %+v", st)
	}
	if c := st.Paths["/api/models/acme/js/tree/"+f.commit(t, "acme/js", "main", "")]; c.Requests < 3 {
		t.Errorf("tree at the commit requested %d times, want ≥ 3 pages", c.Requests)
	}
	t.Run("private without token", func(t *testing.T) {
		_, stderr, err := run(t, "", "acme/secret")
		if err == nil || !strings.Contains(stderr, "Repository not found") {
			t.Errorf("err %v, stderr %s; want a Repository not found failure", err, stderr)
		}
	})
}
