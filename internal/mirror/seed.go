package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"citadel.dev/citadel/internal/modelinfo"
)

// Stand-in models: Seed writes, into a mirror directory, repositories and Ollama models whose
// files are a few kilobytes yet are sized by modelinfo, the planner and the simulator as the real
// models (see modelinfo.StandInParameterCountKey). Their config.json, GGUF metadata, manifests,
// templates and parameters are the real models' shape; only the tensors are missing.

// SeedExamples lists, per example of the repository (examples/NAME), the models it needs.
var SeedExamples = map[string][]string{
	"seed-001": {"hf://XiaomiMiMo/MiMo-VL-7B-RL", "ollama://deepseek-r1:32b", "ollama://deepcoder:14b", "ollama://qwen2.5:7b"},
}

// SeedResult is one stand-in written by Seed.
type SeedResult struct {
	URI       string   // the storage URI it stands in for
	StandsFor string   // what planners see, e.g. "8.29B parameters, bfloat16, 36 layers, context 32768"
	Files     []string // files written, slash-separated, relative to the mirror directory
	Bytes     int64    // their total size
}

// SeedURIs lists the storage URIs Seed knows, sorted.
func SeedURIs() []string {
	var out []string
	for _, s := range standIns {
		out = append(out, s.uri)
	}
	slices.Sort(out)
	return out
}

// Seed writes stand-ins for uris (each one of SeedURIs) into the mirror directory dir, creating
// it if needed. Writing is idempotent: the files' bytes depend only on the model.
func Seed(dir string, uris []string) ([]SeedResult, error) {
	var todo []standIn
	for _, u := range uris {
		i := slices.IndexFunc(standIns, func(s standIn) bool { return s.uri == u })
		if i < 0 {
			return nil, fmt.Errorf("no stand-in for %q: known models are %s", u, strings.Join(SeedURIs(), ", "))
		}
		todo = append(todo, standIns[i])
	}
	var out []SeedResult
	for _, s := range todo {
		w := &seedWriter{dir: dir}
		about := ""
		if s.hf != nil {
			about = w.hfRepo(*s.hf)
		} else {
			about = w.ollamaModel(*s.ollama)
		}
		if w.err != nil {
			return out, fmt.Errorf("writing the stand-in of %s into %s: %w", s.uri, dir, w.err)
		}
		out = append(out, SeedResult{URI: s.uri, StandsFor: about, Files: w.files, Bytes: w.bytes})
	}
	return out, nil
}

type standIn struct {
	uri    string
	hf     *hfStandIn
	ollama *ollamaStandIn
}

// hfStandIn is a Hugging Face repository: its small files as they are, the weights as one
// stand-in safetensors file.
type hfStandIn struct {
	repo   string            // org/name
	files  map[string]string // name → content (config.json and friends)
	params int64
	dtype  string // safetensors dtype of the real weights
}

// ollamaStandIn is a model of the Ollama registry.
type ollamaStandIn struct {
	namespace, model, tag string
	gguf                  modelinfo.StandInGGUF
	template, params      string
	license               string
}

type seedWriter struct {
	dir   string
	files []string
	bytes int64
	err   error
}

func (w *seedWriter) write(rel string, data []byte) {
	if w.err != nil {
		return
	}
	p := filepath.Join(w.dir, filepath.FromSlash(rel))
	if w.err = os.MkdirAll(filepath.Dir(p), 0o755); w.err != nil {
		return
	}
	if w.err = os.WriteFile(p, data, 0o644); w.err != nil {
		return
	}
	w.files = append(w.files, rel)
	w.bytes += int64(len(data))
}

func (w *seedWriter) hfRepo(s hfStandIn) string {
	base := path.Join("hf", s.repo)
	for _, name := range slices.Sorted(maps.Keys(s.files)) {
		w.write(path.Join(base, name), []byte(s.files[name]))
	}
	var st bytes.Buffer
	if err := modelinfo.WriteStandInSafetensors(&st, modelinfo.StandInSafetensors{ParameterCount: s.params, Dtype: s.dtype}); err != nil {
		w.err = err
		return ""
	}
	w.write(path.Join(base, "model.safetensors"), st.Bytes())
	w.write(path.Join(base, "README.md"), []byte(fmt.Sprintf("# %s (stand-in)\n\nWritten by `citadel mirror seed`: the real repository's configuration files and one\nstand-in safetensors file that declares %d %s parameters (%s in __metadata__).\nIt is sized and simulated as the real model; no engine can load it.\n",
		s.repo, s.params, s.dtype, modelinfo.StandInParameterCountKey)))
	var cfg modelinfo.Config
	if c, err := modelinfo.ParseConfig([]byte(s.files["config.json"])); err == nil {
		cfg = c
	}
	return fmt.Sprintf("%s parameters, %s, %d layers, context %d", modelinfo.FormatParameterSize(s.params), cfg.Dtype, cfg.NumHiddenLayers, cfg.ContextLength)
}

