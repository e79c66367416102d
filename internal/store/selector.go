package store

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Selector is a parsed Kubernetes label selector: a conjunction of requirements. The zero value matches
// everything.
type Selector struct {
	reqs []requirement
}

type operator int

const (
	opEquals    operator = iota // key=value, key==value
	opNotEquals                 // key!=value (also matches when key is absent)
	opIn                        // key in (v1,v2)
	opNotIn                     // key notin (v1,v2) (also matches when key is absent)
	opExists                    // key
	opNotExists                 // !key
)

type requirement struct {
	key    string
	op     operator
	values []string // one for = and !=; sorted and unique for in and notin; none otherwise
}

func (r requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.key]
	switch r.op {
	case opEquals:
		return ok && v == r.values[0]
	case opNotEquals:
		return !ok || v != r.values[0]
	case opIn:
		return ok && slices.Contains(r.values, v)
	case opNotIn:
		return !ok || !slices.Contains(r.values, v)
	case opExists:
		return ok
	default: // opNotExists
		return !ok
	}
}

func (r requirement) String() string {
	switch r.op {
	case opEquals:
		return r.key + "=" + r.values[0]
	case opNotEquals:
		return r.key + "!=" + r.values[0]
	case opIn:
		return r.key + " in (" + strings.Join(r.values, ",") + ")"
	case opNotIn:
		return r.key + " notin (" + strings.Join(r.values, ",") + ")"
	case opExists:
		return r.key
	default: // opNotExists
		return "!" + r.key
	}
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.reqs {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

// String returns the canonical form: requirements sorted by key, set values sorted, "==" written "=".
// Parsing it yields an equivalent selector. The zero selector is "".
func (s Selector) String() string {
	reqs := slices.Clone(s.reqs)
	slices.SortStableFunc(reqs, func(a, b requirement) int { return strings.Compare(a.key, b.key) })
	parts := make([]string, len(reqs))
	for i, r := range reqs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// ParseSelector parses a label selector in Kubernetes syntax: comma-separated requirements, each one of
// "a=b", "a==b", "a!=b", "a in (x,y)", "a notin (x)", "a" or "!a". Errors give the byte offset of the problem.
func ParseSelector(s string) (Selector, error) {
	p := &parser{src: s, toks: lex(s)}
	sel, err := p.parse()
	if err != nil {
		return Selector{}, fmt.Errorf("label selector %q: %w", s, err)
	}
	return sel, nil
}

type tokenKind int

const (
	tokEnd tokenKind = iota
	tokIdent
	tokComma
	tokOpen  // (
	tokClose // )
	tokEq    // = or ==
	tokNotEq // !=
	tokNot   // !
)

type token struct {
	kind tokenKind
	text string
	pos  int // byte offset in the selector
}

// lex splits s into tokens. It cannot fail: anything that is not blank or punctuation is part of an
// identifier, and identifiers are validated by the parser, which knows whether it expects a key or a value.
func lex(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == ',':
			toks = append(toks, token{tokComma, ",", i})
			i++
		case c == '(':
			toks = append(toks, token{tokOpen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tokClose, ")", i})
			i++
		case c == '=' && strings.HasPrefix(s[i:], "=="):
			toks = append(toks, token{tokEq, "==", i})
			i += 2
		case c == '=':
			toks = append(toks, token{tokEq, "=", i})
			i++
		case c == '!' && strings.HasPrefix(s[i:], "!="):
			toks = append(toks, token{tokNotEq, "!=", i})
			i += 2
		case c == '!':
			toks = append(toks, token{tokNot, "!", i})
			i++
		default:
			j := i + 1
			for j < len(s) && !strings.ContainsRune(" \t\n\r,()=!", rune(s[j])) {
				j++
			}
			toks = append(toks, token{tokIdent, s[i:j], i})
			i = j
		}
	}
	return append(toks, token{tokEnd, "", len(s)})
}

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEnd {
		p.i++
	}
	return t
}

func errAt(t token, format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", t.pos, fmt.Sprintf(format, args...))
}

// describe names a token for an error message.
func describe(t token) string {
	if t.kind == tokEnd {
		return "end of selector"
	}
	return fmt.Sprintf("%q", t.text)
}

