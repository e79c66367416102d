package modelinfo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hfSnapshot lays files out as the Hugging Face cache does: contents in blobs/, the snapshot made
// of relative symlinks into it. It returns the snapshot directory.
func hfSnapshot(t *testing.T, files map[string][]byte) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "models--Qwen--Qwen2.5-VL-7B-Instruct")
	snap := filepath.Join(repo, "snapshots", "6e6556e8ce728c7b3e438d75ebf04ec93403dc19")
	for _, d := range []string{filepath.Join(repo, "blobs"), snap, filepath.Join(repo, "refs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	for name, data := range files {
		i++
		blob := filepath.Join(repo, "blobs", strings.Repeat(string(rune('a'+i)), 40))
		if err := os.WriteFile(blob, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", filepath.Base(blob)), filepath.Join(snap, name)); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// Small weights shaped like the real models, so counts can be checked by hand.
var (
	qwenShard1 = func(t testing.TB) []byte {
		return makeSafetensors(t, map[string]string{"format": "pt"},
			stTensor{"model.embed_tokens.weight", "BF16", []int64{64, 16}},
			stTensor{"model.layers.0.self_attn.q_proj.weight", "BF16", []int64{16, 16}})
	}
	qwenShard2 = func(t testing.TB) []byte {
		return makeSafetensors(t, map[string]string{"format": "pt"},
			stTensor{"visual.blocks.0.attn.qkv.weight", "BF16", []int64{48, 16}},
			stTensor{"model.norm.weight", "F32", []int64{16}},
			stTensor{"lm_head.weight", "BF16", []int64{64, 16}})
	}
	qwenIndex = []byte(`{"metadata":{"total_size":6208},"weight_map":{
		"model.embed_tokens.weight":"model-00001-of-00002.safetensors",
		"model.layers.0.self_attn.q_proj.weight":"model-00001-of-00002.safetensors",
		"visual.blocks.0.attn.qkv.weight":"model-00002-of-00002.safetensors",
		"model.norm.weight":"model-00002-of-00002.safetensors",
		"lm_head.weight":"model-00002-of-00002.safetensors"}}`)
	llamaWeights = func(t testing.TB) []byte {
		return makeSafetensors(t, nil,
			stTensor{"model.embed_tokens.weight", "BF16", []int64{128, 32}},
			stTensor{"model.layers.0.mlp.down_proj.weight", "BF16", []int64{32, 64}},
			stTensor{"model.norm.weight", "BF16", []int64{32}})
	}
	bertWeights = func(t testing.TB) []byte {
		return makeSafetensors(t, nil,
			stTensor{"embeddings.word_embeddings.weight", "F32", []int64{100, 8}},
			stTensor{"pooler.dense.weight", "F32", []int64{8, 8}})
	}
)

func ggufModel(arch string, fileType uint32, ctx uint32, extra ...ggufKV) []byte {
	kvs := append([]ggufKV{
		{"general.architecture", arch}, {"general.file_type", fileType}, {arch + ".context_length", ctx},
	}, extra...)
	return makeGGUF(kvs, ggufT{"token_embd.weight", []uint64{256, 8}, 12}, ggufT{"output_norm.weight", []uint64{256}, 0})
}

func TestFromDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T) string // returns the directory to inspect
		want  func(dir string) Info
	}{
		{
			name: "qwen2.5-vl sharded safetensors in an HF cache snapshot (symlinks into blobs)",
			setup: func(t *testing.T) string {
				return hfSnapshot(t, map[string][]byte{
					"config.json":                      []byte(qwen25VLNested),
					"model.safetensors.index.json":     qwenIndex,
					"model-00001-of-00002.safetensors": qwenShard1(t),
					"model-00002-of-00002.safetensors": qwenShard2(t),
					"stale-not-in-index.safetensors":   []byte("garbage that must not be read"),
					"preprocessor_config.json":         []byte(`{}`),
					"generation_config.json":           []byte(`{}`),
					"tokenizer.json":                   []byte(`{}`),
				})
			},
			want: func(dir string) Info {
				return Info{
					Format: "safetensors", Architecture: "Qwen2_5_VLForConditionalGeneration", ModelType: "qwen2_5_vl",
					ParameterCount: 3088, ParameterSize: "3.09K", ParametersByDtype: map[string]int64{"BF16": 3072, "F32": 16},
					ContextLength: 128000, Vision: true, Dtype: "bfloat16", TransformersVersion: "4.41.2",
					SizeBytes:    int64(len(qwenShard1(t)) + len(qwenShard2(t))),
					Capabilities: []string{"IMAGE_TEXT_TO_TEXT"},
					Files:        []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"},
				}
			},
		},
		{
			name: "qwen2.5-vl flat config, single file",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"config.json": []byte(qwen25VLFlat), "model.safetensors": qwenShard2(t)})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "safetensors", Architecture: "Qwen2_5_VLForConditionalGeneration", ModelType: "qwen2_5_vl",
					ParameterCount: 1808, ParameterSize: "1.81K", ParametersByDtype: map[string]int64{"BF16": 1792, "F32": 16},
					ContextLength: 128000, Vision: true, Dtype: "bfloat16", TransformersVersion: "4.41.2",
					SizeBytes: int64(len(qwenShard2(t))), Capabilities: []string{"IMAGE_TEXT_TO_TEXT"}, Files: []string{"model.safetensors"},
				}
			},
		},
		{
			name: "llama text model, several unindexed files",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"config.json": []byte(llama31), "model-00001-of-00002.safetensors": llamaWeights(t),
					"model-00002-of-00002.safetensors": bertWeights(t), "original/consolidated.00.pth": []byte("x"),
				})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "safetensors", Architecture: "LlamaForCausalLM", ModelType: "llama",
					ParameterCount: 4096 + 2048 + 32 + 800 + 64, ParameterSize: "7.04K",
					ParametersByDtype: map[string]int64{"BF16": 6176, "F32": 864},
					ContextLength:     131072, Dtype: "bfloat16", TransformersVersion: "4.42.3",
					SizeBytes:    int64(len(llamaWeights(t)) + len(bertWeights(t))),
					Capabilities: []string{"TEXT_TO_TEXT"},
					Files:        []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"},
				}
			},
		},
		{
			name: "bert embedding model with sentence-transformers modules",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"config.json": []byte(bgeLarge), "model.safetensors": bertWeights(t), "modules.json": []byte(`[]`),
					"1_Pooling/config.json": []byte(`{"word_embedding_dimension": 1024}`),
				})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "safetensors", Architecture: "BertModel", ModelType: "bert",
					ParameterCount: 864, ParameterSize: "864", ParametersByDtype: map[string]int64{"F32": 864},
					ContextLength: 512, Embedding: true, Dtype: "float32", TransformersVersion: "4.30.0",
					SizeBytes: int64(len(bertWeights(t))), Capabilities: []string{"EMBEDDING"}, Files: []string{"model.safetensors"},
				}
			},
		},
		{
			name: "decoder embedding model recognised by config_sentence_transformers.json",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"config.json":                       []byte(`{"architectures":["Qwen3ForCausalLM"],"model_type":"qwen3","max_position_embeddings":32768,"torch_dtype":"bfloat16"}`),
					"model.safetensors":                 llamaWeights(t),
					"config_sentence_transformers.json": []byte(`{"similarity_fn_name":"cosine"}`),
				})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "safetensors", Architecture: "Qwen3ForCausalLM", ModelType: "qwen3",
					ParameterCount: 6176, ParameterSize: "6.18K", ParametersByDtype: map[string]int64{"BF16": 6176},
					ContextLength: 32768, Embedding: true, Dtype: "bfloat16",
					SizeBytes: int64(len(llamaWeights(t))), Capabilities: []string{"EMBEDDING"}, Files: []string{"model.safetensors"},
				}
			},
		},
		{
			name: "gguf model plus mmproj: largest non-mmproj file is the model",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf":      ggufModel("qwen2vl", 15, 128000, ggufKV{"general.name", strings.Repeat("x", 4096)}),
					"Qwen2.5-VL-3B-Instruct-Q2_K.gguf":        ggufModel("qwen2vl", 10, 128000),
					"mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf":  makeGGUF([]ggufKV{{"general.architecture", "clip"}, {"general.type", "mmproj"}}, ggufT{"v.patch_embd.weight", []uint64{14, 14}, 1}),
					"mmproj-Qwen2.5-VL-3B-Instruct-q8_0.gguf": makeGGUF([]ggufKV{{"general.architecture", "clip"}}),
					"README.md": []byte("# model"),
				})
				return dir
			},
			want: func(dir string) Info {
				return Info{
					Format: "gguf", Architecture: "qwen2vl", ModelType: "qwen2vl",
					ParameterCount: 2304, ParameterSize: "2.3K", ParametersByDtype: map[string]int64{"Q4_K": 2048, "F32": 256},
					ContextLength: 128000, Vision: true, Dtype: "Q4_K_M", Quantization: "q4_k_m",
					SizeBytes:    fileSize(t, dir, "Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf") + fileSize(t, dir, "mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf"),
					Capabilities: []string{"IMAGE_TEXT_TO_TEXT"},
					Files:        []string{"Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf", "mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf"},
				}
			},
		},
		{
			name: "split gguf in a subdirectory, f16 is not a quantisation",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"F16/Llama-00001-of-00002.gguf": ggufModel("llama", 1, 8192, ggufKV{"split.count", ggufRaw{ggufU16, []byte{2, 0}}}),
					"F16/Llama-00002-of-00002.gguf": makeGGUF([]ggufKV{{"split.no", ggufRaw{ggufU16, []byte{1, 0}}}}, ggufT{"output.weight", []uint64{256, 4}, 1}),
				})
				return dir
			},
			want: func(dir string) Info {
				return Info{
					Format: "gguf", Architecture: "llama", ModelType: "llama",
					ParameterCount: 3328, ParameterSize: "3.33K", ParametersByDtype: map[string]int64{"Q4_K": 2048, "F32": 256, "F16": 1024},
					ContextLength: 8192, Dtype: "F16",
					SizeBytes:    fileSize(t, dir, "F16/Llama-00001-of-00002.gguf") + fileSize(t, dir, "F16/Llama-00002-of-00002.gguf"),
					Capabilities: []string{"TEXT_TO_TEXT"},
					Files:        []string{"F16/Llama-00001-of-00002.gguf", "F16/Llama-00002-of-00002.gguf"},
				}
			},
		},
		{
			name: "gguf embedding model by pooling type",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"nomic-embed-text-v1.5.Q8_0.gguf": ggufModel("nomic-bert", 7, 2048, ggufKV{"nomic-bert.pooling_type", uint32(1)})})
				return dir
			},
			want: func(dir string) Info {
				return Info{
					Format: "gguf", Architecture: "nomic-bert", ModelType: "nomic-bert",
					ParameterCount: 2304, ParameterSize: "2.3K", ParametersByDtype: map[string]int64{"Q4_K": 2048, "F32": 256},
					ContextLength: 2048, Embedding: true, Dtype: "Q8_0", Quantization: "q8_0",
					SizeBytes: fileSize(t, dir, "nomic-embed-text-v1.5.Q8_0.gguf"), Capabilities: []string{"EMBEDDING"},
					Files: []string{"nomic-embed-text-v1.5.Q8_0.gguf"},
				}
			},
		},
		{
			name: "config only: estimated from config",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"config.json": []byte(llama31), "tokenizer.json": []byte(`{}`)})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "unknown", Architecture: "LlamaForCausalLM", ModelType: "llama",
					ParameterCount: 8_030_261_248, ParameterCountEstimated: true, ParameterSize: "8.03B",
					ContextLength: 131072, Dtype: "bfloat16", TransformersVersion: "4.42.3", Capabilities: []string{"TEXT_TO_TEXT"},
				}
			},
		},
		{
			name: "pytorch bin weights: estimated, training state ignored",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"config.json": []byte(bgeLarge), "pytorch_model.bin": []byte("PK\x03\x04 pickle"), "training_args.bin": []byte("xx"),
				})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "pytorch", Architecture: "BertModel", ModelType: "bert",
					ParameterCount: 333_818_880, ParameterCountEstimated: true, ParameterSize: "333.82M",
					ContextLength: 512, Embedding: true, Dtype: "float32", TransformersVersion: "4.30.0",
					SizeBytes: 11, Capabilities: []string{"EMBEDDING"}, Files: []string{"pytorch_model.bin"},
				}
			},
		},
		{
			name: "pytorch index",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"config.json":                      []byte(llama31),
					"pytorch_model.bin.index.json":     []byte(`{"weight_map":{"a":"pytorch_model-00001-of-00002.bin","b":"pytorch_model-00002-of-00002.bin"}}`),
					"pytorch_model-00001-of-00002.bin": []byte("1"), "pytorch_model-00002-of-00002.bin": []byte("22"),
					"pytorch_model.bin": []byte("not in the index"),
				})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "pytorch", Architecture: "LlamaForCausalLM", ModelType: "llama",
					ParameterCount: 8_030_261_248, ParameterCountEstimated: true, ParameterSize: "8.03B",
					ContextLength: 131072, Dtype: "bfloat16", TransformersVersion: "4.42.3", SizeBytes: 3,
					Capabilities: []string{"TEXT_TO_TEXT"}, Files: []string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"},
				}
			},
		},
		{
			name: "config.json found by the walk, weights beside it, hidden directories skipped",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					".cache/huggingface/config.json":   []byte(`{not json`),
					".cache/huggingface/x.safetensors": []byte("garbage"),
					"a/b/config.json":                  []byte(llama31),
					"a/b/model.safetensors":            llamaWeights(t),
					"c/d/e/f/deeper.gguf":              []byte("beyond the depth limit"),
				})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "safetensors", Architecture: "LlamaForCausalLM", ModelType: "llama",
					ParameterCount: 6176, ParameterSize: "6.18K", ParametersByDtype: map[string]int64{"BF16": 6176},
					ContextLength: 131072, Dtype: "bfloat16", TransformersVersion: "4.42.3",
					SizeBytes: int64(len(llamaWeights(t))), Capabilities: []string{"TEXT_TO_TEXT"}, Files: []string{"a/b/model.safetensors"},
				}
			},
		},
		{
			name: "weights without config.json; dtype from the weights",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"model.safetensors": llamaWeights(t)})
				return dir
			},
			want: func(string) Info {
				return Info{
					Format: "safetensors", ParameterCount: 6176, ParameterSize: "6.18K", ParametersByDtype: map[string]int64{"BF16": 6176},
					Dtype: "bfloat16", SizeBytes: int64(len(llamaWeights(t))), Capabilities: []string{"TEXT_TO_TEXT"}, Files: []string{"model.safetensors"},
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.setup(t)
			got, err := FromDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want(dir), got); diff != "" {
				t.Errorf("FromDir (-want +got):\n%s", diff)
			}
		})
	}
}

