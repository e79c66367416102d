package ollamaapi_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/ollamaapi"
)

// vllmChatStream is a vLLM chat stream with stream_options.include_usage, recorded from
// internal/sim (testdata/chat_stream.golden): the role chunk, content chunks, the finish
// chunk, the usage chunk, [DONE].
const vllmChatStream = `data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"content":"green"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"content":" made"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"content":" development"},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[],"usage":{"prompt_tokens":10,"total_tokens":13,"completion_tokens":3,"prompt_tokens_details":null}}

data: [DONE]

`

// streamRun translates stream for a request, returning the lines (created_at removed),
// how many times flush was called, and the error.
func streamRun(t *testing.T, kind, req string, stream io.Reader) ([]map[string]any, int, error) {
	t.Helper()
	o := mustParse(t, kind, req)
	var out bytes.Buffer
	flushes := 0
	err := ollamaapi.StreamFromOpenAI(o, "qwen:latest", stream, &out, func() { flushes++ }, time.Now().Add(-time.Second))
	var lines []map[string]any
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		lines = append(lines, object(t, sc.Bytes()))
	}
	return lines, flushes, err
}

// checkFinal checks the final line's durations add up and strips them.
func checkFinal(t *testing.T, final map[string]any) {
	t.Helper()
	total := time.Duration(num(final["total_duration"]))
	pe, ev := time.Duration(num(final["prompt_eval_duration"])), time.Duration(num(final["eval_duration"]))
	if total < time.Second || total > time.Minute {
		t.Errorf("total_duration = %v, want about 1 s (nanoseconds since start)", total)
	}
	if pe < 0 || ev < 0 || pe+ev > total {
		t.Errorf("prompt_eval_duration %v + eval_duration %v do not fit in total_duration %v", pe, ev, total)
	}
	for _, k := range []string{"total_duration", "prompt_eval_duration", "eval_duration"} {
		if _, ok := final[k]; !ok {
			t.Errorf("final line has no %s", k)
		}
		delete(final, k)
	}
}

func TestStreamFromOpenAIChat(t *testing.T) {
	t.Parallel()
	// One byte per read: the SSE parser must not depend on how the body is chunked.
	lines, flushes, err := streamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}]}`,
		iotest.OneByteReader(strings.NewReader(vllmChatStream)))
	if err != nil {
		t.Fatal(err)
	}
	if flushes != len(lines) {
		t.Errorf("flush called %d times for %d lines, want once per line", flushes, len(lines))
	}
	if len(lines) == 0 {
		t.Fatal("no lines")
	}
	checkFinal(t, lines[len(lines)-1])
	want := []string{
		`{"model":"qwen:latest","message":{"role":"assistant","content":"green"},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":" made"},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":" development"},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":""},"done_reason":"length","done":true,
			"load_duration":0,"prompt_eval_count":10,"eval_count":3}`,
	}
	compareLines(t, want, lines)
}

func compareLines(t *testing.T, want []string, got []map[string]any) {
	t.Helper()
	var w []any
	for _, s := range want {
		w = append(w, decodeJSON(t, []byte(s)))
	}
	var g []any
	for _, m := range got {
		g = append(g, m)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestStreamFromOpenAIGenerate(t *testing.T) {
	t.Parallel()
	// A completion stream without usage, CRLF line ends, a comment, and events without the
	// blank line between them; thinking deltas become "thinking".
	stream := ": keep-alive\r\n" +
		`data: {"choices":[{"index":0,"delta":{"reasoning_content":"hmm"},"finish_reason":null}]}` + "\r\n\r\n" +
		`data: {"choices":[{"index":0,"text":"once","finish_reason":null}]}` + "\r\n" +
		`data: {"choices":[{"index":0,"text":" upon","finish_reason":"stop"}]}` + "\r\n" +
		"data: [DONE]\r\n"
	lines, _, err := streamRun(t, "generate", `{"model":"qwen","prompt":"tell me a story"}`, strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		t.Fatal("no lines")
	}
	checkFinal(t, lines[len(lines)-1])
	want := []string{
		`{"model":"qwen:latest","response":"","thinking":"hmm","done":false}`,
		`{"model":"qwen:latest","response":"once","done":false}`,
		`{"model":"qwen:latest","response":" upon","done":false}`,
		// No usage: the prompt is estimated (15 bytes → 4 tokens), the output counted in deltas.
		`{"model":"qwen:latest","response":"","done":true,"done_reason":"stop","load_duration":0,"prompt_eval_count":4,"eval_count":3}`,
	}
	compareLines(t, want, lines)
}

func TestStreamFromOpenAIToolCalls(t *testing.T) {
	t.Parallel()
	stream := `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":"{}"}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}

