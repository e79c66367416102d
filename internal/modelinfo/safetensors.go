package modelinfo

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxSafetensorsHeader is the largest safetensors header accepted, in bytes: the limit of the
// reference Rust implementation (MAX_HEADER_SIZE).
const MaxSafetensorsHeader = 100_000_000

// safetensorsBits is the size of one element of each safetensors dtype, in bits
// (safetensors tensor.rs Dtype::bitsize).
var safetensorsBits = map[string]int64{
	"BOOL": 8, "U8": 8, "I8": 8,
	"F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
	"I16": 16, "U16": 16, "F16": 16, "BF16": 16,
	"I32": 32, "U32": 32, "F32": 32,
	"C64": 64, "F64": 64, "I64": 64, "U64": 64,
	"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

// Tensor is one validated entry of a safetensors header.
type Tensor struct {
	Name  string
	Dtype string  // as written, e.g. "BF16"
	Shape []int64 // empty for a scalar
	// Begin and End are the data_offsets: byte range [Begin, End) relative to the start of the data
	// buffer, which begins right after the header (file offset 8+HeaderLen).
	Begin, End int64
}

// Elements returns the product of the shape (1 for a scalar).
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d // cannot overflow: checked when the header was read
	}
	return n
}

// SafetensorsHeader is a validated safetensors header.
type SafetensorsHeader struct {
	HeaderLen int64             // N, the JSON header's length
	DataSize  int64             // bytes of tensor data after the header: file size - 8 - N
	Metadata  map[string]string // the __metadata__ object; nil when absent
	Tensors   []Tensor          // ordered by Begin (file order)
}

// ParameterCount is the number of elements over all tensors: the Hub's "safetensors.total".
// For packed quantised checkpoints (AWQ/GPTQ I32 words) this counts stored elements, not logical
// weights, exactly as the Hub does.
func (h SafetensorsHeader) ParameterCount() int64 {
	var n int64
	for _, t := range h.Tensors {
		n += t.Elements() // cannot overflow: checked when the header was read
	}
	return n
}

// ParametersByDtype is ParameterCount split by dtype, e.g. {"BF16": 8292166656}; nil when there
// are no tensors.
func (h SafetensorsHeader) ParametersByDtype() map[string]int64 {
	if len(h.Tensors) == 0 {
		return nil
	}
	m := make(map[string]int64)
	for _, t := range h.Tensors {
		m[t.Dtype] += t.Elements()
	}
	return m
}

