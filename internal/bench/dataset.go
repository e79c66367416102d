package bench

// Datasets, after vllm bench serve's (vllm/benchmarks/datasets.py):
//
//   - random: synthetic prompts. Per request the body length is uniform in the integers
//     [floor(InputLen·(1−r)), ceil(InputLen·(1+r))] and the output length in
//     [max(1, floor(OutputLen·(1−r))), ceil(OutputLen·(1+r))], r = RangeRatio in [0, 1); a
//     prefix of PrefixLen words, drawn once, comes first in every prompt, so a prompt is
//     PrefixLen + body tokens (vLLM's --random-input-len, --random-output-len,
//     --random-range-ratio, --random-prefix-len).
//   - sharegpt: ShareGPT_V3_unfiltered_cleaned_split.json. Conversations are shuffled by seed;
//     each gives its first human turn as the prompt and the reply right after it as
//     ExpectedText; OutputLen is the reply's token count unless SharegptOutputLen (> 0)
//     overrides it. Pairs are kept as vLLM's is_valid_sequence keeps them: prompt ≥ 4 and
//     output ≥ 4 tokens (the output check is skipped under an override), prompt ≤ 1024 and
//     prompt + output ≤ 2048. Conversations without such a pair (fewer than two turns, no human
//     turn, no reply after it) are skipped, as vLLM skips those with fewer than two turns; real
//     files have some. The whole file's JSON syntax is checked; an entry's shape (types of
//     id, conversations, from, value) is checked when it is examined.
//   - custom: JSONL, one {"prompt": "…", "output_tokens": N} per line (output_tokens
//     optional), shuffled by seed as vLLM's CustomDataset.
//   - random-vision (vLLM's random-mm): random text plus ImagesPerRequest PNG images of
//     ImageWidth×ImageHeight per request, as data URLs.
//   - prefix-repetition (vLLM's prefix_repetition): PrefixCount distinct prefixes of PrefixLen
//     words; request i uses prefix i mod PrefixCount, then a random suffix of InputLen words,
//     and the requests are shuffled by seed.
//
// File datasets take every usable entry when NumRequests ≤ 0, and otherwise, when the file has
// fewer usable entries than NumRequests, repeat random ones to make up the number (vLLM's
// oversampling).
//
// Token counts. vLLM's benchmark re-tokenizes every prompt with the model's tokenizer, which
// citadel cannot load. These datasets count tokens with CountTokens, the approximate tokenizer
// of citadel sim (internal/sim): ceil(len(word)/4) per whitespace-separated word. Synthetic
// prompts are made of common English words of 1–4 letters, so a prompt of N words is exactly
// N tokens on the simulator and close to N on a real BPE tokenizer (a short common word with
// its leading space is usually one token). PromptLen is therefore approximate for real engines;
// the engine's usage.prompt_tokens, when it reports one, overrides it in the results. Neither
// the chat template's framing nor image tokens are counted, as in vLLM's prompt_len.
//
// Everything is deterministic for a given Seed (and citadel build): each purpose (lengths,
// prefixes, words, images, shuffling) has its own random stream, so changing, say, the number
// of images does not change the text.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
)

// Dataset names (Name). The vLLM spellings random-mm and prefix_repetition are accepted too.
const (
	DatasetRandom           = "random"
	DatasetShareGPT         = "sharegpt"
	DatasetCustom           = "custom"
	DatasetRandomVision     = "random-vision"
	DatasetPrefixRepetition = "prefix-repetition"
)

// vLLM's defaults, for flags; Load itself does not fill zero fields in except as noted on
// DatasetOptions.
const (
	DefaultNumPrompts                = 1000 // --num-prompts
	DefaultInputLen                  = 1024 // --random-input-len
	DefaultOutputLen                 = 128  // --random-output-len, --prefix-repetition-output-len
	DefaultCustomOutputLen           = 256  // --custom-output-len
	DefaultPrefixRepetitionPrefixLen = 256  // --prefix-repetition-prefix-len
	DefaultPrefixRepetitionSuffixLen = 256  // --prefix-repetition-suffix-len
	DefaultPrefixRepetitionCount     = 10   // --prefix-repetition-num-prefixes
)

// vLLM's ShareGPT filter (is_valid_sequence's defaults).
const (
	sharegptMinLen       = 4
	sharegptMaxPromptLen = 1024
	sharegptMaxTotalLen  = 2048
)

