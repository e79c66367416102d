package bench

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestCountTokens(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"   \n\t", 0},
		{"a bb ccc dddd", 4},
		{"hello", 2},          // 5 bytes
		{"abcdefgh", 2},       // 8 bytes
		{"abcdefghi", 3},      // 9 bytes
		{"  x\t\ny  ", 2},     // any whitespace separates
		{"héllo wörld!", 4},   // bytes, not runes: 6 and 7 bytes
		{"what's up?", 2 + 1}, // "what's" 6 bytes, "up?" 3
	} {
		if got := CountTokens(c.in); got != c.want {
			t.Errorf("CountTokens(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestVocabularyIsOneTokenPerWord(t *testing.T) {
	if len(vocabulary) < 256 {
		t.Errorf("vocabulary has %d words, want at least 256", len(vocabulary))
	}
	seen := map[string]bool{}
	for _, w := range vocabulary {
		if len(w) < 1 || len(w) > 4 || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("vocabulary word %q: want 1–4 lowercase letters", w)
		}
		if seen[w] {
			t.Errorf("vocabulary word %q repeated", w)
		}
		seen[w] = true
		if CountTokens(w) != 1 {
			t.Errorf("CountTokens(%q) = %d, want 1", w, CountTokens(w))
		}
	}
}

func mustLoad(t *testing.T, o DatasetOptions) []Request {
	t.Helper()
	reqs, err := Load(o)
	if err != nil {
		t.Fatalf("Load(%+v): %v", o, err)
	}
	return reqs
}

func TestRandomLengthsAndRanges(t *testing.T) {
	o := DatasetOptions{Name: DatasetRandom, NumRequests: 2000, InputLen: 100, OutputLen: 50, RangeRatio: 0.5, PrefixLen: 10, Seed: 1}
	reqs := mustLoad(t, o)
	if len(reqs) != o.NumRequests {
		t.Fatalf("got %d requests, want %d", len(reqs), o.NumRequests)
	}
	minIn, maxIn, minOut, maxOut := 1<<30, 0, 1<<30, 0
	for i, r := range reqs {
		body := r.PromptLen - o.PrefixLen
		if body < 50 || body > 150 {
			t.Fatalf("request %d: body length %d outside [50, 150]", i, body)
		}
		if r.OutputLen < 25 || r.OutputLen > 75 {
			t.Fatalf("request %d: output length %d outside [25, 75]", i, r.OutputLen)
		}
		if n := CountTokens(r.Prompt); n != r.PromptLen {
			t.Fatalf("request %d: CountTokens(prompt) = %d, PromptLen = %d", i, n, r.PromptLen)
		}
		if n := len(strings.Fields(r.Prompt)); n != r.PromptLen {
			t.Fatalf("request %d: %d words, PromptLen = %d", i, n, r.PromptLen)
		}
		if r.MultiModal || r.Images != nil || r.ExpectedText != "" {
			t.Fatalf("request %d: unexpected fields %+v", i, r)
		}
		minIn, maxIn = min(minIn, body), max(maxIn, body)
		minOut, maxOut = min(minOut, r.OutputLen), max(maxOut, r.OutputLen)
	}
	// Uniform over the closed interval: with 2000 draws both ends appear.
	if minIn != 50 || maxIn != 150 || minOut != 25 || maxOut != 75 {
		t.Errorf("observed input [%d, %d] output [%d, %d], want [50, 150] and [25, 75]", minIn, maxIn, minOut, maxOut)
	}

	// vLLM's bounds: floor low, ceil high; output at least 1.
	o = DatasetOptions{NumRequests: 500, InputLen: 7, OutputLen: 1, RangeRatio: 0.3, Seed: 2}
	for i, r := range mustLoad(t, o) {
		if r.PromptLen < 4 || r.PromptLen > 10 || r.OutputLen < 1 || r.OutputLen > 2 {
			t.Fatalf("request %d: lengths %d/%d outside [4, 10]/[1, 2]", i, r.PromptLen, r.OutputLen)
		}
	}

	// Range ratio 0: exact lengths.
	o = DatasetOptions{NumRequests: 20, InputLen: 64, OutputLen: 16, Seed: 3}
	for i, r := range mustLoad(t, o) {
		if r.PromptLen != 64 || r.OutputLen != 16 || len(strings.Fields(r.Prompt)) != 64 {
			t.Fatalf("request %d: lengths %d/%d, want 64/16", i, r.PromptLen, r.OutputLen)
		}
	}

	// Input length 0 with a prefix: prompts are the prefix alone.
	o = DatasetOptions{NumRequests: 3, PrefixLen: 5, OutputLen: 4, Seed: 4}
	for _, r := range mustLoad(t, o) {
		if r.PromptLen != 5 || len(strings.Fields(r.Prompt)) != 5 {
			t.Fatalf("prefix-only prompt %q, PromptLen %d", r.Prompt, r.PromptLen)
		}
	}
}

func TestRandomSharedPrefix(t *testing.T) {
	o := DatasetOptions{NumRequests: 50, InputLen: 32, OutputLen: 8, PrefixLen: 20, Seed: 9}
	reqs := mustLoad(t, o)
	prefix := strings.Join(strings.Fields(reqs[0].Prompt)[:20], " ") + " "
	bodies := map[string]bool{}
	for i, r := range reqs {
		if !strings.HasPrefix(r.Prompt, prefix) {
			t.Fatalf("request %d does not start with the shared prefix %q: %q", i, prefix, r.Prompt)
		}
		bodies[strings.TrimPrefix(r.Prompt, prefix)] = true
	}
	if len(bodies) != len(reqs) {
		t.Errorf("%d distinct bodies among %d requests", len(bodies), len(reqs))
	}
	// The prefix does not depend on the body lengths.
	o.InputLen = 8
	if got := mustLoad(t, o)[0].Prompt; !strings.HasPrefix(got, prefix) {
		t.Errorf("prefix changed with the input length: %q", got)
	}
	// Without a prefix, prompts do not share their first words.
	o.PrefixLen = 0
	first := map[string]int{}
	for _, r := range mustLoad(t, o) {
		first[strings.Join(strings.Fields(r.Prompt)[:4], " ")]++
	}
	if len(first) < 45 {
		t.Errorf("only %d distinct 4-word openings among 50 prompts without a prefix", len(first))
	}
}

func TestDeterministicBySeed(t *testing.T) {
	sharegpt, custom := filepath.Join("testdata", "sharegpt.json"), filepath.Join("testdata", "custom.jsonl")
	for _, o := range []DatasetOptions{
		{Name: DatasetRandom, NumRequests: 30, InputLen: 40, OutputLen: 20, RangeRatio: 0.5, PrefixLen: 4},
		{Name: DatasetRandomVision, NumRequests: 4, InputLen: 10, OutputLen: 5, ImageWidth: 32, ImageHeight: 16, ImagesPerRequest: 2},
		{Name: DatasetPrefixRepetition, NumRequests: 30, InputLen: 10, OutputLen: 5, PrefixLen: 8, PrefixCount: 3},
		{Name: DatasetShareGPT, Path: sharegpt, NumRequests: 4},
		{Name: DatasetCustom, Path: custom, NumRequests: 4},
	} {
		t.Run(o.Name, func(t *testing.T) {
			o.Seed = 7
			a, b := mustLoad(t, o), mustLoad(t, o)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("same seed, different requests")
			}
			different := false
			for seed := int64(8); seed < 12 && !different; seed++ {
				o.Seed = seed
				different = !reflect.DeepEqual(a, mustLoad(t, o))
			}
			if !different {
				t.Error("seeds 7–11 all give the same requests")
			}
		})
	}
}

