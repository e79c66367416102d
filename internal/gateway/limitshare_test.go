package gateway_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"citadel.dev/citadel/internal/gateway"
)

// TestLimitShare: a gateway told it is one of 3 replicas (Options.LimitShare) admits a third
// of a route's requestsPerMinute and of a key's, rounded up, and its 429 says so.
func TestLimitShare(t *testing.T) {
	var n atomic.Int64
	u := okUpstream(t, &n)
	secret := "ck-limitshare-test-secret-0123456789"
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  models:
  - {name: a, targets: [{url: %q}], limits: {requestsPerMinute: 7}}
  - {name: b, targets: [{url: %q}]}
---
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: lab}
spec: {hash: %q, requestsPerMinute: 10}
`, u, u, sha256hex(secret))), gateway.Options{LimitShare: 3})
	auth := []string{"Authorization", "Bearer " + secret}

	admitted := func(model string, max int) (int, string) {
		for i := range max {
			resp, body := post(t, gw+"/v1/chat/completions", chat(model, "hi"), auth...)
			if resp.StatusCode == 429 {
				msg, _, _ := openAIError(t, body)
				return i, msg
			}
			if resp.StatusCode != 200 {
				t.Fatalf("request %d to %s: %d %s", i+1, model, resp.StatusCode, body)
			}
		}
		return max, ""
	}
	// The route's 7 per minute: ceil(7/3) = 3 on this replica.
	got, msg := admitted("a", 10)
	if got != 3 {
		t.Errorf("model a admitted %d requests, want 3 (7 per minute shared by 3 replicas, rounded up)", got)
	}
	for _, want := range []string{"Limit 3", "limits.requestsPerMinute", "this gateway's 1/3 share"} {
		if !strings.Contains(msg, want) {
			t.Errorf("429 message %q lacks %q", msg, want)
		}
	}
	// The key's 10 per minute: ceil(10/3) = 4 on this replica, 3 of them spent on a (the
	// request a refused took nothing from the key).
	got, msg = admitted("b", 3)
	if got != 1 || !strings.Contains(msg, `API key "lab"`) || !strings.Contains(msg, "Limit 4") || !strings.Contains(msg, "1/3 share") {
		t.Errorf("model b admitted %d, 429 %q; want 1, then the key's limit of 4 (10 shared by 3)", got, msg)
	}
}
