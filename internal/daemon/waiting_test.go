package daemon

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

func ptr[T any](v T) *T { return &v }

func newWorld(objs ...v1.Object) *world {
	w := &world{objects: map[v1.Key]v1.Object{}}
	for _, o := range objs {
		o.Default()
		w.objects[v1.KeyOf(o)] = o
	}
	return w
}

func model(name, key string) *v1.ClusterBaseModel {
	m := &v1.ClusterBaseModel{ObjectMeta: v1.ObjectMeta{Name: name, Generation: 3}}
	m.Spec.Storage = &v1.StorageSpec{StorageURI: ptr("hf://XiaomiMiMo/MiMo-VL-7B-RL")}
	if key != "" {
		m.Spec.Storage.StorageKey = ptr(key)
	}
	m.Default()
	return m
}

func secret(ns, name string, data map[string]string) *v1.Secret {
	s := &v1.Secret{ObjectMeta: v1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{}}
	for k, v := range data {
		s.Data[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	return s
}

func TestModelStatus(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		model      *v1.ClusterBaseModel
		world      *world
		wantReason string
		wantCreds  string // reason of CredentialsReady
		wantInMsg  string
	}{
		{"no key: anonymous", model("m", ""), newWorld(), v1.ReasonAwaitingAgent, v1.ReasonNoCredentialsNeeded, "hf://XiaomiMiMo/MiMo-VL-7B-RL"},
		{"missing secret", model("m", "hf-token"), newWorld(), v1.ReasonAwaitingAgent, v1.ReasonSecretNotFound, "secret ome/hf-token not found"},
		{"secret in the wrong namespace", model("m", "hf-token"), newWorld(secret("default", "hf-token", map[string]string{"token": "x"})), v1.ReasonAwaitingAgent, v1.ReasonSecretNotFound, "secret ome/hf-token not found"},
		{"secret without the key", model("m", "hf-token"), newWorld(secret("ome", "hf-token", map[string]string{"hf": "x"})), v1.ReasonAwaitingAgent, v1.ReasonSecretKeyMissing, `has no key "token"`},
		{"secret found", model("m", "hf-token"), newWorld(secret("ome", "hf-token", map[string]string{"token": "x"})), v1.ReasonAwaitingAgent, v1.ReasonSecretFound, "this server runs none (citadel serve --agent=false)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := modelStatus(tt.world, v1.KindClusterBaseModel, &tt.model.ObjectMeta, &tt.model.Spec, v1.ModelStatus{}, now)
			if st.Phase != v1.ModelPending || st.Reason != tt.wantReason || st.ObservedGeneration != 3 {
				t.Errorf("phase/reason/observedGeneration = %s/%s/%d", st.Phase, st.Reason, st.ObservedGeneration)
			}
			if c := v1.FindCondition(st.Conditions, v1.CondCredentialsReady); c == nil || c.Reason != tt.wantCreds {
				t.Errorf("CredentialsReady = %+v, want reason %s", c, tt.wantCreds)
			}
			if !strings.Contains(st.Message, tt.wantInMsg) {
				t.Errorf("message %q lacks %q", st.Message, tt.wantInMsg)
			}
			// the secret's facts, for readers that must not parse the message
			lf := st.LastFailure
			switch tt.wantCreds {
			case v1.ReasonSecretNotFound, v1.ReasonSecretKeyMissing:
				found := tt.wantCreds == v1.ReasonSecretKeyMissing
				if lf == nil || lf.Reason != tt.wantCreds || lf.Secret == nil || lf.Secret.Namespace != "ome" || lf.Secret.Name != "hf-token" ||
					lf.Secret.Key != "token" || lf.Secret.Found != found || found && !slices.Equal(lf.Secret.Keys, []string{"hf"}) {
					t.Errorf("lastFailure = %+v", lf)
				}
			default:
				if lf != nil {
					t.Errorf("lastFailure = %+v, want none", lf)
				}
			}
			for _, c := range st.Conditions {
				if c.Status != v1.ConditionTrue && (c.Reason == "" || c.Message == "") {
					t.Errorf("condition %s is %s without a reason and message", c.Type, c.Status)
				}
			}
		})
	}
}

func TestModelStatusKeepsTransitionTime(t *testing.T) {
	m := model("m", "")
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	st := modelStatus(newWorld(), v1.KindClusterBaseModel, &m.ObjectMeta, &m.Spec, v1.ModelStatus{}, t0)
	st2 := modelStatus(newWorld(), v1.KindClusterBaseModel, &m.ObjectMeta, &m.Spec, st, t0.Add(time.Hour))
	for i := range st2.Conditions {
		if !st2.Conditions[i].LastTransitionTime.Equal(t0) {
			t.Errorf("condition %s moved its transition time without a transition", st2.Conditions[i].Type)
		}
	}
}

