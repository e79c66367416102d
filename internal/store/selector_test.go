package store

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	t.Parallel()
	labels := []map[string]string{
		nil,
		{"env": "prod"},
		{"env": "dev", "gpu": "a100"},
		{"env": "prod", "gpu": "h100", "canary": ""},
	}
	tests := []struct {
		in        string
		canonical string
		matches   []bool // one per entry of labels
	}{
		{"", "", []bool{true, true, true, true}},
		{"   ", "", []bool{true, true, true, true}},
		{"env=prod", "env=prod", []bool{false, true, false, true}},
		{"env==prod", "env=prod", []bool{false, true, false, true}},
		{"env!=prod", "env!=prod", []bool{true, false, true, false}},
		{"env in (prod, dev)", "env in (dev,prod)", []bool{false, true, true, true}},
		{"env notin (dev)", "env notin (dev)", []bool{true, true, false, true}},
		{"env in (prod,prod)", "env in (prod)", []bool{false, true, false, true}},
		{"gpu", "gpu", []bool{false, false, true, true}},
		{"!gpu", "!gpu", []bool{true, true, false, false}},
		{"canary=", "canary=", []bool{false, false, false, true}},
		{"gpu,env=prod", "env=prod,gpu", []bool{false, false, false, true}},
		{" env = prod , ! gpu ", "env=prod,!gpu", []bool{false, true, false, false}},
		{"gpu notin(a100),env", "env,gpu notin (a100)", []bool{false, true, false, true}},
		{"citadel.dev/tier=gold", "citadel.dev/tier=gold", []bool{false, false, false, false}},
		{"in=x", "in=x", []bool{false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			sel, err := ParseSelector(tt.in)
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", tt.in, err)
			}
			if got := sel.String(); got != tt.canonical {
				t.Errorf("String() = %q, want %q", got, tt.canonical)
			}
			for i, l := range labels {
				if got := sel.Matches(l); got != tt.matches[i] {
					t.Errorf("Matches(%v) = %v, want %v", l, got, tt.matches[i])
				}
			}
		})
	}
}

func TestParseSelectorErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 64)
	tests := []struct {
		in, want string
	}{
		{"a in x", `label selector "a in x": offset 5: expected "(" after "in"`},
		{"a notin", `label selector "a notin": offset 7: expected "(" after "notin"`},
		{"a in (x", `label selector "a in (x": offset 7: expected "," or ")" in "in" list, found end of selector`},
		{"a in ()", `label selector "a in ()": offset 6: expected value in "in" list, found ")"`},
		{"a in (x,)", `label selector "a in (x,)": offset 8: expected value in "in" list, found ")"`},
		{"a in (x y)", `label selector "a in (x y)": offset 8: expected "," or ")" in "in" list, found "y"`},
		{"=b", `label selector "=b": offset 0: expected label key or "!", found "="`},
		{"a b", `label selector "a b": offset 2: expected "=", "==", "!=", "in", "notin", "," or end of selector after label key "a", found "b"`},
		{"a=b c", `label selector "a=b c": offset 4: expected "," or end of selector, found "c"`},
		{"a=b)", `label selector "a=b)": offset 3: expected "," or end of selector, found ")"`},
		{"a,", `label selector "a,": offset 2: expected label key or "!", found end of selector`},
		{",a", `label selector ",a": offset 0: expected label key or "!", found ","`},
		{"!", `label selector "!": offset 1: expected label key after "!", found end of selector`},
		{"!=a", `label selector "!=a": offset 0: expected label key or "!", found "!="`},
		{"a==(", `label selector "a==(": offset 3: expected value after "==", found "("`},
		{"a=!b", `label selector "a=!b": offset 2: expected value after "=", found "!"`},
		{"a&b=c", `label selector "a&b=c": offset 0: invalid label key "a&b": the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
		{"a=-b", `label selector "a=-b": offset 2: invalid label value "-b": must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
		{"a in (x,b@)", `label selector "a in (x,b@)": offset 8: invalid label value "b@": must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
		{"Citadel.dev/x", `label selector "Citadel.dev/x": offset 0: invalid label key "Citadel.dev/x": the prefix before "/" must be a lower-case DNS subdomain such as citadel.dev`},
		{"a/b/c", `label selector "a/b/c": offset 0: invalid label key "a/b/c": the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
		{"a=" + long, `label selector "a=` + long + `": offset 2: invalid label value "` + long + `": must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSelector(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseSelector(%q):\n got %v\nwant %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestZeroSelectorMatchesEverything(t *testing.T) {
	t.Parallel()
	var sel Selector
	if !sel.Matches(nil) || !sel.Matches(map[string]string{"a": "b"}) || sel.String() != "" {
		t.Error("the zero Selector must match everything and print as \"\"")
	}
}

var offsetRE = regexp.MustCompile(`": offset (\d+): `)

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "a=b", "a==b,c!=d", "a in (x,y)", "a notin (x)", "a,!b", "x/y=z", "a in x",
		"k8s.io/a in (b, c), !d, e", "a=", "!!", "a in (x,)", "==", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sel, err := ParseSelector(in)
		if err != nil {
			m := offsetRE.FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("error without an offset: %v", err)
			}
			if off, _ := strconv.Atoi(m[1]); off < 0 || off > len(in) {
				t.Fatalf("offset %d outside the %d-byte input: %v", off, len(in), err)
			}
			return
		}
		// The canonical form parses back to itself and selects the same labels.
		canonical := sel.String()
		again, err := ParseSelector(canonical)
		if err != nil {
			t.Fatalf("String() of %q is %q, which does not parse: %v", in, canonical, err)
		}
		if again.String() != canonical {
			t.Fatalf("String() not stable: %q -> %q -> %q", in, canonical, again.String())
		}
		for _, labels := range candidateLabels(sel) {
			if sel.Matches(labels) != again.Matches(labels) {
				t.Fatalf("%q and its canonical form %q disagree on %v", in, canonical, labels)
			}
		}
	})
}

// candidateLabels builds label sets that exercise every requirement of sel: absent, each mentioned value,
// and another value.
func candidateLabels(sel Selector) []map[string]string {
	sets := []map[string]string{nil}
	for _, r := range sel.reqs {
		for _, v := range append([]string{"", "other"}, r.values...) {
			sets = append(sets, map[string]string{r.key: v})
		}
	}
	return sets
}
