package modelinfo

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Limits on GGUF headers. They are far above anything real and keep hostile headers from costing
// unbounded memory or time; every count is also checked against the bytes left in the file.
const (
	maxGGUFTensors     = 1 << 20
	maxGGUFKVs         = 1 << 16
	maxGGUFKeyLen      = 1 << 20
	maxGGUFStringLen   = 16 << 20
	maxGGUFTensorName  = 1 << 10 // llama.cpp itself rejects names of 64 bytes or more (GGML_MAX_NAME)
	maxGGUFArrayDepth  = 3       // an array of arrays of arrays
	maxGGMLDims        = 4       // GGML_MAX_DIMS
	ggufDefaultAlign   = 32
	ggufMinKVBytes     = 8 + 4 + 1     // empty key, type, one-byte value
	ggufMinTensorBytes = 8 + 4 + 4 + 8 // empty name, n_dims 0, type, offset
)

// GGUF metadata value types (gguf.h enum gguf_type).
const (
	ggufU8 = iota
	ggufI8
	ggufU16
	ggufI16
	ggufU32
	ggufI32
	ggufF32
	ggufBool
	ggufString
	ggufArray
	ggufU64
	ggufI64
	ggufF64
)

// ggufScalarSize is the encoded size of each fixed-size value type.
var ggufScalarSize = map[uint32]int64{
	ggufU8: 1, ggufI8: 1, ggufBool: 1,
	ggufU16: 2, ggufI16: 2,
	ggufU32: 4, ggufI32: 4, ggufF32: 4,
	ggufU64: 8, ggufI64: 8, ggufF64: 8,
}

// GGMLType is a tensor element type (ggml.h enum ggml_type).
type GGMLType uint32

type ggmlTypeInfo struct {
	name      string
	blockSize int64 // elements per block
	typeSize  int64 // bytes per block
}

// ggmlTypes lists the types a GGUF file may hold, with their block layout (ggml.h ggml_type and
// gguf-py GGML_QUANT_SIZES). Removed types (4, 5, 31–33, 36–38) are absent and rejected.
var ggmlTypes = map[GGMLType]ggmlTypeInfo{
	0:  {"F32", 1, 4},
	1:  {"F16", 1, 2},
	2:  {"Q4_0", 32, 18},
	3:  {"Q4_1", 32, 20},
	6:  {"Q5_0", 32, 22},
	7:  {"Q5_1", 32, 24},
	8:  {"Q8_0", 32, 34},
	9:  {"Q8_1", 32, 36},
	10: {"Q2_K", 256, 84},
	11: {"Q3_K", 256, 110},
	12: {"Q4_K", 256, 144},
	13: {"Q5_K", 256, 176},
	14: {"Q6_K", 256, 210},
	15: {"Q8_K", 256, 292},
	16: {"IQ2_XXS", 256, 66},
	17: {"IQ2_XS", 256, 74},
	18: {"IQ3_XXS", 256, 98},
	19: {"IQ1_S", 256, 50},
	20: {"IQ4_NL", 32, 18},
	21: {"IQ3_S", 256, 110},
	22: {"IQ2_S", 256, 82},
	23: {"IQ4_XS", 256, 136},
	24: {"I8", 1, 1},
	25: {"I16", 1, 2},
	26: {"I32", 1, 4},
	27: {"I64", 1, 8},
	28: {"F64", 1, 8},
	29: {"IQ1_M", 256, 56},
	30: {"BF16", 1, 2},
	34: {"TQ1_0", 256, 54},
	35: {"TQ2_0", 256, 66},
	39: {"MXFP4", 32, 17},
}

func (t GGMLType) String() string {
	if ti, ok := ggmlTypes[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("GGMLType(%d)", uint32(t))
}

// ggufFileTypes names general.file_type values (llama.h enum llama_ftype).
var ggufFileTypes = map[int64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16",
	7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
	11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
	19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS",
	24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
	30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}

// FileTypeName names a GGUF general.file_type value ("Q4_K_M" for 15); unknown values give
// "FTYPE_<n>".
func FileTypeName(ft int64) string {
	if s, ok := ggufFileTypes[ft]; ok {
		return s
	}
	return fmt.Sprintf("FTYPE_%d", ft)
}

// GGUFTensor is one tensor info of a GGUF file.
type GGUFTensor struct {
	Name   string
	Dims   []int64 // ne[0] first, as stored
	Type   GGMLType
	Offset int64 // relative to GGUFInfo.DataOffset
	Size   int64 // bytes
}

// Elements returns the product of the dimensions.
func (t GGUFTensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d // cannot overflow: checked when the file was read
	}
	return n
}