func (p *parser) parse() (Selector, error) {
	var sel Selector
	if p.peek().kind == tokEnd {
		return sel, nil // "" or blanks: everything
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return Selector{}, err
		}
		sel.reqs = append(sel.reqs, r)
		switch t := p.next(); t.kind {
		case tokEnd:
			return sel, nil
		case tokComma:
		default:
			return Selector{}, errAt(t, `expected "," or end of selector, found %s`, describe(t))
		}
	}
}

func (p *parser) requirement() (requirement, error) {
	t := p.next()
	switch t.kind {
	case tokNot:
		k := p.next()
		if k.kind != tokIdent {
			return requirement{}, errAt(k, `expected label key after "!", found %s`, describe(k))
		}
		if err := checkKey(k); err != nil {
			return requirement{}, err
		}
		return requirement{key: k.text, op: opNotExists}, nil
	case tokIdent:
	default:
		return requirement{}, errAt(t, `expected label key or "!", found %s`, describe(t))
	}
	if err := checkKey(t); err != nil {
		return requirement{}, err
	}
	r := requirement{key: t.text}
	switch op := p.peek(); {
	case op.kind == tokEnd || op.kind == tokComma:
		r.op = opExists
	case op.kind == tokEq || op.kind == tokNotEq:
		p.next()
		r.op = opEquals
		if op.kind == tokNotEq {
			r.op = opNotEquals
		}
		v := token{kind: tokIdent, pos: op.pos + len(op.text)} // "a=" compares with the empty value
		if p.peek().kind == tokIdent {
			v = p.next()
		} else if k := p.peek().kind; k != tokEnd && k != tokComma {
			return requirement{}, errAt(p.peek(), "expected value after %q, found %s", op.text, describe(p.peek()))
		}
		if err := checkValue(v); err != nil {
			return requirement{}, err
		}
		r.values = []string{v.text}
	case op.kind == tokIdent && (op.text == "in" || op.text == "notin"):
		p.next()
		r.op = opIn
		if op.text == "notin" {
			r.op = opNotIn
		}
		values, err := p.set(op.text)
		if err != nil {
			return requirement{}, err
		}
		r.values = values
	default:
		return requirement{}, errAt(op, `expected "=", "==", "!=", "in", "notin", "," or end of selector after label key %q, found %s`,
			t.text, describe(op))
	}
	return r, nil
}

// set parses "(v1, v2, ...)" after in or notin and returns the values sorted and unique.
func (p *parser) set(op string) ([]string, error) {
	if t := p.next(); t.kind != tokOpen {
		return nil, errAt(t, `expected "(" after %q`, op)
	}
	var values []string
	for {
		v := p.next()
		if v.kind != tokIdent {
			return nil, errAt(v, "expected value in %q list, found %s", op, describe(v))
		}
		if err := checkValue(v); err != nil {
			return nil, err
		}
		values = append(values, v.text)
		switch t := p.next(); t.kind {
		case tokComma:
		case tokClose:
			slices.Sort(values)
			return slices.Compact(values), nil
		default:
			return nil, errAt(t, `expected "," or ")" in %q list, found %s`, op, describe(t))
		}
	}
}

var (
	// labelName is a label value or the name part of a key: letters, digits, '-', '_' and '.', starting
	// and ending with a letter or digit.
	labelName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// dnsSubdomain is the optional prefix of a key, as in "citadel.dev/model".
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

const nameRule = "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"

func checkKey(t token) error {
	prefix, name, hasPrefix := strings.Cut(t.text, "/")
	if !hasPrefix {
		name = prefix
	} else if len(prefix) > 253 || !dnsSubdomain.MatchString(prefix) {
		return errAt(t, "invalid label key %q: the prefix before \"/\" must be a lower-case DNS subdomain such as citadel.dev", t.text)
	}
	if len(name) > 63 || !labelName.MatchString(name) {
		return errAt(t, "invalid label key %q: the name must be %s", t.text, nameRule)
	}
	return nil
}

func checkValue(t token) error {
	if t.text != "" && (len(t.text) > 63 || !labelName.MatchString(t.text)) {
		return errAt(t, "invalid label value %q: must be empty or %s", t.text, nameRule)
	}
	return nil
}
