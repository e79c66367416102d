package hub

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Match reports whether path is selected by include and exclude, with huggingface_hub's
// allow_patterns/ignore_patterns semantics (utils/_paths.py filter_repo_objects): the path must match some
// include pattern (an empty include selects everything — unlike huggingface_hub, where an empty list selects
// nothing) and no exclude pattern. A pattern ending in "/" is the pattern followed by "*" (a directory).
//
// Patterns are Python fnmatch patterns, case-sensitive as on POSIX: "*" matches any run of characters
// including "/", "?" one character, "[seq]" one character in seq (ranges "a-z"; "[!seq]" negates; a "]"
// first in the set is literal; an unclosed "[" is literal). There is no escape character.
func Match(path string, include, exclude []string) bool {
	if len(include) > 0 && !slices.ContainsFunc(include, func(p string) bool { return fnmatch(path, p) }) {
		return false
	}
	return !slices.ContainsFunc(exclude, func(p string) bool { return fnmatch(path, p) })
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota
	tokAny               // ?
	tokStar              // *
	tokClass             // [...]
)

type runeRange struct{ lo, hi rune }

type token struct {
	kind   tokenKind
	r      rune        // tokLiteral
	negate bool        // tokClass
	set    []runeRange // tokClass
}

func (t *token) matches(r rune) bool {
	switch t.kind {
	case tokLiteral:
		return r == t.r
	case tokAny:
		return true
	case tokClass:
		in := slices.ContainsFunc(t.set, func(rr runeRange) bool { return rr.lo <= r && r <= rr.hi })
		return in != t.negate
	}
	return false
}

