package modelinfo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stTensor describes a tensor for makeSafetensors.
type stTensor struct {
	name  string
	dtype string
	shape []int64
}

// makeSafetensors builds a valid safetensors file: tensors laid out in order, zero data, the
// header padded with spaces to a multiple of 8 as the reference writer does.
func makeSafetensors(tb testing.TB, meta map[string]string, tensors ...stTensor) []byte {
	tb.Helper()
	var hdr strings.Builder
	hdr.WriteString("{")
	if meta != nil {
		b, err := json.Marshal(meta)
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&hdr, `"__metadata__":%s`, b)
	}
	var off int64
	for i, t := range tensors {
		if i > 0 || meta != nil {
			hdr.WriteString(",")
		}
		n := int64(1)
		for _, d := range t.shape {
			n *= d
		}
		size := n * safetensorsBits[t.dtype] / 8
		shape, _ := json.Marshal(t.shape)
		if t.shape == nil {
			shape = []byte("[]")
		}
		fmt.Fprintf(&hdr, `%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, t.name, t.dtype, shape, off, off+size)
		off += size
	}
	hdr.WriteString("}")
	for hdr.Len()%8 != 0 {
		hdr.WriteString(" ")
	}
	return rawSafetensors(hdr.String(), int(off))
}

// rawSafetensors builds a file from a literal header and dataSize zero bytes.
func rawSafetensors(header string, dataSize int) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, make([]byte, dataSize)...)
}

// GGUF value types for the builder.
type ggufKV struct {
	key string
	val any // string, uint32, int32, uint64, float32, bool, ggufArr, or ggufRaw
}

// ggufArr is an array value.
type ggufArr struct {
	elem uint32
	vals []any
}

// ggufRaw is a value written as given: its type then its bytes.
type ggufRaw struct {
	typ  uint32
	data []byte
}

type ggufT struct {
	name string
	dims []uint64
	typ  GGMLType
}

// ggufWriter appends little-endian GGUF values.
type ggufWriter struct{ bytes.Buffer }

func (w *ggufWriter) u32(v uint32) { w.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (w *ggufWriter) u64(v uint64) { w.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (w *ggufWriter) str(s string) { w.u64(uint64(len(s))); w.WriteString(s) }

func (w *ggufWriter) typ(v any) uint32 {
	switch v := v.(type) {
	case string:
		return ggufString
	case uint32:
		return ggufU32
	case int32:
		return ggufI32
	case uint64:
		return ggufU64
	case float32:
		return ggufF32
	case bool:
		return ggufBool
	case ggufArr:
		return ggufArray
	case ggufRaw:
		return v.typ
	}
	panic(fmt.Sprintf("gguf builder: unsupported %T", v))
}

func (w *ggufWriter) value(v any) {
	switch v := v.(type) {
	case string:
		w.str(v)
	case uint32:
		w.u32(v)
	case int32:
		w.u32(uint32(v))
	case uint64:
		w.u64(v)
	case float32:
		w.u32(math.Float32bits(v))
	case bool:
		if v {
			w.WriteByte(1)
		} else {
			w.WriteByte(0)
		}
	case ggufArr:
		w.u32(v.elem)
		w.u64(uint64(len(v.vals)))
		for _, e := range v.vals {
			w.value(e)
		}
	case ggufRaw:
		w.Write(v.data)
	}
}

// makeGGUF builds a valid version-3 GGUF file with 32-byte alignment and zero tensor data.
func makeGGUF(kvs []ggufKV, tensors ...ggufT) []byte {
	var w ggufWriter
	w.WriteString("GGUF")
	w.u32(3)
	w.u64(uint64(len(tensors)))
	w.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		w.str(kv.key)
		w.u32(w.typ(kv.val))
		w.value(kv.val)
	}
	var off uint64
	for _, t := range tensors {
		w.str(t.name)
		w.u32(uint32(len(t.dims)))
		n := uint64(1)
		for _, d := range t.dims {
			w.u64(d)
			n *= d
		}
		w.u32(uint32(t.typ))
		w.u64(off)
		ti := ggmlTypes[t.typ]
		size := n / uint64(ti.blockSize) * uint64(ti.typeSize)
		off += (size + 31) / 32 * 32
	}
	for w.Len()%32 != 0 {
		w.WriteByte(0)
	}
	w.Write(make([]byte, off))
	return w.Bytes()
}

// ggufHead starts a GGUF file with the given header fields, for hostile inputs.
func ggufHead(version uint32, nTensors, nKV uint64) *ggufWriter {
	var w ggufWriter
	w.WriteString("GGUF")
	w.u32(version)
	w.u64(nTensors)
	w.u64(nKV)
	return &w
}

// writeFiles creates files under dir; values are contents.
func writeFiles(tb testing.TB, dir string, files map[string][]byte) {
	tb.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// sparseReaderAt serves a prefix and claims a larger size; reads past the prefix return zeros.
// It lets benchmarks and allocation tests present a multi-gigabyte file without its data.
type sparseReaderAt struct {
	prefix []byte
	size   int64
}

func (s sparseReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, fmt.Errorf("read at %d past size %d", off, s.size)
	}
	n := 0
	if off < int64(len(s.prefix)) {
		n = copy(p, s.prefix[off:])
	}
	for i := n; i < len(p) && off+int64(i) < s.size; i++ {
		p[i] = 0
		n++
	}
	return n, nil
}
