package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// countTokens is the approximate tokenizer: ceil(len(word)/4) tokens per whitespace-separated
// word, at least one per word.
func countTokens(s string) int {
	n := 0
	for _, w := range strings.Fields(s) {
		n += (len(w) + 3) / 4
	}
	return n
}

// vocabulary is the pseudo-text's words; a word's index is its token ID.
var vocabulary = strings.Fields(`the of and to in is was for on that with as by at from his it an were are which
this be or also has had first one their its new after who they two her she been other when time during there
into school more may years over only year most would world city some where between later three state such
then national used made known under many university united while part season team these american than
film second born south became states war through being including both before north high however people
family early history album area them series against until since district county name work life group music
following number company several four called played released career league game government house each based
day same won use station club international town located population general college end along english
within side members five local took around just back development public record following small team land
light river water power field order system human form level point model token engine batch cache query
stream answer signal vector matrix kernel memory compute layer weight value green blue red yellow white
black bright dark quiet loud fast slow early late simple clear open close north east west summer winter
spring autumn morning evening garden forest mountain ocean island valley bridge castle harbor market
library museum theater palace temple village paper stone glass metal wood cloud storm rain snow wind fire
earth star moon sun planet orbit rocket engine signal`)

// tokenID is the ID /tokenize gives one word piece: its vocabulary index, or a hash above it.
func tokenID(piece string) int {
	for i, w := range vocabulary {
		if w == piece {
			return i
		}
	}
	h := fnv.New32a()
	h.Write([]byte(piece))
	return len(vocabulary) + int(h.Sum32()%100000)
}

// tokenize returns IDs consistent with countTokens: each word split into 4-byte pieces.
func tokenize(s string) []int {
	ids := []int{}
	for _, w := range strings.Fields(s) {
		if tokenID(w) < len(vocabulary) {
			ids = append(ids, tokenID(w))
			continue
		}
		for i := 0; i < len(w); i += 4 {
			ids = append(ids, tokenID(w[i:min(i+4, len(w))]))
		}
	}
	return ids
}

// detokenize maps IDs back to text: vocabulary words, "<unk>" for others.
func detokenize(ids []int) string {
	words := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && id < len(vocabulary) {
			words[i] = vocabulary[id]
		} else {
			words[i] = "<unk>"
		}
	}
	return strings.Join(words, " ")
}

// generator produces one choice's deterministic pseudo-text.
type generator struct{ key uint64 }

func newGenerator(seed int64, content string, choice int) generator {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(seed))
	binary.LittleEndian.PutUint64(b[8:], uint64(choice))
	h.Write(b[:])
	h.Write([]byte(content))
	return generator{key: h.Sum64()}
}

