package modeltest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Suite tests models, parallel at a time, each applied with the shared objects (runtimes,
// secrets). A shared object the suite created is deleted once every model is done (unless
// o.Keep), never while another model may still use it; each report's cleanup step says so.
// progress gives each model's progress writer (nil: none).
func Suite(ctx context.Context, o Options, models, shared []v1.Object, parallel int, progress func(model string) io.Writer) []*Report {
	var created []v1.Object
	for _, s := range shared {
		m := s.GetObjectMeta()
		if _, err := o.Client.Get(ctx, kindOf(s), m.Namespace, m.Name); err != nil {
			created = append(created, s)
		}
	}
	reports := make([]*Report, len(models))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, m := range models {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			oo := o
			if progress != nil {
				oo.Progress = progress(m.GetObjectMeta().Name)
			}
			reports[i] = Run(ctx, oo, Target{Objects: []v1.Object{m}, Shared: shared})
		})
	}
	wg.Wait()
	if o.Keep || len(created) == 0 {
		return reports
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	deleted, failed := deleteAll(cctx, o.Client, created)
	for _, r := range reports {
		s := &r.Steps[len(r.Steps)-1]
		for _, d := range deleted {
			s.Evidence = append(s.Evidence, d+" (shared by the suite)")
		}
		if len(failed) > 0 {
			s.Status = Failed
			s.Summary = strings.TrimPrefix(s.Summary+"; ", "; ") + "could not delete what the suite shared: " + strings.Join(failed, "; ")
			if r.Result == ResultPassed {
				r.Result = ResultFailed
				r.Cause = Diagnose(r)
			}
		}
	}
	return reports
}

// stuckDownloading reports whether a report failed in its download without a cause of the
// model's own (no Failed status with a model-specific reason): the kind of failure a shared
// problem (hub, token, disk, agent) explains.
func stuckDownloading(r *Report) bool {
	for _, s := range r.Steps {
		if s.Name != StepDownload {
			continue
		}
		if s.Status != Failed {
			return false
		}
		switch r.Facts.ModelReason {
		case "", v1.ReasonAwaitingAgent, v1.ReasonQueued, v1.ReasonResolving, "Downloading", v1.ReasonConnectionFailed, v1.ReasonDNSFailure, v1.ReasonUpstreamError,
			v1.ReasonRateLimited, v1.ReasonDownloadStalled, v1.ReasonUnauthorized, v1.ReasonInsufficientStorage, v1.ReasonStorageNotWritable:
			return true
		}
		return r.Facts.DownloadTimedOut
	}
	return false
}

// Systemic runs the systemic probe when two or more of reports are stuck downloading at
// once; when a shared check fails, every stuck report gets the one systemic cause.
func Systemic(ctx context.Context, reports []*Report, in ProbeInput) {
	var stuck []*Report
	for _, r := range reports {
		if r != nil && stuckDownloading(r) {
			stuck = append(stuck, r)
		}
	}
	if len(stuck) < 2 {
		return
	}
	for _, r := range stuck {
		in.Stuck = append(in.Stuck, r.Facts)
		if in.NeedBytes == 0 {
			in.NeedBytes = r.Facts.BytesTotal
		}
	}
	if in.Client == nil {
		in.Client = &http.Client{Timeout: 10 * time.Second}
	}
	checks := SystemicProbe(ctx, in)
	cause := DiagnoseSystemic(in.Stuck, checks)
	if cause == nil {
		return
	}
	for _, r := range stuck {
		r.Cause = cause
		r.Systemic = checks
	}
}
