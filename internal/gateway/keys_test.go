package gateway

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

const (
	keySecretGood     = "ck-GoodGoodGoodGoodGoodGoodGood123"
	keySecretDisabled = "ck-DisabledDisabledDisabledDisab1"
	keySecretExpired  = "ck-ExpiredExpiredExpiredExpiredE1"
)

// kt0 is half a second into a Unix second, so that bucket edges show in the expectations.
var kt0 = time.Unix(1_700_000_000, 500_000_000)

func testAPIKey(name, secret string, mod func(*v1.APIKeySpec)) *v1.APIKey {
	k := &v1.APIKey{ObjectMeta: v1.ObjectMeta{Name: name}, Spec: v1.APIKeySpec{Hash: v1.HashAPIKey(secret), Prefix: v1.APIKeyDisplayPrefix(secret)}}
	if mod != nil {
		mod(&k.Spec)
	}
	k.Default()
	return k
}

func oneTestKey(t *testing.T, mod func(*v1.APIKeySpec)) (*Keys, *Key) {
	t.Helper()
	ks := NewKeys()
	ks.Update([]*v1.APIKey{testAPIKey("lab", keySecretGood, mod)})
	key, err := ks.Authenticate("Bearer "+keySecretGood, "")
	if err != nil {
		t.Fatal(err)
	}
	return ks, key
}

func asAuthError(t *testing.T, err error) *AuthError {
	t.Helper()
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v (%T), want an *AuthError", err, err)
	}
	if ae.Status != 401 || ae.Code != "invalid_api_key" {
		t.Fatalf("auth error %+v: want 401 invalid_api_key", ae)
	}
	return ae
}

func asLimitError(t *testing.T, err error) *LimitError {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("got %v (%T), want a *LimitError", err, err)
	}
	if le.Status != 429 || le.Code != "rate_limit_exceeded" {
		t.Fatalf("limit error %+v: want 429 rate_limit_exceeded", le)
	}
	if le.RetryAfter <= 0 || le.RetryAfter > time.Minute {
		t.Fatalf("RetryAfter %v: want within (0, 60s]", le.RetryAfter)
	}
	if ra, err := strconv.Atoi(le.Headers["retry-after"]); err != nil || ra < 1 || ra > 60 || time.Duration(ra)*time.Second < le.RetryAfter {
		t.Fatalf("retry-after header %q for RetryAfter %v", le.Headers["retry-after"], le.RetryAfter)
	}
	return le
}

func mustAdmitKey(t *testing.T, ks *Keys, key *Key, now time.Time) *Ticket {
	t.Helper()
	tk, err := ks.Admit(key, now)
	if err != nil {
		t.Fatalf("admit at %v: %v", now.Sub(kt0), err)
	}
	return tk
}

func TestOpenWithoutKeys(t *testing.T) {
	ks := NewKeys()
	if ks.Required() {
		t.Fatal("an empty key set requires keys")
	}
	key, err := ks.Authenticate("Bearer whatever", "sk-no-key")
	if key != nil || err != nil {
		t.Fatalf("open gateway: %v, %v", key, err)
	}
	if !key.Allowed("any") {
		t.Fatal("a nil key is refused a model")
	}
	tk := mustAdmitKey(t, ks, nil, kt0)
	if tk == nil || tk.Headers() != nil {
		t.Fatalf("open ticket %+v", tk)
	}
	tk.Done(100, kt0)
	tk.Done(100, kt0)
	ks.Update([]*v1.APIKey{testAPIKey("lab", keySecretGood, nil)})
	if !ks.Required() {
		t.Fatal("a key set with a key does not require keys")
	}
	ks.Update(nil)
	if ks.Required() {
		t.Fatal("removing every key does not reopen the gateway")
	}
}

