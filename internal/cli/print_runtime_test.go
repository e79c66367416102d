package cli

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/examples"
	"citadel.dev/citadel/internal/config"
)

// TestRuntimeTable: `citadel get runtimes` marks the built-ins, names each
// runtime's engine and keeps a hundred-architecture runtime on one short line.
func TestRuntimeTable(t *testing.T) {
	var objs []v1.Object
	names, _ := fs.Glob(examples.Runtimes(), "*.yaml")
	for _, n := range names {
		b, err := fs.ReadFile(examples.Runtimes(), n)
		if err != nil {
			t.Fatal(err)
		}
		items, errs := config.Decode(bytes.NewReader(b), n)
		if errs.Err() != nil {
			t.Fatal(errs)
		}
		r := items[0].Object.(*v1.ClusterServingRuntime)
		r.Annotations = map[string]string{v1.AnnotationBuiltIn: "true"}
		objs = append(objs, r)
	}
	ome, errs := config.Load([]string{"../config/testdata/good/ome/runtimes"}, config.LoadOptions{Recursive: true})
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	objs = append(objs, ome[0].Object)
	var out bytes.Buffer
	info, _ := v1.KindByName(v1.KindClusterServingRuntime)
	if err := printTable(&out, info, objs, false, false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	want := `NAME              DISABLED  BUILT-IN  ENGINE    MODELFORMAT        ARCHITECTURE                                                                 SIZERANGE  AUTOSELECT  AGE
llamacpp          false     yes       llamacpp  gguf               (any)                                                                        -          true        -
ollama            false     yes       ollama    gguf               (any)                                                                        -          true        -
sglang            false     yes       sglang    safetensors        BaichuanForCausalLM,CohereForCausalLM,DbrxForCausalLM,… (+45)                -          true        -
vllm              false     yes       vllm      safetensors        AquilaForCausalLM,ArceeForCausalLM,BaichuanForCausalLM,… (+113)              -          true        -
srt-mimo-vl-7b-rl false     -         runner    safetensors:1.0.0  Qwen2_5_VLForConditionalGeneration                                           6B-8B      false       -
`
	got := out.String()
	norm := func(s string) []string { // column widths are tabwriter's business
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
		return lines
	}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Errorf("table (-want +got):\n%s\n%s", diff, got)
	}
}
