package daemon

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// world is a snapshot of every object, for the pure status functions.
type world struct {
	objects map[v1.Key]v1.Object
}

func (w *world) get(kind, ns, name string) v1.Object {
	if info, ok := v1.KindByName(kind); ok && !info.Namespaced {
		ns = ""
	}
	return w.objects[v1.Key{Kind: kind, Namespace: ns, Name: name}]
}

// NoGatewayMessage begins the status of every Route while no gateway runs.
const NoGatewayMessage = "no gateway runs in this server (--gateway-addr off): the route is stored, not served"

// modelStatus computes the status of a model while no model agent runs (--agent=false):
// Pending, with the reason it waits and what the user can do. It keeps
// progress fields an agent may have written.
func modelStatus(w *world, kind string, meta *v1.ObjectMeta, spec *v1.BaseModelSpec, cur v1.ModelStatus, now time.Time) v1.ModelStatus {
	st := cur
	if st.Phase == v1.ModelReady || st.Phase == v1.ModelFailed || st.Phase == v1.ModelDownloading || st.Phase == v1.ModelVerifying {
		return st // an agent owns this status
	}
	gen := meta.Generation
	set := func(typ string, status v1.ConditionStatus, reason, msg string) {
		v1.SetCondition(&st.Conditions, v1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
	}
	uri := ""
	if spec.Storage != nil && spec.Storage.StorageURI != nil {
		uri = *spec.Storage.StorageURI
	}
	set(v1.CondAccepted, v1.ConditionTrue, v1.ReasonAccepted, "spec is valid")

	var extra []string
	st.LastFailure = nil // the daemon's facts: the secret's, below
	if spec.Storage != nil && spec.Storage.StorageKey != nil && *spec.Storage.StorageKey != "" {
		ns := meta.Namespace
		if kind == v1.KindClusterBaseModel {
			ns = v1.ClusterSecretNamespace
		}
		name, key := *spec.Storage.StorageKey, spec.Storage.SecretKey()
		switch sec, _ := w.get(v1.KindSecret, ns, name).(*v1.Secret); {
		case sec == nil:
			msg := fmt.Sprintf("secret %s/%s (named by spec.storage.key) does not exist; the download cannot start without it: citadel secret create %s -n %s --from-literal %s=hf_...", ns, name, name, ns, key)
			set(v1.CondCredentialsReady, v1.ConditionFalse, v1.ReasonSecretNotFound, msg)
			extra = append(extra, fmt.Sprintf("secret %s/%s not found", ns, name))
			st.LastFailure = &v1.DownloadFailure{Reason: v1.ReasonSecretNotFound, Secret: &v1.FailureSecret{Namespace: ns, Name: name, Key: key}}
		case sec.Data[key] == "":
			keys := make([]string, 0, len(sec.Data))
			for k := range sec.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			msg := fmt.Sprintf("secret %s/%s has no key %q (it has: %s); set spec.storage.parameters.secretKey or add the key", ns, name, key, strings.Join(keys, ", "))
			set(v1.CondCredentialsReady, v1.ConditionFalse, v1.ReasonSecretKeyMissing, msg)
			extra = append(extra, fmt.Sprintf("secret %s/%s has no key %q", ns, name, key))
			st.LastFailure = &v1.DownloadFailure{Reason: v1.ReasonSecretKeyMissing, Secret: &v1.FailureSecret{Namespace: ns, Name: name, Key: key, Found: true, Keys: keys}}
		default:
			set(v1.CondCredentialsReady, v1.ConditionTrue, v1.ReasonSecretFound, fmt.Sprintf("token from secret %s/%s key %q", ns, name, key))
		}
	} else {
		set(v1.CondCredentialsReady, v1.ConditionTrue, v1.ReasonNoCredentialsNeeded, "no storage.key: the download is anonymous")
	}

	reason := v1.ReasonAwaitingAgent
	msg := fmt.Sprintf("waiting for a model agent to download %s: this server runs none (citadel serve --agent=false), so the model stays Pending", uri)
	if spec.Disabled != nil && *spec.Disabled {
		reason, msg = v1.ReasonModelDisabled, "spec.disabled is true: the model is not downloaded or served; set it to false to enable it"
	}
	if len(extra) > 0 {
		msg += "; also: " + strings.Join(extra, "; ")
	}
	set(v1.CondDownloaded, v1.ConditionFalse, reason, msg)
	set(v1.CondReady, v1.ConditionFalse, reason, "not downloaded yet (see condition Downloaded)")
	st.Phase, st.Reason, st.Message = v1.ModelPending, reason, msg
	st.ObservedGeneration = gen
	st.State = "In_Transit" // OME's name for "not Ready, not Failed"
	return st
}

// serviceStatus computes why an InferenceService is not running yet.
func serviceStatus(w *world, s *v1.InferenceService, now time.Time) v1.InferenceServiceStatus {
	st := s.Status
	if st.Phase == v1.ServiceReady || st.Phase == v1.ServiceStarting || st.Phase == v1.ServiceFailed {
		return st // a controller owns this status
	}
	gen := s.Generation
	set := func(typ string, status v1.ConditionStatus, reason, msg string) {
		v1.SetCondition(&st.Conditions, v1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
	}
	reason, msg := "", ""
	block := func(r, m string) {
		if reason == "" {
			reason, msg = r, m
		}
	}
	// The model: BaseModel in the namespace first, then ClusterBaseModel (OME's order).
	modelName := ""
	if s.Spec.Model != nil {
		modelName = s.Spec.Model.Name
	}
	var phase, why, key string
	if m, ok := w.get(v1.KindBaseModel, s.Namespace, modelName).(*v1.BaseModel); ok {
		phase, why, key = m.Status.Phase, m.Status.Reason, v1.ObjectKey(v1.KindBaseModel, s.Namespace, modelName)
	} else if m, ok := w.get(v1.KindClusterBaseModel, "", modelName).(*v1.ClusterBaseModel); ok {
		phase, why, key = m.Status.Phase, m.Status.Reason, v1.ObjectKey(v1.KindClusterBaseModel, "", modelName)
	}
	switch {
	case key == "":
		m := fmt.Sprintf("model %q not found: no BaseModel %s/%s and no ClusterBaseModel %s; apply it", modelName, s.Namespace, modelName, modelName)
		set(v1.CondModelReady, v1.ConditionFalse, v1.ReasonModelNotFound, m)
		block(v1.ReasonModelNotFound, m)
	case phase != v1.ModelReady:
		if phase == "" {
			phase = "not yet reconciled"
		}
		m := fmt.Sprintf("waiting for %s to be Ready (it is %s", key, phase)
		if why != "" {
			m += ": " + why
		}
		m += "); see citadel describe model " + modelName
		set(v1.CondModelReady, v1.ConditionFalse, v1.ReasonModelNotReady, m)
		block(v1.ReasonModelNotReady, m)
	default:
		set(v1.CondModelReady, v1.ConditionTrue, v1.ReasonModelReady, key+" is Ready")
	}
	if r := s.Spec.Runtime; r != nil && r.Name != "" {
		var disabled *bool
		rkey := ""
		if rt, ok := w.get(v1.KindServingRuntime, s.Namespace, r.Name).(*v1.ServingRuntime); ok {
			disabled, rkey = rt.Spec.Disabled, v1.ObjectKey(v1.KindServingRuntime, s.Namespace, r.Name)
		} else if rt, ok := w.get(v1.KindClusterServingRuntime, "", r.Name).(*v1.ClusterServingRuntime); ok {
			disabled, rkey = rt.Spec.Disabled, v1.ObjectKey(v1.KindClusterServingRuntime, "", r.Name)
		}
		switch {
		case rkey == "":
			m := fmt.Sprintf("runtime %q not found: no ServingRuntime %s/%s and no ClusterServingRuntime %s", r.Name, s.Namespace, r.Name, r.Name)
			set(v1.CondRuntimeResolved, v1.ConditionFalse, v1.ReasonRuntimeNotFound, m)
			block(v1.ReasonRuntimeNotFound, m)
		case disabled != nil && *disabled:
			m := rkey + " is disabled (spec.disabled: true)"
			set(v1.CondRuntimeResolved, v1.ConditionFalse, v1.ReasonRuntimeDisabled, m)
			block(v1.ReasonRuntimeDisabled, m)
		default:
			set(v1.CondRuntimeResolved, v1.ConditionTrue, v1.ReasonRuntimeFound, rkey+" (named in spec.runtime)")
			st.Runtime = r.Name
		}
	} else {
		set(v1.CondRuntimeResolved, v1.ConditionUnknown, v1.ReasonAwaitingController, "no runtime named, and this server runs no serving controller (citadel serve --engines=false) to select one")
	}
	block(v1.ReasonAwaitingController, "model and runtime are in place, but this server runs no serving controller (citadel serve --engines=false), so no engine starts")
	set(v1.CondReady, v1.ConditionFalse, reason, msg)
	st.Phase, st.Reason, st.Message, st.ObservedGeneration = v1.ServicePending, reason, msg, gen
	return st
}

// routeStatus is a route's status while no gateway runs (--gateway-addr off): stored, not
// served, and which of its services are missing or not ready. A gateway writes it otherwise.
func routeStatus(w *world, r *v1.Route, now time.Time) v1.Status {
	st := r.Status
	var missing, notReady []string
	total := 0
	for _, ref := range r.References() {
		total++
		s, ok := w.get(v1.KindInferenceService, ref.Namespace, ref.Name).(*v1.InferenceService)
		switch {
		case !ok:
			missing = append(missing, ref.Namespace+"/"+ref.Name)
		case s.Status.Phase != v1.ServiceReady:
			p := s.Status.Phase
			if p == "" {
				p = "not yet reconciled"
			}
			notReady = append(notReady, fmt.Sprintf("%s/%s (%s)", ref.Namespace, ref.Name, p))
		}
	}
	reason, msg := v1.ReasonNoReadyTargets, ""
	switch {
	case len(missing) > 0:
		reason = v1.ReasonServiceNotFound
		msg = "services not found: " + strings.Join(missing, ", ")
	case total == 0:
		reason, msg = v1.ReasonNoGateway, "the route has only url targets"
	case len(notReady) > 0:
		msg = fmt.Sprintf("%d of %d service targets not ready: %s", len(notReady), total, strings.Join(notReady, ", "))
	default:
		reason, msg = v1.ReasonNoGateway, fmt.Sprintf("all %d service targets are ready", total)
	}
	targets := v1.ConditionFalse
	if reason == v1.ReasonNoGateway {
		targets = v1.ConditionTrue
	}
	v1.SetCondition(&st.Conditions, v1.Condition{Type: v1.CondTargetsReady, Status: targets, Reason: reason, Message: msg, ObservedGeneration: r.Generation}, now)
	msg = NoGatewayMessage + "; " + msg
	v1.SetCondition(&st.Conditions, v1.Condition{Type: v1.CondReady, Status: v1.ConditionFalse, Reason: v1.ReasonNoGateway, Message: msg, ObservedGeneration: r.Generation}, now)
	st.Phase, st.Reason, st.Message, st.ObservedGeneration = "Pending", reason, msg, r.Generation
	return st
}

// runtimeStatus: runtimes have no lifecycle; the phase says whether they
// take part in selection.
func runtimeStatus(spec *v1.ServingRuntimeSpec, gen int64) v1.Status {
	if spec.Disabled != nil && *spec.Disabled {
		return v1.Status{Phase: "Disabled", Reason: v1.ReasonRuntimeDisabled, Message: "spec.disabled is true: the runtime is never selected", ObservedGeneration: gen}
	}
	return v1.Status{Phase: "Available", ObservedGeneration: gen}
}
