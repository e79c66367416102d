package modelinfo

import (
	"fmt"
)

// FormatError reports a malformed (truncated, corrupt or hostile) model file: a safetensors or GGUF
// header, a safetensors index, or a config.json. Offset is the byte offset in the file where the
// problem was detected, or -1 when the problem is not tied to one place.
type FormatError struct {
	Format string // "safetensors", "gguf", "weight index", "config.json"
	File   string // the file's path when known (FromDir: relative to the model directory)
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	file := ""
	if e.File != "" {
		file = fmt.Sprintf(" %q", e.File)
	}
	if e.Offset < 0 {
		return fmt.Sprintf("invalid %s file%s: %s", e.Format, file, e.Msg)
	}
	return fmt.Sprintf("invalid %s file%s at byte %d: %s", e.Format, file, e.Offset, e.Msg)
}

// NoModelError is returned by [FromDir] when a directory holds neither a config.json nor any weight
// file (*.safetensors, *.gguf, *.bin) within the search depth.
type NoModelError struct {
	Dir string
}

func (e *NoModelError) Error() string {
	return fmt.Sprintf("no model found in %q: no config.json and no *.safetensors, *.gguf or *.bin weights "+
		"within %d directory levels; check the model path and that the download finished", e.Dir, maxWalkDepth)
}

// nameOf returns the file name behind r when r is an *os.File (or anything with Name), so that
// errors from the Read* functions name the file even when called directly.
func nameOf(r any) string {
	if n, ok := r.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}
