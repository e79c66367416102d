package modelinfo

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// qwen25VLFlat is Qwen2.5-VL-7B-Instruct's config.json in the flat layout (transformers 4.4x), with
// the transformers version of OME's testdata (qwen2.5_vl_7b.json).
const qwen25VLFlat = `{
  "architectures": ["Qwen2_5_VLForConditionalGeneration"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645,
  "vision_start_token_id": 151652, "vision_end_token_id": 151653, "vision_token_id": 151654,
  "image_token_id": 151655, "video_token_id": 151656,
  "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 18944,
  "max_position_embeddings": 128000, "max_window_layers": 28, "model_type": "qwen2_5_vl",
  "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": true, "use_sliding_window": false,
  "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
    "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
    "spatial_patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2, "temporal_patch_size": 2},
  "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
  "vocab_size": 152064
}`

// qwen25VLNested is the same model as newer transformers save it: the language model's settings
// in text_config, "dtype" instead of "torch_dtype", and decoy top-level values that text_config
// must win over.
const qwen25VLNested = `{
  "architectures": ["Qwen2_5_VLForConditionalGeneration"],
  "model_type": "qwen2_5_vl",
  "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
  "max_position_embeddings": 32768,
  "dtype": "float32",
  "transformers_version": "4.41.2",
  "text_config": {
    "model_type": "qwen2_5_vl_text", "dtype": "BFloat16",
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000,
    "tie_word_embeddings": false, "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24]}
  },
  "vision_config": {"depth": 32, "hidden_size": 1280, "out_hidden_size": 3584, "model_type": "qwen2_5_vl"}
}`

const llama31 = `{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.42.3"
}`

const bgeLarge = `{
  "architectures": ["BertModel"], "model_type": "bert", "hidden_size": 1024, "num_hidden_layers": 24,
  "num_attention_heads": 16, "intermediate_size": 4096, "max_position_embeddings": 512, "vocab_size": 30522,
  "torch_dtype": "float32", "transformers_version": "4.30.0"
}`

