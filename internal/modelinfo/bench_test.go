package modelinfo

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// qwen7BHeader builds the header of a single-file Qwen2.5-7B-shaped checkpoint: 339 BF16 tensors
// (28 layers × 12 + 3) over 15.2 GB of data, the data itself not materialised.
func qwen7BHeader() (header []byte, fileSize int64) {
	const h, kv, inter, vocab = 3584, 512, 18944, 152064
	type tensor struct {
		name  string
		shape []int64
	}
	ts := []tensor{{"model.embed_tokens.weight", []int64{vocab, h}}}
	for l := range 28 {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			tensor{p + "input_layernorm.weight", []int64{h}},
			tensor{p + "mlp.down_proj.weight", []int64{h, inter}},
			tensor{p + "mlp.gate_proj.weight", []int64{inter, h}},
			tensor{p + "mlp.up_proj.weight", []int64{inter, h}},
			tensor{p + "post_attention_layernorm.weight", []int64{h}},
			tensor{p + "self_attn.k_proj.bias", []int64{kv}},
			tensor{p + "self_attn.k_proj.weight", []int64{kv, h}},
			tensor{p + "self_attn.o_proj.weight", []int64{h, h}},
			tensor{p + "self_attn.q_proj.bias", []int64{h}},
			tensor{p + "self_attn.q_proj.weight", []int64{h, h}},
			tensor{p + "self_attn.v_proj.bias", []int64{kv}},
			tensor{p + "self_attn.v_proj.weight", []int64{kv, h}},
		)
	}
	ts = append(ts, tensor{"model.norm.weight", []int64{h}}, tensor{"lm_head.weight", []int64{vocab, h}})
	var b strings.Builder
	b.WriteString(`{"__metadata__":{"format":"pt"}`)
	var off int64
	for _, t := range ts {
		n := int64(2)
		for _, d := range t.shape {
			n *= d
		}
		shape, _ := json.Marshal(t.shape)
		fmt.Fprintf(&b, `,%q:{"dtype":"BF16","shape":%s,"data_offsets":[%d,%d]}`, t.name, shape, off, off+n)
		off += n
	}
	b.WriteString("}")
	for b.Len()%8 != 0 {
		b.WriteString(" ")
	}
	return []byte(b.String()), 8 + int64(b.Len()) + off
}

// BenchmarkReadSafetensorsHeader validates a 7B model's header (token-streamed JSON with duplicate
// detection and layout checks). Compare with BenchmarkSafetensorsBaselineJSONUnmarshal, which only
// decodes the same bytes into map[string]any.
func BenchmarkReadSafetensorsHeader(b *testing.B) {
	hdr, size := qwen7BHeader()
	r := sparseReaderAt{prefix: append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...), size: size}
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		h, err := ReadSafetensorsHeader(r, size)
		if err != nil {
			b.Fatal(err)
		}
		if n := h.ParameterCount(); n != 7_615_616_512 {
			b.Fatalf("ParameterCount = %d", n)
		}
	}
}

func BenchmarkSafetensorsBaselineJSONUnmarshal(b *testing.B) {
	hdr, _ := qwen7BHeader()
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(hdr, &m); err != nil {
			b.Fatal(err)
		}
	}
}