func TestAuthenticate(t *testing.T) {
	ks := NewKeys()
	ks.now = func() time.Time { return kt0 }
	ks.Update([]*v1.APIKey{
		testAPIKey("good", keySecretGood, nil),
		testAPIKey("off", keySecretDisabled, func(s *v1.APIKeySpec) { s.Disabled = true }),
		testAPIKey("old", keySecretExpired, func(s *v1.APIKeySpec) { s.ExpiresAt = v1.NewTime(kt0.Add(-time.Second)) }),
		testAPIKey("later", "ck-later", func(s *v1.APIKeySpec) { s.ExpiresAt = v1.NewTime(kt0.Add(time.Hour)) }),
		{ObjectMeta: v1.ObjectMeta{Name: "broken"}, Spec: v1.APIKeySpec{Hash: "not-hex"}},
	})
	for _, tc := range []struct {
		name, auth, xkey, want string
	}{
		{"bearer", "Bearer " + keySecretGood, "", "good"},
		{"bearer lower case, spaces", "  bearer   " + keySecretGood + " ", "", "good"},
		{"x-api-key", "", keySecretGood, "good"},
		{"other scheme falls back to x-api-key", "Basic dXNlcjpwYXNz", keySecretGood, "good"},
		{"not yet expired", "Bearer ck-later", "", "later"},
	} {
		key, err := ks.Authenticate(tc.auth, tc.xkey)
		if err != nil || key == nil || key.Name != tc.want {
			t.Errorf("%s: got %v, %v; want key %q", tc.name, key, err, tc.want)
		}
	}

	for _, tc := range []struct {
		name, auth, xkey, reason, msg string
	}{
		{"missing", "", "", "missing", "You didn't provide an API key"},
		{"bearer without token", "Bearer ", "", "missing", "You didn't provide an API key"},
		{"wrong", "Bearer ck-wrongwrongwrongwrongwrongwrong12", "", "unknown", "Incorrect API key provided: ck-wron…. You can find your API key with citadel key list."},
		{"bearer wins over x-api-key", "Bearer ck-wrongwrongwrongwrongwrongwrong12", keySecretGood, "unknown", "Incorrect API key provided"},
		{"the hash itself is not a key", "Bearer " + v1.HashAPIKey(keySecretGood), "", "unknown", "Incorrect API key provided"},
		{"short wrong key is not echoed", "Bearer abc", "", "unknown", "Incorrect API key provided: a…."},
		{"disabled", "Bearer " + keySecretDisabled, "", "disabled", `API key "off" (ck-Disab…) is disabled`},
		{"expired", "", keySecretExpired, "expired", `API key "old" (ck-Expir…) expired at 2023-11-14T22:13:19Z`},
	} {
		key, err := ks.Authenticate(tc.auth, tc.xkey)
		if key != nil {
			t.Errorf("%s: accepted as %q", tc.name, key.Name)
			continue
		}
		ae := asAuthError(t, err)
		if ae.Reason != tc.reason || !strings.Contains(ae.Message, tc.msg) {
			t.Errorf("%s: %+v; want reason %q and a message containing %q", tc.name, ae, tc.reason, tc.msg)
		}
		if strings.Contains(ae.Message, "wrongwrong") || strings.Contains(ae.Message, keySecretGood) {
			t.Errorf("%s: the message repeats the key: %s", tc.name, ae.Message)
		}
	}
	// The stored object's hash is a key only when it decodes: a malformed one matches nothing.
	if _, err := ks.Authenticate("Bearer not-hex", ""); err == nil {
		t.Error("a malformed stored hash matched")
	}
}

func TestAllowed(t *testing.T) {
	_, all := oneTestKey(t, nil)
	_, some := oneTestKey(t, func(s *v1.APIKeySpec) { s.Models = []string{"mimo-vl", "auto"} })
	for _, tc := range []struct {
		key   *Key
		model string
		want  bool
	}{
		{all, "anything", true},
		{some, "mimo-vl", true},
		{some, "auto", true},
		{some, "qwen", false},
		{some, "", false},
		{some, "MIMO-VL", false},
	} {
		if got := tc.key.Allowed(tc.model); got != tc.want {
			t.Errorf("%v.Allowed(%q) = %v", tc.key.Models, tc.model, got)
		}
	}
}

