package sim

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

func TestEmbeddings(t *testing.T) {
	ts := start(t, Config{Seed: 3})
	type resp struct {
		Object string `json:"object"`
		Data   []struct {
			Index     int             `json:"index"`
			Object    string          `json:"object"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	code, b := post(t, ts.URL+"/v1/embeddings", `{"model":"qwen2.5-7b","input":["hello world","other text here"]}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	r := decodeJSON[resp](t, b)
	if r.Object != "list" || len(r.Data) != 2 || r.Data[1].Index != 1 || r.Data[0].Object != "embedding" || r.Usage.PromptTokens != 8 || r.Usage.TotalTokens != 8 {
		t.Fatalf("response %s…", b[:min(len(b), 200)])
	}
	var v0, v1 []float64
	_ = json.Unmarshal(r.Data[0].Embedding, &v0)
	_ = json.Unmarshal(r.Data[1].Embedding, &v1)
	if len(v0) != 3584 { // qwen2.5-7b's hidden size
		t.Fatalf("dimension %d, want 3584", len(v0))
	}
	norm, dot := 0.0, 0.0
	for i := range v0 {
		norm += v0[i] * v0[i]
		dot += v0[i] * v1[i]
	}
	if math.Abs(norm-1) > 1e-4 || math.Abs(dot) > 0.2 {
		t.Errorf("|v| = %g (want 1), v0·v1 = %g (want near 0)", norm, dot)
	}

	// base64: little-endian float32s of the same vector.
	code, b = post(t, ts.URL+"/v1/embeddings", `{"input":"hello world","encoding_format":"base64"}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	var s string
	_ = json.Unmarshal(decodeJSON[resp](t, b).Data[0].Embedding, &s)
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != 4*3584 {
		t.Fatalf("base64 embedding: %d bytes, %v", len(raw), err)
	}
	for i := range 3584 {
		if f := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); float64(f) != float64(float32(v0[i])) {
			t.Fatalf("component %d: base64 %g, float %g", i, f, v0[i])
		}
	}

	for _, body := range []string{`{"input":[]}`, `{"input":"x","dimensions":8}`, `{"input":"x","encoding_format":"hex"}`} {
		if code, b := post(t, ts.URL+"/v1/embeddings", body); code != 400 {
			t.Errorf("%s: status %d, want 400: %s", body, code, b)
		}
	}
	ts8 := start(t, Config{EmbeddingDim: 8})
	_, b = post(t, ts8.URL+"/v1/embeddings", `{"input":"x"}`)
	var v []float64
	_ = json.Unmarshal(decodeJSON[resp](t, b).Data[0].Embedding, &v)
	if len(v) != 8 {
		t.Errorf("EmbeddingDim 8: got %d components", len(v))
	}
}

type logprobsChoice struct {
	Message struct {
		Content   *string `json:"content"`
		ToolCalls []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"message"`
	Text     string `json:"text"`
	Logprobs *struct {
		Content []struct {
			Token       string  `json:"token"`
			Logprob     float64 `json:"logprob"`
			Bytes       []int   `json:"bytes"`
			TopLogprobs []struct {
				Token   string  `json:"token"`
				Logprob float64 `json:"logprob"`
			} `json:"top_logprobs"`
		} `json:"content"`
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []float64            `json:"token_logprobs"`
		TextOffset    []int                `json:"text_offset"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	} `json:"logprobs"`
	FinishReason string `json:"finish_reason"`
}

func TestLogprobs(t *testing.T) {
	ts := start(t, Config{Seed: 1})
	code, b := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":6,"ignore_eos":true,"logprobs":true,"top_logprobs":3}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	c := decodeJSON[struct{ Choices []logprobsChoice }](t, b).Choices[0]
	if c.Logprobs == nil || len(c.Logprobs.Content) != 6 {
		t.Fatalf("logprobs %s", b)
	}
	var text strings.Builder
	for _, e := range c.Logprobs.Content {
		text.WriteString(e.Token)
		if e.Logprob > 0 || len(e.TopLogprobs) != 3 || e.TopLogprobs[0].Token != e.Token || len(e.Bytes) != len(e.Token) {
			t.Errorf("entry %+v", e)
		}
		for k := 1; k < 3; k++ {
			if e.TopLogprobs[k].Logprob > e.TopLogprobs[k-1].Logprob {
				t.Errorf("top_logprobs not descending: %+v", e.TopLogprobs)
			}
		}
	}
	if text.String() != *c.Message.Content {
		t.Errorf("tokens join to %q, content is %q", text.String(), *c.Message.Content)
	}

	// Streaming: one entry per content chunk, the same as the whole response's.
	_, sb := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":6,"ignore_eos":true,"logprobs":true,"top_logprobs":3,"stream":true}`)
	n := 0
	for _, ev := range events(t, sb) {
		if ev == "[DONE]" {
			continue
		}
		ch := decodeJSON[struct{ Choices []logprobsChoice }](t, []byte(ev)).Choices[0]
		if ch.Logprobs == nil {
			continue // the role chunk
		}
		if got, want := ch.Logprobs.Content[0].Logprob, c.Logprobs.Content[n].Logprob; got != want {
			t.Errorf("stream token %d logprob %g, whole %g", n, got, want)
		}
		n++
	}
	if n != 6 {
		t.Errorf("stream carried %d logprob entries, want 6", n)
	}

	code, b = post(t, ts.URL+"/v1/completions", `{"prompt":"hi","max_tokens":4,"ignore_eos":true,"logprobs":2}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	cc := decodeJSON[struct{ Choices []logprobsChoice }](t, b).Choices[0]
	lp := cc.Logprobs
	if lp == nil || len(lp.Tokens) != 4 || len(lp.TokenLogprobs) != 4 || len(lp.TopLogprobs) != 4 || lp.TextOffset[1] != len(lp.Tokens[0]) || strings.Join(lp.Tokens, "") != cc.Text {
		t.Errorf("completion logprobs %s", b)
	}

	for _, body := range []string{
		`{"messages":[{"role":"user","content":"hi"}],"top_logprobs":2}`,
		`{"messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":21}`,
	} {
		if code, b := post(t, ts.URL+"/v1/chat/completions", body); code != 400 {
			t.Errorf("%s: status %d, want 400: %s", body, code, b)
		}
	}
	if code, b := post(t, ts.URL+"/v1/completions", `{"prompt":"hi","logprobs":21}`); code != 400 {
		t.Errorf("completions logprobs 21: status %d, want 400: %s", code, b)
	}
}

const weatherTools = `[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}},
{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string"}}}}}]`

func TestToolCalls(t *testing.T) {
	ts := start(t, Config{Seed: 1})
	body := `{"messages":[{"role":"user","content":"weather?"}],"tools":` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`
	code, b := post(t, ts.URL+"/v1/chat/completions", body)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	c := decodeJSON[struct{ Choices []logprobsChoice }](t, b).Choices[0]
	if c.FinishReason != "tool_calls" || c.Message.Content != nil || len(c.Message.ToolCalls) != 1 {
		t.Fatalf("choice %s", b)
	}
	tc := c.Message.ToolCalls[0]
	var args struct {
		City *string `json:"city"`
		Days *int    `json:"days"`
		Unit string  `json:"unit"`
	}
	if err := json.Unmarshal([]byte(tc.Function.Arguments), &args); err != nil || args.City == nil || args.Days == nil || (args.Unit != "c" && args.Unit != "f") {
		t.Errorf("arguments %q (%v) do not fit the parameters", tc.Function.Arguments, err)
	}
	if tc.Function.Name != "get_weather" || tc.Type != "function" || !strings.HasPrefix(tc.ID, "chatcmpl-tool-") {
		t.Errorf("tool call %+v", tc)
	}

	// Streamed: the first delta names the call, the fragments join to the same arguments.
	_, sb := post(t, ts.URL+"/v1/chat/completions", strings.Replace(body, `"messages"`, `"stream":true,"messages"`, 1))
	var args2, name, finish string
	for _, ev := range events(t, sb) {
		if ev == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					ToolCalls []struct {
						ID       string       `json:"id"`
						Function toolFunction `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		_ = json.Unmarshal([]byte(ev), &ch)
		for _, d := range ch.Choices[0].Delta.ToolCalls {
			name += d.Function.Name
			args2 += d.Function.Arguments
		}
		if f := ch.Choices[0].FinishReason; f != nil {
			finish = *f
		}
	}
	if name != "get_weather" || args2 != tc.Function.Arguments || finish != "tool_calls" {
		t.Errorf("stream: name %q, arguments %q (whole %q), finish %q", name, args2, tc.Function.Arguments, finish)
	}

	// tool_choice none: plain text; auto: some tool; errors.
	_, b = post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"tools":`+weatherTools+`,"tool_choice":"none","max_tokens":5}`)
	if c := decodeJSON[struct{ Choices []logprobsChoice }](t, b).Choices[0]; len(c.Message.ToolCalls) != 0 || c.Message.Content == nil {
		t.Errorf("tool_choice none: %s", b)
	}
	_, b = post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"tools":`+weatherTools+`}`)
	if c := decodeJSON[struct{ Choices []logprobsChoice }](t, b).Choices[0]; len(c.Message.ToolCalls) != 1 || !json.Valid([]byte(c.Message.ToolCalls[0].Function.Arguments)) {
		t.Errorf("tool_choice auto: %s", b)
	}
	for _, body := range []string{
		`{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}`,
		`{"messages":[{"role":"user","content":"x"}],"tools":` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"nope"}}}`,
	} {
		if code, b := post(t, ts.URL+"/v1/chat/completions", body); code != 400 {
			t.Errorf("%s: status %d, want 400: %s", body, code, b)
		}
	}
}

func TestResponseFormat(t *testing.T) {
	ts := start(t, Config{Seed: 1})
	schema := `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}},"ok":{"type":"boolean"}},"required":["name","age","tags","ok","extra"]}`
	for _, tc := range []struct{ name, format string }{
		{"json_object", `{"type":"json_object"}`},
		{"json_schema", `{"type":"json_schema","json_schema":{"name":"p","schema":` + schema + `}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"response_format":`+tc.format+`}`)
			if code != 200 {
				t.Fatalf("status %d: %s", code, b)
			}
			c := decodeJSON[struct{ Choices []logprobsChoice }](t, b).Choices[0]
			var obj map[string]any
			if err := json.Unmarshal([]byte(*c.Message.Content), &obj); err != nil || c.FinishReason != "stop" {
				t.Fatalf("content %q is not a JSON object (%v), finish %q", *c.Message.Content, err, c.FinishReason)
			}
			if tc.name != "json_schema" {
				return
			}
			_, isStr := obj["name"].(string)
			age, isNum := obj["age"].(float64)
			_, isArr := obj["tags"].([]any)
			_, isBool := obj["ok"].(bool)
			_, hasExtra := obj["extra"]
			if !isStr || !isNum || age != math.Trunc(age) || !isArr || !isBool || !hasExtra {
				t.Errorf("object %v does not fill the schema", obj)
			}
		})
	}
	if code, b := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}`); code != 400 {
		t.Errorf("bad response_format: status %d: %s", code, b)
	}
}

