package modeltest

// The cause catalogue as a reader outside `citadel test` sees it: what the diagnosis says of
// a reason, with placeholders where a run would name its model, service and runtime. The
// reasons page (docs/reasons.md, written by internal/docgen) quotes it as "what to do".

import (
	"slices"

	v1 "citadel.dev/citadel/api/v1"
)

// Placeholders a ReasonCause uses where a run names its own objects.
const (
	PlaceholderModel     = "MODEL"
	PlaceholderRepo      = "ORG/REPO"
	PlaceholderFile      = "FILE"
	PlaceholderService   = "NAME"
	PlaceholderNamespace = "NAMESPACE"
	PlaceholderRuntime   = "RUNTIME"
)

// ReasonCause is what `citadel test` reports when a reason is the root cause of a failed
// run: its cause code (the reason's own name, or a code of its own such as HubUnreachable),
// the step it shows at, its summary and next steps. The names of the model, service and
// runtime are the placeholders above; the model is a ClusterBaseModel, and the engine wrote
// something.
type ReasonCause struct {
	Code      string
	Step      string
	Summary   string
	NextSteps []string
}

// CauseOfReason is the cause the diagnosis gives for reason on an object of kind (BaseModel,
// ClusterBaseModel or InferenceService); false when its catalogue has no row for that
// reason on that kind. Deterministic, pure.
func CauseOfReason(kind, reason string) (ReasonCause, bool) {
	uri := "hf://" + PlaceholderRepo
	r := &Report{Model: PlaceholderModel, Result: ResultFailed, Facts: Facts{
		Model:      PlaceholderModel,
		ModelKind:  v1.KindClusterBaseModel,
		ModelPhase: v1.ModelFailed,
		ModelSpec:  &v1.BaseModelSpec{Storage: &v1.StorageSpec{StorageURI: &uri}},
		Service:    PlaceholderNamespace + "/" + PlaceholderService,
		Runtime:    PlaceholderRuntime,
	}}
	var c *Cause
	switch kind {
	case v1.KindBaseModel, v1.KindClusterBaseModel:
		r.Facts.ModelReason = reason
		r.Facts.ModelFailure = &v1.DownloadFailure{Reason: reason, File: PlaceholderFile}
		d := &diag{r: r, f: &r.Facts, failed: &Step{Name: StepDownload}}
		switch _, ok := modelCauses[reason]; {
		case reason == v1.ReasonModelDisabled:
			c = d.modelDisabled()
		case ok:
			c = d.modelCause(reason, "", "")
		}
	case v1.KindInferenceService:
		r.Facts.ServiceReason = reason
		d := &diag{r: r, f: &r.Facts, failed: &Step{Name: StepReady}}
		if reason == v1.ReasonModelDisabled {
			c = d.modelDisabled()
		} else if row, ok := serviceCauses[reason]; ok {
			// A tail, so no row takes the engine for silent.
			c = row(d, reason, []string{"(the engine's last lines)"})
		}
	}
	if c == nil {
		return ReasonCause{}, false
	}
	return ReasonCause{Code: c.Code, Step: c.Step, Summary: c.Summary, NextSteps: slices.Clip(dedupe(c.NextSteps))}, true
}