func TestRequestsPerMinute(t *testing.T) {
	ks, key := oneTestKey(t, func(s *v1.APIKeySpec) { s.RequestsPerMinute = 3 })
	for i, at := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		tk := mustAdmitKey(t, ks, key, kt0.Add(at))
		h := tk.Headers()
		if h["x-ratelimit-limit-requests"] != "3" || h["x-ratelimit-remaining-requests"] != strconv.Itoa(2-i) {
			t.Fatalf("headers of request %d: %v", i, h)
		}
		// The window is empty again 60 s after the start of the latest request's second.
		if want := (time.Minute - 500*time.Millisecond).String(); h["x-ratelimit-reset-requests"] != want {
			t.Fatalf("reset of request %d: %v, want %s", i, h, want)
		}
		if _, ok := h["x-ratelimit-limit-tokens"]; ok {
			t.Fatalf("token headers without a token limit: %v", h)
		}
		tk.Done(10, kt0.Add(at))
	}
	_, err := ks.Admit(key, kt0.Add(30*time.Second))
	le := asLimitError(t, err)
	// The first request (second kt0) leaves the window at kt0's second + 60 s.
	if le.RetryAfter != 29500*time.Millisecond || le.Headers["retry-after"] != "30" {
		t.Fatalf("RetryAfter %v, headers %v: want 29.5s, 30", le.RetryAfter, le.Headers)
	}
	if le.Type != "requests" || !strings.Contains(le.Message, `Rate limit reached for API key "lab" on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 29.5s.`) {
		t.Fatalf("message: %+v", le)
	}
	want := map[string]string{
		"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "49.5s",
		"retry-after": "30",
	}
	for k, v := range want {
		if le.Headers[k] != v {
			t.Errorf("header %s = %q, want %q (all: %v)", k, le.Headers[k], v, le.Headers)
		}
	}
	// A refusal is not counted: once the first request leaves, one more is admitted.
	mustAdmitKey(t, ks, key, kt0.Add(59500*time.Millisecond)).Done(0, kt0)
	if _, err := ks.Admit(key, kt0.Add(59600*time.Millisecond)); err == nil {
		t.Fatal("a fourth request in the minute was admitted")
	}
}

func TestTokensChargedAfterResponse(t *testing.T) {
	ks, key := oneTestKey(t, func(s *v1.APIKeySpec) { s.TokensPerMinute = 100 })
	// Two requests under budget are admitted at once; their usage is charged when they end,
	// and goes over the budget: neither is cut.
	a := mustAdmitKey(t, ks, key, kt0)
	b := mustAdmitKey(t, ks, key, kt0)
	if h := a.Headers(); h["x-ratelimit-limit-tokens"] != "100" || h["x-ratelimit-remaining-tokens"] != "100" || h["x-ratelimit-reset-tokens"] != "0s" {
		t.Fatalf("headers before any charge: %v", h)
	}
	a.Done(60, kt0.Add(5*time.Second))
	c := mustAdmitKey(t, ks, key, kt0.Add(5*time.Second)) // 60 < 100: admitted
	if h := c.Headers(); h["x-ratelimit-remaining-tokens"] != "40" || h["x-ratelimit-reset-tokens"] != "59.5s" {
		t.Fatalf("headers after 60 tokens: %v", h)
	}
	b.Done(70, kt0.Add(10*time.Second))
	c.Done(5, kt0.Add(10*time.Second))
	_, err := ks.Admit(key, kt0.Add(10*time.Second))
	le := asLimitError(t, err)
	// 135 charged; 36 must leave: a's 60 at second kt0+5 leave at kt0+64.5.
	if le.Type != "tokens" || le.RetryAfter != 54500*time.Millisecond {
		t.Fatalf("%+v: want type tokens, RetryAfter 54.5s", le)
	}
	if !strings.Contains(le.Message, "on tokens per min (TPM): Limit 100, Used 135") {
		t.Fatalf("message: %s", le.Message)
	}
	if le.Headers["x-ratelimit-remaining-tokens"] != "0" || le.Headers["x-ratelimit-limit-tokens"] != "100" || le.Headers["x-ratelimit-reset-tokens"] != "59.5s" {
		t.Fatalf("headers: %v", le.Headers)
	}
	if _, ok := le.Headers["x-ratelimit-limit-requests"]; ok {
		t.Fatalf("request headers without a request limit: %v", le.Headers)
	}
	if _, err := ks.Admit(key, kt0.Add(64*time.Second)); err == nil {
		t.Fatal("admitted before the tokens left the window")
	}
	mustAdmitKey(t, ks, key, kt0.Add(10*time.Second+le.RetryAfter)) // a's 60 have left; 75 remain
}