// Largest generated image side, to keep a typo from allocating gigabytes.
const maxImageSide = 16384

// DatasetOptions selects and shapes a dataset. Fields a dataset does not use are ignored.
type DatasetOptions struct {
	// Name: random (default when empty), sharegpt, custom, random-vision, prefix-repetition.
	Name string
	// Path of the sharegpt JSON or custom JSONL file.
	Path string
	// NumRequests: how many requests. Required (≥ 1) for the synthetic datasets; for files,
	// ≤ 0 means every usable entry.
	NumRequests int
	// InputLen: random and random-vision body words; prefix-repetition suffix words.
	// OutputLen: max tokens for the synthetic datasets (≥ 1), and for custom lines without
	// output_tokens (0 means DefaultCustomOutputLen there).
	InputLen, OutputLen int
	// RangeRatio r in [0, 1): input and output lengths uniform in [len·(1−r), len·(1+r)] as
	// vLLM (floor of the low end, ceil of the high end). Synthetic datasets only.
	RangeRatio float64
	// PrefixLen: random and random-vision: shared prefix words at the start of every prompt;
	// prefix-repetition: the length of each of its prefixes.
	PrefixLen int
	// random-vision: image size and images per request.
	ImageWidth, ImageHeight, ImagesPerRequest int
	// PrefixCount: prefix-repetition's distinct prefixes (≤ NumRequests).
	PrefixCount int
	// Seed makes the dataset reproducible.
	Seed int64
	// SharegptOutputLen > 0 replaces the reply's token count as OutputLen.
	SharegptOutputLen int
}

// DatasetStats says how a file dataset was sampled (zero for synthetic ones except Used).
type DatasetStats struct {
	Entries     int // entries in the file (conversations or non-blank lines)
	Examined    int // entries looked at, in shuffled order, until enough were found
	Used        int // distinct entries in the result
	NoReply     int // sharegpt: no human turn followed by a reply
	TooShort    int // sharegpt: prompt or output under 4 tokens
	TooLong     int // sharegpt: prompt over 1024 or prompt + output over 2048 tokens
	Oversampled int // requests that repeat an entry to reach NumRequests
}

// CountTokens is the approximate tokenizer shared with citadel sim: every whitespace-separated
// word costs ceil(len(word)/4) tokens (len in bytes), so every word costs at least one.
func CountTokens(s string) int {
	n := 0
	for _, w := range strings.Fields(s) {
		n += (len(w) + 3) / 4
	}
	return n
}

// Load builds the requests o describes. See LoadWithStats.
func Load(o DatasetOptions) ([]Request, error) {
	reqs, _, err := LoadWithStats(o)
	return reqs, err
}

// LoadWithStats builds the requests o describes and reports how a file was sampled. Errors
// name the file and line and say what is wrong, e.g.
// "data.jsonl:3: "output_tokens" must be a positive integer, got -1".
func LoadWithStats(o DatasetOptions) ([]Request, DatasetStats, error) {
	switch o.Name {
	case "", DatasetRandom:
		reqs, err := loadRandom(o, false)
		return reqs, DatasetStats{Used: len(reqs)}, err
	case DatasetRandomVision, "random-mm":
		reqs, err := loadRandom(o, true)
		return reqs, DatasetStats{Used: len(reqs)}, err
	case DatasetPrefixRepetition, "prefix_repetition":
		reqs, err := loadPrefixRepetition(o)
		return reqs, DatasetStats{Used: len(reqs)}, err
	case DatasetShareGPT:
		return loadShareGPT(o)
	case DatasetCustom:
		return loadCustom(o)
	}
	return nil, DatasetStats{}, fmt.Errorf("unknown dataset %q (want random, sharegpt, custom, random-vision or prefix-repetition)", o.Name)
}

// Random streams, one per purpose.
const (
	streamLengths = iota + 1
	streamPrefix
	streamWords
	streamImages
	streamShuffle
	streamOversample
)

func newRNG(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x6a09e667f3bcc909^stream))
}

