package modelinfo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// qwen25vlConfig is a vision-language config.json (MiMo-VL-7B's shape).
const mimoConfig = `{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl","torch_dtype":"bfloat16",
"hidden_size":4096,"intermediate_size":11008,"num_hidden_layers":36,"num_attention_heads":32,"num_key_value_heads":8,
"vocab_size":151680,"max_position_embeddings":32768,"tie_word_embeddings":false,"vision_config":{"depth":32,"hidden_size":1280}}`

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func standInGGUF(t *testing.T, s StandInGGUF) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteStandInGGUF(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func standInST(t *testing.T, s StandInSafetensors) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteStandInSafetensors(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var deepcoder = StandInGGUF{Architecture: "qwen2", Name: "DeepCoder 14B Preview", SizeLabel: "14B", FileType: 15,
	ParameterCount: 14_770_033_664, ContextLength: 131072, BlockCount: 48, EmbeddingLength: 5120, FeedForwardLength: 13824,
	HeadCount: 40, HeadCountKV: 8, VocabSize: 152064, RopeFreqBase: 1e6}

// A stand-in is sized as the model it declares; the same layout without the declaration is sized
// as the few tensors it holds.
func TestStandIn(t *testing.T) {
	t.Parallel()
	type got struct {
		Info Info
		Cfg  Config
	}
	ignore := cmpopts.IgnoreFields(Info{}, "SizeBytes", "Files", "TransformersVersion")
	cfgFields := cmpopts.IgnoreFields(Config{}, "Architectures", "Architecture", "ModelType", "TransformersVersion", "Vision", "Dtype", "TieWordEmbeddings")
	f := false
	tests := []struct {
		name  string
		files map[string][]byte
		file  string // Inspect this file instead of the directory
		want  got
	}{{
		name: "safetensors stand-in",
		files: map[string][]byte{"config.json": []byte(mimoConfig),
			"model.safetensors": standInST(t, StandInSafetensors{ParameterCount: 8_292_166_656})},
		want: got{Info{Format: FormatSafetensors, Architecture: "Qwen2_5_VLForConditionalGeneration", ModelType: "qwen2_5_vl",
			ParameterCount: 8_292_166_656, ParameterSize: "8.29B", ParametersByDtype: map[string]int64{"BF16": 8_292_166_656},
			ContextLength: 32768, Vision: true, Dtype: "bfloat16", Capabilities: []string{CapabilityImageTextToText}, StandIn: true},
			Config{HiddenSize: 4096, NumHiddenLayers: 36, NumAttentionHeads: 32, NumKeyValueHeads: 8, IntermediateSize: 11008,
				VocabSize: 151680, ContextLength: 32768, TieWordEmbeddings: &f}},
	}, {
		name: "safetensors without the declaration",
		files: map[string][]byte{"config.json": []byte(mimoConfig),
			"model.safetensors": makeSafetensors(t, map[string]string{"format": "pt"}, stTensor{"stand_in.weight", "BF16", []int64{16}})},
		want: got{Info{Format: FormatSafetensors, Architecture: "Qwen2_5_VLForConditionalGeneration", ModelType: "qwen2_5_vl",
			ParameterCount: 16, ParameterSize: "16", ParametersByDtype: map[string]int64{"BF16": 16},
			ContextLength: 32768, Vision: true, Dtype: "bfloat16", Capabilities: []string{CapabilityImageTextToText}},
			Config{HiddenSize: 4096, NumHiddenLayers: 36, NumAttentionHeads: 32, NumKeyValueHeads: 8, IntermediateSize: 11008,
				VocabSize: 151680, ContextLength: 32768}},
	}, {
		name:  "GGUF stand-in as an Ollama blob",
		files: map[string][]byte{"blobs/sha256-0123": standInGGUF(t, deepcoder)},
		file:  "blobs/sha256-0123",
		want: got{Info{Format: FormatGGUF, Architecture: "qwen2", ModelType: "qwen2", ParameterCount: 14_770_033_664,
			ParameterSize: "14.77B", ParametersByDtype: map[string]int64{"Q4_K_M": 14_770_033_664}, ContextLength: 131072,
			Dtype: "Q4_K_M", Quantization: "q4_k_m", Capabilities: []string{CapabilityTextToText}, StandIn: true},
			Config{HiddenSize: 5120, NumHiddenLayers: 48, NumAttentionHeads: 40, NumKeyValueHeads: 8, IntermediateSize: 13824,
				VocabSize: 152064, ContextLength: 131072}},
	}, {
		name:  "GGUF stand-in in a directory without config.json",
		files: map[string][]byte{"deepcoder-14b-q4_k_m.gguf": standInGGUF(t, deepcoder)},
		want: got{Info{Format: FormatGGUF, Architecture: "qwen2", ModelType: "qwen2", ParameterCount: 14_770_033_664,
			ParameterSize: "14.77B", ParametersByDtype: map[string]int64{"Q4_K_M": 14_770_033_664}, ContextLength: 131072,
			Dtype: "Q4_K_M", Quantization: "q4_k_m", Capabilities: []string{CapabilityTextToText}, StandIn: true},
			Config{HiddenSize: 5120, NumHiddenLayers: 48, NumAttentionHeads: 40, NumKeyValueHeads: 8, IntermediateSize: 13824,
				VocabSize: 152064, ContextLength: 131072}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, data := range tt.files {
				writeFile(t, filepath.Join(dir, name), data)
			}
			p := dir
			if tt.file != "" {
				p = filepath.Join(dir, tt.file)
			}
			info, cfg, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got{info, cfg}, ignore, cfgFields); diff != "" {
				t.Errorf("Inspect (-want +got):\n%s", diff)
			}
			if info.SizeBytes > 4096 {
				t.Errorf("SizeBytes = %d: a stand-in should be tiny on disk", info.SizeBytes)
			}
		})
	}
}

func TestStandInBadDeclaration(t *testing.T) {
	t.Parallel()
	for _, meta := range []map[string]string{
		{StandInParameterCountKey: "-5"},
		{StandInParameterCountKey: "8B"},
		{StandInParameterCountKey: "100", StandInDtypeKey: "Q4"},
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "model.safetensors"), makeSafetensors(t, meta, stTensor{"w", "BF16", []int64{4}}))
		_, err := FromDir(dir)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != "model.safetensors" {
			t.Errorf("metadata %v: err = %v, want a *FormatError naming model.safetensors", meta, err)
		}
	}
}
