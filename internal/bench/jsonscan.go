package bench

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The responses are scanned in place: a scanner walks the bytes, looks only at the keys the
// benchmark needs and skips the rest without allocating. Why not encoding/json, and what it
// costs, is in docs/design/bench-json-scanner.md; FuzzChunkInfoMatchesEncodingJSON and
// FuzzOllamaLineMatchesEncodingJSON hold the scanner to encoding/json's reading.

// chunkInfo is what one OpenAI stream chunk (or error body) holds for the benchmark.
type chunkInfo struct {
	choices          bool   // a non-empty "choices" array
	text             []byte // choices[0].delta.content or choices[0].text, raw (inside the quotes)
	textEsc          bool   // text holds escapes
	usage            bool   // a non-null "usage" object
	promptTokens     int    // -1: absent
	completionTokens int    // -1: absent
	err              string // "error" (string or {"message"}), or "message" of an "object":"error" body
}

var errSyntax = errors.New("malformed JSON")

// parse scans one JSON object. Only the keys the benchmark needs are looked at; the rest
// are skipped without allocating.
func (in *chunkInfo) parse(b []byte) error {
	*in = chunkInfo{promptTokens: -1, completionTokens: -1}
	s := scanner{b: b}
	if !s.begin('{') {
		return errSyntax
	}
	var flatErr bool
	var message []byte
	var messageEsc bool
	for {
		k, ok := s.key()
		if !ok {
			break
		}
		switch string(k) {
		case "choices":
			if s.null() {
				continue
			}
			if !s.begin('[') {
				return errSyntax
			}
			first := true
			for s.more(']') {
				if first {
					in.choices = true
					first = false
					if !in.choice(&s) {
						return errSyntax
					}
				} else if !s.skip() {
					return errSyntax
				}
			}
		case "usage":
			if s.null() {
				continue
			}
			in.usage = true
			if !s.begin('{') {
				return errSyntax
			}
			for {
				k, ok := s.key()
				if !ok {
					break
				}
				switch string(k) {
				case "prompt_tokens":
					in.promptTokens = s.int()
				case "completion_tokens":
					in.completionTokens = s.int()
				default:
					if !s.skip() {
						return errSyntax
					}
				}
			}
		case "error":
			if s.null() {
				continue
			}
			in.err = s.errorValue()
			if in.err == "" {
				in.err = "error"
			}
		case "object":
			v, esc, ok := s.str()
			if !ok {
				if !s.skip() {
					return errSyntax
				}
				continue
			}
			flatErr = string(v) == "error" || esc && string(appendUnescaped(nil, v, esc)) == "error"
		case "message":
			v, esc, ok := s.str()
			if !ok {
				if !s.skip() {
					return errSyntax
				}
				continue
			}
			message, messageEsc = v, esc
		default:
			if !s.skip() {
				return errSyntax
			}
		}
		if s.bad {
			return errSyntax
		}
	}
	if s.bad {
		return errSyntax
	}
	if flatErr && in.err == "" {
		in.err = string(appendUnescaped(nil, message, messageEsc))
		if in.err == "" {
			in.err = "error"
		}
	}
	return nil
}

// choice scans choices[0]: {"delta":{"content":…}} (chat) or {"text":…} (completions).
func (in *chunkInfo) choice(s *scanner) bool {
	if s.null() {
		return true
	}
	if !s.begin('{') {
		return false
	}
	for {
		k, ok := s.key()
		if !ok {
			break
		}
		switch string(k) {
		case "delta", "message":
			if s.null() {
				continue
			}
			if !s.begin('{') {
				return false
			}
			for {
				k, ok := s.key()
				if !ok {
					break
				}
				if string(k) == "content" {
					if v, esc, ok := s.str(); ok {
						in.text, in.textEsc = v, esc
						continue
					}
				}
				if !s.skip() {
					return false
				}
			}
		case "text":
			if v, esc, ok := s.str(); ok {
				in.text, in.textEsc = v, esc
				continue
			}
			if !s.skip() {
				return false
			}
		default:
			if !s.skip() {
				return false
			}
		}
	}
	return !s.bad
}

func (in *chunkInfo) appendText(b []byte) []byte { return appendUnescaped(b, in.text, in.textEsc) }