func fileSize(t *testing.T, dir, rel string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestFromDirErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		check   func(t *testing.T, err error)
		wantErr string
	}{
		{
			name:    "empty directory",
			setup:   func(t *testing.T) string { return t.TempDir() },
			check:   wantAs[*NoModelError],
			wantErr: "no config.json and no *.safetensors, *.gguf or *.bin weights within 3 directory levels; check the model path",
		},
		{
			name: "only hidden, unrelated and too-deep files",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{".git/config.json": []byte("{}"), "README.md": []byte("x"), "a/b/c/d/model.gguf": []byte("x")})
				return dir
			},
			check:   wantAs[*NoModelError],
			wantErr: "no model found",
		},
		{
			name:    "missing directory",
			setup:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") },
			check:   wantIs(fs.ErrNotExist),
			wantErr: "no such file or directory",
		},
		{
			name: "a file, not a directory",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"model.gguf": []byte("x")})
				return filepath.Join(dir, "model.gguf")
			},
			check:   func(*testing.T, error) {},
			wantErr: "not a directory",
		},
		{
			name: "corrupt shard: error names the file",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"config.json": []byte(llama31), "model.safetensors": withLenPrefix(1<<40, "{}")})
				return dir
			},
			check:   wantFormat("safetensors", "model.safetensors", 0),
			wantErr: `invalid safetensors file "model.safetensors" at byte 0: header length 1099511627776 exceeds the 100000000-byte limit (the file is damaged or incomplete; pull the model again)`,
		},
		{
			name: "truncated shard in a snapshot",
			setup: func(t *testing.T) string {
				s := qwenShard2(t)
				return hfSnapshot(t, map[string][]byte{
					"config.json": []byte(qwen25VLNested), "model.safetensors.index.json": qwenIndex,
					"model-00001-of-00002.safetensors": qwenShard1(t), "model-00002-of-00002.safetensors": s[:len(s)-10],
				})
			},
			check:   wantFormat("safetensors", "model-00002-of-00002.safetensors", -2),
			wantErr: `data_offsets [1600, 3648] out of range: the data buffer is 3638 bytes (file truncated?)`,
		},
		{
			name: "shard named by the index is absent",
			setup: func(t *testing.T) string {
				return hfSnapshot(t, map[string][]byte{
					"config.json": []byte(qwen25VLNested), "model.safetensors.index.json": qwenIndex,
					"model-00001-of-00002.safetensors": qwenShard1(t),
				})
			},
			check:   wantIs(fs.ErrNotExist),
			wantErr: `model.safetensors.index.json lists shard "model-00002-of-00002.safetensors", which is not in the model directory: the download is incomplete`,
		},
		{
			name: "index shard outside the directory",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{
					"model.safetensors.index.json": []byte(`{"weight_map":{"a":"../../etc/passwd"}}`), "model.safetensors": llamaWeights(t),
				})
				return dir
			},
			check:   wantFormat("weight index", "model.safetensors.index.json", -1),
			wantErr: `shard "../../etc/passwd" is not a file name in the model directory`,
		},
		{
			name: "index without weight_map",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"model.safetensors.index.json": []byte(`{"weight_map":{"a":1}}`), "model.safetensors": llamaWeights(t)})
				return dir
			},
			check:   wantFormat("weight index", "model.safetensors.index.json", -1),
			wantErr: "not valid JSON with a weight_map object of strings",
		},
		{
			name: "bad config.json",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"config.json": []byte(`{"model_type": "llama",}`), "model.safetensors": llamaWeights(t)})
				return dir
			},
			check:   wantFormat("config.json", "config.json", 24),
			wantErr: `invalid config.json file "config.json" at byte 24: not valid JSON`,
		},
		{
			name: "split gguf part missing",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"m-00001-of-00003.gguf": ggufModel("llama", 1, 8), "m-00003-of-00003.gguf": ggufModel("llama", 1, 8)})
				return dir
			},
			check:   wantIs(fs.ErrNotExist),
			wantErr: `part "m-00002-of-00003.gguf" is missing`,
		},
		{
			name: "only a projector",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"mmproj-model-f16.gguf": makeGGUF([]ggufKV{{"general.architecture", "clip"}})})
				return dir
			},
			check:   wantAs[*NoModelError],
			wantErr: "no model found",
		},
		{
			name: "weight file is a broken symlink into the blob store",
			setup: func(t *testing.T) string {
				dir := hfSnapshot(t, map[string][]byte{"config.json": []byte(llama31)})
				if err := os.Symlink("../../blobs/0123", filepath.Join(dir, "model.safetensors")); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			check:   wantIs(fs.ErrNotExist),
			wantErr: `weight file "model.safetensors" in`,
		},
		{
			name: "corrupt mmproj",
			setup: func(t *testing.T) string {
				dir := t.TempDir()
				writeFiles(t, dir, map[string][]byte{"m.gguf": ggufModel("llama", 1, 8), "mmproj.gguf": []byte("GGUF\x01\x00\x00\x00")})
				return dir
			},
			check:   wantFormat("gguf", "mmproj.gguf", 4),
			wantErr: "unsupported GGUF version 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info, err := FromDir(tt.setup(t))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(Info{}, info); diff != "" {
				t.Errorf("Info on error is not empty (-want +got):\n%s", diff)
			}
			tt.check(t, err)
		})
	}
}

func wantAs[E error](t *testing.T, err error) {
	t.Helper()
	var e E
	if !errors.As(err, &e) {
		t.Errorf("error %v is not a %T", err, e)
	}
}

func wantIs(target error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("error %v is not %v", err, target)
		}
	}
}

// wantFormat checks for a *FormatError; offset -2 skips the offset check.
func wantFormat(format, file string, offset int64) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v is not a *FormatError", err)
		}
		if fe.Format != format || fe.File != file || (offset != -2 && fe.Offset != offset) {
			t.Errorf("FormatError{Format: %q, File: %q, Offset: %d}, want {%q, %q, %d}", fe.Format, fe.File, fe.Offset, format, file, offset)
		}
	}
}

// TestFromDirSymlinkLoop: a directory symlink to an ancestor must not make the walk loop.
func TestFromDirSymlinkLoop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{"sub/config.json": []byte(llama31)})
	if err := os.Symlink("..", filepath.Join(dir, "sub", "loop")); err != nil {
		t.Fatal(err)
	}
	info, err := FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Architecture != "LlamaForCausalLM" || info.Format != "unknown" {
		t.Errorf("got %+v", info)
	}
}