data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: {"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":12}}

data: [DONE]

`
	lines, _, err := streamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"weather"}}]}`, strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	checkFinal(t, lines[len(lines)-1])
	want := []string{
		`{"model":"qwen:latest","message":{"role":"assistant","content":"","tool_calls":[
			{"id":"call_a","function":{"index":0,"name":"weather","arguments":{"city":"Paris"}}},
			{"id":"call_b","function":{"index":1,"name":"time","arguments":{}}}]},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"load_duration":0,"prompt_eval_count":20,"eval_count":12}`,
	}
	compareLines(t, want, lines)
}

func TestStreamFromOpenAIErrorEvent(t *testing.T) {
	t.Parallel()
	stream := `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}

data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}

data: {"error":{"message":"CUDA out of memory","type":"InternalServerError","param":null,"code":500}}

data: [DONE]

`
	lines, flushes, err := streamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}]}`, strings.NewReader(stream))
	var oe *ollamaapi.Error
	if !errors.As(err, &oe) || oe.Status != 500 || oe.Message != "CUDA out of memory" {
		t.Errorf("err = %v, want *ollamaapi.Error{500, CUDA out of memory}", err)
	}
	want := []string{
		`{"model":"qwen:latest","message":{"role":"assistant","content":"Hel"},"done":false}`,
		`{"error":"CUDA out of memory"}`,
	}
	compareLines(t, want, lines)
	if flushes != 2 {
		t.Errorf("flushes = %d, want 2", flushes)
	}
}

func TestStreamFromOpenAITruncated(t *testing.T) {
	t.Parallel()
	// The usage chunk arrived but not [DONE]; and a stream cut inside an event.
	for name, stream := range map[string]string{
		"no [DONE]":    strings.TrimSuffix(vllmChatStream, "data: [DONE]\n\n"),
		"cut mid-line": vllmChatStream[:400],
		"empty":        "",
	} {
		t.Run(name, func(t *testing.T) {
			lines, _, err := streamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}]}`, strings.NewReader(stream))
			var oe *ollamaapi.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadGateway {
				t.Errorf("err = %v, want a 502 *ollamaapi.Error", err)
			}
			if len(lines) == 0 {
				t.Fatal("no lines")
			}
			last := lines[len(lines)-1]
			if msg := str(last["error"]); !strings.Contains(msg, "closed the stream before it finished") {
				t.Errorf("last line = %v, want an error line about the stream ending early", last)
			}
			for _, l := range lines {
				if l["done"] == true {
					t.Errorf("a done:true line was written for an unfinished stream: %v", l)
				}
			}
		})
	}
}

type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, context.DeadlineExceeded
	}
	return n, err
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStreamFromOpenAIIOErrors(t *testing.T) {
	t.Parallel()
	lines, _, err := streamRun(t, "chat", `{"model":"qwen","messages":[]}`,
		failingReader{strings.NewReader(vllmChatStream[:700])})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read error: err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if len(lines) == 0 || !strings.Contains(str(lines[len(lines)-1]["error"]), "reading the upstream stream") {
		t.Errorf("read error: lines = %v, want an error line last", lines)
	}

	o := mustParse(t, "chat", `{"model":"qwen","messages":[]}`)
	err = ollamaapi.StreamFromOpenAI(o, "q", strings.NewReader(vllmChatStream), failingWriter{}, nil, time.Now())
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("write error: err = %v, want the write's error", err)
	}
}