func TestRandomVisionImages(t *testing.T) {
	o := DatasetOptions{Name: DatasetRandomVision, NumRequests: 3, InputLen: 12, OutputLen: 6, PrefixLen: 2,
		ImageWidth: 64, ImageHeight: 48, ImagesPerRequest: 2, Seed: 5}
	reqs := mustLoad(t, o)
	seen := map[string]bool{}
	for i, r := range reqs {
		if !r.MultiModal || len(r.Images) != 2 {
			t.Fatalf("request %d: MultiModal %v with %d images, want true and 2", i, r.MultiModal, len(r.Images))
		}
		if r.PromptLen != 14 || CountTokens(r.Prompt) != 14 {
			t.Errorf("request %d: PromptLen %d for %d counted tokens, want 14 (text only)", i, r.PromptLen, CountTokens(r.Prompt))
		}
		for j, url := range r.Images {
			b64, ok := strings.CutPrefix(url, "data:image/png;base64,")
			if !ok {
				t.Fatalf("request %d image %d: not a PNG data URL: %.40q", i, j, url)
			}
			raw, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatalf("request %d image %d: base64: %v", i, j, err)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("request %d image %d: png: %v", i, j, err)
			}
			if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
				t.Errorf("request %d image %d: %dx%d, want 64x48", i, j, b.Dx(), b.Dy())
			}
			// Solid blocks: more than one colour, and each 8×6 block is uniform.
			if img.At(0, 0) == img.At(63, 47) && img.At(0, 0) == img.At(32, 24) {
				t.Errorf("request %d image %d: corners and centre share a colour", i, j)
			}
			if img.At(0, 0) != img.At(7, 5) || img.At(56, 42) != img.At(63, 47) {
				t.Errorf("request %d image %d: blocks are not solid", i, j)
			}
			if seen[url] {
				t.Errorf("request %d image %d repeats an earlier image", i, j)
			}
			seen[url] = true
		}
	}
	// Tiny and odd sizes work; more images do not change the text.
	o.ImageWidth, o.ImageHeight, o.ImagesPerRequest = 3, 1, 1
	small := mustLoad(t, o)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(small[0].Images[0], "data:image/png;base64,"))
	if cfg, err := png.DecodeConfig(bytes.NewReader(raw)); err != nil || cfg.Width != 3 || cfg.Height != 1 {
		t.Errorf("3x1 image: %+v, %v", cfg, err)
	}
	for i := range reqs {
		if small[i].Prompt != reqs[i].Prompt || small[i].OutputLen != reqs[i].OutputLen {
			t.Errorf("request %d: text changed with the images", i)
		}
	}
}

