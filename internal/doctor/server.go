package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"citadel.dev/citadel/client"
)

// Server checks whether a citadel serve answers at c's address (--server): its health, then
// its version, which needs the admin token when serve has one. No server is a warning (start
// it); a server that refuses the token fails, since every command will.
func Server(ctx context.Context, c *client.Client, timeout time.Duration) Check {
	ch := Check{Name: "server", Checked: "citadel serve at " + c.Address() + " (--server)"}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Health(rctx); err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) {
			ch.Status, ch.Finding = Fail, fmt.Sprintf("answers, but not healthy (HTTP %d): %s", ae.Code, ae.Message)
			ch.Fix = "see citadel serve's log"
			return ch
		}
		ch.Status = Warn
		ch.Finding = "no citadel serve answers: " + unreachable(rctx, timeout, err)
		ch.Fix = "start citadel serve (or pass --server with its admin address)"
		return ch
	}
	v, err := c.Version(rctx)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Code == http.StatusUnauthorized {
			ch.Status, ch.Finding = Fail, "answers, but refuses this admin token: "+ae.Message
			ch.Fix = "pass --token or set CITADEL_TOKEN to the --admin-token citadel serve was started with"
			return ch
		}
		ch.Status, ch.Finding = Warn, "healthy, but /version failed: "+err.Error()
		return ch
	}
	ch.Status, ch.Finding = OK, "healthy, version "+v.Version
	return ch
}
