package taskclass

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCorpusParsesAndHeldOutIsUnseen(t *testing.T) {
	train, err := ReadDir("corpus/train")
	if err != nil {
		t.Fatal(err)
	}
	held, err := ReadDir("corpus/heldout")
	if err != nil {
		t.Fatal(err)
	}
	if len(train) == 0 || len(held) == 0 {
		t.Fatalf("corpus: %d training lines, %d held-out", len(train), len(held))
	}
	seen := map[string]string{}
	for _, e := range train {
		k := strings.ToLower(strings.Join(strings.Fields(e.Input().Ask+" "+e.Input().Tool), " "))
		seen[k] = e.Where
	}
	for _, e := range held {
		k := strings.ToLower(strings.Join(strings.Fields(e.Input().Ask+" "+e.Input().Tool), " "))
		if w, ok := seen[k]; ok {
			t.Errorf("%s asks what the training line %s asks: the held-out split must be unseen", e.Where, w)
		}
	}
}

func TestFromTurns(t *testing.T) {
	tests := []struct {
		name  string
		turns []Turn
		want  Input
	}{
		{"system prompt is not the ask",
			[]Turn{{Role: "system", Text: "Always answer with fenced code blocks."}, {Role: "user", Text: "what's a good name for a cat?"}},
			Input{Ask: "what's a good name for a cat?", System: "Always answer with fenced code blocks."}},
		{"the last user turn decides, earlier turns are context newest first",
			[]Turn{{Role: "user", Text: "fix my SQL"}, {Role: "assistant", Text: "sure"}, {Role: "user", Text: "thanks! now a recipe for pancakes"}},
			Input{Ask: "thanks! now a recipe for pancakes", Context: []string{"sure", "fix my SQL"}}},
		{"an agent's latest tool result",
			[]Turn{{Role: "system", Text: "You are a coding agent."}, {Role: "user", Text: "make the tests pass"},
				{Role: "assistant", Text: "run_shell go test ./...", Calls: true}, {Role: "tool", Text: "--- FAIL: TestA"},
				{Role: "assistant", Text: "run_shell go test -run TestA", Calls: true}, {Role: "tool", Text: "--- FAIL: TestA (0.00s)\n    a_test.go:9: got 2"}},
			Input{Ask: "make the tests pass", Tool: "--- FAIL: TestA (0.00s)\n    a_test.go:9: got 2", System: "You are a coding agent.", Agent: true}},
		{"no user turn",
			[]Turn{{Role: "system", Text: "be brief"}, {Role: "assistant", Text: "hello, how can I help?"}},
			Input{Ask: "hello, how can I help?", System: "be brief"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromTurns(tt.turns)
			if got.Ask != tt.want.Ask || got.Tool != tt.want.Tool || got.System != tt.want.System || got.Agent != tt.want.Agent || !slices.Equal(got.Context, tt.want.Context) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestFailurePatterns are the misroutes users met with the keyword classifier this model
// replaced: each must now go where a person would send it.
func TestFailurePatterns(t *testing.T) {
	m := Builtin()
	user := func(s string) Input { return Input{Ask: s} }
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"react in prose", user("how do I debounce a React input?"), "code"},
		{"git question", user("how do i undo my last commit but keep the changes"), "code"},
		{"kubectl question", user("why is my pod stuck in CrashLoopBackOff and how do I see its previous logs"), "code"},
		{"pasted psql error", user(`psql: error: connection to server at "localhost" (::1), port 5432 failed: Connection refused`), "code"},
		{"pasted npm error", user("npm ERR! code ERESOLVE npm ERR! ERESOLVE unable to resolve dependency tree"), "code"},
		{"pasted numpy error", user("ValueError: operands could not be broadcast together with shapes (3,4) (3,)"), "code"},
		{"lower-case sql", user("select name, count(*) from orders o join users u on u.id = o.user_id group by name — why is this slow"), "code"},
		{"german code question", user("Wie kann ich in Python eine Liste von Dictionaries nach einem Schlüssel sortieren?"), "code"},
		{"agent tool result", Input{Ask: "fix the build", Tool: "# citadel.dev/x\n./main.go:14:6: undefined: parseConfig", Agent: true}, "code"},
		{"math word problem", user("A shop sells pens at 3 for 2 dollars. How much do 18 pens cost, and how many can I buy with 25 dollars?"), "reasoning"},
		{"logic puzzle", user("Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may take one fruit from one box. Which box do you pick to relabel them all?"), "reasoning"},
		{"scheduling constraints", user("Ana can't meet before 10, Ben only on Tuesday or Thursday afternoons, and Chloe is out Thursday. Find a one-hour slot for all three."), "reasoning"},
		{"probability", user("If I roll two dice, what are the chances the sum is at least 10?"), "reasoning"},
		{"recipe step by step", user("give me a step by step recipe for banana bread"), "general"},
		{"prove you're human", user("a website keeps asking me to prove I'm human, why do captchas exist?"), "general"},
		{"proof-read", user("can you proof-read this paragraph for my newsletter: Our team have grown alot this year and we are exited to welcome three new colleagues."), "general"},
		{"derivative works", user("Is fan fiction a derivative work under US copyright law?"), "general"},
		{"integral part", user("write a farewell message for Sam, who was an integral part of our support team for six years"), "general"},
		{"python the snake", user("write a short poem about a python snake sleeping in the sun"), "general"},
		{"system prompt asks for code", Input{Ask: "what should I pack for a weekend in Lisbon?", System: "You are a coding assistant. Always answer with fenced code blocks."}, "general"},
		{"approves", user("my manager approves leave requests late every time, how do I raise it politely?"), "general"},
		{"three-digit", user("my bank asks for a three-digit code from the back of the card, is it safe to give it on the phone?"), "general"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, why := m.Explain(tt.in, 5)
			if got, p := s.Best(); got != tt.want || p < DefaultMinConfidence && tt.want != "general" {
				t.Errorf("%s (%.2f), want %s; scores %.2f; features %v", got, p, tt.want, s, why)
			}
		})
	}
}

// TestHeldOut is the accuracy the closing note and docs/gateway.md report: on the held-out
// split, with the default minimum confidence, ≥ 90 % overall and ≥ 85 % per task.
func TestHeldOut(t *testing.T) {
	held, err := ReadDir("corpus/heldout")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(held, Decider(Builtin(), DefaultMinConfidence))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	r.Write(&buf, 15)
	if r.Accuracy() < 0.90 {
		t.Errorf("held-out accuracy %.1f %% < 90 %%:\n%s", 100*r.Accuracy(), buf.String())
	}
	for _, task := range r.Tasks {
		if a, n := r.TaskAccuracy(task); n > 0 && a < 0.85 {
			t.Errorf("held-out %s: %.1f %% < 85 %%", task, 100*a)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Log("\n" + buf.String())
	}
}

// TestModelIsReproducible: the shipped weights are what `go generate` makes of the corpus
// (bit for bit where floating point is: amd64 has no fused multiply-add).
func TestModelIsReproducible(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("bit-for-bit training is checked on amd64")
	}
	train, err := ReadDir("corpus/train")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := Train(train, TrainOptions{}).Encode(&got); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("model.bin.gz")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("model.bin.gz is not what the corpus trains (%d vs %d bytes): run go generate ./internal/taskclass", len(want), got.Len())
	}
}

func TestReadLabelledErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"messages":[{"role":"user","content":"hi"}]}`, `f.jsonl:1: no "task" label`},
		{`{"task":"poetry","messages":[{"role":"user","content":"hi"}]}`, `f.jsonl:1: task "poetry" is not a task class`},
		{"\n{\"task\":\"code\",\"messages\":[{\"role\":\"user\",\"content\":7}]}", `f.jsonl:2: messages[0].content: want a string or an array of parts`},
		{`{"task":"code"`, `f.jsonl:1: not a JSON object`},
		{`{"task":"code"}`, `f.jsonl:1: no "messages" (or "prompt") to classify`},
	}
	for _, tt := range tests {
		_, err := ReadLabelled(strings.NewReader(tt.in), "f.jsonl")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.in, err, tt.want)
		}
	}
}

// BenchmarkDecision measures one classification of each held-out request (p50 and p99 per
// decision reported as metrics): the budget is 1 ms at p99 on a 2-core machine.
func BenchmarkDecision(b *testing.B) {
	held, err := ReadDir("corpus/heldout")
	if err != nil {
		b.Fatal(err)
	}
	ins := make([]Input, len(held))
	for i := range held {
		ins[i] = held[i].Input()
	}
	m := Builtin()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		m.Classify(ins[i%len(ins)])
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkLongPrompt is one decision on a 200 KiB pasted log: bounded reading keeps it flat.
func BenchmarkLongPrompt(b *testing.B) {
	in := Input{Ask: strings.Repeat(fmt.Sprintf("2026-12-07T10:00:00Z INFO handler ok id=%d\n", 42), 4000) + "why does this log repeat?"}
	m := Builtin()
	for b.Loop() {
		m.Classify(in)
	}
}
