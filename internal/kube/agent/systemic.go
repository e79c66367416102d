package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/modeltest"
)

// Events of the systemic probe, on the Node.
const (
	ReasonSystemicProbeFailed = "SystemicProbeFailed"
	ReasonSystemicProbePassed = "SystemicProbePassed"
)

// stuckReasons are the failures that what every model on the node shares (the hub, the
// network, the disk) can explain; a model Downloading without progress for StuckFor is
// stuck too.
var stuckReasons = map[string]bool{
	v1.ReasonConnectionFailed: true, v1.ReasonDNSFailure: true, v1.ReasonRateLimited: true, v1.ReasonUpstreamError: true,
	v1.ReasonDownloadStalled: true, v1.ReasonTruncatedBody: true, v1.ReasonInsufficientStorage: true, v1.ReasonStorageNotWritable: true,
}

// stuck lists the facts of this node's models that are stuck, as citadel test's systemic
// probe reads them.
func (a *Agent) stuck(now time.Time) []modeltest.Facts {
	var out []modeltest.Facts
	for k, t := range a.tracked {
		e := t.entry
		if e == nil {
			continue
		}
		n := e.Citadel
		f := modeltest.Facts{Model: k.Name, ModelKind: k.Kind, ModelPhase: n.Phase, ModelReason: n.Reason, ModelMessage: n.Message,
			BytesDone: n.BytesDone, BytesTotal: n.BytesTotal}
		if n.LastProgressTime != nil {
			f.LastProgress = n.LastProgressTime.Time
			f.NoProgressFor = now.Sub(f.LastProgress)
		}
		switch {
		case n.Phase == v1.ModelFailed && stuckReasons[n.Reason]:
		case n.Phase == v1.ModelDownloading && n.LastProgressTime != nil && f.NoProgressFor >= a.opts.StuckFor:
		default:
			continue
		}
		out = append(out, f)
	}
	return out
}

// probeStuck runs citadel test's systemic probe from this node when two or more of its
// models are stuck, at most once per ProbeEvery: is the hub reachable from here, is the
// models root writable with space, does any download move. The result is an event on the
// Node (kubectl describe node), Warning with the checks that failed, so that several
// stuck models point at their one shared cause instead of each at its own symptom.
func (a *Agent) probeStuck(ctx context.Context) {
	now := time.Now()
	if a.probing || now.Sub(a.probedAt) < a.opts.ProbeEvery {
		return
	}
	stuck := a.stuck(now)
	if len(stuck) < 2 {
		return
	}
	node, err := a.nodeLister()
	if err != nil {
		return
	}
	a.probing, a.probedAt = true, now
	in := modeltest.ProbeInput{HubEndpoint: a.opts.Pull.HFEndpoint, StoragePath: a.host(a.opts.ModelsRoot), Stuck: stuck}
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		checks := modeltest.SystemicProbe(pctx, in)
		var failed, passed []string
		for _, c := range checks {
			line := c.Name + ": " + a.unprefix(c.Detail)
			if c.Passed {
				passed = append(passed, line)
			} else {
				failed = append(failed, line)
			}
		}
		models := make([]string, len(stuck))
		for i, f := range stuck {
			models[i] = f.Model
		}
		slices.Sort(models)
		if len(failed) > 0 {
			a.rec.Eventf(node, corev1.EventTypeWarning, ReasonSystemicProbeFailed, "%s", kube.EventNote(fmt.Sprintf(
				"%d models are stuck on this node (%s); what they share: %s", len(stuck), strings.Join(models, ", "), strings.Join(failed, "; "))))
		} else {
			a.rec.Eventf(node, corev1.EventTypeNormal, ReasonSystemicProbePassed, "%s", kube.EventNote(fmt.Sprintf(
				"%d models are stuck on this node (%s), and what they share works: %s; each model's own status says why", len(stuck), strings.Join(models, ", "), strings.Join(passed, "; "))))
		}
		a.log.Info("systemic probe", "stuck", len(stuck), "failed", failed)
		select {
		case a.probed <- struct{}{}:
		case <-ctx.Done():
		}
	}()
}
