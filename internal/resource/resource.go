// Package resource converts between api/v1 objects and the store's generic
// records: the spec part of an object (everything but metadata and status)
// is stored as canonical JSON so that an unchanged spec compares equal and
// does not bump the generation.
package resource

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/store"
)

// ToStore converts an object for the store. ResourceVersion, when set, is
// carried as the precondition.
func ToStore(o v1.Object) (store.Object, error) {
	info, ok := v1.KindByName(o.GetTypeMeta().Kind)
	if !ok {
		return store.Object{}, fmt.Errorf("unknown kind %q", o.GetTypeMeta().Kind)
	}
	b, err := json.Marshal(o)
	if err != nil {
		return store.Object{}, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return store.Object{}, err
	}
	status := fields["status"]
	for _, k := range []string{"metadata", "status", "apiVersion", "kind"} {
		delete(fields, k)
	}
	spec, err := json.Marshal(fields) // map keys are sorted: canonical
	if err != nil {
		return store.Object{}, err
	}
	m := o.GetObjectMeta()
	so := store.Object{
		Kind: info.Kind, Namespace: m.Namespace, Name: m.Name,
		Labels: m.Labels, Annotations: m.Annotations,
		Spec: spec, Status: status,
	}
	if !info.Namespaced {
		so.Namespace = ""
	}
	if m.ResourceVersion != "" {
		rv, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
		if err != nil || rv <= 0 {
			return store.Object{}, fmt.Errorf("metadata.resourceVersion %q is not a resource version: remove it, or copy it from citadel get -o yaml", m.ResourceVersion)
		}
		so.ResourceVersion = rv
	}
	return so, nil
}

// FromStore rebuilds the typed object with its server-set metadata and status.
func FromStore(so store.Object) (v1.Object, error) {
	info, ok := v1.KindByName(so.Kind)
	if !ok {
		return nil, fmt.Errorf("stored object has unknown kind %q", so.Kind)
	}
	o := info.New()
	if len(so.Spec) > 0 {
		if err := json.Unmarshal(so.Spec, o); err != nil {
			return nil, fmt.Errorf("decoding stored %s: %w", v1.ObjectKey(so.Kind, so.Namespace, so.Name), err)
		}
	}
	if len(so.Status) > 0 && string(so.Status) != "null" {
		wrapped := append(append([]byte(`{"status":`), so.Status...), '}')
		if err := json.Unmarshal(wrapped, o); err != nil {
			return nil, fmt.Errorf("decoding status of %s: %w", v1.ObjectKey(so.Kind, so.Namespace, so.Name), err)
		}
	}
	tm := o.GetTypeMeta()
	tm.Kind, tm.APIVersion = info.Kind, info.APIVersion
	m := o.GetObjectMeta()
	*m = v1.ObjectMeta{
		Name: so.Name, Namespace: so.Namespace, Labels: so.Labels, Annotations: so.Annotations,
		UID: so.UID, Generation: so.Generation, ResourceVersion: strconv.FormatInt(so.ResourceVersion, 10),
	}
	if !so.CreationTimestamp.IsZero() {
		m.CreationTimestamp = v1.NewTime(so.CreationTimestamp)
	}
	return o, nil
}

// StatusJSON returns the JSON of o's status field (null when absent).
func StatusJSON(o v1.Object) (json.RawMessage, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	if s, ok := fields["status"]; ok {
		return s, nil
	}
	return json.RawMessage("null"), nil
}

// Redact hides secret values; every object leaving the admin API passes here.
func Redact(o v1.Object) v1.Object {
	if s, ok := o.(*v1.Secret); ok {
		return s.Redact()
	}
	return o
}

// KeepFilled carries into incoming the model spec fields that the agent
// filled into stored (named by v1.AnnotationFilledFromFiles) and that
// incoming leaves empty, with the annotation itself. Other kinds, and
// fields the user sets, are untouched.
func KeepFilled(incoming, stored v1.Object) (v1.Object, error) {
	list := stored.GetObjectMeta().Annotations[v1.AnnotationFilledFromFiles]
	if list == "" {
		return incoming, nil
	}
	var in, old map[string]json.RawMessage
	bi, err := json.Marshal(incoming)
	if err != nil {
		return nil, err
	}
	bo, err := json.Marshal(stored)
	if err != nil {
		return nil, err
	}
	if json.Unmarshal(bi, &in) != nil || json.Unmarshal(bo, &old) != nil {
		return incoming, nil
	}
	var inSpec, oldSpec map[string]json.RawMessage
	if json.Unmarshal(in["spec"], &inSpec) != nil || json.Unmarshal(old["spec"], &oldSpec) != nil {
		return incoming, nil
	}
	if inSpec == nil {
		inSpec = map[string]json.RawMessage{}
	}
	changed := false
	for _, f := range strings.Split(list, ",") {
		if _, set := inSpec[f]; !set {
			if v, ok := oldSpec[f]; ok {
				inSpec[f] = v
				changed = true
			}
		}
	}
	if !changed {
		return incoming, nil
	}
	b, err := json.Marshal(inSpec)
	if err != nil {
		return nil, err
	}
	in["spec"] = b
	merged, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	info, _ := v1.KindByName(incoming.GetTypeMeta().Kind)
	out := info.New()
	if err := json.Unmarshal(merged, out); err != nil {
		return nil, err
	}
	m := out.GetObjectMeta()
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	if _, set := m.Annotations[v1.AnnotationFilledFromFiles]; !set {
		m.Annotations[v1.AnnotationFilledFromFiles] = list
	}
	return out, nil
}
