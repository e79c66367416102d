package cli

import (
	"strings"
	"testing"
)

// TestApplyOMEFilesUnchanged: `citadel apply -R` of real OME files (copied
// unchanged into internal/config/testdata/ome-upstream) applies every model,
// runtime and service, prints one note per skipped document and the
// multi-node warnings, and `get runtimes` then lists them beside the
// built-ins, which are marked.
func TestApplyOMEFilesUnchanged(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	r := citadel(t, srv.addr, "", "apply", "-R", "-f", "../config/testdata/ome-upstream")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"clusterbasemodel.ome.io/qwen3-embedding-0-6b created",
		"clusterservingruntime.ome.io/srt-kimi-k2-pd created",
		"inferenceservice.ome.io/qwen3-4b created",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, want := range []string{
		`samples/isvc/Qwen/qwen3-4b.yaml:2:1: warning: document 1 (v1/Namespace "qwen3-4b"): not managed by Citadel; skipped (fix: nothing to do: namespaces exist implicitly in Citadel, as soon as an object names one)`,
		`warning: document 1 (ome.io/v1beta1/BenchmarkJob "e5-mistral-7b-instruct-benchmark"): not managed by Citadel; skipped`,
		`warning: document 1 (ClusterServingRuntime "srt-deepseek-rdma"): spec.engineConfig.leader: multi-node serving (engineConfig.leader/worker) is not supported on one host`,
	} {
		if strings.Count(r.stderr, want) != 1 {
			t.Errorf("stderr should say once %q:\n%s", want, r.stderr)
		}
	}
	out := mustRun(t, srv.addr, "get", "runtimes")
	for _, want := range []string{"vllm false yes vllm safetensors", "ollama false yes ollama gguf (any)", "srt-qwen3-4b false - runner safetensors:1.0.0 Qwen3ForCausalLM 3B-5B false"} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			found = found || strings.HasPrefix(strings.Join(strings.Fields(l), " "), want)
		}
		if !found {
			t.Errorf("get runtimes lacks a line starting %q:\n%s", want, out)
		}
	}
}