func TestOneResponseOverTheWholeBudget(t *testing.T) {
	ks, key := oneTestKey(t, func(s *v1.APIKeySpec) { s.TokensPerMinute = 100 })
	mustAdmitKey(t, ks, key, kt0).Done(10_000, kt0.Add(30*time.Second))
	_, err := ks.Admit(key, kt0.Add(31*time.Second))
	if le := asLimitError(t, err); le.RetryAfter != 58500*time.Millisecond {
		t.Fatalf("RetryAfter %v, want 58.5s", le.RetryAfter)
	}
	mustAdmitKey(t, ks, key, kt0.Add(90*time.Second))
}

func TestMaxConcurrent(t *testing.T) {
	ks, key := oneTestKey(t, func(s *v1.APIKeySpec) { s.MaxConcurrent = 2 })
	a := mustAdmitKey(t, ks, key, kt0)
	b := mustAdmitKey(t, ks, key, kt0)
	_, err := ks.Admit(key, kt0)
	if le := asLimitError(t, err); le.RetryAfter != time.Second || !strings.Contains(le.Message, "Too many concurrent requests") {
		t.Fatalf("%+v", le)
	}
	a.Done(0, kt0)
	a.Done(0, kt0) // a second Done frees nothing more
	c := mustAdmitKey(t, ks, key, kt0)
	if _, err := ks.Admit(key, kt0); err == nil {
		t.Fatal("a double Done freed two slots")
	}
	b.Done(0, kt0)
	c.Done(0, kt0)
	mustAdmitKey(t, ks, key, kt0)
	mustAdmitKey(t, ks, key, kt0)
}

func TestWindowSlides(t *testing.T) {
	ks, key := oneTestKey(t, func(s *v1.APIKeySpec) { s.RequestsPerMinute = 2 })
	base := time.Unix(1_700_000_000, 0)
	mustAdmitKey(t, ks, key, base)
	mustAdmitKey(t, ks, key, base.Add(30*time.Second))
	for _, at := range []time.Duration{31 * time.Second, 59 * time.Second, 59*time.Second + 999*time.Millisecond} {
		_, err := ks.Admit(key, base.Add(at))
		if le := asLimitError(t, err); le.RetryAfter != time.Minute-at {
			t.Errorf("at %v: RetryAfter %v, want %v", at, le.RetryAfter, time.Minute-at)
		}
	}
	mustAdmitKey(t, ks, key, base.Add(time.Minute)) // the first request has left
	if _, err := ks.Admit(key, base.Add(89*time.Second)); err == nil {
		t.Fatal("the second request left early")
	}
	mustAdmitKey(t, ks, key, base.Add(90*time.Second))
	// Long idle: everything has left.
	mustAdmitKey(t, ks, key, base.Add(time.Hour))
	mustAdmitKey(t, ks, key, base.Add(time.Hour))
	// A clock that steps back counts as the latest time, never as an old bucket.
	_, err := ks.Admit(key, base.Add(time.Hour-30*time.Second))
	asLimitError(t, err) // refused, and Retry-After stays within a minute
}