// fnmatch is Python's fnmatch.fnmatchcase(name, pattern) on POSIX (pattern with the directory rule applied).
func fnmatch(name, pattern string) bool {
	if strings.HasSuffix(pattern, "/") {
		pattern += "*"
	}
	toks := compile([]rune(pattern))
	s := []rune(name)
	// Iterative matching with backtracking to the last star: O(len(s)·len(toks)).
	n, p := 0, 0
	starP, starN := -1, 0
	for n < len(s) {
		if p < len(toks) {
			if toks[p].kind == tokStar {
				starP, starN = p, n
				p++
				continue
			}
			if toks[p].matches(s[n]) {
				p++
				n++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		n, p = starN, starP+1
	}
	for p < len(toks) && toks[p].kind == tokStar {
		p++
	}
	return p == len(toks)
}

// compile tokenises a pattern as Python 3's fnmatch.translate does.
func compile(pat []rune) []token {
	var toks []token
	for i := 0; i < len(pat); {
		c := pat[i]
		i++
		switch c {
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != tokStar {
				toks = append(toks, token{kind: tokStar})
			}
		case '?':
			toks = append(toks, token{kind: tokAny})
		case '[':
			t, next, ok := compileClass(pat, i)
			if !ok {
				toks = append(toks, token{kind: tokLiteral, r: '['})
				continue
			}
			toks = append(toks, t)
			i = next
		default:
			toks = append(toks, token{kind: tokLiteral, r: c})
		}
	}
	return toks
}

// compileClass parses the set starting at pat[i] (just after "["). It returns ok=false for an unclosed "[",
// which is then a literal. The chunking follows fnmatch.translate: "-" right after "[" or "[!" and "-" right
// before "]" are literal; a reversed range ("z-a") is removed together with its two ends.
func compileClass(pat []rune, i int) (token, int, bool) {
	n := len(pat)
	j := i
	if j < n && pat[j] == '!' {
		j++
	}
	if j < n && pat[j] == ']' {
		j++
	}
	for j < n && pat[j] != ']' {
		j++
	}
	if j >= n {
		return token{}, 0, false
	}
	stuff := pat[i:j]
	var chunks [][]rune
	if !slices.Contains(stuff, '-') {
		chunks = [][]rune{slices.Clone(stuff)}
	} else {
		start := i
		k := i + 1
		if pat[i] == '!' {
			k = i + 2
		}
		for {
			h := -1
			if k < j {
				if x := slices.Index(pat[k:j], '-'); x >= 0 {
					h = k + x
				}
			}
			if h < 0 {
				break
			}
			chunks = append(chunks, slices.Clone(pat[start:h]))
			start = h + 1
			k = h + 3
		}
		if chunk := pat[start:j]; len(chunk) > 0 {
			chunks = append(chunks, slices.Clone(chunk))
		} else {
			chunks[len(chunks)-1] = append(chunks[len(chunks)-1], '-')
		}
		// Remove empty (reversed) ranges.
		for k := len(chunks) - 1; k > 0; k-- {
			prev, cur := chunks[k-1], chunks[k]
			if len(prev) == 0 || len(cur) == 0 || prev[len(prev)-1] <= cur[0] {
				continue
			}
			chunks[k-1] = append(prev[:len(prev)-1:len(prev)-1], cur[1:]...)
			chunks = slices.Delete(chunks, k, k+1)
		}
	}
	t := token{kind: tokClass}
	if len(chunks) > 0 && len(chunks[0]) > 0 && chunks[0][0] == '!' {
		t.negate = true
		chunks[0] = chunks[0][1:]
	}
	// Chunks are joined by range hyphens: the last rune of a chunk and the first rune of the next are the ends
	// of a range. A hyphen with no unused rune before it (empty chunk, or a one-rune chunk already ending a
	// range) is a literal "-", as in Python's re.
	last := len(chunks) - 1
	pendingLo, havePending := rune(0), false
	for ci, ch := range chunks {
		for ri, r := range ch {
			switch {
			case havePending && ri == 0:
				t.set = append(t.set, runeRange{pendingLo, r})
				havePending = false
			case ci < last && ri == len(ch)-1:
				pendingLo, havePending = r, true
			default:
				t.set = append(t.set, runeRange{r, r})
			}
		}
		if ci < last && !havePending {
			t.set = append(t.set, runeRange{'-', '-'})
		}
	}
	return t, j + 1, true
}

// IsCommit reports whether rev is a full commit hash (40 lower-case hex digits), which needs no resolving.
func IsCommit(rev string) bool { return isHex(rev, 40) }

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidateRepoID checks a repository id as huggingface_hub's validate_repo_id does: "name" or
// "namespace/name", each of letters, digits, "_", "-" and ".", starting and ending with a letter, digit or
// "_", the name at most 96 characters, and no "--" or ".." anywhere (they would be ambiguous in cache paths).
func ValidateRepoID(repo string) error {
	bad := func(why string) error {
		return fmt.Errorf("invalid repository id %q: %s; use \"namespace/name\" as shown on the model's page", repo, why)
	}
	if repo == "" {
		return bad("empty")
	}
	segs := strings.Split(repo, "/")
	if len(segs) > 2 {
		return bad("more than one \"/\"")
	}
	if strings.Contains(repo, "--") || strings.Contains(repo, "..") {
		return bad(`"--" and ".." are not allowed`)
	}
	word := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for _, s := range segs {
		if s == "" {
			return bad("empty namespace or name")
		}
		if len(s) > 96 {
			return bad("longer than 96 characters")
		}
		for i := 0; i < len(s); i++ {
			if !word(s[i]) && s[i] != '-' && s[i] != '.' {
				return bad(fmt.Sprintf("character %q is not allowed", s[i]))
			}
		}
		if !word(s[0]) || !word(s[len(s)-1]) {
			return bad("must start and end with a letter, digit or \"_\"")
		}
	}
	return nil
}

// safePath reports whether a repository file path can be stored below a directory: relative, "/"-separated,
// no empty, "." or ".." segment, no backslash, valid UTF-8 without control characters (NUL included).
func safePath(p string) bool {
	if p == "" || !utf8.ValidString(p) || strings.ContainsRune(p, '\\') || strings.IndexFunc(p, unicode.IsControl) >= 0 {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// safeETag reports whether an ETag can name a blob file: 1-255 of [A-Za-z0-9._-], not starting with ".".
func safeETag(s string) bool {
	if s == "" || len(s) > 255 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '.' && c != '_' && c != '-' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}
