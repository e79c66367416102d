package modelinfo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A stand-in is a weight file of a few hundred bytes that declares the size of the model it
// stands in for, so that a test or a demo downloads kilobytes through the real pull path and is
// still planned, placed and simulated as the real model. The declaration is explicit: a
// safetensors file carries it in __metadata__, a GGUF file as a metadata key, and a real model
// never carries either key. Where a declaration is present, FromDir reports the declared
// parameter count and Info.StandIn; everything else (config.json, the GGUF hyper-parameters and
// file type) is read as for any model.
const (
	// StandInParameterCountKey declares the parameter count of the model a file stands in for: a
	// decimal string in a safetensors __metadata__, a positive integer in GGUF metadata.
	StandInParameterCountKey = "citadel.stand_in.parameter_count"
	// StandInDtypeKey is the safetensors dtype of the declared parameters ("BF16" when absent).
	StandInDtypeKey = "citadel.stand_in.dtype"
)

// standIn returns the parameters a safetensors stand-in declares, by dtype, or nil when the
// header declares nothing.
func (h SafetensorsHeader) standIn() (map[string]int64, *FormatError) {
	v, ok := h.Metadata[StandInParameterCountKey]
	if !ok {
		return nil, nil
	}
	bad := func(format string, args ...any) *FormatError {
		return &FormatError{Format: "safetensors", Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return nil, bad("__metadata__ %s must be a positive decimal integer, got %q", StandInParameterCountKey, truncate(v, 40))
	}
	dt := h.Metadata[StandInDtypeKey]
	if dt == "" {
		dt = "BF16"
	}
	if _, ok := safetensorsBits[dt]; !ok {
		return nil, bad("__metadata__ %s: unknown dtype %q", StandInDtypeKey, truncate(dt, 40))
	}
	return map[string]int64{dt: n}, nil
}

// StandInSafetensors describes a stand-in safetensors file.
type StandInSafetensors struct {
	ParameterCount int64  // declared parameters of the real model
	Dtype          string // their safetensors dtype; default "BF16"
}

// WriteStandInSafetensors writes a valid safetensors file holding one 16-element tensor
// ("stand_in.weight") and, in __metadata__, the declaration of s.
func WriteStandInSafetensors(w io.Writer, s StandInSafetensors) error {
	if s.ParameterCount <= 0 {
		return errors.New("stand-in safetensors: the parameter count must be positive")
	}
	if s.Dtype == "" {
		s.Dtype = "BF16"
	}
	bits, ok := safetensorsBits[s.Dtype]
	if !ok || bits%8 != 0 {
		return fmt.Errorf("stand-in safetensors: dtype %q is not a whole-byte safetensors dtype", s.Dtype)
	}
	const elems = 16
	size := elems * bits / 8
	hdr, err := json.Marshal(map[string]any{
		"__metadata__":    map[string]string{"format": "pt", StandInParameterCountKey: strconv.FormatInt(s.ParameterCount, 10), StandInDtypeKey: s.Dtype},
		"stand_in.weight": map[string]any{"dtype": s.Dtype, "shape": []int{elems}, "data_offsets": []int64{0, size}},
	})
	if err != nil {
		return err
	}
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, uint64(len(hdr)))
	buf.Write(hdr)
	buf.Write(make([]byte, size))
	_, err = w.Write(buf.Bytes())
	return err
}

// StandInGGUF describes a stand-in GGUF file: the real model's metadata, one small tensor.
type StandInGGUF struct {
	Architecture      string // general.architecture, e.g. "qwen2"
	Name              string // general.name
	SizeLabel         string // general.size_label, e.g. "32B"
	FileType          int64  // general.file_type, e.g. 15 (Q4_K_M)
	ParameterCount    int64  // declared parameters of the real model
	ContextLength     int
	BlockCount        int
	EmbeddingLength   int
	FeedForwardLength int
	HeadCount         int
	HeadCountKV       int
	VocabSize         int
	RopeFreqBase      float32 // <arch>.rope.freq_base; 0 leaves it out
}

// WriteStandInGGUF writes a valid GGUF v3 file with s's metadata, the stand-in declaration and one
// 32-element F32 tensor ("stand_in.weight").
func WriteStandInGGUF(w io.Writer, s StandInGGUF) error {
	if s.ParameterCount <= 0 || s.Architecture == "" {
		return errors.New("stand-in GGUF: the architecture and a positive parameter count are required")
	}
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(v string) { le(uint64(len(v))); b.WriteString(v) }
	type kv struct {
		key string
		typ uint32
		val any
	}
	a := s.Architecture + "."
	kvs := []kv{
		{"general.architecture", ggufString, s.Architecture},
		{"general.type", ggufString, "model"},
		{"general.name", ggufString, s.Name},
		{"general.size_label", ggufString, s.SizeLabel},
		{"general.file_type", ggufU32, uint32(s.FileType)},
		{"general.quantization_version", ggufU32, uint32(2)},
		{a + "context_length", ggufU32, uint32(s.ContextLength)},
		{a + "block_count", ggufU32, uint32(s.BlockCount)},
		{a + "embedding_length", ggufU32, uint32(s.EmbeddingLength)},
		{a + "feed_forward_length", ggufU32, uint32(s.FeedForwardLength)},
		{a + "attention.head_count", ggufU32, uint32(s.HeadCount)},
		{a + "attention.head_count_kv", ggufU32, uint32(s.HeadCountKV)},
		{a + "vocab_size", ggufU32, uint32(s.VocabSize)},
		{StandInParameterCountKey, ggufU64, uint64(s.ParameterCount)},
	}
	if s.RopeFreqBase > 0 {
		kvs = append(kvs, kv{a + "rope.freq_base", ggufF32, s.RopeFreqBase})
	}
	const elems = 32
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(1))
	le(uint64(len(kvs)))
	for _, e := range kvs {
		str(e.key)
		le(e.typ)
		if v, ok := e.val.(string); ok {
			str(v)
		} else {
			le(e.val)
		}
	}
	str("stand_in.weight")
	le(uint32(1))
	le(uint64(elems))
	le(uint32(0)) // F32
	le(uint64(0)) // offset
	for b.Len()%ggufDefaultAlign != 0 {
		b.WriteByte(0)
	}
	b.Write(make([]byte, elems*4))
	_, err := w.Write(b.Bytes())
	return err
}

