package modelinfo

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// llamaGGUFKVs is metadata shaped like a llama.cpp conversion of a Llama model.
func llamaGGUFKVs(fileType uint32) []ggufKV {
	return []ggufKV{
		{"general.architecture", "llama"},
		{"general.type", "model"},
		{"general.name", "Tiny Llama"},
		{"general.file_type", fileType},
		{"general.quantization_version", uint32(2)},
		{"llama.context_length", uint32(8192)},
		{"llama.embedding_length", uint32(256)},
		{"llama.block_count", uint32(2)},
		{"llama.feed_forward_length", uint32(512)},
		{"llama.attention.head_count", uint32(8)},
		{"llama.attention.head_count_kv", uint32(2)},
		{"llama.rope.freq_base", float32(500000)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.tokens", ggufArr{ggufString, []any{"<s>", "</s>", "a", "b"}}},
		{"tokenizer.ggml.scores", ggufArr{ggufF32, []any{float32(0), float32(0), float32(-1), float32(-2)}}},
		{"tokenizer.ggml.add_bos_token", true},
		{"tokenizer.chat_template", "{{ messages }}"},
	}
}

func TestReadGGUF(t *testing.T) {
	t.Parallel()
	file := makeGGUF(llamaGGUFKVs(15),
		ggufT{"token_embd.weight", []uint64{256, 4}, 12},     // Q4_K
		ggufT{"blk.0.attn_q.weight", []uint64{256, 256}, 14}, // Q6_K
		ggufT{"blk.0.attn_norm.weight", []uint64{256}, 0},    // F32
		ggufT{"output.weight", []uint64{256, 4}, 8},          // Q8_0
	)
	got, err := ReadGGUF(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	want := GGUFInfo{
		Version: 3, Architecture: "llama", Name: "Tiny Llama", Type: "model",
		FileType: 15, FileTypeName: "Q4_K_M", Alignment: 32,
		ContextLength: 8192, BlockCount: 2, EmbeddingLength: 256, FeedForwardLength: 512,
		HeadCount: 8, HeadCountKV: 2, PoolingType: -1, VocabSize: 4,
		KVCount: 17, DataOffset: got.DataOffset,
		Tensors: []GGUFTensor{
			{Name: "token_embd.weight", Dims: []int64{256, 4}, Type: 12, Offset: 0, Size: 4 * 144},
			{Name: "blk.0.attn_q.weight", Dims: []int64{256, 256}, Type: 14, Offset: 576, Size: 256 * 210},
			{Name: "blk.0.attn_norm.weight", Dims: []int64{256}, Type: 0, Offset: 576 + 53760, Size: 1024},
			{Name: "output.weight", Dims: []int64{256, 4}, Type: 8, Offset: 576 + 53760 + 1024, Size: 4 * 8 * 34},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadGGUF (-want +got):\n%s", diff)
	}
	if got.DataOffset%32 != 0 || got.DataOffset <= 24 {
		t.Errorf("DataOffset = %d, want a multiple of 32 after the header", got.DataOffset)
	}
	if n := got.ParameterCount(); n != 1024+65536+256+1024 {
		t.Errorf("ParameterCount = %d", n)
	}
	wantBy := map[string]int64{"Q4_K": 1024, "Q6_K": 65536, "F32": 256, "Q8_0": 1024}
	if diff := cmp.Diff(wantBy, got.ParametersByType()); diff != "" {
		t.Errorf("ParametersByType (-want +got):\n%s", diff)
	}
	if got.IsProjector() {
		t.Error("IsProjector = true for a model")
	}
}

func TestReadGGUFVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  []byte
		check func(t *testing.T, g GGUFInfo)
	}{
		{
			name: "version 2, no file type, custom alignment",
			file: func() []byte {
				b := makeGGUF([]ggufKV{{"general.architecture", "qwen2"}, {"general.alignment", uint32(32)}},
					ggufT{"a", []uint64{32}, 0})
				b[4] = 2
				return b
			}(),
			check: func(t *testing.T, g GGUFInfo) {
				if g.Version != 2 || g.FileType != -1 || g.FileTypeName != "" || g.Alignment != 32 {
					t.Errorf("got version %d file type %d %q alignment %d", g.Version, g.FileType, g.FileTypeName, g.Alignment)
				}
			},
		},
		{
			name: "projector",
			file: makeGGUF([]ggufKV{{"general.architecture", "clip"}, {"general.type", "mmproj"}, {"clip.has_vision_encoder", true}}),
			check: func(t *testing.T, g GGUFInfo) {
				if !g.IsProjector() {
					t.Error("IsProjector = false")
				}
			},
		},
		{
			name: "embedding model: pooling, vocab size key, per-layer head count array, nested arrays",
			file: makeGGUF([]ggufKV{
				{"general.architecture", "qwen3"},
				{"qwen3.pooling_type", uint32(3)},
				{"qwen3.vocab_size", uint32(151669)},
				{"qwen3.attention.head_count", ggufArr{ggufI32, []any{int32(16), int32(16)}}},
				{"x.nested", ggufArr{ggufArray, []any{ggufArr{ggufString, []any{"a"}}, ggufArr{ggufU32, []any{uint32(1)}}}}},
				{"tokenizer.ggml.tokens", ggufArr{ggufString, []any{"a"}}},
			}),
			check: func(t *testing.T, g GGUFInfo) {
				if g.PoolingType != 3 || g.VocabSize != 151669 || g.HeadCount != 0 {
					t.Errorf("pooling %d vocab %d heads %d", g.PoolingType, g.VocabSize, g.HeadCount)
				}
			},
		},
		{
			name: "split part",
			file: makeGGUF([]ggufKV{{"split.no", ggufRaw{ggufU16, []byte{1, 0}}}, {"split.count", ggufRaw{ggufU16, []byte{3, 0}}}}),
			check: func(t *testing.T, g GGUFInfo) {
				if g.SplitIndex != 1 || g.SplitCount != 3 {
					t.Errorf("split %d of %d", g.SplitIndex, g.SplitCount)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := ReadGGUF(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, g)
		})
	}
}

func TestReadGGUFHostile(t *testing.T) {
	t.Parallel()
	kv := func(key string, typ uint32, raw ...byte) []byte {
		w := ggufHead(3, 0, 1)
		w.str(key)
		w.u32(typ)
		w.Write(raw)
		return w.Bytes()
	}
	oneTensor := func(name string, dims []uint64, typ uint32, off uint64) []byte {
		w := ggufHead(3, 1, 0)
		w.str(name)
		w.u32(uint32(len(dims)))
		for _, d := range dims {
			w.u64(d)
		}
		w.u32(typ)
		w.u64(off)
		for w.Len()%32 != 0 {
			w.WriteByte(0)
		}
		w.Write(make([]byte, 64))
		return w.Bytes()
	}
	u64 := func(v uint64) []byte { var w ggufWriter; w.u64(v); return w.Bytes() }
	u32 := func(v uint32) []byte { var w ggufWriter; w.u32(v); return w.Bytes() }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	valid := makeGGUF(llamaGGUFKVs(15), ggufT{"t", []uint64{32, 2}, 0})

	tests := []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"empty", nil, "unexpected end of file"},
		{"bad magic", append([]byte("GGML"), valid[4:]...), `not a GGUF file: bad magic "GGML"`},
		{"version 1", ggufHead(1, 0, 0).Bytes(), "unsupported GGUF version 1 (need 2 or 3"},
		{"version 4", ggufHead(4, 0, 0).Bytes(), "unsupported GGUF version 4"},
		{"big-endian", ggufHead(0x03000000, 0, 0).Bytes(), "big-endian GGUF files are not supported"},
		{"truncated header", ggufHead(3, 0, 0).Bytes()[:20], "unexpected end of file"},
		{"n_tensors 2^60", ggufHead(3, 1<<60, 0).Bytes(), "tensor count 1152921504606846976 exceeds the limit"},
		{"n_tensors beyond file", ggufHead(3, 100, 0).Bytes(), "tensor count 100 exceeds the limit (1048576) or what 0 remaining bytes can hold"},
		{"n_kv 2^40", ggufHead(3, 0, 1<<40).Bytes(), "metadata count 1099511627776 exceeds the limit"},
		{"key length beyond file", cat(ggufHead(3, 0, 1).Bytes(), u64(1000), []byte("general")), "key length 1000 runs past the end of the file"},
		{"key length over limit", cat(ggufHead(3, 0, 1).Bytes(), u64(1<<21), make([]byte, 16)), "key length 2097152 exceeds the 1048576-byte limit"},
		{"string value beyond file", kv("general.name", ggufString, cat(u64(1<<20), []byte("x"))...), "value of \"general.name\" length 1048576 runs past the end of the file"},
		{"skipped string beyond file", kv("general.description", ggufString, cat(u64(50), []byte("x"))...), "string length 50 runs past the end of the file"},
		{"string value over limit", kv("general.name", ggufString, u64(1<<40)...), "exceeds the 16777216-byte limit"},
		{"array length huge", kv("tokenizer.ggml.scores", ggufArray, cat(u32(ggufF32), u64(1<<62))...), "array length 4611686018427387904 runs past the end of the file"},
		{"string array length huge", kv("tokenizer.ggml.tokens", ggufArray, cat(u32(ggufString), u64(1<<40))...), "array length 1099511627776 runs past the end of the file"},
		{"string in array beyond file", kv("tokenizer.ggml.merges", ggufArray, cat(u32(ggufString), u64(1), u64(99))...), "string length 99 runs past the end of the file"},
		{"tokens not strings", kv("tokenizer.ggml.tokens", ggufArray, cat(u32(ggufU32), u64(1), u32(7))...), "tokenizer.ggml.tokens must be an array of strings"},
		{"unknown type", kv("general.foo", 13, 0, 0, 0, 0), "unknown metadata value type 13"},
		{"unknown type kept key", kv("general.file_type", 99, 0, 0, 0, 0), "unknown metadata value type 99"},
		{"unknown array element type", kv("x", ggufArray, cat(u32(42), u64(0))...), "unknown array element type 42"},
		{"arrays nested too deep", kv("x", ggufArray, cat(u32(ggufArray), u64(1), u32(ggufArray), u64(1), u32(ggufArray), u64(1), u32(ggufU8), u64(0))...), "arrays nested more than 3 deep"},
		{"duplicate key", func() []byte {
			w := ggufHead(3, 0, 2)
			for range 2 {
				w.str("general.name")
				w.u32(ggufString)
				w.str("x")
			}
			return w.Bytes()
		}(), `duplicate metadata key "general.name"`},
		{"alignment not a power of two", kv("general.alignment", ggufU32, u32(24)...), "general.alignment must be a power of two, got 24"},
		{"alignment zero", kv("general.alignment", ggufU32, u32(0)...), "general.alignment must be a power of two, got 0"},
		{"n_dims 9", oneTensor("t", []uint64{1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 0), `tensor "t" has 9 dimensions, more than GGML_MAX_DIMS (4)`},
		{"dimension out of range", oneTensor("t", []uint64{1 << 63}, 0, 0), "dimension 0 is 9223372036854775808, out of range"},
		{"dimension product overflow", oneTensor("t", []uint64{1 << 32, 1 << 32}, 0, 0), "dimensions [4294967296 4294967296] overflow int64"},
		{"byte size overflow", oneTensor("t", []uint64{1 << 31, 1 << 31}, 28, 0), "size in bytes overflows int64"},
		{"unknown ggml type", oneTensor("t", []uint64{32}, 4, 0), "unknown or removed GGML type 4"},
		{"ggml type past the table", oneTensor("t", []uint64{32}, 1000, 0), "unknown or removed GGML type 1000"},
		{"not a whole block", oneTensor("t", []uint64{33}, 2, 0), "first dimension 33 is not a multiple of the Q4_0 block size 32"},
		{"misaligned offset", oneTensor("t", []uint64{4}, 0, 3), "offset 3 is not a multiple of the alignment 32"},
		{"data past end of file", oneTensor("t", []uint64{64}, 0, 0), `tensor "t" data [0, 256) runs past the end of the file (64 bytes of data)`},
		{"offset past end of file", oneTensor("t", []uint64{1}, 0, 1<<40), "runs past the end of the file"},
		{"tensor name over limit", func() []byte {
			w := ggufHead(3, 1, 0)
			w.str(strings.Repeat("x", 2000))
			return w.Bytes()
		}(), "tensor name length 2000 exceeds the 1024-byte limit"},
		{"duplicate tensor", func() []byte {
			w := ggufHead(3, 2, 0)
			for range 2 {
				w.str("t")
				w.u32(1)
				w.u64(1)
				w.u32(0)
				w.u64(0)
			}
			return w.Bytes()
		}(), `duplicate tensor name "t"`},
		{"truncated tensor data", valid[:len(valid)-1], "runs past the end of the file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadGGUF(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Format != "gguf" {
				t.Fatalf("error %T %v is not a gguf *FormatError", err, err)
			}
			if fe.Offset < -1 || fe.Offset > int64(len(tt.file)) {
				t.Errorf("Offset %d is outside the file (%d bytes)", fe.Offset, len(tt.file))
			}
		})
	}
}

