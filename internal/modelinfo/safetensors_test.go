package modelinfo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadSafetensorsHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		file        []byte
		want        SafetensorsHeader
		wantParams  int64
		wantByDtype map[string]int64
	}{
		{
			name: "tensors and metadata",
			file: makeSafetensors(t, map[string]string{"format": "pt"},
				stTensor{"embed.weight", "BF16", []int64{10, 4}},
				stTensor{"norm.weight", "F32", []int64{4}},
				stTensor{"lm_head.weight", "BF16", []int64{10, 4}}),
			want: SafetensorsHeader{
				DataSize: 176, Metadata: map[string]string{"format": "pt"},
				Tensors: []Tensor{
					{Name: "embed.weight", Dtype: "BF16", Shape: []int64{10, 4}, Begin: 0, End: 80},
					{Name: "norm.weight", Dtype: "F32", Shape: []int64{4}, Begin: 80, End: 96},
					{Name: "lm_head.weight", Dtype: "BF16", Shape: []int64{10, 4}, Begin: 96, End: 176},
				},
			},
			wantParams:  84,
			wantByDtype: map[string]int64{"BF16": 80, "F32": 4},
		},
		{
			name: "scalar, empty tensor, sub-byte and fp8 dtypes",
			file: makeSafetensors(t, nil,
				stTensor{"scale", "F32", nil},
				stTensor{"empty", "F16", []int64{0, 7}},
				stTensor{"packed", "F4", []int64{3, 2}},
				stTensor{"six", "F6_E2M3", []int64{4}},
				stTensor{"fp8", "F8_E4M3", []int64{2}}),
			want: SafetensorsHeader{
				DataSize: 12,
				Tensors: []Tensor{
					{Name: "scale", Dtype: "F32", Shape: []int64{}, Begin: 0, End: 4},
					{Name: "empty", Dtype: "F16", Shape: []int64{0, 7}, Begin: 4, End: 4},
					{Name: "packed", Dtype: "F4", Shape: []int64{3, 2}, Begin: 4, End: 7},
					{Name: "six", Dtype: "F6_E2M3", Shape: []int64{4}, Begin: 7, End: 10},
					{Name: "fp8", Dtype: "F8_E4M3", Shape: []int64{2}, Begin: 10, End: 12},
				},
			},
			wantParams:  1 + 0 + 6 + 4 + 2,
			wantByDtype: map[string]int64{"F32": 1, "F16": 0, "F4": 6, "F6_E2M3": 4, "F8_E4M3": 2},
		},
		{
			name: "keys out of file order, unknown fields ignored, null metadata, whitespace padding",
			file: rawSafetensors(`{"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4],"extra":{"x":[1,{}]}},`+
				` "__metadata__": null, "a":{"data_offsets":[0,2],"shape":[2],"dtype":"I8"}}`+"  \n\t ", 4),
			want: SafetensorsHeader{
				DataSize: 4,
				Tensors: []Tensor{
					{Name: "a", Dtype: "I8", Shape: []int64{2}, Begin: 0, End: 2},
					{Name: "b", Dtype: "U8", Shape: []int64{2}, Begin: 2, End: 4},
				},
			},
			wantParams:  4,
			wantByDtype: map[string]int64{"I8": 2, "U8": 2},
		},
		{
			name: "no tensors",
			file: rawSafetensors("{}", 0),
			want: SafetensorsHeader{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadSafetensorsHeader(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.HeaderLen = int64(binary.LittleEndian.Uint64(tt.file))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if got := got.ParameterCount(); got != tt.wantParams {
				t.Errorf("ParameterCount = %d, want %d", got, tt.wantParams)
			}
			if diff := cmp.Diff(tt.wantByDtype, got.ParametersByDtype()); diff != "" {
				t.Errorf("ParametersByDtype (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadSafetensorsHeaderHostile(t *testing.T) {
	t.Parallel()
	withLen := func(n uint64, rest string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	tensor := func(name, dtype, shape string, begin, end int) string {
		return `"` + name + `":{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":[` + itoa(begin) + `,` + itoa(end) + `]}`
	}
	tests := []struct {
		name       string
		file       []byte
		size       int64 // 0: len(file)
		wantErr    string
		wantOffset int64 // -2: don't check
	}{
		{"file shorter than length prefix", []byte{1, 2, 3}, 0, "shorter than the 8-byte header length", 0},
		{"header length u64 max", withLen(math.MaxUint64, "{}"), 0, "header length 18446744073709551615 exceeds the 100000000-byte limit", 0},
		{"header length just over limit", withLen(MaxSafetensorsHeader+1, "{}"), 0, "exceeds the 100000000-byte limit", 0},
		{"header length past end of file", withLen(1000, "{}"), 0, "header length 1000 extends past the end of the file (10 bytes)", 0},
		{"header length too small", withLen(1, "{"), 0, "header length 1 is too small", 0},
		{"reader shorter than claimed size", withLen(100, "{}"), 200, "reading 100-byte header", 10},
		{"invalid UTF-8", rawSafetensors("{\"a\xff\":1}", 0), 0, "not valid UTF-8", 11},
		{"bad JSON", rawSafetensors(`{"a":{"dtype":"F32",,}}`, 0), 0, "not valid JSON", -2},
		{"truncated JSON", rawSafetensors(`{"a":{"dtype":"F32"`, 0), 0, "ends early", -2},
		{"non-object array", rawSafetensors(`[1,2]`, 0), 0, "must be a JSON object starting with '{'", 8},
		{"non-object string", rawSafetensors(`"{}"`, 0), 0, "must be a JSON object", 8},
		{"leading whitespace", rawSafetensors(` {}`, 0), 0, "must be a JSON object starting with '{'", 8},
		{"trailing data", rawSafetensors(`{} x`, 0), 0, "unexpected data after the header object", 11},
		{"second object", rawSafetensors(`{}{}`, 0), 0, "unexpected data after the header object", 10},
		{"duplicate tensor", rawSafetensors(`{`+tensor("a", "U8", "[1]", 0, 1)+`,`+tensor("a", "U8", "[1]", 1, 2)+`}`, 2), 0, `duplicate tensor name "a"`, -2},
		{"duplicate metadata", rawSafetensors(`{"__metadata__":{},"__metadata__":{}}`, 0), 0, `duplicate tensor name "__metadata__"`, -2},
		{"duplicate metadata key", rawSafetensors(`{"__metadata__":{"k":"a","k":"b"}}`, 0), 0, `duplicate __metadata__ key "k"`, -2},
		{"duplicate field", rawSafetensors(`{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, 1), 0, `tensor "a": duplicate field "dtype"`, -2},
		{"unknown dtype", rawSafetensors(`{`+tensor("a", "Q4_K", "[1]", 0, 1)+`}`, 1), 0, `tensor "a": unknown dtype "Q4_K"`, -2},
		{"dtype not a string", rawSafetensors(`{"a":{"dtype":16,"shape":[1],"data_offsets":[0,1]}}`, 1), 0, "dtype must be a string, found a number", -2},
		{"missing dtype", rawSafetensors(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, 1), 0, `tensor "a": missing dtype`, -2},
		{"missing shape", rawSafetensors(`{"a":{"dtype":"U8","data_offsets":[0,1]}}`, 1), 0, `tensor "a": missing shape`, -2},
		{"missing offsets", rawSafetensors(`{"a":{"dtype":"U8","shape":[1]}}`, 1), 0, `tensor "a": missing data_offsets`, -2},
		{"tensor not an object", rawSafetensors(`{"a":[1]}`, 0), 0, `tensor "a" must be an object, found an array`, -2},
		{"tensor null", rawSafetensors(`{"a":null}`, 0), 0, `tensor "a" must be an object, found null`, -2},
		{"negative shape", rawSafetensors(`{`+tensor("a", "U8", "[-1]", 0, 0)+`}`, 0), 0, "shape holds negative value -1", -2},
		{"non-integer shape", rawSafetensors(`{`+tensor("a", "U8", "[1.5]", 0, 0)+`}`, 0), 0, "shape value 1.5 is not an integer", -2},
		{"exponent shape", rawSafetensors(`{`+tensor("a", "U8", "[1e3]", 0, 0)+`}`, 0), 0, "shape value 1e3 is not an integer", -2},
		{"shape not numbers", rawSafetensors(`{`+tensor("a", "U8", `["1"]`, 0, 0)+`}`, 0), 0, "shape must hold integers, found a string", -2},
		{"huge dimension", rawSafetensors(`{`+tensor("a", "U8", "[99999999999999999999]", 0, 0)+`}`, 0), 0, "shape value 99999999999999999999 overflows int64", -2},
		{"overflowing shape product", rawSafetensors(`{`+tensor("a", "U8", "[4294967296,4294967296]", 0, 0)+`}`, 0), 0, "has more elements than fit in int64", -2},
		{"overflowing bit size", rawSafetensors(`{`+tensor("a", "F64", "[1152921504606846976,2]", 0, 0)+`}`, 0), 0, "overflows int64 bits", -2},
		{"negative offset", rawSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, 0), 0, "data_offsets holds negative value -1", -2},
		{"three offsets", rawSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 2), 0, "data_offsets must have exactly 2 values", -2},
		{"one offset", rawSafetensors(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1]}}`, 2), 0, "data_offsets must have exactly 2 values, found 1", -2},
		{"offsets reversed", rawSafetensors(`{`+tensor("a", "U8", "[0]", 4, 2)+`}`, 4), 0, "invalid data_offsets [4, 2]: begin is after end", -2},
		{"offsets out of range", rawSafetensors(`{`+tensor("a", "U8", "[4]", 0, 4)+`}`, 3), 0, "data_offsets [0, 4] out of range: the data buffer is 3 bytes", -2},
		{"size mismatch", rawSafetensors(`{`+tensor("a", "F32", "[2]", 0, 4)+`}`, 4), 0, "size mismatch: data_offsets [0, 4] span 4 bytes but shape [2] of F32 needs 8", -2},
		{"sub-byte size not whole", rawSafetensors(`{`+tensor("a", "F4", "[3]", 0, 2)+`}`, 2), 0, "3 elements of F4 (4 bits each) is not a whole number of bytes", -2},
		{"overlapping", rawSafetensors(`{`+tensor("a", "U8", "[4]", 0, 4)+`,`+tensor("b", "U8", "[4]", 2, 6)+`}`, 6), 0, `tensor "b" data [2, 6) overlaps tensor "a", which ends at 4`, -2},
		{"same range twice", rawSafetensors(`{`+tensor("a", "U8", "[4]", 0, 4)+`,`+tensor("b", "U8", "[4]", 0, 4)+`}`, 4), 0, "overlaps", -2},
		{"hole", rawSafetensors(`{`+tensor("a", "U8", "[2]", 0, 2)+`,`+tensor("b", "U8", "[2]", 4, 6)+`}`, 6), 0, `hole in the data buffer: bytes [2, 4) before tensor "b"`, -2},
		{"hole at start", rawSafetensors(`{`+tensor("a", "U8", "[2]", 2, 4)+`}`, 4), 0, `bytes [0, 2) before tensor "a"`, -2},
		{"hole at end", rawSafetensors(`{`+tensor("a", "U8", "[2]", 0, 2)+`}`, 5), 0, "bytes [2, 5) at the end belong to no tensor", -2},
		{"data but no tensors", rawSafetensors(`{}`, 3), 0, "bytes [0, 3) at the end", 10},
		{"metadata non-string", rawSafetensors(`{"__metadata__":{"format":1}}`, 0), 0, `__metadata__ value for "format" must be a string, found a number`, -2},
		{"metadata nested object", rawSafetensors(`{"__metadata__":{"format":{}}}`, 0), 0, "must be a string, found an object", -2},
		{"metadata non-object", rawSafetensors(`{"__metadata__":["pt"]}`, 0), 0, "__metadata__ must be an object of strings, found an array", -2},
		{"key not a string", rawSafetensors(`{1:2}`, 0), 0, "not valid JSON", -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			size := tt.size
			if size == 0 {
				size = int64(len(tt.file))
			}
			_, err := ReadSafetensorsHeader(bytes.NewReader(tt.file), size)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError", err)
			}
			if fe.Format != "safetensors" {
				t.Errorf("Format = %q, want safetensors", fe.Format)
			}
			if tt.wantOffset != -2 && fe.Offset != tt.wantOffset {
				t.Errorf("Offset = %d, want %d (%v)", fe.Offset, tt.wantOffset, err)
			}
			if fe.Offset < 0 || fe.Offset > size {
				t.Errorf("Offset %d is outside the file (%d bytes)", fe.Offset, size)
			}
		})
	}
}

func TestReadSafetensorsHeaderErrorNamesFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "model-00002-of-00004.safetensors")
	if err := os.WriteFile(p, rawSafetensors(`{"a":1}`, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = ReadSafetensorsHeader(f, 15)
	want := `invalid safetensors file "` + p + `" at byte 14: tensor "a" must be an object, found a number`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant     %s", err, want)
	}
}

// TestHostileAllocationBounded checks that lengths in a header are never trusted for allocation:
// a reader claiming a terabyte but holding a few bytes costs little memory, whatever the header
// says.
func TestHostileAllocationBounded(t *testing.T) {
	const claimed = 1 << 40
	inputs := map[string]struct {
		data []byte
		read func([]byte) error
	}{
		"safetensors 100 MB header": {
			withLenPrefix(MaxSafetensorsHeader, `{"a":`),
			func(b []byte) error {
				_, err := ReadSafetensorsHeader(shortReader(b), claimed)
				return err
			},
		},
		"gguf 16 MiB string": {
			func() []byte {
				w := ggufHead(3, 0, 1)
				w.str("general.name")
				w.u32(ggufString)
				w.u64(maxGGUFStringLen)
				return w.Bytes()
			}(),
			func(b []byte) error { _, err := ReadGGUF(shortReader(b), claimed); return err },
		},
		"gguf 2^20 tensors": {
			ggufHead(3, maxGGUFTensors, 0).Bytes(),
			func(b []byte) error { _, err := ReadGGUF(shortReader(b), claimed); return err },
		},
		"gguf 2^16 kvs": {
			ggufHead(3, 0, maxGGUFKVs).Bytes(),
			func(b []byte) error { _, err := ReadGGUF(shortReader(b), claimed); return err },
		},
	}
	for name, in := range inputs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := in.read(in.data)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
			t.Errorf("%s: allocated %d bytes, want at most 4 MiB", name, got)
		}
	}
}

func withLenPrefix(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

// shortReader serves b and fails past it, like a file shorter than its claimed size.
func shortReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func itoa(n int) string { return strconv.Itoa(n) }