var (
	no  = false
	yes = true
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	qwenVL := Config{
		Architectures: []string{"Qwen2_5_VLForConditionalGeneration"}, Architecture: "Qwen2_5_VLForConditionalGeneration",
		ModelType: "qwen2_5_vl", TransformersVersion: "4.41.2", Dtype: "bfloat16", ContextLength: 128000, Vision: true,
		HiddenSize: 3584, NumHiddenLayers: 28, NumAttentionHeads: 28, NumKeyValueHeads: 4, IntermediateSize: 18944,
		VocabSize: 152064, TieWordEmbeddings: &no,
	}
	tests := []struct {
		name     string
		json     string
		want     Config
		wantCaps []string
	}{
		{"qwen2.5-vl flat", qwen25VLFlat, qwenVL, []string{"IMAGE_TEXT_TO_TEXT"}},
		{"qwen2.5-vl text_config nested", qwen25VLNested, qwenVL, []string{"IMAGE_TEXT_TO_TEXT"}},
		{
			"llama 3.1", llama31,
			Config{
				Architectures: []string{"LlamaForCausalLM"}, Architecture: "LlamaForCausalLM", ModelType: "llama",
				TransformersVersion: "4.42.3", Dtype: "bfloat16", ContextLength: 131072,
				HiddenSize: 4096, NumHiddenLayers: 32, NumAttentionHeads: 32, NumKeyValueHeads: 8, IntermediateSize: 14336,
				VocabSize: 128256, TieWordEmbeddings: &no,
			},
			[]string{"TEXT_TO_TEXT"},
		},
		{
			"bert embedding", bgeLarge,
			Config{
				Architectures: []string{"BertModel"}, Architecture: "BertModel", ModelType: "bert", TransformersVersion: "4.30.0",
				Dtype: "float32", ContextLength: 512, Embedding: true,
				HiddenSize: 1024, NumHiddenLayers: 24, NumAttentionHeads: 16, IntermediateSize: 4096, VocabSize: 30522,
			},
			[]string{"EMBEDDING"},
		},
		{
			"internvl llm_config", `{"architectures":["InternVLChatModel"],"model_type":"internvl_chat","torch_dtype":"bfloat16",
			  "llm_config":{"architectures":["Qwen2ForCausalLM"],"hidden_size":896,"num_hidden_layers":24,"max_position_embeddings":32768,"tie_word_embeddings":true},
			  "vision_config":{"hidden_size":1024}}`,
			Config{
				Architectures: []string{"InternVLChatModel"}, Architecture: "InternVLChatModel", ModelType: "internvl_chat",
				Dtype: "bfloat16", ContextLength: 32768, Vision: true, HiddenSize: 896, NumHiddenLayers: 24, TieWordEmbeddings: &yes,
			},
			[]string{"IMAGE_TEXT_TO_TEXT"},
		},
		{
			"language_config, architectures only nested", `{"model_type":"deepseek_vl_v2","language_config":{"architectures":["DeepseekV2ForCausalLM"],"max_position_embeddings":4096,"torch_dtype":"bfloat16"}}`,
			Config{
				Architectures: []string{"DeepseekV2ForCausalLM"}, Architecture: "DeepseekV2ForCausalLM", ModelType: "deepseek_vl_v2",
				Dtype: "bfloat16", ContextLength: 4096, Vision: true,
			},
			[]string{"IMAGE_TEXT_TO_TEXT"},
		},
		{
			"gemma3 by model_type", `{"architectures":["Gemma3ForConditionalGeneration"],"model_type":"gemma3","text_config":{"model_type":"gemma3_text"}}`,
			Config{Architectures: []string{"Gemma3ForConditionalGeneration"}, Architecture: "Gemma3ForConditionalGeneration", ModelType: "gemma3", Vision: true},
			[]string{"IMAGE_TEXT_TO_TEXT"},
		},
		{
			"gemma3 text-only", `{"architectures":["Gemma3ForCausalLM"],"model_type":"gemma3_text","max_position_embeddings":32768}`,
			Config{Architectures: []string{"Gemma3ForCausalLM"}, Architecture: "Gemma3ForCausalLM", ModelType: "gemma3_text", ContextLength: 32768},
			[]string{"TEXT_TO_TEXT"},
		},
		{
			"gpt2 aliases", `{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_positions":1024,"n_embd":768,"n_layer":12,"n_head":12,"vocab_size":50257}`,
			Config{
				Architectures: []string{"GPT2LMHeadModel"}, Architecture: "GPT2LMHeadModel", ModelType: "gpt2", ContextLength: 1024,
				HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12, VocabSize: 50257,
			},
			[]string{"TEXT_TO_TEXT"},
		},
		{
			"awq quantised mixtral, seq_length fallback", `{"architectures":["MixtralForCausalLM"],"model_type":"mixtral","seq_length":4096,
			  "num_local_experts":8,"quantization_config":{"quant_method":"AWQ","bits":4}}`,
			Config{
				Architectures: []string{"MixtralForCausalLM"}, Architecture: "MixtralForCausalLM", ModelType: "mixtral",
				ContextLength: 4096, Quantization: "awq", NumExperts: 8,
			},
			[]string{"TEXT_TO_TEXT"},
		},
		{
			"fp8 deepseek moe", `{"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","n_routed_experts":256,"n_shared_experts":1,
			  "moe_intermediate_size":2048,"quantization_config":{"quant_method":"fp8","fmt":"e4m3"}}`,
			Config{
				Architectures: []string{"DeepseekV3ForCausalLM"}, Architecture: "DeepseekV3ForCausalLM", ModelType: "deepseek_v3",
				Quantization: "fp8", NumExperts: 256, NumSharedExperts: 1, MoEIntermediateSize: 2048,
			},
			[]string{"TEXT_TO_TEXT"},
		},
		{
			"python NaN and Infinity", `{"model_type":"nemotron","max_position_embeddings":4096,"x":NaN,"y":[-Infinity, Infinity],"z":"NaN Infinity"}`,
			Config{ModelType: "nemotron", ContextLength: 4096},
			[]string{"TEXT_TO_TEXT"},
		},
		{
			"wrong types read as absent", `{"architectures":"LlamaForCausalLM","model_type":7,"hidden_size":"4096","num_hidden_layers":32.0,
			  "num_attention_heads":-1,"vocab_size":1.5,"max_position_embeddings":1e20,"tie_word_embeddings":"yes","quantization_config":[],"text_config":null}`,
			Config{NumHiddenLayers: 32},
			[]string{"TEXT_TO_TEXT"},
		},
		{"empty object", `{}`, Config{}, []string{"TEXT_TO_TEXT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConfig([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseConfig (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCaps, got.Capabilities()); diff != "" {
				t.Errorf("Capabilities (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigEmbeddingHeuristic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		arch, modelType string
		want            bool
	}{
		{"BertModel", "bert", true},
		{"XLMRobertaModel", "xlm-roberta", true},
		{"NomicBertModel", "nomic_bert", true},
		{"BertForMaskedLM", "bert", true}, // OME: model_type contains "bert"
		{"ModernBertModel", "modernbert", true},
		{"MistralModel", "mistral", true}, // e5-mistral (OME's special case)
		{"Qwen2Model", "qwen2", true},     // headless base model
		{"T5EncoderModel", "t5", true},
		{"NewModel", "new", true}, // gte
		{"LlamaBidirectionalEmbeddingModel", "llama", true},
		{"SentenceTransformerModel", "", true},
		{"MistralForCausalLM", "mistral", false},                      // OME calls every mistral model an embedding model
		{"XLMRobertaForSequenceClassification", "xlm-roberta", false}, // rerankers
		{"BertForTokenClassification", "bert", false},
		{"Qwen3ForCausalLM", "qwen3", false},
		{"ChatGLMModel", "chatglm", false},
		{"QWenLMHeadModel", "qwen", false},
		{"GPT2LMHeadModel", "gpt2", false},
		{"InternLM2ChatModel", "internlm2", false},
		{"", "", false},
	}
	for _, tt := range tests {
		c, err := ParseConfig([]byte(`{"architectures":["` + tt.arch + `"],"model_type":"` + tt.modelType + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		if c.Embedding != tt.want {
			t.Errorf("%s/%s: Embedding = %v, want %v", tt.arch, tt.modelType, c.Embedding, tt.want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		json, wantErr string
	}{
		{``, "not valid JSON"},
		{`{`, "not valid JSON"},
		{`{"a":}`, "not valid JSON"},
		{`[1]`, "not a JSON object"},
		{`"config"`, "not a JSON object"},
		{`null`, "not a JSON object: null"},
		{`{"a":1} {}`, "not valid JSON"},
		{strings.Repeat("[", 20000), "not valid JSON"}, // nesting beyond the decoder's limit
	}
	for _, tt := range tests {
		_, err := ParseConfig([]byte(tt.json))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Format != "config.json" || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseConfig(%.20q) error = %v, want a config.json FormatError containing %q", tt.json, err, tt.wantErr)
		}
	}
}

func TestEstimateParameters(t *testing.T) {
	t.Parallel()
	parse := func(s string) Config {
		c, err := ParseConfig([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		config Config
		want   int64
		actual int64 // the real parameter count, to check the estimate is close; 0 to skip
	}{
		{
			// 32·(4096·4096·2 + 2·4096·8·128 + 3·4096·14336 + 2·4096) + 4096 + 2·128256·4096
			name: "llama 3.1 8B", config: parse(llama31),
			want: 32*(2*4096*4096+2*4096*8*128+3*4096*14336+2*4096) + 4096 + 2*128256*4096, actual: 8_030_261_248,
		},
		{
			// Language model only: the real 8.29B includes the 0.67B vision tower.
			name: "qwen2.5-vl 7B (language model)", config: parse(qwen25VLNested),
			want: 28*(2*3584*3584+2*3584*4*128+3*3584*18944+2*3584) + 3584 + 2*152064*3584, actual: 7_615_616_512,
		},
		{
			// 24·(4·1024² + 2·1024·4096 + 2·1024) + 1024 + 30522·1024 + 512·1024; no LM head (BertModel)
			name: "bge-large (BERT encoder)", config: parse(bgeLarge),
			want: 24*(4*1024*1024+2*1024*4096+2*1024) + 1024 + 30522*1024 + 512*1024, actual: 335_141_888,
		},
		{
			name:   "e5-mistral base model has no LM head",
			config: Config{Architecture: "MistralModel", HiddenSize: 8, NumHiddenLayers: 1, NumAttentionHeads: 2, IntermediateSize: 16, VocabSize: 10},
			want:   (2*8*8 + 2*8*2*4) + 3*8*16 + 2*8 + 8 + 10*8,
		},
		{
			name:   "tied embeddings, no attention heads",
			config: Config{HiddenSize: 10, NumHiddenLayers: 2, IntermediateSize: 20, VocabSize: 100, TieWordEmbeddings: &yes},
			want:   2*(4*10*10+3*10*20+2*10) + 10 + 100*10,
		},
		{
			name:   "moe with shared experts",
			config: Config{HiddenSize: 8, NumHiddenLayers: 1, NumAttentionHeads: 2, NumExperts: 4, MoEIntermediateSize: 16, NumSharedExperts: 1, VocabSize: 10},
			want:   (2*8*8 + 2*8*2*4) + 4*3*8*16 + 8*4 + 3*8*16 + 2*8 + 8 + 2*10*8,
		},
		{
			name:   "moe with a shared expert size",
			config: Config{HiddenSize: 8, NumHiddenLayers: 1, NumAttentionHeads: 2, NumExperts: 4, IntermediateSize: 16, SharedExpertIntermediateSize: 32},
			want:   (2*8*8 + 2*8*2*4) + 4*3*8*16 + 8*4 + 3*8*32 + 2*8 + 8,
		},
		{name: "no hidden size", config: Config{NumHiddenLayers: 32}, want: 0},
		{name: "no layers", config: Config{HiddenSize: 4096}, want: 0},
		{name: "overflow", config: Config{HiddenSize: math.MaxInt32, NumHiddenLayers: math.MaxInt32, IntermediateSize: math.MaxInt32, NumExperts: math.MaxInt32}, want: 0},
	}
	for _, tt := range tests {
		got := EstimateParameters(tt.config)
		if got != tt.want {
			t.Errorf("%s: EstimateParameters = %d, want %d", tt.name, got, tt.want)
		}
		if tt.actual != 0 && math.Abs(float64(got-tt.actual))/float64(tt.actual) > 0.005 {
			t.Errorf("%s: estimate %d is more than 0.5%% from the real %d", tt.name, got, tt.actual)
		}
	}
}

func TestFormatParameterSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want string
	}{
		{-1, ""}, {0, ""}, {1, "1"}, {999, "999"},
		{1000, "1K"}, {1500, "1.5K"}, {1234, "1.23K"}, {1235, "1.24K"},
		{500_000_000, "500M"}, {1_500_000, "1.5M"}, {33_400_000, "33.4M"}, {109_482_240, "109.48M"},
		{999_994_999, "999.99M"}, {999_995_000, "1B"}, {999_999_999, "1B"},
		{7_000_000_000, "7B"}, {7_004_000_000, "7B"}, {7_100_000_000, "7.1B"}, {7_615_616_512, "7.62B"},
		{8_030_261_248, "8.03B"}, {8_292_166_656, "8.29B"}, {8_310_000_000, "8.31B"},
		{685_000_000_000, "685B"}, {1_000_000_000_000, "1T"}, {1_500_000_000_000, "1.5T"},
		{math.MaxInt64, "9223372.04T"},
	}
	for _, tt := range tests {
		if got := FormatParameterSize(tt.n); got != tt.want {
			t.Errorf("FormatParameterSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestSanitizeNonFinite(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"a":NaN}`:                      `{"a":null}`,
		`[Infinity,-Infinity,1]`:         `[null,null,1]`,
		`{"NaN":"-Infinity \"NaN\" \\"}`: `{"NaN":"-Infinity \"NaN\" \\"}`,
		`{"a":"x\\"}`:                    `{"a":"x\\"}`,
		`{"a":"\\",b:NaN}`:               `{"a":"\\",b:null}`,
		`{"a":-1}`:                       `{"a":-1}`,
		`NaNNaN`:                         `nullnull`,
	} {
		if got := string(sanitizeNonFinite([]byte(in))); got != want {
			t.Errorf("sanitizeNonFinite(%s) = %s, want %s", in, got, want)
		}
	}
}