// GGUFInfo is what ReadGGUF learns from a GGUF header. Integer hyper-parameters are 0 when absent.
type GGUFInfo struct {
	Version      uint32
	Architecture string // general.architecture, e.g. "llama", "qwen2", "clip"
	Name         string // general.name
	Type         string // general.type: "model", "mmproj", "adapter", … ("" when absent)
	FileType     int64  // general.file_type, -1 when absent
	FileTypeName string // e.g. "Q4_K_M"; "" when general.file_type is absent
	Alignment    int64  // general.alignment, default 32

	ContextLength     int // <arch>.context_length
	BlockCount        int // <arch>.block_count
	EmbeddingLength   int // <arch>.embedding_length
	FeedForwardLength int // <arch>.feed_forward_length
	HeadCount         int // <arch>.attention.head_count
	HeadCountKV       int // <arch>.attention.head_count_kv
	PoolingType       int // <arch>.pooling_type (1 mean, 2 cls, 3 last, 4 rank), -1 when absent
	VocabSize         int // <arch>.vocab_size, else the length of tokenizer.ggml.tokens

	// StandInParameterCount is citadel.stand_in.parameter_count: the parameter count of the
	// model a stand-in file stands in for (see StandInParameterCountKey); 0 when absent.
	StandInParameterCount int64

	SplitCount int // split.count for multi-file models, 0 otherwise
	SplitIndex int // split.no (0-based)

	KVCount    int
	DataOffset int64 // file offset of the tensor data section
	Tensors    []GGUFTensor
}

// ParameterCount is the number of elements over all tensors.
func (g GGUFInfo) ParameterCount() int64 {
	var n int64
	for _, t := range g.Tensors {
		n += t.Elements() // cannot overflow: checked when the file was read
	}
	return n
}

// ParametersByType is ParameterCount split by GGML type name, e.g. {"Q4_K": …, "F32": …}; nil
// when there are no tensors.
func (g GGUFInfo) ParametersByType() map[string]int64 {
	if len(g.Tensors) == 0 {
		return nil
	}
	m := make(map[string]int64)
	for _, t := range g.Tensors {
		m[t.Type.String()] += t.Elements()
	}
	return m
}

// IsProjector reports whether the file is a multimodal projector (an mmproj file for llama.cpp).
func (g GGUFInfo) IsProjector() bool {
	return g.Type == "mmproj" || g.Architecture == "clip"
}

// ggufArchKeys are the per-architecture keys ReadGGUF keeps, as suffixes of "<arch>.".
var ggufArchKeys = []string{
	"context_length", "block_count", "embedding_length", "feed_forward_length",
	"attention.head_count", "attention.head_count_kv", "pooling_type", "vocab_size",
}

// ReadGGUF reads the header of a GGUF file (versions 2 and 3, little-endian) of fileSize bytes: the
// metadata it needs (general.*, <arch>.* hyper-parameters, split.*, the vocabulary size) and every
// tensor info. Other metadata, arrays included, is skipped without being held in memory.
//
// It rejects: a bad magic; versions other than 2 and 3 (and big-endian files); more than 2^20
// tensors or 2^16 metadata entries, or more than the remaining bytes could hold; keys over 1 MiB,
// string values over 16 MiB, tensor names over 1 KiB, and any length or array count that runs past
// the end of the file; arrays nested more than 3 deep; unknown value or tensor types; duplicate keys
// or tensor names; tensors with more than 4 dimensions, a dimension product that overflows int64 or
// is not a whole number of blocks, a misaligned offset, or data running past the end of the file.
//
// Errors are *[FormatError] values carrying the file offset of the problem. Memory use is bounded
// by the limits above and by the bytes actually read.
func ReadGGUF(r io.ReaderAt, fileSize int64) (GGUFInfo, error) {
	g := ggufReader{r: r, size: fileSize, file: nameOf(r)}
	info, err := g.read()
	if err != nil {
		return GGUFInfo{}, err
	}
	return info, nil
}

