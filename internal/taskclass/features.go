package taskclass

import (
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Features are a request's hashed features: bucket indexes and their values, L2-normalised,
// with the text each came from when the caller asked for it (for explanations).
type Features struct {
	Index []uint32
	Value []float32
	Names []string // parallel to Index when named; else nil
}

// Bounds on what is read of each part of an input: the classifier must stay well under a
// millisecond however long the prompt is.
const (
	askHead     = 3072 // the first bytes of the ask (and of a tool result)
	askTail     = 1024 // and its last bytes
	contextCap  = 768  // of each earlier turn
	systemCap   = 512
	contextKeep = 3 // earlier turns read, newest first
)

// Part weights: the ask decides, a tool result nearly as much, earlier turns and the system
// prompt only lean. The system prompt has its own namespace: the training corpus carries
// system prompts that say nothing of the task, so its words learn their own (small) weights.
const (
	weightAsk     = 1.0
	weightTool    = 0.8
	weightContext = 0.3
	weightSystem  = 0.3
)

// featurizer accumulates hashed features. It reuses its map between calls.
type featurizer struct {
	acc   map[uint32]float32
	names map[uint32]string // nil unless explaining
	words []string          // scratch
}

func newFeaturizer(named bool) *featurizer {
	f := &featurizer{acc: make(map[uint32]float32, 512)}
	if named {
		f.names = make(map[uint32]string)
	}
	return f
}

// hash is FNV-1a of ns and s, folded into the model's buckets.
func hash(ns byte, s string) uint32 {
	h := uint32(2166136261)
	h = (h ^ uint32(ns)) * 16777619
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h & (Buckets - 1)
}

func (f *featurizer) add(ns byte, s string, w float32) {
	i := hash(ns, s)
	f.acc[i] += w
	if f.names != nil {
		if _, ok := f.names[i]; !ok {
			f.names[i] = string(ns) + ":" + s
		}
	}
}

// features turns an input into normalised hashed features.
func (f *featurizer) features(in Input) Features {
	clear(f.acc)
	if f.names != nil {
		clear(f.names)
	}
	f.text('a', bound(in.Ask, askHead, askTail), weightAsk)
	if in.Tool != "" {
		f.text('a', bound(in.Tool, askHead, askTail), weightTool)
		f.add('m', "tool-result", weightTool)
	}
	for i, c := range in.Context {
		if i == contextKeep {
			break
		}
		f.text('a', bound(c, contextCap, 0), weightContext)
	}
	if in.System != "" {
		f.text('s', bound(in.System, systemCap, 0), weightSystem)
	}
	if in.Agent {
		f.add('m', "agent", 1)
	}
	f.add('m', "bias", 1)

	out := Features{Index: make([]uint32, 0, len(f.acc)), Value: make([]float32, 0, len(f.acc))}
	for i := range f.acc {
		out.Index = append(out.Index, i)
	}
	slices.Sort(out.Index) // sorted: similarity is a merge, and results do not depend on map order
	var norm float64
	for _, i := range out.Index {
		v := f.acc[i]
		out.Value = append(out.Value, v)
		norm += float64(v) * float64(v)
	}
	if norm > 0 {
		inv := float32(1 / math.Sqrt(norm))
		for k := range out.Value {
			out.Value[k] *= inv
		}
	}
	if f.names != nil {
		out.Names = make([]string, len(out.Index))
		for k, i := range out.Index {
			out.Names[k] = f.names[i]
		}
	}
	return out
}

// text adds the features of one part: words and word pairs (digits folded to their
// shape), character trigrams of longer words, runs of symbols, CJK characters and pairs,
// and the shape of the lines.
func (f *featurizer) text(ns byte, s string, w float32) {
	if s == "" {
		return
	}
	words := f.words[:0]
	prev := ""
	flush := func(tok string) {
		words = append(words, tok)
		f.add(ns, tok, w)
		if prev != "" {
			f.add(ns+1, prev+" "+tok, w*0.7)
		}
		prev = tok
	}
	var lower strings.Builder
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case isCJK(r):
			f.add(ns+2, string(r), w)
			if j := i + n; j < len(s) {
				if r2, n2 := utf8.DecodeRuneInString(s[j:]); isCJK(r2) {
					f.add(ns+2, s[i:j+n2], w)
				}
			}
			prev = ""
			i += n
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_':
			start := i
			lower.Reset()
			digits, letters, upper, under := 0, 0, 0, 0
			for i < len(s) {
				r, n = utf8.DecodeRuneInString(s[i:])
				if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_') || isCJK(r) {
					break
				}
				switch {
				case unicode.IsDigit(r):
					digits++
				case r == '_':
					under++
				default:
					letters++
					if unicode.IsUpper(r) {
						upper++
					}
				}
				lower.WriteRune(unicode.ToLower(r))
				i += n
			}
			tok := lower.String()
			if digits > 0 && letters == 0 {
				tok = "<num>"
				if digits > 4 {
					tok = "<longnum>"
				}
			} else if letters >= 4 && digits == 0 && under == 0 {
				f.trigrams(ns+3, tok, w*0.5)
			}
			if under > 0 && letters > 0 {
				f.add('m', "snake_case", w)
			}
			if upper > 0 && upper < letters && !unicode.IsUpper(rune(s[start])) {
				f.add('m', "camelCase", w)
			}
			flush(tok)
		case unicode.IsSpace(r):
			i += n
		default: // a run of symbols
			start := i
			for i < len(s) && i-start < 3 {
				r, n = utf8.DecodeRuneInString(s[i:])
				if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsSpace(r) || r == '_' || isCJK(r) {
					break
				}
				i += n
			}
			if i == start {
				i += n
			}
			f.add(ns+4, s[start:i], w)
			// punctuation between words keeps the word pair (". " resets it)
			if sym := s[start:i]; strings.ContainsAny(sym, ".?!;:\n") {
				prev = ""
			}
		}
	}
	f.words = words
	f.lines(s, w)
	f.shape(s, words, w)
}

