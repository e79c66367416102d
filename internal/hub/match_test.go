package hub

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path             string
		include, exclude []string
		want             bool
	}{
		{"config.json", nil, nil, true},
		{"config.json", []string{}, []string{}, true},
		{"config.json", []string{"*.json"}, nil, true},
		{"sub/config.json", []string{"*.json"}, nil, true}, // "*" crosses "/"
		{"model.safetensors", []string{"*.json"}, nil, false},
		{"model.safetensors", []string{"*.json", "*.safetensors"}, nil, true},
		{"model.safetensors", nil, []string{"*.safetensors"}, false},
		{"model.safetensors", []string{"*"}, []string{"*.bin"}, true},
		{"pytorch_model.bin", []string{"*"}, []string{"*.bin"}, false},
		{"onnx/model.onnx", nil, []string{"onnx/"}, false}, // directory pattern = "onnx/*"
		{"onnx/deep/model.onnx", nil, []string{"onnx/"}, false},
		{"onnx", nil, []string{"onnx/"}, true},
		{"x/onnx/model.onnx", nil, []string{"onnx/"}, true}, // anchored at the start
		{"model-00001-of-00004.safetensors", []string{"model-0000[1-2]-*"}, nil, true},
		{"model-00003-of-00004.safetensors", []string{"model-0000[1-2]-*"}, nil, false},
		{"a.bin", []string{"?.bin"}, nil, true},
		{"ab.bin", []string{"?.bin"}, nil, false},
		{"README.md", []string{"readme.md"}, nil, false}, // case-sensitive, as fnmatch on POSIX
		{"[x].json", []string{"[[]x].json"}, nil, true},
		{"x.json", []string{"[!a-w].json"}, nil, true},
		{"b.json", []string{"[!a-w].json"}, nil, false},
		{"a[b", []string{"a[b"}, nil, true}, // unclosed "[" is literal
		{"original/consolidated.00.pth", []string{"*.safetensors", "*.json"}, []string{"original/*"}, false},
	}
	for _, tt := range tests {
		if got := Match(tt.path, tt.include, tt.exclude); got != tt.want {
			t.Errorf("Match(%q, %q, %q) = %t, want %t", tt.path, tt.include, tt.exclude, got, tt.want)
		}
	}
}

// TestMatchAgainstPython compares with Python's fnmatch.fnmatchcase on hand-picked and random cases
// (testdata/fnmatch.json, produced by testdata/fnmatch_gen.py).
func TestMatchAgainstPython(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/fnmatch.json")
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Python string `json:"python"`
		Cases  [][3]any
	}
	if err := json.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	if len(data.Cases) < 1000 {
		t.Fatalf("only %d cases in testdata/fnmatch.json", len(data.Cases))
	}
	for _, c := range data.Cases {
		name, pat, want := c[0].(string), c[1].(string), c[2].(bool)
		if strings.HasSuffix(pat, "/") {
			continue // Match's directory rule is huggingface_hub's, not fnmatch's
		}
		if got := fnmatch(name, pat); got != want {
			t.Errorf("fnmatch(%q, %q) = %t, Python %s says %t", name, pat, got, data.Python, want)
		}
	}
}

// toRegexp turns compiled tokens into an RE2 regexp: an independent check of the matching engine.
func toRegexp(toks []token) string {
	var sb strings.Builder
	sb.WriteString(`(?s)\A`)
	for _, tk := range toks {
		switch tk.kind {
		case tokLiteral:
			sb.WriteString(regexp.QuoteMeta(string(tk.r)))
		case tokAny:
			sb.WriteString(".")
		case tokStar:
			sb.WriteString(".*")
		case tokClass:
			if len(tk.set) == 0 {
				if tk.negate {
					sb.WriteString(".")
				} else {
					sb.WriteString(`[^\x00-\x{10FFFF}]`)
				}
				continue
			}
			sb.WriteString("[")
			if tk.negate {
				sb.WriteString("^")
			}
			for _, r := range tk.set {
				fmt.Fprintf(&sb, `\x{%x}-\x{%x}`, r.lo, r.hi)
			}
			sb.WriteString("]")
		}
	}
	sb.WriteString(`\z`)
	return sb.String()
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"config.json", "*.json"}, {"a/b/c", "a/"}, {"x", "[!a-]"}, {"]", "[]]"}, {"b", "[z-a]"}, {"-", "[a-b-c]"},
		{"a", "[!]"}, {"abc", "a*?*c"}, {"[", "["}, {"é", "[à-ê]"}, {"aaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*c"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, pat string) {
		got := Match(name, []string{pat}, nil)
		if Match(name, nil, []string{pat}) == got {
			t.Fatalf("include and exclude of %q agree on %q", pat, name)
		}
		if !utf8.ValidString(name) || !utf8.ValidString(pat) || strings.HasSuffix(pat, "/") {
			return
		}
		re, err := regexp.Compile(toRegexp(compile([]rune(pat))))
		if err != nil {
			t.Fatalf("oracle regexp for %q: %v", pat, err)
		}
		if want := re.MatchString(name); got != want {
			t.Fatalf("Match(%q, %q) = %t, regexp %s says %t", name, pat, got, re, want)
		}
		if !strings.ContainsAny(pat, "*?[") && !fnmatch(pat, pat) {
			t.Fatalf("pattern without metacharacters %q does not match itself", pat)
		}
	})
}

func TestIsCommit(t *testing.T) {
	t.Parallel()
	for rev, want := range map[string]bool{
		commitA: true, "main": false, "": false, commitA[:39]: false, commitA + "0": false,
		strings.ToUpper(commitA): false, "refs/pr/1": false, "g123456789abcdef0123456789abcdef01234567": false,
	} {
		if got := IsCommit(rev); got != want {
			t.Errorf("IsCommit(%q) = %t, want %t", rev, got, want)
		}
	}
}

func TestValidateRepoID(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"gpt2", "org/m", "XiaomiMiMo/MiMo-VL-7B-RL", "Qwen/Qwen2.5-VL-7B-Instruct", "a_b/c.d-e", strings.Repeat("a", 96)} {
		if err := ValidateRepoID(ok); err != nil {
			t.Errorf("ValidateRepoID(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "/", "org/", "/m", "a/b/c", "org/m..x", "org--x/m", "-org/m", "org/m-", "org/m.", "org/m x", "org/m?", "org/m#", `org\m`, strings.Repeat("a", 97), "ünï/code"} {
		if err := ValidateRepoID(bad); err == nil {
			t.Errorf("ValidateRepoID(%q) = nil, want an error", bad)
		}
	}
}