func TestPrefixRepetition(t *testing.T) {
	o := DatasetOptions{Name: DatasetPrefixRepetition, NumRequests: 103, InputLen: 12, OutputLen: 9, PrefixLen: 16, PrefixCount: 10, Seed: 11}
	reqs := mustLoad(t, o)
	if len(reqs) != 103 {
		t.Fatalf("got %d requests, want 103", len(reqs))
	}
	count := map[string]int{}
	firstWords := map[string]bool{}
	var order []string
	for i, r := range reqs {
		w := strings.Fields(r.Prompt)
		if len(w) != 28 || r.PromptLen != 28 || r.OutputLen != 9 {
			t.Fatalf("request %d: %d words, PromptLen %d, OutputLen %d; want 28, 28, 9", i, len(w), r.PromptLen, r.OutputLen)
		}
		p := strings.Join(w[:16], " ")
		if count[p] == 0 {
			firstWords[w[0]] = true
		}
		count[p]++
		order = append(order, p)
	}
	if len(count) != 10 {
		t.Fatalf("%d distinct prefixes, want 10", len(count))
	}
	if len(firstWords) != 10 {
		t.Errorf("prefixes share first words: %d distinct among 10", len(firstWords))
	}
	for p, n := range count {
		if n != 10 && n != 11 {
			t.Errorf("prefix %.20q… used %d times, want 10 or 11 (round-robin)", p, n)
		}
	}
	// Shuffled: not in round-robin order.
	roundRobin := true
	for i := 10; i < len(order); i++ {
		roundRobin = roundRobin && order[i] == order[i-10]
	}
	if roundRobin {
		t.Error("requests are in round-robin order, want them shuffled by seed")
	}
	// Suffixes differ.
	suffixes := map[string]bool{}
	for _, r := range reqs {
		suffixes[strings.Join(strings.Fields(r.Prompt)[16:], " ")] = true
	}
	if len(suffixes) < 100 {
		t.Errorf("%d distinct suffixes among 103", len(suffixes))
	}
	// Many one-word prefixes stay distinct.
	o = DatasetOptions{Name: "prefix_repetition", NumRequests: 300, InputLen: 1, OutputLen: 1, PrefixLen: 1, PrefixCount: 300}
	count = map[string]int{}
	for _, r := range mustLoad(t, o) {
		count[strings.Fields(r.Prompt)[0]]++
	}
	if len(count) != 300 {
		t.Errorf("%d distinct one-word prefixes, want 300", len(count))
	}
}