func TestUpdateKeepsState(t *testing.T) {
	ks, key := oneTestKey(t, func(s *v1.APIKeySpec) { s.RequestsPerMinute = 1; s.MaxConcurrent = 1 })
	tk := mustAdmitKey(t, ks, key, kt0)
	// New limits, same name: the request in the window and in flight still count.
	ks.Update([]*v1.APIKey{
		testAPIKey("lab", keySecretGood, func(s *v1.APIKeySpec) { s.RequestsPerMinute = 2; s.MaxConcurrent = 1 }),
		testAPIKey("other", keySecretDisabled, nil),
	})
	key2, err := ks.Authenticate("", keySecretGood)
	if err != nil || key2 == key || key2.RequestsPerMinute != 2 {
		t.Fatalf("after update: %+v, %v", key2, err)
	}
	if _, err := ks.Admit(key2, kt0); err == nil || !strings.Contains(err.Error(), "concurrent") {
		t.Fatalf("the in-flight request was forgotten: %v", err)
	}
	tk.Done(0, kt0) // a ticket of the old snapshot frees the slot of the new one
	mustAdmitKey(t, ks, key2, kt0)
	if _, err := ks.Admit(key2, kt0); err == nil {
		t.Fatal("the requests in the window were forgotten")
	}
	// Removing the key and adding it back starts afresh.
	ks.Update([]*v1.APIKey{testAPIKey("other", keySecretDisabled, nil)})
	if _, err := ks.Authenticate("", keySecretGood); err == nil {
		t.Fatal("a removed key is still accepted")
	}
	ks.Update([]*v1.APIKey{testAPIKey("lab", keySecretGood, func(s *v1.APIKeySpec) { s.RequestsPerMinute = 1 })})
	key3, err := ks.Authenticate("", keySecretGood)
	if err != nil {
		t.Fatal(err)
	}
	mustAdmitKey(t, ks, key3, kt0)
}

func TestConcurrentUse(t *testing.T) {
	ks, _ := oneTestKey(t, func(s *v1.APIKeySpec) {
		s.MaxConcurrent = 4
		s.TokensPerMinute = 1 << 40
		s.RequestsPerMinute = 1 << 30
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, peak := 0, int64(0)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 && i%50 == 0 {
					ks.Update([]*v1.APIKey{testAPIKey("lab", keySecretGood, func(s *v1.APIKeySpec) { s.MaxConcurrent = 4 })})
				}
				key, err := ks.Authenticate("Bearer "+keySecretGood, "")
				if err != nil {
					t.Error(err)
					return
				}
				tk, err := ks.Admit(key, time.Now())
				if err != nil {
					continue
				}
				key.lim.mu.Lock()
				n := key.lim.inflight
				key.lim.mu.Unlock()
				mu.Lock()
				admitted++
				peak = max(peak, n)
				mu.Unlock()
				_ = tk.Headers()
				tk.Done(3, time.Now())
			}
		}()
	}
	wg.Wait()
	key, _ := ks.Authenticate("Bearer "+keySecretGood, "")
	if key.lim.inflight != 0 || peak > 4 || admitted == 0 {
		t.Fatalf("in flight %d after all Done, peak %d, admitted %d", key.lim.inflight, peak, admitted)
	}
}

// BenchmarkAdmit measures Admit and Done of one key with every limit set. The window itself
// allocates nothing; the one allocation is the *Ticket (kept rather than pooled, so that a
// second Done is always harmless).
func BenchmarkAdmit(b *testing.B) {
	ks := NewKeys()
	ks.Update([]*v1.APIKey{testAPIKey("lab", keySecretGood, func(s *v1.APIKeySpec) {
		s.RequestsPerMinute, s.TokensPerMinute, s.MaxConcurrent = 1<<30, 1<<50, 1<<20
	})})
	key, err := ks.Authenticate("Bearer "+keySecretGood, "")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tk, err := ks.Admit(key, now.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		tk.Done(100, now.Add(time.Duration(i)*time.Millisecond))
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	ks := NewKeys()
	var keys []*v1.APIKey
	for i := range 100 {
		keys = append(keys, testAPIKey("k"+strconv.Itoa(i), keySecretGood+strconv.Itoa(i), nil))
	}
	ks.Update(keys)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ks.Authenticate("Bearer "+keySecretGood+"42", ""); err != nil {
			b.Fatal(err)
		}
	}
}