// vocabulary: common English words of 1–4 lowercase letters, one token each for CountTokens
// and usually one for a real BPE tokenizer.
var vocabulary = strings.Fields(`
a i am an as at be by do go he if in is it me my no of on or so to up us we
act add age ago aid aim air all and any arm art ask bad bag bar bed big bit box boy bus but
buy can car cat cow cup cut day did dog dry due ear eat egg end eye far few fit fix fly for
fun gas get got guy had has hat her him his hit hot how ice its job joy key kid lab law lay
leg let lie lot low man map may men mix net new nor not now nut odd off oil old one our out
own pay pen per pet pig put ran raw red row run sad sat saw say sea see set she sit six sky
son sun tax tea ten the tie tip too top toy try two use van was way web wet who why win yes
yet you zoo
able also area army away baby back ball band bank base bath bear beat bell belt best bill
bird blue boat body bone book born both bowl busy cake call calm came camp card care case
cash cell chat city club coal coat code cold come cook cool copy corn cost crew dark data
date deal dear deep desk door down draw drop duck dust duty each earn east easy edge else
even ever face fact fair fall farm fast feel file fill film find fine fire firm fish five
flat flow food foot form four free from fuel full game gate gave gift girl give glad goal
gold golf gone good gray grew grow hair half hall hand hard have head hear heat held help
here high hill hold hole home hope horn host hour huge idea inch into iron item jump just
keep kind king knew know lake land last late lead left less life lift like line link list
live load lock long look lose lost loud love made mail main make many mark meal mean meet
menu mild milk mind miss mode moon more most move much must name near neck need news next
nice nine node none nose note once only open over page pair park part pass past path peak
pick pink plan play plus poem pool port post pull pure push race rain rank rate read real
rest rice rich ride ring rise road rock role roof room root rose rule safe said sale salt
same sand save seat seed seek self sell send ship shoe shop show side sign sing site size
skin slow snow soft soil sold some song soon sort spot star stay step stop such suit sure
take talk tall task team tell term test text than that them then they thin this time tiny
told tone took tool tour town tree trip true turn type unit upon used user very view vote
wait walk wall want warm wash wave wear week well went were west what when wide wild will
wind wing wire wise wish with wood word work yard year your zero zone`)

// words appends n random vocabulary words to b, space-separated (a leading space when b is not
// empty).
func words(b *strings.Builder, rng *rand.Rand, n int) {
	for range n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
	}
}

// lengthRange is vLLM's sampling interval for a mean length and range ratio.
func lengthRange(n int, r float64) (lo, hi int) {
	return int(math.Floor(float64(n) * (1 - r))), int(math.Ceil(float64(n) * (1 + r)))
}

// sampleLengths draws n (input, output) lengths as vLLM's get_sampling_params.
func sampleLengths(rng *rand.Rand, n, inputLen, outputLen int, r float64) (in, out []int) {
	inLo, inHi := lengthRange(inputLen, r)
	outLo, outHi := lengthRange(outputLen, r)
	outLo, outHi = max(outLo, 1), max(outHi, 1)
	in, out = make([]int, n), make([]int, n)
	for i := range n {
		in[i] = inLo + rng.IntN(inHi-inLo+1)
	}
	for i := range n {
		out[i] = outLo + rng.IntN(outHi-outLo+1)
	}
	return in, out
}

func checkSynthetic(o DatasetOptions, what string) error {
	switch {
	case o.NumRequests < 1:
		return fmt.Errorf("%s dataset: the number of requests must be at least 1, got %d", what, o.NumRequests)
	case !(o.RangeRatio >= 0 && o.RangeRatio < 1):
		return fmt.Errorf("%s dataset: range ratio must be in [0, 1), got %v", what, o.RangeRatio)
	case o.InputLen < 0:
		return fmt.Errorf("%s dataset: input length must not be negative, got %d", what, o.InputLen)
	case o.PrefixLen < 0:
		return fmt.Errorf("%s dataset: prefix length must not be negative, got %d", what, o.PrefixLen)
	case o.OutputLen < 1:
		return fmt.Errorf("%s dataset: output length must be at least 1, got %d", what, o.OutputLen)
	}
	return nil
}

