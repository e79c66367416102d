package modelinfo

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// Capability names, as OME spells them (BaseModelSpec.modelCapabilities).
const (
	CapabilityTextToText      = "TEXT_TO_TEXT"
	CapabilityImageTextToText = "IMAGE_TEXT_TO_TEXT"
	CapabilityEmbedding       = "EMBEDDING"
)

// Config is what Citadel reads from a Hugging Face config.json. Integer fields are 0 when absent
// or not a non-negative integer. Hyper-parameters are read from the nested language-model config
// first (text_config, else llm_config, else language_config — the first that is an object), then
// from the top level, so flat and nested layouts give the same result.
type Config struct {
	Architectures       []string // top-level architectures, else the nested ones
	Architecture        string   // Architectures[0]
	ModelType           string   // top-level model_type (e.g. "qwen2_5_vl"), else the nested one
	TransformersVersion string
	Dtype               string // torch_dtype, else dtype (nested first), lower-cased: "bfloat16"
	Quantization        string // quantization_config.quant_method, lower-cased: "awq", "gptq", "fp8", …
	ContextLength       int    // max_position_embeddings, else max_sequence_length, seq_length, n_positions, max_seq_len
	Vision              bool
	Embedding           bool

	// Raw hyper-parameters for size and memory estimates (GPT-2 style n_embd, n_layer and n_head are
	// accepted as aliases).
	HiddenSize        int
	NumHiddenLayers   int
	NumAttentionHeads int
	NumKeyValueHeads  int // 0 when absent: the same as NumAttentionHeads
	IntermediateSize  int
	VocabSize         int
	HeadDim           int   // 0 when absent: HiddenSize / NumAttentionHeads
	TieWordEmbeddings *bool // nil when absent (the default differs between model classes)

	// Mixture-of-experts fields.
	NumExperts                   int // num_local_experts, num_experts or n_routed_experts
	MoEIntermediateSize          int // moe_intermediate_size
	NumSharedExperts             int // n_shared_experts
	SharedExpertIntermediateSize int // shared_expert_intermediate_size
}

// Capabilities returns the OME capability of the model: IMAGE_TEXT_TO_TEXT for vision models, else
// EMBEDDING for embedding models, else TEXT_TO_TEXT.
func (c Config) Capabilities() []string {
	return capabilities(c.Vision, c.Embedding)
}

func capabilities(vision, embedding bool) []string {
	switch {
	case vision:
		return []string{CapabilityImageTextToText}
	case embedding:
		return []string{CapabilityEmbedding}
	}
	return []string{CapabilityTextToText}
}

// visionModelTypes are model_type values of image+text models (transformers auto-config names).
var visionModelTypes = map[string]bool{
	"qwen2_vl": true, "qwen2_5_vl": true, "qwen3_vl": true, "qwen3_vl_moe": true,
	"llava": true, "llava_next": true, "llava_next_video": true, "llava_onevision": true, "vipllava": true,
	"mllama": true, "llama4": true, "gemma3": true, "gemma3n": true, "paligemma": true,
	"idefics": true, "idefics2": true, "idefics3": true, "smolvlm": true,
	"internvl": true, "internvl_chat": true, "minicpmv": true, "phi3_v": true, "phi4mm": true,
	"pixtral": true, "mistral3": true, "chameleon": true, "aya_vision": true, "kimi_vl": true,
	"deepseek_vl": true, "deepseek_vl_v2": true, "glm4v": true, "glm4v_moe": true, "molmo": true,
	"cohere2_vision": true, "ovis": true,
}

// visionKeys are top-level config keys that only vision-language models carry.
var visionKeys = []string{"vision_config", "image_token_id", "image_token_index", "vision_start_token_id", "mm_vision_tower"}

// nestedConfigKeys are probed in order for the language model's own config, as OME's generic
// parser does.
var nestedConfigKeys = []string{"text_config", "llm_config", "language_config"}

