package engine

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// A runner's command is often a shell wrapper (sh -c, bash -lc -- SCRIPT). This file
// reads such scripts: shellScript finds the script, simpleCommand splits a script that is
// one simple command into its words as the shell would, looseFields reads the words of any
// script for flags, and rewriteScriptFlag changes a flag's value in a script's text.

var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true}

// shellScript finds the script of `sh [-opts] -c [--] SCRIPT [args…]`.
func shellScript(argv []string) (int, bool) {
	if len(argv) < 2 || !shells[filepath.Base(argv[0])] {
		return 0, false
	}
	sawC := false
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--" || a == "-":
			if sawC && i+1 < len(argv) {
				return i + 1, true
			}
			return 0, false
		case a == "-o" || a == "+o":
			i++
		case strings.HasPrefix(a, "--"):
			// a long option (--login, --norc)
		case strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+"):
			if strings.ContainsRune(a[1:], 'c') {
				sawC = true
			}
		default:
			if sawC {
				return i, true
			}
			return 0, false
		}
	}
	return 0, false
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func isAssignment(w string) bool {
	k, _, ok := strings.Cut(w, "=")
	return ok && nameRE.MatchString(k)
}

// simpleCommand splits a shell script that is one simple command into its
// words, as the shell would: quotes, backslashes, line continuations,
// comments, and $VAR / ${VAR} of variables lookup knows. Anything else
// (operators, several commands, command substitution, globs, unknown or
// special variables, word splitting of an expansion) returns why not.
func simpleCommand(script string, lookup func(string) (string, bool)) (words []string, why string) {
	var cur strings.Builder
	inWord, ended := false, false // ended: a newline after the first command's words
	endWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	start := func() string {
		if ended {
			return "it has more than one command"
		}
		inWord = true
		return ""
	}
	// expand reads a parameter expansion at script[i] == '$'; it returns the
	// index after it.
	expand := func(i int, quoted bool) (int, string) {
		rest := script[i+1:]
		var name string
		n := 0
		switch {
		case strings.HasPrefix(rest, "("):
			return 0, "it uses command substitution $(…)"
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return 0, "it has an unterminated ${"
			}
			name, n = rest[1:end], end+1
		default:
			for n < len(rest) && (rest[n] == '_' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || n > 0 && rest[n] >= '0' && rest[n] <= '9') {
				n++
			}
			name = rest[:n]
			if name == "" {
				if quoted && (len(rest) == 0 || rest[0] == '"') {
					cur.WriteByte('$')
					return i + 1, ""
				}
				return 0, "it uses a special parameter"
			}
		}
		if !nameRE.MatchString(name) {
			return 0, fmt.Sprintf("it uses the expansion ${%s}", name)
		}
		v, ok := lookup(name)
		if !ok {
			return 0, fmt.Sprintf("it uses $%s, which the launch does not define", name)
		}
		if !quoted && strings.ContainsAny(v, " \t\n*?[") {
			return 0, fmt.Sprintf("unquoted $%s would be split into words", name)
		}
		cur.WriteString(v)
		return i + 1 + n, ""
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
			i++
		case c == '\n':
			endWord()
			if len(words) > 0 {
				ended = true
			}
			i++
		case c == '\\':
			if i+1 < len(script) && script[i+1] == '\n' {
				i += 2
				continue
			}
			if why := start(); why != "" {
				return nil, why
			}
			if i+1 < len(script) {
				cur.WriteByte(script[i+1])
			}
			i += 2
		case c == '#' && !inWord:
			for i < len(script) && script[i] != '\n' {
				i++
			}
		case c == '\'':
			if why := start(); why != "" {
				return nil, why
			}
			end := strings.IndexByte(script[i+1:], '\'')
			if end < 0 {
				return nil, "it has an unterminated single quote"
			}
			cur.WriteString(script[i+1 : i+1+end])
			i += end + 2
		case c == '"':
			if why := start(); why != "" {
				return nil, why
			}
			i++
			for {
				if i >= len(script) {
					return nil, "it has an unterminated double quote"
				}
				d := script[i]
				if d == '"' {
					i++
					break
				}
				switch d {
				case '\\':
					if i+1 < len(script) && strings.IndexByte("$`\"\\\n", script[i+1]) >= 0 {
						if script[i+1] != '\n' {
							cur.WriteByte(script[i+1])
						}
						i += 2
						continue
					}
					cur.WriteByte(d)
					i++
				case '`':
					return nil, "it uses command substitution `…`"
				case '$':
					var why string
					if i, why = expand(i, true); why != "" {
						return nil, why
					}
				default:
					cur.WriteByte(d)
					i++
				}
			}
		case c == '$':
			if why := start(); why != "" {
				return nil, why
			}
			var why string
			if i, why = expand(i, false); why != "" {
				return nil, why
			}
		case strings.IndexByte(";&|<>()`", c) >= 0:
			return nil, fmt.Sprintf("it uses the shell operator %q", c)
		case strings.IndexByte("*?[{}", c) >= 0:
			return nil, fmt.Sprintf("it uses the pattern character %q", c)
		case c == '~' && !inWord:
			return nil, "it uses ~ expansion"
		default:
			if why := start(); why != "" {
				return nil, why
			}
			cur.WriteByte(c)
			i++
		}
	}
	endWord()
	if len(words) == 0 {
		return nil, "it is empty"
	}
	return words, ""
}

// looseFields splits a script into words for reading flags: continuations
// joined, quotes dropped, $VAR and ${VAR} of known variables substituted.
func looseFields(script string, lookup func(string) (string, bool)) []string {
	script = strings.ReplaceAll(script, "\\\n", " ")
	fields := strings.Fields(script)
	for i, f := range fields {
		f = strings.NewReplacer(`"`, "", `'`, "").Replace(f)
		fields[i] = varRE.ReplaceAllStringFunc(f, func(m string) string {
			name := strings.Trim(m, "${}")
			if v, ok := lookup(name); ok {
				return v
			}
			return m
		})
	}
	return fields
}

var varRE = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// rewriteScriptFlag sets the value of a flag (any of names) in a script's
// text. A value that is a reference to keepVar ($PORT, ${PORT}) is left: the
// variable already holds the value. It returns the old values.
func rewriteScriptFlag(script string, names []string, value, keepVar string) (string, []string, bool) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	re := regexp.MustCompile(`(^|\s)(` + strings.Join(quoted, "|") + `)(=|[ \t]+)("[^"]*"|'[^']*'|[^\s\\;&|]+)`)
	var old []string
	found := false
	out := re.ReplaceAllStringFunc(script, func(m string) string {
		sub := re.FindStringSubmatch(m)
		found = true
		v := sub[4]
		bare := strings.Trim(v, `"'`)
		if bare == value || keepVar != "" && (bare == "$"+keepVar || bare == "${"+keepVar+"}") {
			return m
		}
		old = append(old, v)
		return sub[1] + sub[2] + " " + value
	})
	return out, old, found
}