func loadRandom(o DatasetOptions, vision bool) ([]Request, error) {
	what := DatasetRandom
	if vision {
		what = DatasetRandomVision
	}
	if err := checkSynthetic(o, what); err != nil {
		return nil, err
	}
	if lo, _ := lengthRange(o.InputLen, o.RangeRatio); o.PrefixLen+lo < 1 {
		return nil, fmt.Errorf("%s dataset: prompts could be empty: prefix %d + at least %d input words (input length %d, range ratio %v); raise the input or prefix length",
			what, o.PrefixLen, lo, o.InputLen, o.RangeRatio)
	}
	if vision {
		if o.ImagesPerRequest < 1 {
			return nil, fmt.Errorf("%s dataset: images per request must be at least 1, got %d", what, o.ImagesPerRequest)
		}
		if o.ImageWidth < 1 || o.ImageHeight < 1 || o.ImageWidth > maxImageSide || o.ImageHeight > maxImageSide {
			return nil, fmt.Errorf("%s dataset: image size %dx%d: width and height must be in [1, %d]", what, o.ImageWidth, o.ImageHeight, maxImageSide)
		}
	}
	inLens, outLens := sampleLengths(newRNG(o.Seed, streamLengths), o.NumRequests, o.InputLen, o.OutputLen, o.RangeRatio)
	var pb strings.Builder
	words(&pb, newRNG(o.Seed, streamPrefix), o.PrefixLen)
	prefix := pb.String()

	wordRNG, imgRNG := newRNG(o.Seed, streamWords), newRNG(o.Seed, streamImages)
	reqs := make([]Request, o.NumRequests)
	for i := range reqs {
		var b strings.Builder
		b.Grow(len(prefix) + 4*inLens[i])
		b.WriteString(prefix)
		words(&b, wordRNG, inLens[i])
		reqs[i] = Request{Prompt: b.String(), PromptLen: o.PrefixLen + inLens[i], OutputLen: outLens[i]}
		if vision {
			reqs[i].MultiModal = true
			reqs[i].Images = make([]string, o.ImagesPerRequest)
			for j := range reqs[i].Images {
				url, err := blockImage(imgRNG, o.ImageWidth, o.ImageHeight)
				if err != nil {
					return nil, err
				}
				reqs[i].Images[j] = url
			}
		}
	}
	return reqs, nil
}