const chatBody = `{"messages":[{"role":"user","content":"hi"}],"max_tokens":3}`

func TestFailRate(t *testing.T) {
	count := func(seed int64) (fails []int) {
		ts := start(t, Config{Faults: Faults{FailRate: 0.3, Seed: seed}})
		for i := range 100 {
			code, b := post(t, ts.URL+"/v1/chat/completions", chatBody)
			switch code {
			case 500:
				if e := decodeJSON[struct{ Error struct{ Code int } }](t, b); e.Error.Code != 500 {
					t.Fatalf("failure body %s", b)
				}
				fails = append(fails, i)
			case 200:
			default:
				t.Fatalf("status %d: %s", code, b)
			}
		}
		if code, _ := get(t, ts.URL+"/health"); code != 200 {
			t.Errorf("/health %d under --fail-rate", code)
		}
		return fails
	}
	a, b := count(5), count(5)
	if len(a) < 15 || len(a) > 45 {
		t.Errorf("%d of 100 failed, want about 30", len(a))
	}
	if len(a) != len(b) {
		t.Fatalf("same seed, different failures: %v vs %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different failures: %v vs %v", a, b)
		}
	}
}

func TestHangAfter(t *testing.T) {
	ts := start(t, Config{Faults: Faults{HangAfter: 2}})
	for range 2 {
		if code, b := post(t, ts.URL+"/v1/chat/completions", chatBody); code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request 3 answered %d, want it to hang", resp.StatusCode)
	}
	if code, _ := get(t, ts.URL+"/health"); code != 200 {
		t.Errorf("/health %d while hanging, want 200 (the process is alive)", code)
	}
}

