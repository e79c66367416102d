package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/agent"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// retryHandler answers POST /api/v1/{plural}/{name}/retry?namespace=NS with
// an ApplyResult whose action says what happened (docs/design/0005-retry.md).
func (s *Server) retryHandler(w http.ResponseWriter, r *http.Request) {
	info, ns, ok := target(w, r)
	if !ok {
		return
	}
	res, err := s.retry(r.Context(), info.Kind, ns, r.PathValue("name"))
	var bad *retryError
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, bad.msg, nil)
	case err != nil:
		s.storeError(w, err)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

type retryError struct{ msg string }

func (e *retryError) Error() string { return e.msg }

// retry retries a model: a Failed one at once (the agent resets its
// backoff), a Ready one has its files checked again; a model downloading,
// queued or disabled is left alone and the answer says why. An
// InferenceService has nothing of its own to retry — the serving
// controller restarts engines by itself — but a Failed model it waits for
// is retried.
func (s *Server) retry(ctx context.Context, kind, ns, name string) (v1.ApplyResult, error) {
	switch kind {
	case v1.KindClusterBaseModel, v1.KindBaseModel:
		return s.retryModel(ctx, kind, ns, name, true)
	case v1.KindInferenceService:
		return s.retryService(ctx, ns, name)
	}
	return v1.ApplyResult{}, &retryError{fmt.Sprintf("%s has nothing to retry: citadel retry takes models (clusterbasemodel, basemodel) and inferenceservices", kind)}
}

// retryModel bumps the model's retry annotation when it is Failed (or,
// with ready, Ready). The action says what the agent will do.
func (s *Server) retryModel(ctx context.Context, kind, ns, name string, ready bool) (v1.ApplyResult, error) {
	res := v1.ApplyResult{Kind: kind, Namespace: ns, Name: name}
	for range 5 { // a concurrent status or metadata write only costs another round
		cur, err := s.st.Get(ctx, kind, ns, name)
		if err != nil {
			return res, err
		}
		res.Generation, res.ResourceVersion = cur.Generation, strconv.FormatInt(cur.ResourceVersion, 10)
		st := modelStatus(cur)
		switch {
		case st.Phase == v1.ModelFailed:
			res.Action = fmt.Sprintf("retried (was Failed: %s)", st.Reason)
		case st.Phase == v1.ModelReady && ready:
			res.Action = "rechecked (Ready: its files are checked now and fetched again if any is missing)"
		case st.Phase == "" || st.Phase == v1.ModelPending && st.Reason == "":
			res.Action = "unchanged (not started yet: the model agent picks it up by itself)"
			return res, nil
		default:
			res.Action = fmt.Sprintf("unchanged (%s, nothing to retry: %s)", phaseReason(st), st.Message)
			return res, nil
		}
		next := cur
		next.Annotations = maps.Clone(cur.Annotations)
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		n, _ := strconv.Atoi(next.Annotations[agent.RetryAnnotation])
		next.Annotations[agent.RetryAnnotation] = strconv.Itoa(n + 1)
		out, err := s.st.Apply(ctx, []store.Object{next}, store.ApplyOptions{})
		var cf *store.ConflictError
		if errors.As(err, &cf) {
			continue
		}
		if err != nil {
			return res, err
		}
		res.ResourceVersion = strconv.FormatInt(out[0].Object.ResourceVersion, 10)
		s.event(ctx, out[0].Object, v1.EventNormal, "RetryRequested", res.Action)
		s.log.Info("retry", "kind", kind, "namespace", ns, "name", name, "action", res.Action)
		return res, nil
	}
	return res, &store.ConflictError{Kind: kind, Namespace: ns, Name: name}
}

// retryService retries the Failed model an InferenceService waits for.
func (s *Server) retryService(ctx context.Context, ns, name string) (v1.ApplyResult, error) {
	res := v1.ApplyResult{Kind: v1.KindInferenceService, Namespace: ns, Name: name}
	cur, err := s.st.Get(ctx, v1.KindInferenceService, ns, name)
	if err != nil {
		return res, err
	}
	res.Generation, res.ResourceVersion = cur.Generation, strconv.FormatInt(cur.ResourceVersion, 10)
	o, err := resource.FromStore(cur)
	if err != nil {
		return res, err
	}
	restart := "unchanged (nothing to retry: the serving controller restarts a crashed or unhealthy engine by itself, with a back-off that doubles up to 5 minutes, and plans the service again on every change; see citadel describe isvc " + name + " and citadel logs " + name + ")"
	isvc := o.(*v1.InferenceService)
	if isvc.Spec.Model == nil || isvc.Spec.Model.Name == "" {
		res.Action = restart
		return res, nil
	}
	model := isvc.Spec.Model.Name
	mkind, mns := v1.KindBaseModel, ns
	if _, err := s.st.Get(ctx, v1.KindBaseModel, ns, model); err != nil {
		mkind, mns = v1.KindClusterBaseModel, ""
		if _, err := s.st.Get(ctx, mkind, "", model); err != nil {
			res.Action = restart
			return res, nil
		}
	}
	mr, err := s.retryModel(ctx, mkind, mns, model, false)
	if err != nil {
		return res, err
	}
	if len(mr.Action) >= 7 && mr.Action[:7] == "retried" {
		res.Action = fmt.Sprintf("retried its model %s/%s, %s; the service starts once the model is Ready", lowerKind(mkind), model, mr.Action)
		return res, nil
	}
	res.Action = restart
	return res, nil
}

func lowerKind(kind string) string {
	info, _ := v1.KindByName(kind)
	return info.Singular
}

// modelStatus reads a stored model's status; a model never written to is
// the zero status.
func modelStatus(so store.Object) v1.ModelStatus {
	o, err := resource.FromStore(so)
	if err != nil {
		return v1.ModelStatus{}
	}
	switch m := o.(type) {
	case *v1.ClusterBaseModel:
		return m.Status
	case *v1.BaseModel:
		return m.Status
	}
	return v1.ModelStatus{}
}

func phaseReason(st v1.ModelStatus) string {
	if st.Reason == "" {
		return st.Phase
	}
	return st.Phase + ": " + st.Reason
}

// keepRetry carries the stored retry annotation into an applied model that
// does not set it, so re-applying a file after a retry stays "unchanged".
func keepRetry(incoming v1.Object, stored store.Object) {
	v, ok := stored.Annotations[agent.RetryAnnotation]
	if !ok {
		return
	}
	m := incoming.GetObjectMeta()
	if _, set := m.Annotations[agent.RetryAnnotation]; set {
		return
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[agent.RetryAnnotation] = v
}