// blockImage is a PNG data URL of w×h pixels: a grid of up to 8×8 solid blocks whose colours
// come from rng, so every image differs (no engine-side multimodal cache hits, as vLLM's random
// pixels) while the file stays small and quick to encode.
func blockImage(rng *rand.Rand, w, h int) (string, error) {
	const grid = 8
	cols, rows := min(grid, w), min(grid, h)
	pal := make(color.Palette, cols*rows)
	for i := range pal {
		c := rng.Uint32()
		pal[i] = color.RGBA{R: uint8(c), G: uint8(c >> 8), B: uint8(c >> 16), A: 255}
	}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+w]
		base := (y * rows / h) * cols
		for x := range row {
			row[x] = uint8(base + x*cols/w)
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("random-vision dataset: encoding a %dx%d PNG: %w", w, h, err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func loadPrefixRepetition(o DatasetOptions) ([]Request, error) {
	const what = DatasetPrefixRepetition
	if err := checkSynthetic(o, what); err != nil {
		return nil, err
	}
	switch {
	case o.PrefixLen < 1:
		return nil, fmt.Errorf("%s dataset: prefix length must be at least 1, got %d", what, o.PrefixLen)
	case o.PrefixCount < 1:
		return nil, fmt.Errorf("%s dataset: the number of prefixes must be at least 1, got %d", what, o.PrefixCount)
	case o.PrefixCount > o.NumRequests:
		return nil, fmt.Errorf("%s dataset: %d prefixes need at least as many requests, got %d", what, o.PrefixCount, o.NumRequests)
	}
	prefixes, err := distinctPrefixes(newRNG(o.Seed, streamPrefix), o.PrefixCount, o.PrefixLen)
	if err != nil {
		return nil, err
	}
	inLens, outLens := sampleLengths(newRNG(o.Seed, streamLengths), o.NumRequests, o.InputLen, o.OutputLen, o.RangeRatio)
	wordRNG := newRNG(o.Seed, streamWords)
	reqs := make([]Request, o.NumRequests)
	for i := range reqs {
		p := prefixes[i%len(prefixes)]
		var b strings.Builder
		b.Grow(len(p) + 4*inLens[i])
		b.WriteString(p)
		words(&b, wordRNG, inLens[i])
		reqs[i] = Request{Prompt: b.String(), PromptLen: o.PrefixLen + inLens[i], OutputLen: outLens[i]}
	}
	newRNG(o.Seed, streamShuffle).Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	return reqs, nil
}

// distinctPrefixes draws k different prefixes of n words; while k ≤ the vocabulary they also
// differ in their first word, so no two share a leading KV block.
func distinctPrefixes(rng *rand.Rand, k, n int) ([]string, error) {
	first := rng.Perm(len(vocabulary))
	seen := make(map[string]bool, k)
	out := make([]string, 0, k)
	for i := range k {
		for try := 0; ; try++ {
			if try == 100 {
				return nil, fmt.Errorf("%s dataset: cannot make %d distinct prefixes of %d words; raise the prefix length", DatasetPrefixRepetition, k, n)
			}
			var b strings.Builder
			if i < len(first) && try == 0 {
				b.WriteString(vocabulary[first[i]])
				words(&b, rng, n-1)
			} else {
				words(&b, rng, n)
			}
			if p := b.String(); !seen[p] {
				seen[p] = true
				out = append(out, p)
				break
			}
		}
	}
	return out, nil
}

// fileEntry is one conversation or JSONL line, located for error messages.
type fileEntry struct {
	raw   []byte
	line  int // of the entry's first byte
	index int // 1-based, in file order
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

// describeJSONError turns a json error into "what is wrong" and the offset it happened at
// (-1 when unknown), relative to the decoded value.
func describeJSONError(err error) (string, int64) {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON: " + se.Error(), se.Offset
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Sprintf("found a JSON %s, want %s", te.Value, jsonKind(te.Type.Kind().String())), te.Offset
		}
		return fmt.Sprintf("%q is a JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.Kind().String())), te.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: unexpected end of file", -1
	}
	return err.Error(), -1
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "float64":
		return "a number"
	}
	return goKind
}

// shuffleAndTake shuffles entries by seed (as vLLM's random.shuffle of the data) and feeds them
// to use until o.NumRequests requests are made (all entries when it is ≤ 0), then oversamples.
func shuffleAndTake(o DatasetOptions, entries []fileEntry, stats *DatasetStats, use func(fileEntry) (*Request, error)) ([]Request, error) {
	newRNG(o.Seed, streamShuffle).Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	var reqs []Request
	for _, e := range entries {
		if o.NumRequests > 0 && len(reqs) >= o.NumRequests {
			break
		}
		stats.Examined++
		r, err := use(e)
		if err != nil {
			return nil, err
		}
		if r != nil {
			reqs = append(reqs, *r)
		}
	}
	stats.Used = len(reqs)
	if len(reqs) > 0 && len(reqs) < o.NumRequests {
		rng := newRNG(o.Seed, streamOversample)
		n := len(reqs)
		for len(reqs) < o.NumRequests {
			r := reqs[rng.IntN(n)]
			r.Images = append([]string(nil), r.Images...)
			reqs = append(reqs, r)
			stats.Oversampled++
		}
	}
	return reqs, nil
}

type sharegptTurn struct {
	From  string `json:"from"`
	Value string `json:"value"`
}

type sharegptConversation struct {
	ID            json.RawMessage `json:"id"`
	Conversations []sharegptTurn  `json:"conversations"`
}

func isHumanRole(r string) bool { return r == "human" || r == "user" }

func isReplyRole(r string) bool {
	switch r {
	case "gpt", "assistant", "chatgpt", "bing", "bard", "model":
		return true
	}
	return false
}

func loadShareGPT(o DatasetOptions) ([]Request, DatasetStats, error) {
	var stats DatasetStats
	if o.Path == "" {
		return nil, stats, errors.New("sharegpt dataset: no file given (a ShareGPT_V3-style JSON array)")
	}
	if o.SharegptOutputLen < 0 {
		return nil, stats, fmt.Errorf("sharegpt dataset: output length override must not be negative, got %d", o.SharegptOutputLen)
	}
	data, err := os.ReadFile(o.Path)
	if err != nil {
		return nil, stats, fmt.Errorf("sharegpt dataset: %w", err)
	}
	entries, err := splitJSONArray(o.Path, data)
	if err != nil {
		return nil, stats, err
	}
	stats.Entries = len(entries)
	if len(entries) == 0 {
		return nil, stats, fmt.Errorf("%s: no conversations (the array is empty)", o.Path)
	}
	var firstNoReply, firstShort, firstLong *fileEntry
	reqs, err := shuffleAndTake(o, entries, &stats, func(e fileEntry) (*Request, error) {
		var c sharegptConversation
		if err := json.Unmarshal(e.raw, &c); err != nil {
			msg, off := describeJSONError(err)
			line := e.line
			if off >= 0 {
				line += lineAt(e.raw, off) - 1
			}
			return nil, fmt.Errorf("%s:%d: conversation %d%s: %s", o.Path, line, e.index, idSuffix(c.ID), msg)
		}
		h := -1
		for i, t := range c.Conversations {
			if isHumanRole(t.From) {
				h = i
				break
			}
		}
		if h < 0 || h+1 >= len(c.Conversations) || !isReplyRole(c.Conversations[h+1].From) {
			stats.NoReply++
			if firstNoReply == nil || e.index < firstNoReply.index {
				firstNoReply = &e
			}
			return nil, nil
		}
		prompt, reply := c.Conversations[h].Value, c.Conversations[h+1].Value
		promptLen, outputLen := CountTokens(prompt), CountTokens(reply)
		if o.SharegptOutputLen > 0 {
			outputLen = o.SharegptOutputLen
		}
		switch {
		case promptLen < sharegptMinLen || (o.SharegptOutputLen == 0 && outputLen < sharegptMinLen):
			stats.TooShort++
			if firstShort == nil || e.index < firstShort.index {
				firstShort = &e
			}
			return nil, nil
		case promptLen > sharegptMaxPromptLen || promptLen+outputLen > sharegptMaxTotalLen:
			stats.TooLong++
			if firstLong == nil || e.index < firstLong.index {
				firstLong = &e
			}
			return nil, nil
		}
		return &Request{Prompt: prompt, PromptLen: promptLen, OutputLen: outputLen, ExpectedText: reply}, nil
	})
	if err != nil {
		return nil, stats, err
	}
	if len(reqs) == 0 {
		var why []string
		where := func(e *fileEntry) string {
			return fmt.Sprintf("first: conversation %d, line %d", e.index, e.line)
		}
		if stats.NoReply > 0 {
			why = append(why, fmt.Sprintf("%d have no human turn followed by a gpt reply (%s)", stats.NoReply, where(firstNoReply)))
		}
		if stats.TooShort > 0 {
			why = append(why, fmt.Sprintf("%d are too short: prompt or reply under %d tokens (%s)", stats.TooShort, sharegptMinLen, where(firstShort)))
		}
		if stats.TooLong > 0 {
			why = append(why, fmt.Sprintf("%d are too long: prompt over %d or prompt + output over %d tokens (%s)", stats.TooLong, sharegptMaxPromptLen, sharegptMaxTotalLen, where(firstLong)))
		}
		return nil, stats, fmt.Errorf("%s: none of the %d conversations is usable: %s", o.Path, stats.Entries, strings.Join(why, "; "))
	}
	return reqs, stats, nil
}

func idSuffix(id json.RawMessage) string {
	var s string
	if len(id) > 0 && json.Unmarshal(id, &s) == nil && s != "" {
		return fmt.Sprintf(" (id %q)", s)
	}
	return ""
}

// splitJSONArray splits a top-level JSON array into its elements, each with its line. The
// elements are slices of data, not copies: a real ShareGPT file is over 600 MB. json.Valid
// checks the whole file first (several times faster than a json.Decoder walk), after which a
// plain bracket-matching scan finds the elements.
func splitJSONArray(path string, data []byte) ([]fileEntry, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty file, want a JSON array of conversations", path)
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v) // stops at the syntax error, with its absolute offset
		if err == nil {
			err = errors.New("invalid JSON")
		}
		msg, off := describeJSONError(err)
		if off < 0 {
			off = int64(len(data))
		}
		return nil, fmt.Errorf("%s:%d: %s", path, lineAt(data, off), msg)
	}
	i := skipSpace(data, 0)
	if data[i] != '[' {
		return nil, fmt.Errorf("%s:%d: want a JSON array of conversations ([{\"id\": …, \"conversations\": [{\"from\": \"human\", \"value\": …}, {\"from\": \"gpt\", \"value\": …}]}, …]), found %s",
			path, lineAt(data, i), jsonKindAt(data[i]))
	}
	var entries []fileEntry
	line, lineOff := 1, int64(0) // line counting, incremental
	for i++; ; {
		i = skipSpace(data, i)
		if data[i] == ']' {
			break
		}
		end := valueEnd(data, i)
		line += bytes.Count(data[lineOff:i], []byte{'\n'})
		lineOff = i
		entries = append(entries, fileEntry{raw: data[i:end], line: line, index: len(entries) + 1})
		i = end
	}
	return entries, nil
}

