package modelinfo

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// The fuzz targets read from a byte slice whose length is the file size, so everything a parser
// allocates is bounded by construction by the input length and the fixed limits; a second call
// claims a 1 TiB file holding only those bytes, which must fail cleanly without trusting the
// claimed size (TestHostileAllocationBounded measures that). Past crashers live in testdata/fuzz.

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(makeSafetensors(f, map[string]string{"format": "pt"},
		stTensor{"a", "BF16", []int64{2, 3}}, stTensor{"b", "F4", []int64{4}}, stTensor{"c", "F32", nil}))
	f.Add(rawSafetensors(`{"__metadata__":null,"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"y":[{}]}}  `, 0))
	f.Add(rawSafetensors(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 4))
	f.Add(rawSafetensors(`{"a":{"dtype":"F6_E3M2","shape":[4],"data_offsets":[0,3]}}`, 3))
	f.Add(withLenPrefix(math.MaxUint64, "{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadSafetensorsHeader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error %v: not a FormatError with an offset inside the file", err)
			}
		} else {
			if 8+h.HeaderLen+h.DataSize != int64(len(data)) {
				t.Fatalf("8 + %d + %d != file size %d", h.HeaderLen, h.DataSize, len(data))
			}
			var cursor, sum int64
			for _, tn := range h.Tensors {
				if tn.Begin != cursor || tn.End < tn.Begin || tn.Elements() < 0 {
					t.Fatalf("tensor %+v does not continue at %d", tn, cursor)
				}
				cursor = tn.End
			}
			if cursor != h.DataSize {
				t.Fatalf("tensors end at %d, data is %d bytes", cursor, h.DataSize)
			}
			for _, n := range h.ParametersByDtype() {
				sum += n
			}
			if sum != h.ParameterCount() || sum < 0 {
				t.Fatalf("by-dtype sum %d != ParameterCount %d", sum, h.ParameterCount())
			}
		}
		_, _ = ReadSafetensorsHeader(bytes.NewReader(data), 1<<40)
	})
}

func FuzzGGUF(f *testing.F) {
	f.Add(makeGGUF(llamaGGUFKVs(15), ggufT{"a", []uint64{256, 2}, 12}, ggufT{"b", []uint64{32}, 0}))
	f.Add(makeGGUF([]ggufKV{
		{"general.architecture", "clip"}, {"general.alignment", uint32(64)},
		{"x", ggufArr{ggufArray, []any{ggufArr{ggufString, []any{"a", "b"}}}}},
		{"split.count", ggufRaw{ggufU16, []byte{2, 0}}},
	}, ggufT{"t", []uint64{2, 2, 2, 2}, 30}))
	b := makeGGUF(nil)
	b[4] = 2
	f.Add(b)
	f.Add(ggufHead(3, 1<<60, 1<<60).Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ReadGGUF(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < -1 || fe.Offset > int64(len(data)) {
				t.Fatalf("error %v: not a FormatError with an offset inside the file", err)
			}
		} else {
			if g.DataOffset > int64(len(data)) && len(g.Tensors) > 0 {
				t.Fatalf("data offset %d past the file (%d bytes)", g.DataOffset, len(data))
			}
			var sum int64
			for _, tn := range g.Tensors {
				if tn.Offset < 0 || tn.Size < 0 || g.DataOffset+tn.Offset+tn.Size > int64(len(data)) {
					t.Fatalf("tensor %+v outside the file", tn)
				}
			}
			for _, n := range g.ParametersByType() {
				sum += n
			}
			if sum != g.ParameterCount() || sum < 0 {
				t.Fatalf("by-type sum %d != ParameterCount %d", sum, g.ParameterCount())
			}
		}
		_, _ = ReadGGUF(bytes.NewReader(data), 1<<40)
	})
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{qwen25VLFlat, qwen25VLNested, llama31, bgeLarge,
		`{"llm_config":{"hidden_size":1e9,"num_hidden_layers":2147483647,"vocab_size":2147483647},"num_experts":2147483647}`,
		`{"a":NaN,"b":"\\"NaN","c":-Infinity}`, `[`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FormatError", err)
			}
			return
		}
		if c.Vision && c.Embedding {
			t.Fatal("both Vision and Embedding")
		}
		if c.ContextLength < 0 || c.HiddenSize < 0 || c.VocabSize < 0 {
			t.Fatalf("negative field in %+v", c)
		}
		if n := EstimateParameters(c); n < 0 {
			t.Fatalf("negative estimate %d", n)
		} else {
			_ = FormatParameterSize(n)
		}
		if len(c.Capabilities()) != 1 {
			t.Fatalf("capabilities %v", c.Capabilities())
		}
	})
}
