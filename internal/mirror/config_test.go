package mirror

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRepoConfig(t *testing.T) {
	good := `{"private": true, "gated": "auto", "tokens": ["hf_a"], "revisions": {"v1.0": ".mirror-revs/v1.0"},
		"faults": [{"kind": "stall", "bytes": 10, "files": "*.bin", "count": 1}]}`
	c, err := parseRepoConfig(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	want := repoConfig{Private: true, Gated: "auto", Tokens: []string{"hf_a"}, Revisions: map[string]string{"v1.0": ".mirror-revs/v1.0"},
		Faults: []Fault{{Kind: FaultStall, Bytes: 10, Files: "*.bin", Count: 1}}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}

	bad := []struct {
		json string
		want []string // every problem, in order
	}{
		{`{"privat": true}`, []string{`json: unknown field "privat"`}},
		{`{"private": "yes"}`, []string{"cannot unmarshal string"}},
		{`{} {}`, []string{"unexpected data after the JSON object"}},
		{`{"gated": "sometimes", "tokens": ["", "a b"]}`, []string{
			`gated: "sometimes" is not "auto", "manual" or ""`,
			"tokens[0]: empty or contains white space",
			"tokens[1]: empty or contains white space"}},
		{`{"revisions": {"main": "x", "v1": "../elsewhere", "v2": "/abs", "a/b": "x", "` + strings.Repeat("a", 40) + `": "x"}}`, []string{
			`revisions["a/b"]: a revision name must not be`,
			`revisions["` + strings.Repeat("a", 40) + `"]: a revision name must not be`,
			`revisions["main"]: a revision name must not be`,
			`revisions["v1"]: "../elsewhere" must be a relative subdirectory of the repo`,
			`revisions["v2"]: "/abs" must be a relative subdirectory of the repo`}},
		{`{"faults": [{"kind": "status"}, {"kind": "throttle", "on": "x"}]}`, []string{
			"faults[0].status: 0 is not an HTTP error status",
			"faults[1].rate: must be positive",
			`faults[1].on: "x" is not`}},
	}
	for _, tt := range bad {
		t.Run(tt.json, func(t *testing.T) {
			_, err := parseRepoConfig(strings.NewReader(tt.json))
			if err == nil {
				t.Fatal("accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}