// TestReadGGUFShortReader: a reader shorter than the claimed size is an error, not a hang or panic.
func TestReadGGUFShortReader(t *testing.T) {
	t.Parallel()
	file := makeGGUF(llamaGGUFKVs(7), ggufT{"t", []uint64{32}, 8})
	_, err := ReadGGUF(bytes.NewReader(file[:40]), int64(len(file)))
	if err == nil || !strings.Contains(err.Error(), "shorter than its size") {
		t.Errorf("error = %v, want a truncation error", err)
	}
}

func TestFileTypeName(t *testing.T) {
	t.Parallel()
	for ft, want := range map[int64]string{0: "F32", 1: "F16", 7: "Q8_0", 15: "Q4_K_M", 17: "Q5_K_M", 18: "Q6_K", 30: "IQ4_XS", 32: "BF16", 38: "MXFP4_MOE", 5: "FTYPE_5", 1024: "FTYPE_1024"} {
		if got := FileTypeName(ft); got != want {
			t.Errorf("FileTypeName(%d) = %q, want %q", ft, got, want)
		}
	}
	if got := GGMLType(12).String(); got != "Q4_K" {
		t.Errorf("GGMLType(12) = %q", got)
	}
	if got := GGMLType(31).String(); got != "GGMLType(31)" {
		t.Errorf("GGMLType(31) = %q", got)
	}
}