func TestShareGPT(t *testing.T) {
	path := filepath.Join("testdata", "sharegpt.json")
	reqs, stats, err := LoadWithStats(DatasetOptions{Name: DatasetShareGPT, Path: path, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	byPrompt := map[string]Request{}
	for _, r := range reqs {
		byPrompt[r.Prompt] = r
	}
	wantPrompts := []string{
		"Explain how a hash map works in simple terms.",
		"Write a haiku about the sea at night.",
		"List three prime numbers above ten, please.",
		"What is the capital city of France?",
		strings.Repeat("edge ", 1023) + "edge",
	}
	if len(reqs) != len(wantPrompts) || len(byPrompt) != len(wantPrompts) {
		t.Errorf("got %d requests (%d distinct), want %d", len(reqs), len(byPrompt), len(wantPrompts))
	}
	for _, p := range wantPrompts {
		r, ok := byPrompt[p]
		if !ok {
			t.Errorf("missing prompt %.50q", p)
			continue
		}
		if r.PromptLen != CountTokens(p) || r.OutputLen != CountTokens(r.ExpectedText) || r.ExpectedText == "" {
			t.Errorf("prompt %.30q: PromptLen %d OutputLen %d for reply %.30q", p, r.PromptLen, r.OutputLen, r.ExpectedText)
		}
	}
	if r := byPrompt[wantPrompts[0]]; r.ExpectedText != "A hash map stores each key in a bucket chosen by a hash of the key, so a lookup goes straight to one bucket." {
		t.Errorf("ok1 reply: %q (want the first gpt turn)", r.ExpectedText)
	}
	if r := byPrompt[wantPrompts[4]]; r.PromptLen != 1024 || r.OutputLen != 1024 {
		t.Errorf("edge case 1024+1024 kept as %d+%d", r.PromptLen, r.OutputLen)
	}
	want := DatasetStats{Entries: 12, Examined: 12, Used: 5, NoReply: 3, TooShort: 2, TooLong: 2}
	if stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}

	// --sharegpt-output-len: replaces the reply's length and skips the short-output check;
	// 600+100 now fits, the 1100-token prompt still does not.
	reqs, stats, err = LoadWithStats(DatasetOptions{Name: DatasetShareGPT, Path: path, SharegptOutputLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 7 || stats.TooShort != 1 || stats.TooLong != 1 {
		t.Errorf("with an output override: %d requests, stats %+v; want 7, 1 too short, 1 too long", len(reqs), stats)
	}
	for _, r := range reqs {
		if r.OutputLen != 100 {
			t.Errorf("OutputLen %d, want the override 100", r.OutputLen)
		}
	}

	// Fewer usable conversations than requested: oversampled, as vLLM.
	reqs, stats, err = LoadWithStats(DatasetOptions{Name: DatasetShareGPT, Path: path, NumRequests: 20, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 20 || stats.Used != 5 || stats.Oversampled != 15 {
		t.Errorf("oversampling: %d requests, stats %+v", len(reqs), stats)
	}
	for _, r := range reqs {
		if !slices.Contains(wantPrompts, r.Prompt) {
			t.Errorf("oversampled an unusable prompt %.40q", r.Prompt)
		}
	}

	// Fewer requested: stops early.
	reqs, stats, err = LoadWithStats(DatasetOptions{Name: DatasetShareGPT, Path: path, NumRequests: 2, Seed: 3})
	if err != nil || len(reqs) != 2 || stats.Used != 2 || stats.Oversampled != 0 {
		t.Errorf("two requests: %d, %+v, %v", len(reqs), stats, err)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShareGPTErrors(t *testing.T) {
	for _, c := range []struct {
		name, content string
		want          []string // substrings of the error
	}{
		{"syntax", "[\n  {\"id\": \"a\",\n   \"conversations\": [}\n]\n", []string{"syntax.json:3:", "invalid JSON"}},
		{"truncated", "[\n  {\"id\": \"a\", \"conversations\": [\n", []string{"truncated.json:3:", "unexpected end"}},
		{"object", "\n{\"conversations\": []}\n", []string{"object.json:2:", "want a JSON array", "found an object"}},
		{"empty", "", []string{"empty.json", "empty file"}},
		{"emptyarray", "[]", []string{"emptyarray.json", "no conversations"}},
		{"trailing", "[]\n[]\n", []string{"trailing.json:2:", "after top-level value"}},
		{"valuetype", "[\n {\"id\": \"a\", \"conversations\": [{\"from\": \"human\", \"value\": \"one two three four\"}, {\"from\": \"gpt\", \"value\": \"five six seven eight\"}]},\n {\"id\": \"b\",\n  \"conversations\": [\n   {\"from\": \"human\", \"value\": 12}]}\n]\n",
			[]string{"valuetype.json:5:", `conversation 2 (id "b")`, "number", "want a string"}},
		{"convtype", "[\n {\"id\": \"x\", \"conversations\": \"hello\"}\n]", []string{"convtype.json:2:", "conversation 1", `"conversations"`, "want an array"}},
		{"entrytype", "[\n \"just a string\"\n]", []string{"entrytype.json:2:", "conversation 1", "want an object"}},
		{"noreply", "[\n {\"id\": \"a\", \"conversations\": [{\"from\": \"human\", \"value\": \"one two three four\"}]},\n {\"id\": \"b\", \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, {\"from\": \"gpt\", \"value\": \"one two three four\"}]}\n]",
			[]string{"noreply.json: none of the 2 conversations is usable", "1 have no human turn followed by a gpt reply (first: conversation 1, line 2)", "1 are too short", "conversation 2, line 3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, c.name+".json", c.content)
			_, err := Load(DatasetOptions{Name: DatasetShareGPT, Path: path})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := Load(DatasetOptions{Name: DatasetShareGPT, Path: filepath.Join(t.TempDir(), "missing.json")}); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(DatasetOptions{Name: DatasetShareGPT}); err == nil {
		t.Error("no path: no error")
	}
}

func TestSplitJSONArray(t *testing.T) {
	data := []byte("[1, \"t\\\"w]o\" ,true,null, {\"a\": [\"}\", {}]},\n [ ], -2.5e3\n,\n{}\n]")
	entries, err := splitJSONArray("x.json", data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var lines []int
	for i, e := range entries {
		got = append(got, string(e.raw))
		lines = append(lines, e.line)
		if e.index != i+1 {
			t.Errorf("entry %d has index %d", i, e.index)
		}
	}
	want := []string{"1", `"t\"w]o"`, "true", "null", `{"a": ["}", {}]}`, "[ ]", "-2.5e3", "{}"}
	if !slices.Equal(got, want) {
		t.Errorf("elements %q, want %q", got, want)
	}
	if !slices.Equal(lines, []int{1, 1, 1, 1, 1, 2, 2, 4}) {
		t.Errorf("lines %v", lines)
	}
	if entries, err := splitJSONArray("x.json", []byte(" [ ] ")); err != nil || len(entries) != 0 {
		t.Errorf("empty array: %v, %v", entries, err)
	}
}

func TestCustom(t *testing.T) {
	path := filepath.Join("testdata", "custom.jsonl")
	reqs, stats, err := LoadWithStats(DatasetOptions{Name: DatasetCustom, Path: path, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 5 || stats.Entries != 5 || stats.Used != 5 {
		t.Fatalf("%d requests, stats %+v; want 5 (the blank line skipped)", len(reqs), stats)
	}
	want := map[string]int{
		"What is the capital of India?":                             DefaultCustomOutputLen,
		"What is the capital of Iran?":                              32,
		"Summarize the plot of Hamlet in two sentences.":            64,
		"Translate 'good morning' into Spanish, French and German.": DefaultCustomOutputLen,
		"Name a prime number.":                                      8,
	}
	for _, r := range reqs {
		out, ok := want[r.Prompt]
		if !ok || r.OutputLen != out || r.PromptLen != CountTokens(r.Prompt) {
			t.Errorf("request %+v: want OutputLen %d (known %v), PromptLen %d", r, out, ok, CountTokens(r.Prompt))
		}
		delete(want, r.Prompt)
	}
	// OutputLen is the default for lines without output_tokens.
	reqs = mustLoad(t, DatasetOptions{Name: DatasetCustom, Path: path, OutputLen: 100, NumRequests: 12})
	if len(reqs) != 12 {
		t.Fatalf("oversampled to %d, want 12", len(reqs))
	}
	for _, r := range reqs {
		if r.Prompt == "What is the capital of India?" && r.OutputLen != 100 {
			t.Errorf("OutputLen %d, want 100", r.OutputLen)
		}
		if r.Prompt == "Name a prime number." && r.OutputLen != 8 {
			t.Errorf("output_tokens lost: %d", r.OutputLen)
		}
	}

	for _, c := range []struct{ name, content, want string }{
		{"badjson", "{\"prompt\": \"ok\"}\n\n{\"prompt\": oops}\n", "badjson.jsonl:3: column 12: invalid JSON"},
		{"noprompt", "{\"prompt\": \"ok\"}\n{\"text\": \"hello\"}\n", `noprompt.jsonl:2: no "prompt" field`},
		{"emptyprompt", "{\"prompt\": \" \"}\n", `emptyprompt.jsonl:1: "prompt" is empty`},
		{"prompttype", "{\"prompt\": [1, 2]}\n", `prompttype.jsonl:1: column`},
		{"notobject", "{\"prompt\": \"ok\"}\n[\"prompt\"]\n", `notobject.jsonl:2: found a JSON array, want an object like {"prompt": "…"}`},
		{"negative", "{\"prompt\": \"ok\"}\r\n{\"prompt\": \"ok\", \"output_tokens\": -1}\r\n", `negative.jsonl:2: "output_tokens" must be a positive integer, got -1`},
		{"fraction", "{\"prompt\": \"ok\", \"output_tokens\": 2.5}\n", `fraction.jsonl:1: "output_tokens" must be a positive integer, got 2.5`},
		{"empty", "\n\n", "empty.jsonl: no prompts"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, c.name+".jsonl", c.content)
			_, err := Load(DatasetOptions{Name: DatasetCustom, Path: p})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestDatasetOptionErrors(t *testing.T) {
	for _, c := range []struct {
		o    DatasetOptions
		want string
	}{
		{DatasetOptions{Name: "sonnet", NumRequests: 1}, `unknown dataset "sonnet"`},
		{DatasetOptions{NumRequests: 0, InputLen: 1, OutputLen: 1}, "at least 1, got 0"},
		{DatasetOptions{NumRequests: 1, InputLen: 1, OutputLen: 0}, "output length must be at least 1"},
		{DatasetOptions{NumRequests: 1, InputLen: 1, OutputLen: 1, RangeRatio: 1}, "range ratio must be in [0, 1)"},
		{DatasetOptions{NumRequests: 1, InputLen: 1, OutputLen: 1, RangeRatio: -0.1}, "range ratio"},
		{DatasetOptions{NumRequests: 1, InputLen: 1, OutputLen: 1, RangeRatio: 0.5}, "prompts could be empty"},
		{DatasetOptions{NumRequests: 1, InputLen: -1, OutputLen: 1}, "input length must not be negative"},
		{DatasetOptions{NumRequests: 1, InputLen: 1, OutputLen: 1, PrefixLen: -2}, "prefix length must not be negative"},
		{DatasetOptions{Name: "random-mm", NumRequests: 1, InputLen: 1, OutputLen: 1, ImageWidth: 10, ImageHeight: 10}, "images per request"},
		{DatasetOptions{Name: DatasetRandomVision, NumRequests: 1, InputLen: 1, OutputLen: 1, ImagesPerRequest: 1, ImageWidth: 0, ImageHeight: 10}, "image size 0x10"},
		{DatasetOptions{Name: DatasetPrefixRepetition, NumRequests: 5, InputLen: 1, OutputLen: 1, PrefixLen: 4, PrefixCount: 6}, "6 prefixes need at least as many requests, got 5"},
		{DatasetOptions{Name: DatasetPrefixRepetition, NumRequests: 5, InputLen: 1, OutputLen: 1, PrefixCount: 2}, "prefix length must be at least 1"},
		{DatasetOptions{Name: DatasetPrefixRepetition, NumRequests: 5, InputLen: 1, OutputLen: 1, PrefixLen: 2}, "number of prefixes"},
		{DatasetOptions{Name: DatasetCustom}, "no file given"},
	} {
		_, err := Load(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%+v) = %v, want an error containing %q", c.o, err, c.want)
		}
	}
}

func BenchmarkRandomVision720p(b *testing.B) {
	o := DatasetOptions{Name: DatasetRandomVision, NumRequests: 1, InputLen: 100, OutputLen: 10, ImageWidth: 1280, ImageHeight: 720, ImagesPerRequest: 1}
	for b.Loop() {
		if _, err := Load(o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRandom1024(b *testing.B) {
	o := DatasetOptions{NumRequests: 1000, InputLen: 1024, OutputLen: 128}
	for b.Loop() {
		if _, err := Load(o); err != nil {
			b.Fatal(err)
		}
	}
}
