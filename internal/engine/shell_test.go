package engine

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSimpleCommand feeds simpleCommand, which reads users' runner scripts, arbitrary
// text. It must not panic; it returns words or a reason, never both nor neither; and the
// words it returns, written back as single-quoted shell words, read back the same.
//
//	go test ./internal/engine/ -run '^$' -fuzz FuzzSimpleCommand -fuzztime 1m
func FuzzSimpleCommand(f *testing.F) {
	for _, s := range []string{
		"vllm serve \"$MODEL_PATH\" --port $PORT\n",
		"a \\\n  b 'c d' \"e\\\"f\" g\\ h",
		"# comment\n\nx --y=\"${PORT}\" ''  # trailing\n",
		`x "$"`, "a; b", "a\nb", "a $(date)", "a `date`", "a \"`date`\"", "a $HOME", "a $MODEL_PATH",
		"a ${PORT:-1}", "a $1", "a *.gguf", "a ~/x", "a 'b", "   \n", "exec FOO=1 python3 -m sglang.launch_server --port=${PORT}",
		`a "\$x\\" \`, "a ${", "a ${}", "x\\", `"$`, "'", `"\`,
	} {
		f.Add(s)
	}
	vars := map[string]string{"MODEL_PATH": "/m p", "PORT": "9000", "EMPTY": "", "GLOB": "*.gguf"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	f.Fuzz(func(t *testing.T, script string) {
		words, why := simpleCommand(script, lookup)
		switch {
		case why == "" && len(words) == 0:
			t.Fatalf("simpleCommand(%q): no words and no reason", script)
		case why != "" && words != nil:
			t.Fatalf("simpleCommand(%q): words %q and reason %q", script, words, why)
		case why != "":
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, why := simpleCommand(strings.Join(quoted, " "), lookup)
		if why != "" || !slices.Equal(again, words) {
			t.Fatalf("simpleCommand(%q) = %q; quoted back (%s) it reads %q, %q", script, words, strings.Join(quoted, " "), again, why)
		}
		if utf8.ValidString(script) {
			for _, w := range words {
				if !utf8.ValidString(w) {
					t.Fatalf("simpleCommand(%q): word %q is not UTF-8, the script was", script, w)
				}
			}
		}
	})
}
