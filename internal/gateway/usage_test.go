package gateway

import "testing"

func TestUsageOf(t *testing.T) {
	for _, c := range []struct {
		name    string
		body    string
		in, out int
	}{
		{"vllm", `{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3,"prompt_tokens_details":null}}`, 12, 3},
		{"nested details", `{"usage": {"prompt_tokens":7,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens":2},"id":"x"}`, 7, 2},
		{"the word in the answer", `{"choices":[{"message":{"content":"\"usage\": {\"prompt_tokens\": 99}"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, 1, 1},
		{"a value named usage after it", `{"usage":{"prompt_tokens":5,"completion_tokens":6},"object":"usage"}`, 5, 6},
		{"braces in strings", `{"usage":{"prompt_tokens":5,"note":"}{\"","completion_tokens":6}}`, 5, 6},
		{"null", `{"id":"x","usage":null}`, 0, 0},
		{"none", `{"id":"x"}`, 0, 0},
		{"not JSON", `usage`, 0, 0},
	} {
		if in, out := usageOf([]byte(c.body)); in != c.in || out != c.out {
			t.Errorf("%s: usageOf(%s) = %d, %d; want %d, %d", c.name, c.body, in, out, c.in, c.out)
		}
	}
}
