// Package objstatus writes an object's status the one way every owner of a status does (the
// model agent for models, the serving controller for InferenceServices, the gateway for
// Routes, the daemon's status reconciler for what no owner runs for): store the status when
// it changed, and record an event when its phase or reason moved, Warning or Normal by one
// rule ([Warning]).
//
// It sits next to the store: it reads and writes the store's generic records and knows of
// api/v1 only the phase, reason and message every status carries.
package objstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/store"
)

// Update is one status write.
type Update struct {
	// Object is the object as its owner read it: kind, namespace, name and UID name it;
	// ResourceVersion is the version the write requires (0: none, the owner writes
	// unconditionally); Status is the status it had, compared with the new one.
	Object store.Object
	// Status is the new status (v1.ModelStatus, v1.InferenceServiceStatus, v1.Status):
	// its JSON's phase, reason and message make the event.
	Status any
	// ReasonIsProgress: within the current phase the reason moves with progress (a
	// download's Resolving, Downloading): an event only when the phase moves.
	ReasonIsProgress bool
}

// Result says what Write did.
type Result struct {
	// Written: the stored status changed.
	Written bool
	// Stale: the object moved on since the owner read it, or is gone: nothing was written.
	// The watch brings the change, and the owner's next pass writes again.
	Stale bool
	// Event: the phase or reason moved and an event was recorded (or its recording failed,
	// which the error says).
	Event bool
}

// Writer writes statuses into one store.
type Writer struct {
	Store *store.Store
	// Log gets one line for every event recorded; nil: none.
	Log *slog.Logger
}

// Write stores u.Status on u.Object when it differs from the status the owner read, and
// records an event when the phase or reason moved: its reason is the status's reason (its
// phase when it has none), its message "phase: message", its type Warning by [Warning].
// A stale object is no error (Result.Stale); any other error of the store is returned.
func (w Writer) Write(ctx context.Context, u Update) (Result, error) {
	so := u.Object
	b, err := json.Marshal(u.Status)
	if err != nil {
		return Result{}, fmt.Errorf("encoding the status of %s: %w", v1.ObjectKey(so.Kind, so.Namespace, so.Name), err)
	}
	if string(b) == string(so.Status) {
		return Result{}, nil
	}
	var old, cur summary
	_ = json.Unmarshal(so.Status, &old)
	_ = json.Unmarshal(b, &cur)
	if _, err := w.Store.UpdateStatus(ctx, so.Kind, so.Namespace, so.Name, so.ResourceVersion, b); err != nil {
		var cf *store.ConflictError
		var nf *store.NotFoundError
		if errors.As(err, &cf) || errors.As(err, &nf) {
			return Result{Stale: true}, nil
		}
		return Result{}, fmt.Errorf("writing the status of %s: %w", v1.ObjectKey(so.Kind, so.Namespace, so.Name), err)
	}
	res := Result{Written: true}
	if old.Phase == cur.Phase && (old.Reason == cur.Reason || u.ReasonIsProgress) {
		return res, nil
	}
	res.Event = true
	typ := v1.EventNormal
	if Warning(cur.Phase, cur.Reason) {
		typ = v1.EventWarning
	}
	reason := cur.Reason
	if reason == "" {
		reason = cur.Phase
	}
	if reason == "" {
		reason = v1.ReasonChanged
	}
	msg := cur.Phase
	if cur.Message != "" {
		msg += ": " + cur.Message
	}
	if w.Log != nil {
		w.Log.Info("status", "kind", so.Kind, "namespace", so.Namespace, "name", so.Name, "phase", cur.Phase, "reason", cur.Reason)
	}
	if err := w.Store.RecordEvent(ctx, store.Event{Kind: so.Kind, Namespace: so.Namespace, Name: so.Name, UID: so.UID, Type: typ, Reason: reason, Message: msg}); err != nil {
		return res, fmt.Errorf("recording the status event of %s: %w", v1.ObjectKey(so.Kind, so.Namespace, so.Name), err)
	}
	return res, nil
}

// summary is what every status carries.
type summary struct{ Phase, Reason, Message string }

// Warning is the one rule of a status event's type: Warning when the object is Failed or
// Degraded, or when it waits on something missing (a model, runtime, service, secret or
// key, or a Ready model's files) or on GPUs that are not free; Normal otherwise, which
// includes progress, success, and waiting on a component this server does not run.
func Warning(phase, reason string) bool {
	if phase == v1.ModelFailed || phase == v1.ServiceFailed || phase == v1.ServiceDegraded {
		return true
	}
	switch reason {
	case v1.ReasonModelNotFound, v1.ReasonRuntimeNotFound, v1.ReasonServiceNotFound,
		v1.ReasonSecretNotFound, v1.ReasonSecretKeyMissing, v1.ReasonModelFilesMissing,
		v1.ReasonUnschedulable:
		return true
	}
	return false
}
