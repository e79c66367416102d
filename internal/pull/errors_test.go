package pull

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"citadel.dev/citadel/internal/netclass"
)

// TestRefusedAdviceOnce: a refused connection the client already explained carries its advice
// once; an unexplained one gets the pull's.
func TestRefusedAdviceOnce(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/api/models/org/m", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	explained := netclass.Explain(refused, netclass.Advice{Refused: "check the endpoint (HF_ENDPOINT) and that the hub or mirror is up"})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"explained by the client", explained, "nothing accepts connections there; check the endpoint (HF_ENDPOINT) and that the hub or mirror is up"},
		{"bare", refused, "nothing listens there; check HF_ENDPOINT / the registry address and that the hub or mirror is up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pe := classify(tc.err, "")
			if pe.Reason != ReasonConnectionFailed || !pe.Retryable {
				t.Errorf("reason %s retryable %v, want ConnectionFailed, retryable", pe.Reason, pe.Retryable)
			}
			if !strings.HasSuffix(pe.Message, tc.want) || strings.Count(pe.Message, "check ") != 1 {
				t.Errorf("message %q: want the advice once, ending %q", pe.Message, tc.want)
			}
			if !errors.Is(tc.err, syscall.ECONNREFUSED) {
				t.Error("the cause is lost")
			}
		})
	}
}