// parseTrailingUsage reads the "usage" object of a large response whose last top-level key it
// is (OpenAI's embeddings: {"id",…,"data":[…vectors…],"usage":{…}}), without scanning the
// vectors. A key cannot hide inside a string (its quotes would be escaped; a match whose
// opening quote is escaped is the end of a key such as "x\"usage" and is refused), and the
// object must close the response, so a nested "usage" is not taken. It reports false when the shape
// is not that one; then the whole response is parsed.
func (in *chunkInfo) parseTrailingUsage(b []byte) bool {
	const key = `"usage"`
	if len(b) < 4096 || b[0] != '{' {
		return false
	}
	i := bytes.LastIndex(b, []byte(key))
	if i < 0 || !bytes.Contains(b[:i], []byte(`"data"`)) || bytes.Contains(b[:min(i, 256)], []byte(`"error"`)) {
		return false
	}
	if escapedAt(b, i) {
		return false // the end of a key such as "x\"usage"
	}
	// Re-use parse on a synthetic object: {"usage":…} followed by the response's closing brace.
	s := scanner{b: b, i: i + len(key)}
	s.ws()
	if s.i >= len(b) || b[s.i] != ':' {
		return false
	}
	s.i++
	start := s.i
	if !s.skip() {
		return false
	}
	end := s.i
	s.ws()
	if s.i != len(b)-1 || b[s.i] != '}' {
		return false // not the last key
	}
	var u chunkInfo
	obj := make([]byte, 0, 10+end-start)
	obj = append(append(append(obj, `{"usage":`...), b[start:end]...), '}')
	if u.parse(obj) != nil {
		return false
	}
	*in = u
	return true
}

// escapedAt reports whether the quote at b[i] is escaped: preceded by an odd number of
// backslashes.
func escapedAt(b []byte, i int) bool {
	n := 0
	for i-n-1 >= 0 && b[i-n-1] == '\\' {
		n++
	}
	return n%2 == 1
}

// ollamaLine is what one line of Ollama's NDJSON stream holds for the benchmark.
type ollamaLine struct {
	tokens          bool // non-empty message.content or message.thinking (or /api/generate's response)
	content         []byte
	contentEsc      bool
	done            bool
	evalCount       int // -1: absent
	promptEvalCount int // -1: absent
	err             string
}

func (in *ollamaLine) parse(b []byte) error {
	*in = ollamaLine{evalCount: -1, promptEvalCount: -1}
	s := scanner{b: b}
	if !s.begin('{') {
		return errSyntax
	}
	for {
		k, ok := s.key()
		if !ok {
			break
		}
		switch string(k) {
		case "message":
			if s.null() {
				continue
			}
			if !s.begin('{') {
				return errSyntax
			}
			for {
				k, ok := s.key()
				if !ok {
					break
				}
				switch string(k) {
				case "content", "thinking":
					v, esc, ok := s.str()
					if !ok {
						if !s.skip() {
							return errSyntax
						}
						continue
					}
					if len(v) > 0 {
						in.tokens = true
					}
					if string(k) == "content" {
						in.content, in.contentEsc = v, esc
					}
				default:
					if !s.skip() {
						return errSyntax
					}
				}
			}
		case "response":
			v, esc, ok := s.str()
			if !ok {
				if !s.skip() {
					return errSyntax
				}
				continue
			}
			if len(v) > 0 {
				in.tokens = true
			}
			in.content, in.contentEsc = v, esc
		case "done":
			in.done = s.literal("true")
			if !in.done && !s.literal("false") && !s.skip() {
				return errSyntax
			}
		case "eval_count":
			in.evalCount = s.int()
		case "prompt_eval_count":
			in.promptEvalCount = s.int()
		case "error":
			if s.null() {
				continue
			}
			in.err = s.errorValue()
			if in.err == "" {
				in.err = "error"
			}
		default:
			if !s.skip() {
				return errSyntax
			}
		}
		if s.bad {
			return errSyntax
		}
	}
	if s.bad {
		return errSyntax
	}
	return nil
}

