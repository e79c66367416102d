package gateway

import (
	"testing"
	"time"
)

// TestAddWait: the residency wait goes into the final object's total_duration and
// load_duration, added to what the engine wrote or inserted where Ollama left a zero out;
// other lines pass unchanged.
func TestAddWait(t *testing.T) {
	const wait = 250 * time.Millisecond
	for _, tc := range []struct{ in, want string }{
		{`{"model":"m","done":false,"response":"hi"}` + "\n", `{"model":"m","done":false,"response":"hi"}` + "\n"},
		{`{"model":"m","done":true,"total_duration":1000,"load_duration":7,"eval_count":3}` + "\n",
			`{"model":"m","done":true,"total_duration":250001000,"load_duration":250000007,"eval_count":3}` + "\n"},
		{`{"model":"m","done":true,"total_duration": 5}`, `{"model":"m","done":true,"total_duration": 250000005,"load_duration":250000000}`},
		{`{"model":"m","done":true}` + "\n", `{"model":"m","done":true,"total_duration":250000000,"load_duration":250000000}` + "\n"},
	} {
		if got := string(addWait([]byte(tc.in), wait)); got != tc.want {
			t.Errorf("addWait(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	if got := string(addWait([]byte(`{"done":true,"load_duration":1}`), 0)); got != `{"done":true,"load_duration":1}` {
		t.Errorf("no wait changed the line: %s", got)
	}
}
