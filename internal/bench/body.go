package bench

import (
	"strings"
	"unicode/utf8"
)

// body writes r's request body for the client's API in one allocation, without
// encoding/json: the OpenAI chat (with image parts), completions and embeddings bodies as
// vllm bench serve sends them, or an Ollama /api/chat body.
func (c *Client) body(r Request) []byte {
	b := make([]byte, 0, len(r.Prompt)+256+imagesLen(r.Images))
	b = append(b, `{"model":`...)
	b = appendJSONString(b, c.t.Model)
	switch c.api {
	case APIEmbeddings:
		b = append(b, `,"input":`...)
		b = appendJSONString(b, r.Prompt)
		return append(b, '}')
	case APIOllama:
		b = append(b, `,"messages":[{"role":"user","content":`...)
		b = appendJSONString(b, r.Prompt)
		if len(r.Images) > 0 {
			b = append(b, `,"images":[`...)
			for i, img := range r.Images {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, ollamaImage(img))
			}
			b = append(b, ']')
		}
		b = append(b, `}],"stream":true`...)
		if r.OutputLen > 0 {
			b = append(b, `,"options":{"num_predict":`...)
			b = appendInt(b, r.OutputLen)
			b = append(b, '}')
		}
		return append(b, '}')
	case APICompletion:
		b = append(b, `,"prompt":`...)
		b = appendJSONString(b, r.Prompt)
	default:
		b = append(b, `,"messages":[{"role":"user","content":`...)
		if len(r.Images) == 0 {
			b = appendJSONString(b, r.Prompt)
		} else {
			b = append(b, `[{"type":"text","text":`...)
			b = appendJSONString(b, r.Prompt)
			b = append(b, '}')
			for _, img := range r.Images {
				b = append(b, `,{"type":"image_url","image_url":{"url":`...)
				b = appendJSONString(b, img)
				b = append(b, `}}`...)
			}
			b = append(b, ']')
		}
		b = append(b, `}]`...)
	}
	// vllm bench serve sends temperature 0 (greedy) on both OpenAI paths; ignore_eos makes
	// the engine produce exactly max_tokens (a vLLM extension; other servers ignore it).
	b = append(b, `,"temperature":0`...)
	if r.OutputLen > 0 {
		b = append(b, `,"max_tokens":`...)
		b = appendInt(b, r.OutputLen)
		b = append(b, `,"ignore_eos":true`...)
	}
	return append(b, `,"stream":true,"stream_options":{"include_usage":true}}`...)
}

func imagesLen(imgs []string) int {
	n := 0
	for _, s := range imgs {
		n += len(s) + 48
	}
	return n
}

// ollamaImage is a data URL's base64 payload, as Ollama's messages[].images wants it.
func ollamaImage(s string) string {
	if strings.HasPrefix(s, "data:") {
		if i := strings.Index(s, ";base64,"); i >= 0 {
			return s[i+len(";base64,"):]
		}
	}
	return s
}

func appendInt(b []byte, v int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (invalid UTF-8 becomes U+FFFD, as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