// scanner walks JSON in place. Methods that fail set bad.
type scanner struct {
	b   []byte
	i   int
	bad bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// begin consumes the opening c ('{' or '[').
func (s *scanner) begin(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	s.bad = true
	return false
}

// more reports whether another element of the array follows (consuming the comma), or
// consumes the closing bracket and reports false.
func (s *scanner) more(end byte) bool {
	s.ws()
	if s.i >= len(s.b) {
		s.bad = true
		return false
	}
	switch s.b[s.i] {
	case end:
		s.i++
		return false
	case ',':
		s.i++
		s.ws()
		return true
	}
	return !s.bad
}

// key returns the next key of the current object and consumes its colon, or consumes the
// closing brace and returns false. A key with escapes (which no server writes) is returned
// unescaped, in a new slice.
func (s *scanner) key() ([]byte, bool) {
	if s.bad || !s.more('}') {
		return nil, false
	}
	k, esc, ok := s.str()
	if !ok {
		s.bad = true
		return nil, false
	}
	if esc {
		k = appendUnescaped(nil, k, true)
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		s.bad = true
		return nil, false
	}
	s.i++
	s.ws()
	return k, true
}

// null consumes a null literal.
func (s *scanner) null() bool { return s.literal("null") }

func (s *scanner) literal(lit string) bool {
	s.ws()
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// str consumes a string and returns its raw content (between the quotes) and whether it holds
// escapes. It returns ok=false without consuming anything when the value is not a string.
func (s *scanner) str() (raw []byte, esc, ok bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, false
	}
	j := s.i + 1
	q := bytes.IndexByte(s.b[j:], '"')
	if q >= 0 && bytes.IndexByte(s.b[j:j+q], '\\') < 0 {
		// Fast path: no escapes.
		raw = s.b[j : j+q]
		s.i = j + q + 1
		return raw, false, true
	}
	for j < len(s.b) {
		switch s.b[j] {
		case '"':
			raw = s.b[s.i+1 : j]
			s.i = j + 1
			return raw, esc, true
		case '\\':
			esc = true
			j += 2
			continue
		}
		j++
	}
	s.bad = true
	return nil, false, false
}

// int consumes an integer (or null: -1).
func (s *scanner) int() int {
	s.ws()
	if s.null() {
		return -1
	}
	neg := false
	if s.i < len(s.b) && s.b[s.i] == '-' {
		neg = true
		s.i++
	}
	start, v := s.i, 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		v = v*10 + int(s.b[s.i]-'0')
		s.i++
	}
	if s.i == start {
		s.bad = true
		return -1
	}
	// A fraction or exponent (not expected): skip it.
	for s.i < len(s.b) && strings.IndexByte(".eE+-0123456789", s.b[s.i]) >= 0 {
		s.i++
	}
	if neg {
		v = -v
	}
	return v
}

// skip consumes any value.
func (s *scanner) skip() bool {
	s.ws()
	if s.i >= len(s.b) {
		s.bad = true
		return false
	}
	switch c := s.b[s.i]; c {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		// Count brackets outside strings.
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			}
			s.i++
		}
		s.bad = true
		return false
	default:
		// number, true, false, null
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if s.i == start {
					s.bad = true
				}
				return !s.bad
			}
			s.i++
		}
		return s.i > start
	}
}

// errorValue reads an "error" value: a string, or an object's "message" (else its raw JSON).
func (s *scanner) errorValue() string {
	if v, esc, ok := s.str(); ok {
		return string(appendUnescaped(nil, v, esc))
	}
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '{' {
		sub := scanner{b: s.b, i: s.i}
		sub.begin('{')
		for {
			k, ok := sub.key()
			if !ok {
				break
			}
			if string(k) == "message" {
				if v, esc, ok := sub.str(); ok {
					msg := string(appendUnescaped(nil, v, esc))
					s.skip()
					return msg
				}
			}
			if !sub.skip() {
				break
			}
		}
	}
	if !s.skip() {
		return ""
	}
	return string(s.b[start:s.i])
}

// appendUnescaped appends the JSON string content raw (as str returned it), decoding escapes.
func appendUnescaped(b, raw []byte, esc bool) []byte {
	if !esc {
		return append(b, raw...)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			b = append(b, c)
			continue
		}
		i++
		switch raw[i] {
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'u':
			r, n := hex4(raw[i+1:])
			if n == 0 {
				b = append(b, '\\', 'u')
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if r2, n2 := hex4(raw[i+3:]); n2 > 0 {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							r = d
							i += 2 + n2
						}
					}
				}
				if utf16.IsSurrogate(r) {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default: // " \ /
			b = append(b, raw[i])
		}
	}
	return b
}

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}