// ParseConfig parses a config.json. Unknown fields are ignored and fields of an unexpected type
// read as absent: config.json is written by many tools and only a top level that is not a JSON
// object is an error. Python's non-standard NaN, Infinity and -Infinity literals (which some
// configs contain) read as null.
func ParseConfig(data []byte) (Config, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(sanitizeNonFinite(data), &top); err != nil {
		fe := &FormatError{Format: "config.json", Offset: -1, Msg: "not a JSON object: " + err.Error()}
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			fe.Offset = syn.Offset
			fe.Msg = "not valid JSON: " + syn.Error()
		}
		return Config{}, fe
	}
	if top == nil { // the document was "null"
		return Config{}, &FormatError{Format: "config.json", Offset: 0, Msg: "not a JSON object: null"}
	}
	var nested map[string]json.RawMessage
	for _, k := range nestedConfigKeys {
		if m := object(top[k]); m != nil {
			nested = m
			break
		}
	}
	// get returns the nested value of the first key present, else the top-level one.
	get := func(keys ...string) json.RawMessage {
		for _, m := range []map[string]json.RawMessage{nested, top} {
			for _, k := range keys {
				if v, ok := m[k]; ok && !isNull(v) {
					return v
				}
			}
		}
		return nil
	}
	getInt := func(keys ...string) int {
		for _, m := range []map[string]json.RawMessage{nested, top} {
			for _, k := range keys {
				if n, ok := rawInt(m[k]); ok {
					return n
				}
			}
		}
		return 0
	}

	var c Config
	c.Architectures = stringList(top["architectures"])
	if c.Architectures == nil {
		c.Architectures = stringList(nested["architectures"])
	}
	if len(c.Architectures) > 0 {
		c.Architecture = c.Architectures[0]
	}
	c.ModelType = str(top["model_type"])
	if c.ModelType == "" {
		c.ModelType = str(nested["model_type"])
	}
	c.TransformersVersion = str(top["transformers_version"])
	if c.TransformersVersion == "" {
		c.TransformersVersion = str(nested["transformers_version"])
	}
	for _, m := range []map[string]json.RawMessage{nested, top} {
		if c.Dtype == "" {
			c.Dtype = strings.ToLower(str(m["torch_dtype"]))
		}
		if c.Dtype == "" {
			c.Dtype = strings.ToLower(str(m["dtype"]))
		}
	}
	for _, m := range []map[string]json.RawMessage{top, nested} {
		if c.Quantization == "" {
			c.Quantization = strings.ToLower(str(object(m["quantization_config"])["quant_method"]))
		}
	}

	c.ContextLength = getInt("max_position_embeddings")
	if c.ContextLength == 0 {
		c.ContextLength = getInt("max_sequence_length", "seq_length", "n_positions", "max_seq_len")
	}
	c.HiddenSize = getInt("hidden_size", "n_embd")
	c.NumHiddenLayers = getInt("num_hidden_layers", "n_layer")
	c.NumAttentionHeads = getInt("num_attention_heads", "n_head")
	c.NumKeyValueHeads = getInt("num_key_value_heads")
	c.IntermediateSize = getInt("intermediate_size")
	c.VocabSize = getInt("vocab_size")
	c.HeadDim = getInt("head_dim")
	if v := get("tie_word_embeddings"); v != nil {
		if b, ok := rawBool(v); ok {
			c.TieWordEmbeddings = &b
		}
	}
	c.NumExperts = getInt("num_local_experts", "num_experts", "n_routed_experts")
	c.MoEIntermediateSize = getInt("moe_intermediate_size")
	c.NumSharedExperts = getInt("n_shared_experts")
	c.SharedExpertIntermediateSize = getInt("shared_expert_intermediate_size")

	c.Vision = visionModelTypes[strings.ToLower(c.ModelType)]
	for _, k := range visionKeys {
		if v, ok := top[k]; ok && !isNull(v) {
			c.Vision = true
		}
	}
	c.Embedding = !c.Vision && isEmbedding(c.Architecture, c.ModelType)
	return c, nil
}

// taskHeads are architecture suffixes of models that are not embedding models even when their
// family is (BERT-style classifiers and rerankers), or that generate text.
var taskHeads = []string{
	"ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice",
	"ForCausalLM", "ForConditionalGeneration", "LMHeadModel",
}

// isEmbedding is OME's embedding heuristic, made more conservative. A model is an embedding model
// when its architecture names it ("…Embedding…", "…Sentence…"); or its model_type is a BERT-family
// encoder (contains "bert": bert, roberta, xlm-roberta, nomic_bert, modernbert, …); or its
// architecture is a bare base model without a task head ("MistralModel" as in e5-mistral,
// "BertModel", "XLMRobertaModel", "T5EncoderModel", "NewModel"). Unlike OME, architectures with a
// classification, QA, causal-LM or generation head are never embedding models (OME calls every
// xlm-roberta reranker and every mistral model an embedding model), and ChatGLM ("ChatGLMModel")
// and chat wrappers ("…ChatModel") are excluded. Vision models are handled before this.
func isEmbedding(arch, modelType string) bool {
	a := strings.ToLower(arch)
	if strings.Contains(a, "embedding") || strings.Contains(a, "sentence") {
		return true
	}
	for _, h := range taskHeads {
		if strings.HasSuffix(arch, h) {
			return false
		}
	}
	mt := strings.ToLower(modelType)
	if strings.Contains(mt, "bert") {
		return true
	}
	return strings.HasSuffix(arch, "Model") && !strings.HasSuffix(arch, "ChatModel") &&
		mt != "chatglm" && arch != "Model"
}

