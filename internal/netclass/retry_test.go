package netclass

import (
	"net/http"
	"testing"
	"time"
)

// TestParseRetryAfter: the one Retry-After reader of the hub and registry clients.
func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {"120"}}, 2 * time.Minute},
		{"fractional seconds", http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond},
		{"zero", http.Header{"Retry-After": {"0"}}, 0},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0},
		{"huge is capped", http.Header{"Retry-After": {"99999999999999999999"}}, 24 * time.Hour},
		{"NaN", http.Header{"Retry-After": {"NaN"}}, 0},
		{"HTTP date", http.Header{"Retry-After": {"Sun, 01 Mar 2026 12:00:30 GMT"}}, 30 * time.Second},
		{"HTTP date in the past", http.Header{"Retry-After": {"Sun, 01 Mar 2026 11:00:00 GMT"}}, 0},
		{"RFC 850 date", http.Header{"Retry-After": {"Sunday, 01-Mar-26 12:01:00 GMT"}}, time.Minute},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"RateLimit t=", http.Header{"Ratelimit": {`"api";r=0;t=55`}}, 55 * time.Second},
		{"RateLimit with spaces", http.Header{"Ratelimit": {`"api"; r=0; t = 12`}}, 12 * time.Second},
		{"RateLimit without t", http.Header{"Ratelimit": {`"api";r=0`}}, 0},
		{"Retry-After wins over RateLimit", http.Header{"Retry-After": {"5"}, "Ratelimit": {`"api";r=0;t=55`}}, 5 * time.Second},
		{"garbage Retry-After falls back to RateLimit", http.Header{"Retry-After": {"x"}, "Ratelimit": {`"api";r=0;t=9`}}, 9 * time.Second},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("%s: ParseRetryAfter(%v) = %v, want %v", tt.name, tt.header, got, tt.want)
		}
	}
}