func (g generator) at(i int) uint64 {
	// splitmix64 of key+i: cheap, well mixed, stateless.
	z := g.key + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// piece is output token i's text: a word with a leading space except for the first.
func (g generator) piece(i int) string {
	w := vocabulary[g.at(i)%uint64(len(vocabulary))]
	if i == 0 {
		return w
	}
	return " " + w
}

// naturalLength is where the model would emit EOS on its own: 16–527 tokens.
func (g generator) naturalLength() int { return 16 + int(g.at(-2)%512) }

// plan decides how many tokens a choice generates and why it ends.
func (g generator) plan(maxTokens int, ignoreEOS bool, stop []string) (n int, finish string, stopStr string) {
	n, finish = maxTokens, "length"
	if !ignoreEOS && g.naturalLength() < maxTokens {
		n, finish = g.naturalLength(), "stop"
	}
	if len(stop) == 0 {
		return n, finish, ""
	}
	var text strings.Builder
	for i := range n {
		text.WriteString(g.piece(i))
		for _, s := range stop {
			if s != "" && strings.Contains(text.String(), s) {
				return i + 1, "stop", s
			}
		}
	}
	return n, finish, ""
}

// render is a choice's text for n tokens, cut before stopStr when it is set, with each token's
// end offset in it (clipped to the cut).
func (g generator) render(n int, stopStr string) (text string, ends []int) {
	var b strings.Builder
	ends = make([]int, n)
	for i := range n {
		b.WriteString(g.piece(i))
		ends[i] = b.Len()
	}
	text = b.String()
	if stopStr != "" {
		if i := strings.Index(text, stopStr); i >= 0 {
			text = text[:i]
		}
	}
	for i := range ends {
		ends[i] = min(ends[i], len(text))
	}
	return text, ends
}

// visionTokens is how many tokens Qwen2.5-VL gives an image: one per 28×28 patch.
func visionTokens(url string) int {
	const fallback = 1024
	rest, ok := strings.CutPrefix(url, "data:")
	if !ok {
		return fallback
	}
	_, data, ok := strings.Cut(rest, ";base64,")
	if !ok {
		return fallback
	}
	head := data[:min(len(data), 64<<10)]
	head = head[:len(head)/4*4]
	raw, err := base64.StdEncoding.DecodeString(head)
	if err != nil && len(raw) == 0 {
		return fallback
	}
	w, h := imageSize(raw)
	if w <= 0 || h <= 0 {
		return fallback
	}
	n := ((w + 27) / 28) * ((h + 27) / 28)
	return max(4, min(n, 16384))
}

// imageSize reads a PNG, GIF or JPEG header's dimensions; 0, 0 when it cannot.
func imageSize(b []byte) (w, h int) {
	switch {
	case len(b) >= 24 && bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return int(binary.BigEndian.Uint32(b[16:20])), int(binary.BigEndian.Uint32(b[20:24]))
	case len(b) >= 10 && bytes.HasPrefix(b, []byte("GIF8")):
		return int(binary.LittleEndian.Uint16(b[6:8])), int(binary.LittleEndian.Uint16(b[8:10]))
	case len(b) >= 4 && b[0] == 0xff && b[1] == 0xd8:
		for i := 2; i+9 < len(b); {
			if b[i] != 0xff {
				return 0, 0
			}
			marker := b[i+1]
			size := int(binary.BigEndian.Uint16(b[i+2 : i+4]))
			if marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc {
				return int(binary.BigEndian.Uint16(b[i+7 : i+9])), int(binary.BigEndian.Uint16(b[i+5 : i+7]))
			}
			i += 2 + size
		}
	}
	return 0, 0
}

// unitVector is text's deterministic unit vector of dim components.
func unitVector(seed int64, text string, dim int) []float32 {
	g := newGenerator(seed, text, -1)
	v := make([]float64, dim)
	var norm float64
	for i := range v {
		v[i] = float64(g.at(i)>>11)/(1<<53)*2 - 1
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	out := make([]float32, dim)
	for i := range v {
		out[i] = float32(v[i] / norm)
	}
	return out
}

// encodeFloat32s is vLLM's base64 encoding_format: little-endian float32s, base64.
func encodeFloat32s(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// logprob is output token i's log probability: in (-3, 0].
func (g generator) logprob(i int) float64 { return -float64(g.at(i|1<<28)%30000) / 10000 }

// toolCallID is a tool call's ID in vLLM's form.
func (g generator) toolCallID() string {
	return fmt.Sprintf("chatcmpl-tool-%016x%016x", g.at(-3), g.at(-4))
}

// fill returns a JSON document valid against schema (a JSON Schema subset: type, properties,
// required, items, enum, const, anyOf/oneOf): objects get every listed and required property,
// each filled by its type. An empty or unreadable schema gives {"answer": <text>}.
func (g generator) fill(schema json.RawMessage) string {
	var sc map[string]any
	if len(schema) == 0 || json.Unmarshal(schema, &sc) != nil {
		sc = map[string]any{"type": "object", "properties": map[string]any{"answer": map[string]any{"type": "string"}}}
	}
	n := 0
	b, _ := json.Marshal(g.value(sc, &n, 0))
	return string(b)
}

func (g generator) value(sc map[string]any, n *int, depth int) any {
	*n++
	k := *n
	if c, ok := sc["const"]; ok {
		return c
	}
	if e, ok := sc["enum"].([]any); ok && len(e) > 0 {
		return e[g.at(k)%uint64(len(e))]
	}
	for _, key := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := sc[key].([]any); ok && len(alts) > 0 {
			if a, ok := alts[0].(map[string]any); ok {
				return g.value(a, n, depth+1)
			}
		}
	}
	typ, _ := sc["type"].(string)
	if types, ok := sc["type"].([]any); ok {
		for _, t := range types {
			if s, _ := t.(string); s != "null" {
				typ = s
				break
			}
		}
	}
	if typ == "" {
		if _, ok := sc["properties"]; ok {
			typ = "object"
		}
	}
	switch typ {
	case "object":
		out := map[string]any{}
		if depth > 8 {
			return out
		}
		props, _ := sc["properties"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(props)) { // sorted: the same values every run
			ps, _ := props[name].(map[string]any)
			out[name] = g.value(ps, n, depth+1)
		}
		req, _ := sc["required"].([]any)
		for _, r := range req {
			if name, ok := r.(string); ok {
				if _, ok := out[name]; !ok {
					out[name] = g.value(map[string]any{"type": "string"}, n, depth+1)
				}
			}
		}
		return out
	case "array":
		items, _ := sc["items"].(map[string]any)
		if depth > 8 {
			return []any{}
		}
		return []any{g.value(items, n, depth+1)}
	case "integer":
		return int(g.at(k) % 100)
	case "number":
		return float64(g.at(k)%10000) / 100
	case "boolean":
		return g.at(k)%2 == 0
	case "null":
		return nil
	}
	words := make([]string, 3)
	for i := range words {
		words[i] = vocabulary[g.at(k<<4|i)%uint64(len(vocabulary))]
	}
	return strings.Join(words, " ")
}

// structured splits text into tokens of up to 4 bytes (whole runes) and keeps at most limit
// of them: finish is done when all fit, "length" when cut.
func structured(text string, limit int, done string) (string, []int, string) {
	var ends []int
	for i := 0; i < len(text); {
		j := min(i+4, len(text))
		for j < len(text) && !utf8.RuneStart(text[j]) {
			j++
		}
		ends = append(ends, j)
		i = j
	}
	if len(ends) > limit {
		ends = ends[:limit]
		return text[:ends[limit-1]], ends, "length"
	}
	return text, ends, done
}