// shape adds features that generalise beyond the words the corpus has: how many distinct
// software terms a part names, Latin words inside a text in another script (identifiers in a
// Japanese question), and code-shaped tokens (a.b, f(, --flag, `x`, paths, file names).
func (f *featurizer) shape(s string, words []string, w float32) {
	tech := 0
	for i, t := range words {
		if techTerms[t] && !slices.Contains(words[:i], t) {
			tech++
		}
	}
	switch {
	case tech >= 3:
		f.add('m', "tech=3+", w)
	case tech > 0:
		f.add('m', "tech="+string(rune('0'+tech)), w)
	}
	latin, other := 0, 0
	for _, r := range s {
		switch {
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'):
			latin++
		case r >= 0x370 && unicode.IsLetter(r): // Greek, Cyrillic, Arabic, Devanagari, CJK, Hangul…
			other++
		}
	}
	if other > 8 && latin > 0 {
		f.add('m', "latin-in-script="+frac(latin, latin+other), w)
	}
	var call, dotted, flag, tick, path bool
	for i := 1; i < len(s); i++ {
		c, p := s[i], s[i-1]
		switch {
		case c == '(' && (isIdent(p)):
			call = true
		case c == '.' && isIdent(p) && i+1 < len(s) && isIdent(s[i+1]) && s[i+1] > '9':
			dotted = true
		case c == '-' && p == '-' && i+1 < len(s) && isIdent(s[i+1]):
			flag = true
		case c == '`':
			tick = true
		case c == '/' && i+1 < len(s) && isIdent(s[i+1]) && (isIdent(p) || p == '.' || p == '~' || p == ' '):
			path = true
		}
	}
	for name, on := range map[string]bool{"call(": call, "a.b": dotted, "--flag": flag, "`tick`": tick, "/path": path} {
		if on {
			f.add('m', name, w)
		}
	}
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// trigrams adds the character trigrams of a word with boundary marks: they carry what a
// word means across inflections and languages ("programmieren", "programmation").
func (f *featurizer) trigrams(ns byte, word string, w float32) {
	var buf [64]rune
	rs := buf[:0]
	rs = append(rs, '<')
	for _, r := range word {
		if len(rs) == cap(buf)-1 {
			break
		}
		rs = append(rs, r)
	}
	rs = append(rs, '>')
	var b [12]byte
	for k := 0; k+3 <= len(rs); k++ {
		n := utf8.EncodeRune(b[:], rs[k])
		n += utf8.EncodeRune(b[n:], rs[k+1])
		n += utf8.EncodeRune(b[n:], rs[k+2])
		f.add(ns, string(b[:n]), w)
	}
}

// lines adds what the lines look like: code ends lines with ; { } ) and indents them,
// shells start them with $, errors have "at file:line".
func (f *featurizer) lines(s string, w float32) {
	n, code, indented, prompt, list := 0, 0, 0, 0, 0
	for line := range strings.Lines(s) {
		t := strings.TrimRight(line, " \t\r\n")
		if t == "" {
			continue
		}
		n++
		switch t[len(t)-1] {
		case ';', '{', '}', ')', '(', ',', '[', ']':
			code++
		}
		if strings.HasPrefix(t, "    ") || strings.HasPrefix(t, "\t") {
			indented++
		}
		lt := strings.TrimLeft(t, " \t")
		if strings.HasPrefix(lt, "$ ") || strings.HasPrefix(lt, "# ") && n > 1 || strings.HasPrefix(lt, "> ") {
			prompt++
		}
		if strings.HasPrefix(lt, "- ") || strings.HasPrefix(lt, "* ") || len(lt) > 2 && lt[0] >= '0' && lt[0] <= '9' && (lt[1] == '.' || lt[1] == ')') {
			list++
		}
	}
	f.add('m', "lines="+bucket(n), w)
	if n > 0 {
		f.add('m', "code-lines="+frac(code, n), w)
		f.add('m', "indented="+frac(indented, n), w)
		if prompt > 0 {
			f.add('m', "prompt-lines", w)
		}
		if list > 0 {
			f.add('m', "list-lines="+frac(list, n), w)
		}
	}
	f.add('m', "len="+bucket(len(s)/40), w)
}

func bucket(n int) string {
	switch {
	case n <= 1:
		return "1"
	case n <= 3:
		return "2-3"
	case n <= 8:
		return "4-8"
	case n <= 20:
		return "9-20"
	default:
		return "21+"
	}
}

func frac(k, n int) string {
	switch {
	case k == 0:
		return "0"
	case k*4 <= n:
		return "<25%"
	case k*2 <= n:
		return "<50%"
	default:
		return "50%+"
	}
}

func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r)
}

// bound keeps the first head and last tail bytes of s, cut on rune boundaries.
func bound(s string, head, tail int) string {
	if len(s) <= head+tail {
		return s
	}
	h := head
	for h > 0 && !utf8.RuneStart(s[h]) {
		h--
	}
	if tail == 0 {
		return s[:h]
	}
	t := len(s) - tail
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	return s[:h] + "\n" + s[t:]
}