// Media types of an Ollama manifest.
const (
	ollamaConfigType   = "application/vnd.docker.container.image.v1+json"
	ollamaModelType    = "application/vnd.ollama.image.model"
	ollamaTemplateType = "application/vnd.ollama.image.template"
	ollamaParamsType   = "application/vnd.ollama.image.params"
	ollamaLicenseType  = "application/vnd.ollama.image.license"
)

type manifestLayer struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// blob writes data as ollama/blobs/sha256-<hex> and returns its layer.
func (w *seedWriter) blob(mediaType string, data []byte) manifestLayer {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	w.write("ollama/blobs/sha256-"+h, data)
	return manifestLayer{MediaType: mediaType, Digest: "sha256:" + h, Size: int64(len(data))}
}

func (w *seedWriter) ollamaModel(s ollamaStandIn) string {
	var gg bytes.Buffer
	if err := modelinfo.WriteStandInGGUF(&gg, s.gguf); err != nil {
		w.err = err
		return ""
	}
	model := w.blob(ollamaModelType, gg.Bytes())
	layers := []manifestLayer{model,
		w.blob(ollamaTemplateType, []byte(s.template)),
		w.blob(ollamaLicenseType, []byte(s.license)),
		w.blob(ollamaParamsType, []byte(s.params))}
	size := modelinfo.OllamaParameterSize(s.gguf.ParameterCount)
	ftype := modelinfo.FileTypeName(s.gguf.FileType)
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest
	}
	// Ollama's ConfigV2 (types/model/config.go): /api/tags reads its details from here.
	cfg, _ := json.Marshal(map[string]any{
		"model_format": "gguf", "model_family": s.gguf.Architecture, "model_families": []string{s.gguf.Architecture},
		"model_type": size, "file_type": ftype, "architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	config := w.blob(ollamaConfigType, cfg)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifestMediaType, "config": config, "layers": layers})
	w.write(path.Join(ollamaManifests, s.namespace, s.model, s.tag), man)
	g := s.gguf
	return fmt.Sprintf("%s parameters, %s, %d layers, context %d", size, ftype, g.BlockCount, g.ContextLength)
}

// The models. Shapes are the published ones: MiMo-VL-7B-RL is a Qwen2.5-VL vision tower on the
// MiMo-7B language model (36 layers, hidden 4096, 32 heads, 8 KV heads, intermediate 11008;
// MiMo-VL technical report, arXiv:2506.03569), 8.29 B parameters in bfloat16; the Ollama models
// are the Q4_K_M GGUFs of the registry's library (qwen2 architecture).
var standIns = []standIn{
	{uri: "hf://XiaomiMiMo/MiMo-VL-7B-RL", hf: &hfStandIn{repo: "XiaomiMiMo/MiMo-VL-7B-RL", params: 8_292_166_656, dtype: "BF16",
		files: map[string]string{
			"config.json":              mimoConfig,
			"generation_config.json":   `{"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "temperature": 0.3, "top_k": 1, "top_p": 0.95, "transformers_version": "4.51.3"}` + "\n",
			"preprocessor_config.json": `{"do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "Qwen2VLImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711], "max_pixels": 12845056, "merge_size": 2, "min_pixels": 3136, "patch_size": 14, "processor_class": "Qwen2_5_VLProcessor", "resample": 3, "rescale_factor": 0.00392156862745098, "temporal_patch_size": 2}` + "\n",
			"tokenizer_config.json":    `{"add_bos_token": false, "add_prefix_space": false, "bos_token": null, "chat_template": "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", "clean_up_tokenization_spaces": false, "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>", "processor_class": "Qwen2_5_VLProcessor", "split_special_tokens": false, "tokenizer_class": "Qwen2Tokenizer", "unk_token": null}` + "\n",
		}}},
	{uri: "ollama://deepseek-r1:32b", ollama: &ollamaStandIn{namespace: "library", model: "deepseek-r1", tag: "32b",
		gguf: modelinfo.StandInGGUF{Architecture: "qwen2", Name: "DeepSeek R1 Distill Qwen 32B", SizeLabel: "32B", FileType: 15,
			ParameterCount: 32_763_876_352, ContextLength: 131072, BlockCount: 64, EmbeddingLength: 5120, FeedForwardLength: 27648,
			HeadCount: 40, HeadCountKV: 8, VocabSize: 152064, RopeFreqBase: 1e6},
		template: deepseekTemplate, license: mitLicense("2023 DeepSeek"),
		params: `{"stop":["<｜begin▁of▁sentence｜>","<｜end▁of▁sentence｜>","<｜User｜>","<｜Assistant｜>"]}`}},
	{uri: "ollama://deepcoder:14b", ollama: &ollamaStandIn{namespace: "library", model: "deepcoder", tag: "14b",
		gguf: modelinfo.StandInGGUF{Architecture: "qwen2", Name: "DeepCoder 14B Preview", SizeLabel: "14B", FileType: 15,
			ParameterCount: 14_770_033_664, ContextLength: 131072, BlockCount: 48, EmbeddingLength: 5120, FeedForwardLength: 13824,
			HeadCount: 40, HeadCountKV: 8, VocabSize: 152064, RopeFreqBase: 1e6},
		template: deepseekTemplate, license: mitLicense("2025 Agentica"),
		params: `{"stop":["<｜begin▁of▁sentence｜>","<｜end▁of▁sentence｜>","<｜User｜>","<｜Assistant｜>"],"temperature":0.6,"top_p":0.95}`}},
	{uri: "ollama://qwen2.5:7b", ollama: &ollamaStandIn{namespace: "library", model: "qwen2.5", tag: "7b",
		gguf: modelinfo.StandInGGUF{Architecture: "qwen2", Name: "Qwen2.5 7B Instruct", SizeLabel: "7B", FileType: 15,
			ParameterCount: 7_615_616_512, ContextLength: 32768, BlockCount: 28, EmbeddingLength: 3584, FeedForwardLength: 18944,
			HeadCount: 28, HeadCountKV: 4, VocabSize: 152064, RopeFreqBase: 1e6},
		template: chatMLTemplate, license: "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n",
		params: `{"stop":["<|im_start|>","<|im_end|>"]}`}},
}

const mimoConfig = `{
  "architectures": ["Qwen2_5_VLForConditionalGeneration"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "image_token_id": 151655,
  "initializer_range": 0.02,
  "intermediate_size": 11008,
  "max_position_embeddings": 32768,
  "max_window_layers": 36,
  "model_type": "qwen2_5_vl",
  "num_attention_heads": 32,
  "num_hidden_layers": 36,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
  "rope_theta": 640000,
  "sliding_window": 32768,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.3",
  "use_cache": true,
  "use_sliding_window": false,
  "video_token_id": 151656,
  "vision_config": {"depth": 32, "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu", "hidden_size": 1280,
    "in_channels": 3, "intermediate_size": 3420, "model_type": "qwen2_5_vl", "num_heads": 16, "out_hidden_size": 4096,
    "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2, "tokens_per_second": 2,
    "window_size": 112},
  "vision_end_token_id": 151653,
  "vision_start_token_id": 151652,
  "vision_token_id": 151654,
  "vocab_size": 151680
}
`

const deepseekTemplate = `{{- if .System }}{{ .System }}{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1}}
{{- if eq .Role "user" }}<｜User｜>{{ .Content }}
{{- else if eq .Role "assistant" }}<｜Assistant｜>{{ .Content }}{{- if not $last }}<｜end▁of▁sentence｜>{{- end }}
{{- end }}
{{- if and $last (ne .Role "assistant") }}<｜Assistant｜>{{- end }}
{{- end }}`

const chatMLTemplate = `{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`

func mitLicense(holder string) string {
	return "MIT License\n\nCopyright (c) " + holder + "\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n" +
		"of this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction.\n"
}