func TestModelStatusLeavesAgentStatusAlone(t *testing.T) {
	m := model("m", "")
	cur := v1.ModelStatus{Status: v1.Status{Phase: v1.ModelDownloading}, BytesDone: 10, BytesTotal: 100}
	st := modelStatus(newWorld(), v1.KindClusterBaseModel, &m.ObjectMeta, &m.Spec, cur, time.Now())
	if st.Phase != v1.ModelDownloading || st.BytesDone != 10 {
		t.Fatalf("status written by an agent was overwritten: %+v", st)
	}
}

func TestServiceStatus(t *testing.T) {
	now := time.Now()
	isvc := func(ns, model, runtime string) *v1.InferenceService {
		s := &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Name: "svc", Namespace: ns, Generation: 1}}
		s.Spec.Model = &v1.ModelRef{Name: model}
		if runtime != "" {
			s.Spec.Runtime = &v1.ServingRuntimeRef{Name: runtime}
		}
		s.Default()
		return s
	}
	pending := model("mimo", "")
	pending.Status = v1.ModelStatus{Status: v1.Status{Phase: v1.ModelPending, Reason: v1.ReasonAwaitingAgent}}
	ready := model("mimo", "")
	ready.Status.Phase = v1.ModelReady
	rt := &v1.ClusterServingRuntime{ObjectMeta: v1.ObjectMeta{Name: "srt"}}
	disabledRT := &v1.ClusterServingRuntime{ObjectMeta: v1.ObjectMeta{Name: "srt"}, Spec: v1.ServingRuntimeSpec{Disabled: ptr(true)}}
	tests := []struct {
		name       string
		svc        *v1.InferenceService
		world      *world
		wantReason string
		wantInMsg  string
	}{
		{"model missing", isvc("ns", "mimo", "srt"), newWorld(rt), v1.ReasonModelNotFound, `model "mimo" not found`},
		{"model pending", isvc("ns", "mimo", "srt"), newWorld(pending, rt), v1.ReasonModelNotReady, "it is Pending: AwaitingAgent"},
		{"runtime missing", isvc("ns", "mimo", "srt"), newWorld(ready), v1.ReasonRuntimeNotFound, `runtime "srt" not found`},
		{"runtime disabled", isvc("ns", "mimo", "srt"), newWorld(ready, disabledRT), v1.ReasonRuntimeDisabled, "disabled"},
		{"all there", isvc("ns", "mimo", "srt"), newWorld(ready, rt), v1.ReasonAwaitingController, "runs no serving controller (citadel serve --engines=false)"},
		{"namespaced model wins", isvc("ns", "mimo", ""), newWorld(pending, &v1.BaseModel{ObjectMeta: v1.ObjectMeta{Name: "mimo", Namespace: "ns"}, Status: v1.ModelStatus{Status: v1.Status{Phase: v1.ModelFailed, Reason: "X"}}}), v1.ReasonModelNotReady, `BaseModel "ns/mimo"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := serviceStatus(tt.world, tt.svc, now)
			if st.Phase != v1.ServicePending || st.Reason != tt.wantReason || !strings.Contains(st.Message, tt.wantInMsg) {
				t.Errorf("got %s/%s %q, want reason %s with %q", st.Phase, st.Reason, st.Message, tt.wantReason, tt.wantInMsg)
			}
		})
	}
}

func TestRouteStatus(t *testing.T) {
	r := &v1.Route{ObjectMeta: v1.ObjectMeta{Name: "r", Namespace: "default"}, Spec: v1.RouteSpec{Models: []v1.RouteModel{
		{Name: "a", Targets: []v1.RouteTarget{{Service: "svc"}}, Fallback: []v1.RouteTarget{{Service: "other/fb"}}},
	}}}
	svc := &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Name: "svc", Namespace: "default"}, Status: v1.InferenceServiceStatus{Status: v1.Status{Phase: v1.ServicePending}}}
	st := routeStatus(newWorld(svc), r, time.Now())
	if st.Reason != v1.ReasonServiceNotFound || !strings.Contains(st.Message, "other/fb") {
		t.Errorf("missing fallback: %+v", st)
	}
	fb := &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Name: "fb", Namespace: "other"}}
	st = routeStatus(newWorld(svc, fb), r, time.Now())
	if st.Reason != v1.ReasonNoReadyTargets || !strings.Contains(st.Message, "2 of 2 service targets not ready: default/svc (Pending)") {
		t.Errorf("not ready: %+v", st)
	}
}
