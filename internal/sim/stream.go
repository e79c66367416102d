package sim

import (
	"bytes"
	"net/http"
)

// streamBuf is a streamed response in the making: events are batched in buf and sent with
// one write and one flush, so the engine driver's token bursts cost one syscall.
type streamBuf struct {
	w       http.ResponseWriter
	started bool
	buf     bytes.Buffer
}

// begin sends the status and headers once; it reports whether this call started the stream.
func (s *streamBuf) begin(contentType string) bool {
	if s.started {
		return false
	}
	s.started = true
	s.w.Header().Set("Content-Type", contentType)
	s.w.WriteHeader(http.StatusOK)
	return true
}

// data queues one server-sent event: data: <payload>, then a blank line.
func (s *streamBuf) data(payload []byte) {
	s.buf.WriteString("data: ")
	s.buf.Write(payload)
	s.buf.WriteString("\n\n")
}

// send writes what is queued and flushes it to the client.
func (s *streamBuf) send() error {
	if s.buf.Len() == 0 {
		return nil
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return err
	}
	s.buf.Reset()
	return http.NewResponseController(s.w).Flush()
}