// valueEnd is the offset just past the JSON value starting at i, in data known to be valid.
func valueEnd(data []byte, i int64) int64 {
	depth := 0
	for inString := false; i < int64(len(data)); i++ {
		c := data[i]
		switch {
		case inString:
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
				if depth == 0 {
					return i + 1
				}
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 { // the end of a scalar in the enclosing array
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			return i
		}
	}
	return i
}

func jsonKindAt(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// skipSpace skips JSON whitespace and a separating comma from off.
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
		default:
			return off
		}
	}
	return off
}

type customLine struct {
	Prompt       *string         `json:"prompt"`
	OutputTokens json.RawMessage `json:"output_tokens"`
}

func loadCustom(o DatasetOptions) ([]Request, DatasetStats, error) {
	var stats DatasetStats
	if o.Path == "" {
		return nil, stats, errors.New(`custom dataset: no file given (JSONL, one {"prompt": "…", "output_tokens": N} per line)`)
	}
	defaultOut := o.OutputLen
	if defaultOut == 0 {
		defaultOut = DefaultCustomOutputLen
	}
	if defaultOut < 0 {
		return nil, stats, fmt.Errorf("custom dataset: output length must not be negative, got %d", o.OutputLen)
	}
	data, err := os.ReadFile(o.Path)
	if err != nil {
		return nil, stats, fmt.Errorf("custom dataset: %w", err)
	}
	// Every line is checked up front, so a bad line fails the run whatever the seed picks.
	var entries []fileEntry
	var parsed []Request
	for i, ln := range bytes.Split(data, []byte{'\n'}) {
		ln = bytes.TrimSpace(ln)
		if len(ln) == 0 {
			continue
		}
		r, err := parseCustomLine(ln, defaultOut)
		if err != nil {
			return nil, stats, fmt.Errorf("%s:%d: %s", o.Path, i+1, err)
		}
		parsed = append(parsed, r)
		entries = append(entries, fileEntry{line: i + 1, index: len(parsed)})
	}
	stats.Entries = len(entries)
	if len(entries) == 0 {
		return nil, stats, fmt.Errorf(`%s: no prompts (want JSONL, one {"prompt": "…", "output_tokens": N} per line)`, o.Path)
	}
	reqs, err := shuffleAndTake(o, entries, &stats, func(e fileEntry) (*Request, error) {
		r := parsed[e.index-1]
		return &r, nil
	})
	return reqs, stats, err
}

func parseCustomLine(ln []byte, defaultOut int) (Request, error) {
	var c customLine
	if err := json.Unmarshal(ln, &c); err != nil {
		msg, off := describeJSONError(err)
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			msg = fmt.Sprintf(`found a JSON %s, want an object like {"prompt": "…"}`, te.Value)
		} else if off > 0 {
			// encoding/json's offsets count the bytes read up to the error: the 1-based column.
			msg = fmt.Sprintf("column %d: %s", off, msg)
		}
		return Request{}, errors.New(msg)
	}
	if c.Prompt == nil {
		return Request{}, errors.New(`no "prompt" field`)
	}
	if strings.TrimSpace(*c.Prompt) == "" {
		return Request{}, errors.New(`"prompt" is empty`)
	}
	out := defaultOut
	if t := string(c.OutputTokens); t != "" && t != "null" {
		var n int64
		if err := json.Unmarshal(c.OutputTokens, &n); err != nil || n < 1 || n > math.MaxInt32 {
			return Request{}, fmt.Errorf(`"output_tokens" must be a positive integer, got %s`, t)
		}
		out = int(n)
	}
	return Request{Prompt: *c.Prompt, PromptLen: CountTokens(*c.Prompt), OutputLen: out}, nil
}
