package taskclass

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

//go:generate go run ./train -corpus corpus/train -out model.bin.gz

//go:embed model.bin.gz
var modelFile []byte

var builtin = sync.OnceValues(func() (*Model, error) { return Decode(modelFile) })

// Builtin is the model that ships in the binary. It panics if the embedded file is damaged,
// which a test catches before any release.
func Builtin() *Model {
	m, err := builtin()
	if err != nil {
		panic("taskclass: the embedded model.bin.gz: " + err.Error())
	}
	return m
}

// The file: gzip of "CTC1", buckets and tasks as uint32, the scale as float32, then the
// int8 weights row by row (little endian).
const magic = "CTC1"

// Encode writes a model in the file format.
func (m *Model) Encode(w io.Writer) error {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
	hdr := make([]byte, 0, 16)
	hdr = append(hdr, magic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, Buckets)
	hdr = binary.LittleEndian.AppendUint32(hdr, NumTasks)
	hdr = binary.LittleEndian.AppendUint32(hdr, math.Float32bits(m.Scale))
	if _, err := zw.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, len(m.W))
	for i, v := range m.W {
		buf[i] = byte(v)
	}
	if _, err := zw.Write(buf); err != nil {
		return err
	}
	return zw.Close()
}

// Decode reads a model file.
func Decode(b []byte) (*Model, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 16+Buckets*NumTasks+1))
	if err != nil {
		return nil, err
	}
	if len(raw) < 16 || string(raw[:4]) != magic {
		return nil, errors.New("not a task classifier model (bad magic)")
	}
	if b, t := binary.LittleEndian.Uint32(raw[4:]), binary.LittleEndian.Uint32(raw[8:]); b != Buckets || t != NumTasks {
		return nil, fmt.Errorf("model has %d buckets × %d tasks, this build wants %d × %d: regenerate it with go generate ./internal/taskclass", b, t, Buckets, NumTasks)
	}
	if len(raw) != 16+Buckets*NumTasks {
		return nil, fmt.Errorf("model has %d weight bytes, want %d", len(raw)-16, Buckets*NumTasks)
	}
	m := &Model{W: make([]int8, Buckets*NumTasks), Scale: math.Float32frombits(binary.LittleEndian.Uint32(raw[12:]))}
	for i, v := range raw[16:] {
		m.W[i] = int8(v)
	}
	return m, nil
}