func TestCrashAfter(t *testing.T) {
	var mu sync.Mutex
	var codes []int
	exit := func(code int) { mu.Lock(); codes = append(codes, code); mu.Unlock() }
	ts := start(t, Config{Faults: Faults{CrashAfter: 1, Exit: exit}})
	if code, b := post(t, ts.URL+"/v1/chat/completions", chatBody); code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	if _, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatBody)); err == nil {
		t.Error("request 2 got a response, want the connection dropped")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(codes) != 1 || codes[0] == 0 {
		t.Errorf("exit calls %v, want one non-zero", codes)
	}
}

func TestStartupDelay(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := start(t, Config{Now: clock, Faults: Faults{StartupDelay: time.Minute, Now: clock}})
	if code, body := get(t, ts.URL+"/health"); code != 503 || body != "" {
		t.Errorf("/health while loading: %d %q, want 503 and an empty body", code, body)
	}
	if code, b := post(t, ts.URL+"/v1/chat/completions", chatBody); code != 503 || !strings.Contains(string(b), "loading") {
		t.Errorf("chat while loading: %d %s, want 503", code, b)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if code, _ := get(t, ts.URL+"/health"); code != 200 {
		t.Errorf("/health after the delay: %d", code)
	}
	if code, b := post(t, ts.URL+"/v1/chat/completions", chatBody); code != 200 {
		t.Errorf("chat after the delay: %d %s", code, b)
	}
}

func TestSlowdown(t *testing.T) {
	e2e := func(slow float64) float64 {
		ts := start(t, Config{Slowdown: slow})
		if code, b := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":20,"ignore_eos":true}`); code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		_, body := get(t, ts.URL+"/metrics")
		var line string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "vllm:e2e_request_latency_seconds_sum") {
				line = l
			}
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			t.Fatalf("no e2e sum in /metrics:\n%s", body)
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	one, three := e2e(1), e2e(3)
	if one <= 0 || math.Abs(three/one-3) > 0.01 {
		t.Errorf("e2e latency %g at slowdown 1, %g at slowdown 3: want 3×", one, three)
	}
	if _, err := NewOpenAI(Config{Plan: newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096}), Slowdown: -1}); err == nil {
		t.Error("Slowdown -1 accepted")
	}
}
