package serving

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/objstatus"
	"citadel.dev/citadel/internal/store"
	"citadel.dev/citadel/internal/supervisor"
)

// conditions derives the service's conditions from its phase and reason: each gate the
// service has passed is True, the one it is stuck at is False with the reason, and the
// ones after it are Unknown.
func conditions(st *v1.InferenceServiceStatus, gen int64, now time.Time) {
	stage := map[string]int{ // how far the service got
		v1.ReasonModelNotFound: 0, v1.ReasonModelNotReady: 0, v1.ReasonModelDisabled: 0, v1.ReasonModelUnreadable: 0,
		v1.ReasonUnschedulable: 2,
	}
	at, ok := stage[st.Reason]
	switch {
	case ok:
	case st.Phase == v1.ServiceFailed && st.Runtime == "":
		at = 1 // runtime selection failed
	case st.Phase == v1.ServiceFailed:
		at = 3
	case st.Phase == v1.ServiceReady:
		at = 4
	default:
		at = 3 // starting or degraded: the engines are the gate
	}
	v1.SetServiceGates(st, gen, now, at, "the model is Ready on this host", strings.Join(st.Placement, "; "))
}

// writeStatus stores a service's status when it changed, with an event when its phase or
// reason moved (objstatus) and one for every replica whose engine changed phase.
func (c *Controller) writeStatus(ctx context.Context, so store.Object, st v1.InferenceServiceStatus) error {
	var old v1.InferenceServiceStatus
	_ = json.Unmarshal(so.Status, &old)
	st.Conditions = old.Conditions
	st.ObservedGeneration = so.Generation
	conditions(&st, so.Generation, time.Now())
	c.endpointExits(&st)
	c.replicaEvents(ctx, so)
	res, err := objstatus.Writer{Store: c.opts.Store, Log: c.log}.Write(ctx, objstatus.Update{Object: so, Status: st})
	switch {
	case res.Stale:
		c.poke() // someone wrote first: retry on the next pass
	case err != nil && res.Written:
		c.log.Warn("recording event", "err", err) // the status holds; only its event is lost
		return nil
	}
	return err
}

// endpointExits puts on each endpoint how its engine's last process ended, as facts (exit
// code, signal) beside the words of lastExit, when the engine's state still tells of the same
// end (lastExit is then the same).
func (c *Controller) endpointExits(st *v1.InferenceServiceStatus) {
	if len(st.Endpoints) == 0 {
		return
	}
	c.mu.Lock()
	states := map[string]supervisor.State{}
	for _, inst := range c.instances {
		states[net.JoinHostPort(c.opts.Host, fmt.Sprint(inst.launch.Port))] = inst.proc.State()
	}
	c.mu.Unlock()
	for i := range st.Endpoints {
		ep := &st.Endpoints[i]
		if ps, ok := states[ep.Address]; ok && ps.LastExit == ep.LastExit {
			ep.ExitCode, ep.Signal = exitFacts(ps)
		}
	}
}

// exitFacts is how the engine's last process ended: its exit code (none when no process
// ended, or it could not be waited for) and the signal that ended it.
func exitFacts(ps supervisor.State) (*int32, string) {
	if ps.LastExit == "" || ps.LastExitCode < 0 {
		return nil, ps.LastSignal
	}
	code := int32(ps.LastExitCode)
	return &code, ps.LastSignal
}

// replicaEvents records an event for each replica of so whose engine changed phase.
func (c *Controller) replicaEvents(ctx context.Context, so store.Object) {
	key := so.Namespace + "/" + so.Name
	c.mu.Lock()
	var changed []struct {
		r  int
		ps supervisor.State
	}
	for _, inst := range c.instances {
		if inst.service != key {
			continue
		}
		ps := inst.proc.State()
		if ps.Phase != inst.last {
			inst.last = ps.Phase
			changed = append(changed, struct {
				r  int
				ps supervisor.State
			}{inst.replica, ps})
		}
	}
	c.mu.Unlock()
	for _, ch := range changed {
		typ := v1.EventNormal
		switch ch.ps.Phase {
		case supervisor.Restarting, supervisor.CrashLoopBackOff, supervisor.Unready, supervisor.Failed:
			typ = v1.EventWarning
		}
		reason := ch.ps.Reason
		if reason == "" {
			reason = string(ch.ps.Phase)
		}
		msg := fmt.Sprintf("replica %d: %s", ch.r, ch.ps.Phase)
		if ch.ps.Message != "" {
			msg += ": " + ch.ps.Message
		}
		c.record(ctx, so, typ, v1.EngineEventPrefix+reason, msg)
	}
}

func (c *Controller) record(ctx context.Context, so store.Object, typ, reason, msg string) {
	if reason == "" {
		reason = v1.ReasonChanged
	}
	if err := c.opts.Store.RecordEvent(ctx, store.Event{Kind: so.Kind, Namespace: so.Namespace, Name: so.Name, UID: so.UID,
		Type: typ, Reason: reason, Message: msg}); err != nil {
		c.log.Warn("recording event", "err", err)
	}
}

// event records an event for a service object.
func (c *Controller) event(ctx context.Context, s *v1.InferenceService, typ, reason, msg string) {
	c.record(ctx, store.Object{Kind: v1.KindInferenceService, Namespace: s.Namespace, Name: s.Name, UID: s.UID}, typ, reason, msg)
}