// ConfigFromGGUF is the Config a GGUF file's hyper-parameters amount to, for sizing a model that
// has no config.json (an Ollama blob). Embeddings are tied when the file has token_embd.weight and
// no output.weight, as llama.cpp then reuses the embedding table.
func ConfigFromGGUF(g GGUFInfo) Config {
	c := Config{
		ModelType: g.Architecture, ContextLength: g.ContextLength,
		HiddenSize: g.EmbeddingLength, NumHiddenLayers: g.BlockCount, NumAttentionHeads: g.HeadCount,
		NumKeyValueHeads: g.HeadCountKV, IntermediateSize: g.FeedForwardLength, VocabSize: g.VocabSize,
		Dtype: strings.ToLower(g.FileTypeName),
	}
	var embd, output bool
	for _, t := range g.Tensors {
		embd = embd || t.Name == "token_embd.weight"
		output = output || t.Name == "output.weight"
	}
	if embd && !output {
		tied := true
		c.TieWordEmbeddings = &tied
	}
	return c
}

// Inspect reads what sizing a model needs, from a model directory or from one GGUF file of any
// name (an Ollama blob, blobs/sha256-…): Info as FromDir reports it, and the Config of the
// directory's config.json, else (GGUF weights without config.json) the GGUF's hyper-parameters
// (ConfigFromGGUF). The planner and citadel sim both size models this way; pass the result to
// perf.ModelFromInfo. Errors are FromDir's, and a *FormatError for a damaged GGUF file.
func Inspect(path string) (Info, Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, Config{}, fmt.Errorf("inspecting model: %w", err)
	}
	if !fi.IsDir() {
		return inspectGGUFFile(path, fi.Size())
	}
	info, err := FromDir(path)
	if err != nil {
		return Info{}, Config{}, err
	}
	data, err := os.ReadFile(filepath.Join(path, "config.json"))
	switch {
	case err == nil:
		cfg, err := ParseConfig(data)
		if fe := (*FormatError)(nil); errors.As(err, &fe) {
			fe.File = "config.json"
		}
		return info, cfg, err
	case !errors.Is(err, fs.ErrNotExist):
		return Info{}, Config{}, fmt.Errorf("reading model config: %w", err)
	case info.Format != FormatGGUF || len(info.Files) == 0:
		return info, Config{}, nil
	}
	f := filepath.Join(path, filepath.FromSlash(info.Files[0]))
	st, err := os.Stat(f)
	if err != nil {
		return Info{}, Config{}, fmt.Errorf("reading weights: %w", err)
	}
	g, err := readHeader(filepath.Dir(f), entry{rel: filepath.Base(f), size: st.Size()}, ReadGGUF)
	if err != nil {
		return Info{}, Config{}, err
	}
	return info, ConfigFromGGUF(g), nil
}

// inspectGGUFFile is Inspect of one GGUF file.
func inspectGGUFFile(path string, size int64) (Info, Config, error) {
	root, e := filepath.Dir(path), entry{rel: filepath.Base(path), size: size}
	g, err := readHeader(root, e, ReadGGUF)
	if err != nil {
		return Info{}, Config{}, err
	}
	if g.IsProjector() {
		return Info{}, Config{}, fmt.Errorf("inspecting model %s: a vision projector (mmproj), not a model", path)
	}
	info := Info{Format: FormatGGUF}
	if err := readGGUFModel(root, []entry{e}, nil, map[string]entry{e.rel: e}, &info); err != nil {
		return Info{}, Config{}, err
	}
	info.ParameterSize = FormatParameterSize(info.ParameterCount)
	info.Capabilities = capabilities(info.Vision, info.Embedding)
	return info, ConfigFromGGUF(g), nil
}

// OllamaParameterSize is a parameter count as Ollama shows it (its format.HumanNumber): 32.8B,
// 7B, 500M; FormatParameterSize is OME's spelling.
func OllamaParameterSize(n int64) string {
	switch {
	case n >= 1e9:
		if n%1e9 == 0 {
			return fmt.Sprintf("%dB", n/1e9)
		}
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		if n%1e6 == 0 {
			return fmt.Sprintf("%dM", n/1e6)
		}
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