// ggufReader is a buffered little-endian reader over an io.ReaderAt that knows its position and
// the file size, so every length can be checked against the bytes left before it is used.
type ggufReader struct {
	r    io.ReaderAt
	size int64
	file string

	pos      int64  // file offset of buf[0]
	buf      []byte // buffered bytes starting at pos
	bufStore [64 << 10]byte
}

func (g *ggufReader) errAt(off int64, format string, args ...any) error {
	return &FormatError{Format: "gguf", File: g.file, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (g *ggufReader) remaining() int64 { return g.size - g.pos }

// need makes n (≤ len(bufStore)) bytes available in g.buf.
func (g *ggufReader) need(n int) error {
	if int64(n) > g.remaining() {
		return g.errAt(g.pos, "unexpected end of file: need %d bytes, %d left", n, g.remaining())
	}
	if len(g.buf) >= n {
		return nil
	}
	have := copy(g.bufStore[:], g.buf)
	want := int64(len(g.bufStore))
	if rem := g.remaining(); want > rem {
		want = rem
	}
	got, err := g.r.ReadAt(g.bufStore[have:want], g.pos+int64(have))
	g.buf = g.bufStore[:have+got]
	if len(g.buf) < n {
		if err == nil || errors.Is(err, io.EOF) {
			return g.errAt(g.pos+int64(len(g.buf)), "unexpected end of file: the file is shorter than its size (%d bytes)", g.size)
		}
		return g.errAt(g.pos+int64(len(g.buf)), "reading: %v", err)
	}
	return nil
}

// take consumes n (≤ len(bufStore)) bytes; the result is valid until the next read.
func (g *ggufReader) take(n int) ([]byte, error) {
	if err := g.need(n); err != nil {
		return nil, err
	}
	b := g.buf[:n]
	g.buf = g.buf[n:]
	g.pos += int64(n)
	return b, nil
}

func (g *ggufReader) u32() (uint32, error) {
	b, err := g.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (g *ggufReader) u64() (uint64, error) {
	b, err := g.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// skip advances n bytes, which must lie within the file.
func (g *ggufReader) skip(n int64) error {
	if n > g.remaining() {
		return g.errAt(g.pos, "unexpected end of file: need %d bytes, %d left", n, g.remaining())
	}
	if n <= int64(len(g.buf)) {
		g.buf = g.buf[n:]
	} else {
		g.buf = nil
	}
	g.pos += n
	return nil
}

// bytes reads n bytes into a new slice (n already checked against the file and a limit).
func (g *ggufReader) bytes(n int64) ([]byte, error) {
	out := make([]byte, 0, min(n, int64(len(g.bufStore))))
	for int64(len(out)) < n {
		chunk := min(n-int64(len(out)), int64(len(g.bufStore)))
		b, err := g.take(int(chunk))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// strLen reads a string length and checks it against limit and the file.
func (g *ggufReader) strLen(limit int64, what string) (int64, error) {
	at := g.pos
	n, err := g.u64()
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		return 0, g.errAt(at, "%s length %d exceeds the %d-byte limit", what, n, limit)
	}
	if int64(n) > g.remaining() {
		return 0, g.errAt(at, "%s length %d runs past the end of the file (%d bytes left)", what, n, g.remaining())
	}
	return int64(n), nil
}

// str reads a whole string of at most limit bytes.
func (g *ggufReader) str(limit int64, what string) (string, error) {
	n, err := g.strLen(limit, what)
	if err != nil {
		return "", err
	}
	b, err := g.bytes(n)
	return string(b), err
}

// ggufValue is a scalar metadata value kept for interpretation.
type ggufValue struct {
	i  int64 // integer and bool types (u64 above MaxInt64 is marked by ok=false)
	ok bool  // i holds the value
	s  string
}

func (g *ggufReader) read() (GGUFInfo, error) {
	info := GGUFInfo{FileType: -1, PoolingType: -1, Alignment: ggufDefaultAlign}
	magic, err := g.take(4)
	if err != nil {
		return info, err
	}
	if string(magic) != "GGUF" {
		return info, g.errAt(0, "not a GGUF file: bad magic %q (want \"GGUF\")", magic)
	}
	v, err := g.u32()
	if err != nil {
		return info, err
	}
	switch {
	case v == 2 || v == 3:
	case v == 0x02000000 || v == 0x03000000:
		return info, g.errAt(4, "big-endian GGUF files are not supported")
	default:
		return info, g.errAt(4, "unsupported GGUF version %d (need 2 or 3; re-convert the model with a current llama.cpp)", v)
	}
	info.Version = v
	nTensors, err := g.u64()
	if err != nil {
		return info, err
	}
	nKV, err := g.u64()
	if err != nil {
		return info, err
	}
	if nTensors > maxGGUFTensors || nTensors*ggufMinTensorBytes > uint64(g.remaining()) {
		return info, g.errAt(8, "tensor count %d exceeds the limit (%d) or what %d remaining bytes can hold", nTensors, maxGGUFTensors, g.remaining())
	}
	if nKV > maxGGUFKVs || nKV*ggufMinKVBytes > uint64(g.remaining()) {
		return info, g.errAt(16, "metadata count %d exceeds the limit (%d) or what %d remaining bytes can hold", nKV, maxGGUFKVs, g.remaining())
	}
	info.KVCount = int(nKV)

	// Metadata. Keys are checked for duplicates by a fixed-size digest so that long keys are not kept.
	kept := make(map[string]ggufValue)
	seen := make(map[[32]byte]struct{}, min(nKV, 1024))
	for range nKV {
		at := g.pos
		key, err := g.str(maxGGUFKeyLen, "key")
		if err != nil {
			return info, err
		}
		d := digest(key)
		if _, dup := seen[d]; dup {
			return info, g.errAt(at, "duplicate metadata key %q", truncate(key, 200))
		}
		seen[d] = struct{}{}
		typ, err := g.u32()
		if err != nil {
			return info, err
		}
		if wantGGUFKey(key) {
			val, err := g.scalar(typ, key)
			if err != nil {
				return info, err
			}
			kept[key] = val
			continue
		}
		if key == "tokenizer.ggml.tokens" && typ == ggufArray {
			n, err := g.array(1, true)
			if err != nil {
				return info, err
			}
			info.VocabSize = clampInt(n)
			continue
		}
		if err := g.skipValue(typ, 0); err != nil {
			return info, err
		}
	}
	if err := info.apply(kept, g); err != nil {
		return info, err
	}

	// Tensor infos.
	names := make(map[string]struct{}, min(nTensors, 4096))
	info.Tensors = make([]GGUFTensor, 0, min(nTensors, 4096))
	infoAt := make([]int64, 0, min(nTensors, 4096)) // file offset of each tensor info, for errors
	for range nTensors {
		at := g.pos
		name, err := g.str(maxGGUFTensorName, "tensor name")
		if err != nil {
			return info, err
		}
		if _, dup := names[name]; dup {
			return info, g.errAt(at, "duplicate tensor name %q", name)
		}
		names[name] = struct{}{}
		nDims, err := g.u32()
		if err != nil {
			return info, err
		}
		if nDims > maxGGMLDims {
			return info, g.errAt(g.pos-4, "tensor %q has %d dimensions, more than GGML_MAX_DIMS (%d)", name, nDims, maxGGMLDims)
		}
		t := GGUFTensor{Name: name, Dims: make([]int64, nDims)}
		elems := int64(1)
		for i := range t.Dims {
			d, err := g.u64()
			if err != nil {
				return info, err
			}
			if d > math.MaxInt64 {
				return info, g.errAt(g.pos-8, "tensor %q dimension %d is %d, out of range", name, i, d)
			}
			t.Dims[i] = int64(d)
			if d != 0 && elems > math.MaxInt64/int64(d) {
				return info, g.errAt(g.pos-8, "tensor %q: dimensions %v overflow int64", name, t.Dims[:i+1])
			}
			elems *= int64(d)
		}
		typ, err := g.u32()
		if err != nil {
			return info, err
		}
		t.Type = GGMLType(typ)
		ti, ok := ggmlTypes[t.Type]
		if !ok {
			return info, g.errAt(g.pos-4, "tensor %q has unknown or removed GGML type %d", name, typ)
		}
		if len(t.Dims) > 0 && t.Dims[0]%ti.blockSize != 0 {
			return info, g.errAt(at, "tensor %q: first dimension %d is not a multiple of the %s block size %d", name, t.Dims[0], ti.name, ti.blockSize)
		}
		blocks := elems / ti.blockSize
		if blocks > math.MaxInt64/ti.typeSize {
			return info, g.errAt(at, "tensor %q: size in bytes overflows int64", name)
		}
		t.Size = blocks * ti.typeSize
		off, err := g.u64()
		if err != nil {
			return info, err
		}
		if off > math.MaxInt64 || int64(off)%info.Alignment != 0 {
			return info, g.errAt(g.pos-8, "tensor %q offset %d is not a multiple of the alignment %d", name, off, info.Alignment)
		}
		t.Offset = int64(off)
		info.Tensors = append(info.Tensors, t)
		infoAt = append(infoAt, at)
	}

	// The data section starts at the next multiple of the alignment.
	info.DataOffset = g.pos
	if rem := g.pos % info.Alignment; rem != 0 {
		info.DataOffset += info.Alignment - rem
	}
	dataSize := g.size - info.DataOffset
	var total int64
	for i, t := range info.Tensors {
		if dataSize < 0 || t.Offset > dataSize || t.Size > dataSize-t.Offset {
			return info, g.errAt(infoAt[i], "tensor %q data [%d, %d) runs past the end of the file (%d bytes of data): the file is truncated", t.Name, t.Offset, t.Offset+t.Size, max(dataSize, 0))
		}
		e := t.Elements()
		if total > math.MaxInt64-e {
			return info, g.errAt(infoAt[i], "total parameter count overflows int64")
		}
		total += e
	}
	return info, nil
}

// wantGGUFKey reports whether ReadGGUF keeps a key's value.
func wantGGUFKey(key string) bool {
	switch key {
	case "general.architecture", "general.name", "general.type", "general.file_type", "general.alignment",
		"split.no", "split.count", StandInParameterCountKey:
		return true
	}
	for _, k := range ggufArchKeys {
		if strings.HasSuffix(key, "."+k) && !strings.HasPrefix(key, "general.") {
			return true
		}
	}
	return false
}

// apply interprets the kept metadata.
func (info *GGUFInfo) apply(kept map[string]ggufValue, g *ggufReader) error {
	info.Architecture = kept["general.architecture"].s
	info.Name = kept["general.name"].s
	info.Type = kept["general.type"].s
	if v, ok := kept["general.file_type"]; ok && v.ok {
		info.FileType = v.i
		info.FileTypeName = FileTypeName(v.i)
	}
	if v, ok := kept["general.alignment"]; ok {
		if !v.ok || v.i <= 0 || v.i&(v.i-1) != 0 || v.i > 1<<30 {
			return g.errAt(-1, "general.alignment must be a power of two, got %d", v.i)
		}
		info.Alignment = v.i
	}
	if v, ok := kept[StandInParameterCountKey]; ok {
		if !v.ok || v.i <= 0 {
			return g.errAt(-1, "%s must be a positive integer, got %d", StandInParameterCountKey, v.i)
		}
		info.StandInParameterCount = v.i
	}
	info.SplitIndex = clampInt(kept["split.no"].i)
	info.SplitCount = clampInt(kept["split.count"].i)
	arch := info.Architecture + "."
	num := func(k string) int { return clampInt(kept[arch+k].i) }
	info.ContextLength = num("context_length")
	info.BlockCount = num("block_count")
	info.EmbeddingLength = num("embedding_length")
	info.FeedForwardLength = num("feed_forward_length")
	info.HeadCount = num("attention.head_count")
	info.HeadCountKV = num("attention.head_count_kv")
	if v, ok := kept[arch+"pooling_type"]; ok && v.ok {
		info.PoolingType = clampInt(v.i)
	}
	if n := num("vocab_size"); n > 0 {
		info.VocabSize = n
	}
	return nil
}

func clampInt(v int64) int {
	if v < 0 || v > math.MaxInt32 {
		return 0
	}
	return int(v)
}

// scalar reads a value of a kept key. Arrays (e.g. per-layer head counts) are skipped and give a
// zero value; strings are read in full (bounded by maxGGUFStringLen).
func (g *ggufReader) scalar(typ uint32, key string) (ggufValue, error) {
	var v ggufValue
	switch typ {
	case ggufString:
		if !strings.HasPrefix(key, "general.") {
			return v, g.skipValue(typ, 0)
		}
		s, err := g.str(maxGGUFStringLen, fmt.Sprintf("value of %q", truncate(key, 200)))
		v.s = s
		return v, err
	case ggufArray:
		_, err := g.array(1, false)
		return v, err
	case ggufF32, ggufF64:
		return v, g.skip(ggufScalarSize[typ])
	}
	size, ok := ggufScalarSize[typ]
	if !ok {
		return v, g.errAt(g.pos-4, "unknown metadata value type %d for key %q", typ, truncate(key, 200))
	}
	b, err := g.take(int(size))
	if err != nil {
		return v, err
	}
	v.ok = true
	switch typ {
	case ggufU8, ggufBool:
		v.i = int64(b[0])
	case ggufI8:
		v.i = int64(int8(b[0]))
	case ggufU16:
		v.i = int64(binary.LittleEndian.Uint16(b))
	case ggufI16:
		v.i = int64(int16(binary.LittleEndian.Uint16(b)))
	case ggufU32:
		v.i = int64(binary.LittleEndian.Uint32(b))
	case ggufI32:
		v.i = int64(int32(binary.LittleEndian.Uint32(b)))
	case ggufU64:
		u := binary.LittleEndian.Uint64(b)
		v.i, v.ok = int64(u), u <= math.MaxInt64
	case ggufI64:
		v.i = int64(binary.LittleEndian.Uint64(b))
	}
	return v, nil
}

// skipValue skips one value of type typ; depth counts enclosing arrays.
func (g *ggufReader) skipValue(typ uint32, depth int) error {
	switch typ {
	case ggufString:
		n, err := g.strLen(maxGGUFStringLen, "string")
		if err != nil {
			return err
		}
		return g.skip(n)
	case ggufArray:
		_, err := g.array(depth+1, false)
		return err
	}
	size, ok := ggufScalarSize[typ]
	if !ok {
		return g.errAt(g.pos-4, "unknown metadata value type %d", typ)
	}
	return g.skip(size)
}

// array skips an array (after its value type) and returns its length. depth is this array's
// nesting level, starting at 1. When stringsOnly is set the elements must be strings.
func (g *ggufReader) array(depth int, stringsOnly bool) (int64, error) {
	at := g.pos
	if depth > maxGGUFArrayDepth {
		return 0, g.errAt(at, "arrays nested more than %d deep", maxGGUFArrayDepth)
	}
	elem, err := g.u32()
	if err != nil {
		return 0, err
	}
	count, err := g.u64()
	if err != nil {
		return 0, err
	}
	var minSize int64
	switch elem {
	case ggufString:
		minSize = 8
	case ggufArray:
		minSize = 4 + 8
	default:
		size, ok := ggufScalarSize[elem]
		if !ok {
			return 0, g.errAt(at, "unknown array element type %d", elem)
		}
		minSize = size
	}
	if stringsOnly && elem != ggufString {
		return 0, g.errAt(at, "tokenizer.ggml.tokens must be an array of strings, has element type %d", elem)
	}
	if count > uint64(g.remaining()/minSize) {
		return 0, g.errAt(at, "array length %d runs past the end of the file (%d bytes left)", count, g.remaining())
	}
	if elem != ggufString && elem != ggufArray {
		return int64(count), g.skip(int64(count) * minSize)
	}
	for range count {
		if err := g.skipValue(elem, depth); err != nil {
			return 0, err
		}
	}
	return int64(count), nil
}

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
