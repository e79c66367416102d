package modeltest

import (
	"context"
	"net/http"
	"time"
)

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
		case "", "AwaitingAgent", "Queued", "Resolving", "Downloading", "ConnectionFailed", "DNSFailure", "UpstreamError",
			"RateLimited", "DownloadStalled", "Unauthorized", "InsufficientStorage", "StorageNotWritable":
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
