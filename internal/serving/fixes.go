package serving

import (
	"citadel.dev/citadel/internal/placement"
)

// setKeep tells the planner where a service's replicas already run.
func setKeep(r *placement.Request, a []placement.Assignment) {}

// fixes renders a refusal's alternatives as the edits that would make the service fit.
func (c *Controller) fixes(in *intent, rf *placement.Refusal) []string {
	var out []string
	for _, a := range rf.Alternatives {
		out = append(out, "it would fit with: "+a)
	}
	return out
}