// ReadSafetensorsHeader reads and validates the header of a safetensors file of fileSize bytes.
//
// It enforces the format as the reference implementation does, and a little more: the header
// length N must satisfy 2 ≤ N ≤ [MaxSafetensorsHeader] and 8+N ≤ fileSize; the header must be
// UTF-8 JSON, an object starting with '{' and followed only by whitespace (writers pad with
// spaces); keys must be unique at every level (duplicate tensor names are rejected, not
// last-one-wins); `__metadata__` must map strings to strings (null is accepted as absent); every
// tensor needs a known dtype, a shape of non-negative integers whose product (and size in bits)
// fits in int64, and data_offsets [begin, end] with begin ≤ end ≤ data size and end-begin equal to
// the tensor's size in whole bytes; the tensors must cover the data buffer exactly, without
// overlaps or holes. Unknown fields inside a tensor entry are ignored, as the reference
// implementation does.
//
// Errors are *[FormatError] values carrying the file offset of the problem. Memory use is
// proportional to the header bytes actually read (at most N), never to a length field alone.
func ReadSafetensorsHeader(r io.ReaderAt, fileSize int64) (SafetensorsHeader, error) {
	p := stParser{file: nameOf(r)}
	if fileSize < 8 {
		return SafetensorsHeader{}, p.errAt(0, "file is %d bytes, shorter than the 8-byte header length", fileSize)
	}
	var lenBuf [8]byte
	if err := readAtFull(r, lenBuf[:], 0); err != nil {
		return SafetensorsHeader{}, p.errAt(0, "reading header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	switch {
	case n < 2:
		return SafetensorsHeader{}, p.errAt(0, "header length %d is too small (minimum 2, for \"{}\")", n)
	case n > MaxSafetensorsHeader:
		return SafetensorsHeader{}, p.errAt(0, "header length %d exceeds the %d-byte limit", n, MaxSafetensorsHeader)
	case int64(n) > fileSize-8:
		return SafetensorsHeader{}, p.errAt(0, "header length %d extends past the end of the file (%d bytes): the file is truncated", n, fileSize)
	}
	hdr, err := readBounded(r, 8, int64(n))
	if err != nil {
		return SafetensorsHeader{}, p.errAt(8+int64(len(hdr)), "reading %d-byte header: %v", n, err)
	}
	p.dataStart = 8 + int64(n)
	h, err := p.parse(hdr, fileSize-8-int64(n))
	if err != nil {
		return SafetensorsHeader{}, err
	}
	h.HeaderLen = int64(n)
	return h, nil
}

// stParser parses one header. Offsets it reports are file offsets (header offset + 8).
type stParser struct {
	file      string
	dataStart int64 // file offset of the data buffer: 8+N
	dec       *json.Decoder
}

func (p *stParser) errAt(off int64, format string, args ...any) error {
	return &FormatError{Format: "safetensors", File: p.file, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// errHere reports at the decoder's current position.
func (p *stParser) errHere(format string, args ...any) error {
	return p.errAt(8+p.dec.InputOffset(), format, args...)
}

// token returns the next JSON token, turning decoder errors into FormatErrors.
func (p *stParser) token() (json.Token, error) {
	t, err := p.dec.Token()
	if err == nil {
		return t, nil
	}
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return nil, p.errAt(8+syn.Offset, "header is not valid JSON: %v", syn)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, p.errHere("header JSON ends early")
	default:
		return nil, p.errHere("header is not valid JSON: %v", err)
	}
}

// delim reads a token that must be the delimiter want; tensor and field name the value in errors
// (they are not formatted up front: this is on the hot path).
func (p *stParser) delim(want json.Delim, tensor, field string) error {
	t, err := p.token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		what := "header"
		switch {
		case field != "":
			what = fmt.Sprintf("tensor %q: %s", tensor, field)
		case tensor != "":
			what = fmt.Sprintf("tensor %q", tensor)
		}
		return p.errHere("%s must be %s, found %s", what, delimName(want), tokenKind(t))
	}
	return nil
}

// key reads an object key, or reports ok=false at the closing '}'.
func (p *stParser) key() (key string, ok bool, err error) {
	t, err := p.token()
	if err != nil {
		return "", false, err
	}
	switch t := t.(type) {
	case string:
		return t, true, nil
	case json.Delim:
		if t == '}' {
			return "", false, nil
		}
	}
	return "", false, p.errHere("expected an object key, found %s", tokenKind(t))
}

func (p *stParser) parse(hdr []byte, dataSize int64) (SafetensorsHeader, error) {
	if !utf8.Valid(hdr) {
		i := 0
		for i < len(hdr) {
			r, size := utf8.DecodeRune(hdr[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return SafetensorsHeader{}, p.errAt(8+int64(i), "header is not valid UTF-8")
	}
	if hdr[0] != '{' {
		return SafetensorsHeader{}, p.errAt(8, "header must be a JSON object starting with '{', found %q", hdr[0])
	}
	p.dec = json.NewDecoder(bytes.NewReader(hdr))
	p.dec.UseNumber()
	if err := p.delim('{', "", ""); err != nil {
		return SafetensorsHeader{}, err
	}

	var h SafetensorsHeader
	h.DataSize = dataSize
	keyOff := make(map[string]int64) // every top-level key → file offset just after it
	for {
		name, ok, err := p.key()
		if err != nil {
			return SafetensorsHeader{}, err
		}
		if !ok {
			break
		}
		off := 8 + p.dec.InputOffset()
		if prev, dup := keyOff[name]; dup {
			return SafetensorsHeader{}, p.errAt(off, "duplicate tensor name %q (first at byte %d)", name, prev)
		}
		keyOff[name] = off
		if name == "__metadata__" {
			if h.Metadata, err = p.metadata(); err != nil {
				return SafetensorsHeader{}, err
			}
			continue
		}
		t, err := p.tensor(name, dataSize)
		if err != nil {
			return SafetensorsHeader{}, err
		}
		h.Tensors = append(h.Tensors, t)
	}
	// Only whitespace may follow the object (writers pad the header with spaces).
	rest := hdr[p.dec.InputOffset():]
	if i := bytes.IndexFunc(rest, func(r rune) bool { return !isJSONSpace(r) }); i >= 0 {
		return SafetensorsHeader{}, p.errAt(8+p.dec.InputOffset()+int64(i), "unexpected data after the header object")
	}

	if err := p.checkLayout(h.Tensors, dataSize, keyOff); err != nil {
		return SafetensorsHeader{}, err
	}
	return h, nil
}

func isJSONSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// metadata reads the __metadata__ value: an object of string values, or null.
func (p *stParser) metadata() (map[string]string, error) {
	t, err := p.token()
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, p.errHere("__metadata__ must be an object of strings, found %s", tokenKind(t))
	}
	m := make(map[string]string)
	for {
		k, ok, err := p.key()
		if err != nil {
			return nil, err
		}
		if !ok {
			return m, nil
		}
		if _, dup := m[k]; dup {
			return nil, p.errHere("duplicate __metadata__ key %q", k)
		}
		v, err := p.token()
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, p.errHere("__metadata__ value for %q must be a string, found %s", k, tokenKind(v))
		}
		m[k] = s
	}
}

// tensor reads one tensor entry and checks it on its own (dtype, shape, offsets against the data
// size and the shape); checkLayout checks the entries against each other.
func (p *stParser) tensor(name string, dataSize int64) (Tensor, error) {
	if err := p.delim('{', name, ""); err != nil {
		return Tensor{}, err
	}
	t := Tensor{Name: name}
	var haveDtype, haveShape, haveOffsets bool
	for {
		k, ok, err := p.key()
		if err != nil {
			return Tensor{}, err
		}
		if !ok {
			break
		}
		var seen *bool
		switch k {
		case "dtype":
			seen = &haveDtype
		case "shape":
			seen = &haveShape
		case "data_offsets":
			seen = &haveOffsets
		}
		if seen != nil {
			if *seen {
				return Tensor{}, p.errHere("tensor %q: duplicate field %q", name, k)
			}
			*seen = true
		}
		switch k {
		case "dtype":
			v, err := p.token()
			if err != nil {
				return Tensor{}, err
			}
			s, ok := v.(string)
			if !ok {
				return Tensor{}, p.errHere("tensor %q: dtype must be a string, found %s", name, tokenKind(v))
			}
			if _, known := safetensorsBits[s]; !known {
				return Tensor{}, p.errHere("tensor %q: unknown dtype %q", name, s)
			}
			t.Dtype = s
		case "shape":
			if t.Shape, err = p.ints(name, "shape", -1); err != nil {
				return Tensor{}, err
			}
		case "data_offsets":
			offs, err := p.ints(name, "data_offsets", 2)
			if err != nil {
				return Tensor{}, err
			}
			t.Begin, t.End = offs[0], offs[1]
		default:
			if err := p.skipValue(); err != nil {
				return Tensor{}, err
			}
		}
	}
	switch {
	case !haveDtype:
		return Tensor{}, p.errHere("tensor %q: missing dtype", name)
	case !haveShape:
		return Tensor{}, p.errHere("tensor %q: missing shape", name)
	case !haveOffsets:
		return Tensor{}, p.errHere("tensor %q: missing data_offsets", name)
	}
	if t.Shape == nil {
		t.Shape = []int64{}
	}

	elems := int64(1)
	for _, d := range t.Shape {
		if d != 0 && elems > math.MaxInt64/d {
			return Tensor{}, p.errHere("tensor %q: shape %v has more elements than fit in int64", name, t.Shape)
		}
		elems *= d
	}
	bits := safetensorsBits[t.Dtype]
	if elems > math.MaxInt64/bits {
		return Tensor{}, p.errHere("tensor %q: shape %v of %s overflows int64 bits", name, t.Shape, t.Dtype)
	}
	nbits := elems * bits
	if nbits%8 != 0 {
		return Tensor{}, p.errHere("tensor %q: %d elements of %s (%d bits each) is not a whole number of bytes", name, elems, t.Dtype, bits)
	}
	switch {
	case t.Begin > t.End:
		return Tensor{}, p.errHere("tensor %q: invalid data_offsets [%d, %d]: begin is after end", name, t.Begin, t.End)
	case t.End > dataSize:
		return Tensor{}, p.errHere("tensor %q: data_offsets [%d, %d] out of range: the data buffer is %d bytes (file truncated?)", name, t.Begin, t.End, dataSize)
	case t.End-t.Begin != nbits/8:
		return Tensor{}, p.errHere("tensor %q: size mismatch: data_offsets [%d, %d] span %d bytes but shape %v of %s needs %d", name, t.Begin, t.End, t.End-t.Begin, t.Shape, t.Dtype, nbits/8)
	}
	return t, nil
}

// ints reads an array of non-negative integers; want ≥ 0 demands exactly that many.
func (p *stParser) ints(name, field string, want int) ([]int64, error) {
	if err := p.delim('[', name, field); err != nil {
		return nil, err
	}
	var out []int64
	for {
		v, err := p.token()
		if err != nil {
			return nil, err
		}
		if d, ok := v.(json.Delim); ok && d == ']' {
			break
		}
		num, ok := v.(json.Number)
		if !ok {
			return nil, p.errHere("tensor %q: %s must hold integers, found %s", name, field, tokenKind(v))
		}
		n, err := strconv.ParseInt(string(num), 10, 64)
		switch {
		case strings.HasPrefix(string(num), "-"):
			return nil, p.errHere("tensor %q: %s holds negative value %s", name, field, num)
		case errors.Is(err, strconv.ErrRange):
			return nil, p.errHere("tensor %q: %s value %s overflows int64", name, field, num)
		case err != nil:
			return nil, p.errHere("tensor %q: %s value %s is not an integer", name, field, num)
		}
		if want >= 0 && len(out) == want {
			return nil, p.errHere("tensor %q: %s must have exactly %d values", name, field, want)
		}
		out = append(out, n)
	}
	if want >= 0 && len(out) != want {
		return nil, p.errHere("tensor %q: %s must have exactly %d values, found %d", name, field, want, len(out))
	}
	return out, nil
}

// skipValue consumes one JSON value of any shape.
func (p *stParser) skipValue() error {
	depth := 0
	for {
		t, err := p.token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// checkLayout checks that the tensors tile the data buffer: sorted by offset, each must start where
// the previous one ended, and the last must end at the end of the buffer. It sorts ts in place.
func (p *stParser) checkLayout(ts []Tensor, dataSize int64, keyOff map[string]int64) error {
	slices.SortFunc(ts, func(a, b Tensor) int {
		return cmp.Or(cmp.Compare(a.Begin, b.Begin), cmp.Compare(a.End, b.End), strings.Compare(a.Name, b.Name))
	})
	var cursor, total int64
	var prev string
	for _, t := range ts {
		switch {
		case t.Begin < cursor:
			return p.errAt(keyOff[t.Name], "tensor %q data [%d, %d) overlaps tensor %q, which ends at %d", t.Name, t.Begin, t.End, prev, cursor)
		case t.Begin > cursor:
			return p.errAt(p.dataStart+cursor, "hole in the data buffer: bytes [%d, %d) before tensor %q belong to no tensor", cursor, t.Begin, t.Name)
		}
		cursor, prev = t.End, t.Name
		e := t.Elements()
		if total > math.MaxInt64-e {
			return p.errAt(keyOff[t.Name], "total parameter count overflows int64")
		}
		total += e
	}
	if cursor != dataSize {
		return p.errAt(p.dataStart+cursor, "hole in the data buffer: bytes [%d, %d) at the end belong to no tensor", cursor, dataSize)
	}
	return nil
}

func delimName(d json.Delim) string {
	switch d {
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return string(d)
}

// tokenKind names a token's JSON type for error messages.
func tokenKind(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

// readAtFull reads len(b) bytes at off.
func readAtFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readBounded reads n bytes at off. It grows its buffer as data arrives instead of trusting n, so
// a reader shorter than its claimed size cannot make it allocate more than about twice what it
// actually holds. On error it returns what it read.
func readBounded(r io.ReaderAt, off, n int64) ([]byte, error) {
	const chunk = 1 << 20
	buf := make([]byte, 0, min(n, chunk))
	for int64(len(buf)) < n {
		want := min(n-int64(len(buf)), chunk)
		buf = slices.Grow(buf, int(want))
		got, err := r.ReadAt(buf[len(buf):len(buf)+int(want)], off+int64(len(buf)))
		buf = buf[:len(buf)+got]
		if int64(got) == want {
			continue
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}