// EstimateParameters estimates the parameter count of a transformer from its config, for when no
// weights can be read. It returns 0 when the config lacks hidden_size or num_hidden_layers, or the
// arithmetic overflows. With h = hidden_size, L = layers, V = vocab_size, a = num_attention_heads,
// k = num_key_value_heads (default a), d = head_dim (default h/a) and I = intermediate_size:
//
//	embeddings   V·h, plus V·h for an LM head unless tie_word_embeddings is true or the architecture
//	             is a headless base model ("…Model", but not "…LMHeadModel" or "…ChatModel")
//	attention    h·a·d (q) + 2·h·k·d (k, v) + a·d·h (o) per layer; 4·h² when a is unknown
//	MLP          3·h·I per layer (gate, up, down);
//	             MoE: E·3·h·I_moe + h·E (router) + shared experts (3·h·I_shared, or n_shared·3·h·I_moe)
//	norms        2·h per layer, plus h final
//
// BERT-family encoders (model_type containing "bert") have a two-matrix MLP (2·h·I) and learned
// position embeddings (max_position_embeddings·h). Biases, vision towers and per-layer variations
// (e.g. DeepSeek's first dense layers) are ignored: Llama-3.1-8B gives 8.03B (exact: 8,030,261,248),
// BERT-large 333.8M (exact 335.1M), and Qwen2.5-VL-7B only its 7.6B language model.
func EstimateParameters(c Config) int64 {
	h, layers := int64(c.HiddenSize), int64(c.NumHiddenLayers)
	if h <= 0 || layers <= 0 {
		return 0
	}
	var e est
	encoder := strings.Contains(strings.ToLower(c.ModelType), "bert")
	heads, kv, hd := int64(c.NumAttentionHeads), int64(c.NumKeyValueHeads), int64(c.HeadDim)
	var attn int64
	if heads > 0 {
		if kv <= 0 {
			kv = heads
		}
		if hd <= 0 {
			hd = h / heads
		}
		q := e.mul(h, e.mul(heads, hd))
		attn = e.add(e.add(q, q), e.mul(2, e.mul(h, e.mul(kv, hd))))
	} else {
		attn = e.mul(4, e.mul(h, h))
	}
	var mlp int64
	if experts := int64(c.NumExperts); experts > 0 {
		ei := int64(c.MoEIntermediateSize)
		if ei <= 0 {
			ei = int64(c.IntermediateSize)
		}
		expert := e.mul(3, e.mul(h, ei))
		mlp = e.add(e.mul(experts, expert), e.mul(h, experts))
		if s := int64(c.SharedExpertIntermediateSize); s > 0 {
			mlp = e.add(mlp, e.mul(3, e.mul(h, s)))
		} else if n := int64(c.NumSharedExperts); n > 0 {
			mlp = e.add(mlp, e.mul(n, expert))
		}
	} else if encoder {
		mlp = e.mul(2, e.mul(h, int64(c.IntermediateSize)))
	} else {
		mlp = e.mul(3, e.mul(h, int64(c.IntermediateSize)))
	}
	perLayer := e.add(e.add(attn, mlp), e.mul(2, h))
	total := e.add(e.mul(layers, perLayer), h)
	emb := e.mul(int64(c.VocabSize), h)
	total = e.add(total, emb)
	headless := strings.HasSuffix(c.Architecture, "Model") &&
		!strings.HasSuffix(c.Architecture, "LMHeadModel") && !strings.HasSuffix(c.Architecture, "ChatModel")
	if (c.TieWordEmbeddings == nil || !*c.TieWordEmbeddings) && !headless {
		total = e.add(total, emb)
	}
	if encoder {
		total = e.add(total, e.mul(int64(c.ContextLength), h))
	}
	if e.overflow {
		return 0
	}
	return total
}

// est is overflow-checked int64 arithmetic on non-negative values.
type est struct{ overflow bool }

func (e *est) mul(a, b int64) int64 {
	if a < 0 || b < 0 || (a != 0 && b > math.MaxInt64/a) {
		e.overflow = true
		return 0
	}
	return a * b
}

func (e *est) add(a, b int64) int64 {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		e.overflow = true
		return 0
	}
	return a + b
}

// object decodes a JSON object, or returns nil.
func object(v json.RawMessage) map[string]json.RawMessage {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return nil
	}
	return m
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// str decodes a JSON string, or returns "".
func str(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// stringList decodes an array of strings, skipping other elements; nil when v is not an array.
func stringList(v json.RawMessage) []string {
	var raw []json.RawMessage
	if json.Unmarshal(v, &raw) != nil || raw == nil {
		return nil
	}
	out := []string{}
	for _, r := range raw {
		if s := str(r); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// rawInt decodes a non-negative integer that fits in an int32 (written as 4096, 4096.0 or 4.096e3).
func rawInt(v json.RawMessage) (int, bool) {
	s := string(bytes.TrimSpace(v))
	if s == "" || s[0] == '"' {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > math.MaxInt32 || f != math.Trunc(f) {
		return 0, false
	}
	return int(f), true
}

func rawBool(v json.RawMessage) (bool, bool) {
	switch string(bytes.TrimSpace(v)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// sanitizeNonFinite replaces the literals NaN, Infinity and -Infinity outside strings with null.
// Valid JSON never has those letters outside strings, so other input passes through unchanged; it
// returns data itself when there is nothing to replace.
func sanitizeNonFinite(data []byte) []byte {
	var out []byte
	last := 0
	inStr, esc := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case 'N', 'I', '-':
			for _, lit := range [...]string{"NaN", "Infinity", "-Infinity"} {
				if bytes.HasPrefix(data[i:], []byte(lit)) {
					out = append(out, data[last:i]...)
					out = append(out, "null"...)
					i += len(lit) - 1
					last = i + 1
					break
				}
			}
		}
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}
