package v1

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// API groups and versions.
const (
	OMEGroupVersion     = "ome.io/v1beta1"
	CitadelGroupVersion = "citadel.dev/v1alpha1"
	CoreGroupVersion    = "v1"

	// DefaultNamespace is used for namespaced objects that name none, as kubectl does.
	DefaultNamespace = "default"
)

// TypeMeta names an object's kind and API version.
type TypeMeta struct {
	// APIVersion is the kind's group and version: ome.io/v1beta1 (models, runtimes,
	// InferenceServices), citadel.dev/v1alpha1 (Route, APIKey) or v1 (Secret).
	APIVersion string `json:"apiVersion"`
	// Kind is the object's kind, such as ClusterBaseModel or Route.
	Kind string `json:"kind"`
}

// ObjectMeta is the metadata every object carries. Name, Namespace, Labels and
// Annotations come from the user; the rest is set by the server and ignored on
// apply, except ResourceVersion, which, when given, is a precondition: the
// apply fails with a conflict if the stored object has moved on.
type ObjectMeta struct {
	// Name is unique among the objects of its kind (and namespace): lower-case letters,
	// digits, '-' and '.', such as qwen2-5-7b.
	Name string `json:"name"`
	// Namespace of a namespaced kind; default "default". Cluster-scoped kinds have none.
	Namespace string `json:"namespace,omitempty"`
	// Labels select objects (citadel get -l key=value).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are notes for people and tools; Citadel writes some of its own
	// (citadel.dev/built-in, citadel.dev/filled-from-files).
	Annotations map[string]string `json:"annotations,omitempty"`
	// UID is set by the server when the object is created.
	UID string `json:"uid,omitempty"`
	// Generation is set by the server and grows with each change to the spec.
	Generation int64 `json:"generation,omitempty"`
	// ResourceVersion is set by the server on every write; given on apply, it must match
	// the stored one (an optimistic lock).
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// CreationTimestamp is set by the server.
	CreationTimestamp *Time `json:"creationTimestamp,omitempty"`
	// DeletionTimestamp is set by the server while a deletion waits on finalizers.
	DeletionTimestamp *Time `json:"deletionTimestamp,omitempty"`
	// Finalizers are kept as written, for Kubernetes tools; Citadel sets none.
	Finalizers []string `json:"finalizers,omitempty"`
}

// Time is a timestamp that encodes as RFC 3339 in UTC, like Kubernetes' metav1.Time.
type Time struct{ time.Time }

// NewTime returns t as a *Time, in UTC.
func NewTime(t time.Time) *Time { return &Time{t.UTC()} }

// MarshalJSON encodes the time as RFC 3339 with second precision.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// UnmarshalJSON accepts RFC 3339 (with or without fractional seconds) or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected an RFC 3339 timestamp string such as 2026-01-02T15:04:05Z")
	}
	p, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("invalid timestamp %q: use RFC 3339, such as 2026-01-02T15:04:05Z", s)
	}
	if y := p.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("invalid timestamp %q: the year in UTC must be between 0000 and 9999", s)
	}
	t.Time = p.UTC()
	return nil
}

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

// Condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Condition is one observation of an object's state, as in Kubernetes: a
// machine-readable Reason (CamelCase) and a human Message that says what to do.
type Condition struct {
	// Type names what is observed, such as Ready or CredentialsReady (docs/reasons.md).
	Type string `json:"type"`
	// Status says whether it holds.
	Status ConditionStatus `json:"status"`
	// Reason is a CamelCase code (docs/reasons.md lists them).
	Reason string `json:"reason,omitempty"`
	// Message says it in words, with what to do.
	Message string `json:"message,omitempty"`
	// LastTransitionTime is when Status last changed.
	LastTransitionTime *Time `json:"lastTransitionTime,omitempty"`
	// ObservedGeneration is the metadata.generation the condition was computed from.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Status is the status shared by all kinds. A non-terminal Phase always comes
// with a Reason and a Message saying what it is waiting for.
type Status struct {
	// Phase is where the object is in its life: each kind's phases are in docs/concepts.md.
	Phase string `json:"phase,omitempty"`
	// Reason is a CamelCase code saying why it is in Phase (docs/reasons.md).
	Reason string `json:"reason,omitempty"`
	// Message says why in words, and what it waits for or what to do.
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the metadata.generation the status was computed from: older
	// than the object's generation while a change is being acted on.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are the object's observations, one per type.
	Conditions []Condition `json:"conditions,omitempty"`
}

// SetCondition adds or replaces the condition of c.Type. LastTransitionTime
// moves only when Status changes; the caller supplies now.
func SetCondition(conds *[]Condition, c Condition, now time.Time) {
	for i := range *conds {
		old := &(*conds)[i]
		if old.Type != c.Type {
			continue
		}
		if old.Status == c.Status && old.LastTransitionTime != nil {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = NewTime(now)
		}
		*old = c
		return
	}
	c.LastTransitionTime = NewTime(now)
	*conds = append(*conds, c)
}

// FindCondition returns the condition of type t, or nil.
func FindCondition(conds []Condition, t string) *Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// Object is implemented by every resource kind.
type Object interface {
	GetTypeMeta() *TypeMeta
	GetObjectMeta() *ObjectMeta
	// Default fills documented defaults in place.
	Default()
	// Validate returns every problem of the object on its own (without
	// looking at other objects), with field paths.
	Validate() FieldErrors
	// References lists the other objects this one names.
	References() []Reference
}

// GetTypeMeta returns the object's type metadata.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// GetObjectMeta returns the object's metadata.
func (m *ObjectMeta) GetObjectMeta() *ObjectMeta { return m }

// Reference is a pointer from one object to another, checked at apply time.
type Reference struct {
	// Path is the referring field, e.g. "spec.model.name".
	Path string
	// Kinds are tried in order, each in Namespace (for namespaced kinds)
	// or cluster-wide, as OME resolves BaseModel before ClusterBaseModel.
	Kinds     []string
	Namespace string
	Name      string
	// Soft references only warn when missing: the object waits for them
	// (e.g. a model's token secret) instead of being rejected.
	Soft bool
}

// ObjectKey formats an object's identity: Kind "name" or Kind "ns/name".
func ObjectKey(kind, namespace, name string) string {
	if namespace == "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s %q", kind, namespace+"/"+name)
}

// validateMeta checks the metadata common to all kinds.
func validateMeta(m *ObjectMeta, namespaced bool) FieldErrors {
	var errs FieldErrors
	if m.Name == "" {
		errs.Add("metadata.name", "is required", "give the object a name, e.g. metadata.name: my-model")
	} else if msg := checkDNSName(m.Name, 253); msg != "" {
		errs.Add("metadata.name", fmt.Sprintf("invalid name %q: %s", m.Name, msg), "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
	}
	if namespaced {
		if m.Namespace != "" {
			if msg := checkDNSName(m.Namespace, 63); msg != "" || strings.Contains(m.Namespace, ".") {
				if msg == "" {
					msg = "must not contain '.'"
				}
				errs.Add("metadata.namespace", fmt.Sprintf("invalid namespace %q: %s", m.Namespace, msg), "use lower-case letters, digits and '-'")
			}
		}
	} else if m.Namespace != "" {
		errs.Add("metadata.namespace", fmt.Sprintf("is set to %q but this kind is cluster-scoped", m.Namespace), "remove metadata.namespace")
	}
	if rv := m.ResourceVersion; rv != "" {
		if n, err := strconv.ParseInt(rv, 10, 64); err != nil || n <= 0 {
			errs.Add("metadata.resourceVersion", fmt.Sprintf("%q is not a resource version", rv), "remove it, or copy it unchanged from citadel get -o yaml")
		}
	}
	for k := range m.Labels {
		if msg := checkLabelKey(k); msg != "" {
			errs.Add("metadata.labels", fmt.Sprintf("invalid label key %q: %s", k, msg), "label keys are [prefix/]name with name at most 63 characters of [A-Za-z0-9._-]")
		}
	}
	for k, v := range m.Labels {
		if msg := checkLabelValue(v); msg != "" {
			errs.Add(fmt.Sprintf("metadata.labels[%s]", k), fmt.Sprintf("invalid label value %q: %s", v, msg), "label values are at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric")
		}
	}
	return errs
}

func isAlnumLower(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isAlnumLower(c) || c >= 'A' && c <= 'Z' }

// checkDNSName checks an RFC 1123 subdomain-style name; "" means valid.
func checkDNSName(s string, max int) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > max {
		return fmt.Sprintf("longer than %d characters", max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnumLower(c) && c != '-' && c != '.' {
			if c >= 'A' && c <= 'Z' {
				return "must be lower case"
			}
			return fmt.Sprintf("character %q at offset %d is not allowed", c, i)
		}
	}
	if !isAlnumLower(s[0]) || !isAlnumLower(s[len(s)-1]) {
		return "must start and end with a letter or digit"
	}
	return ""
}

func checkLabelKey(k string) string {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		if msg := checkDNSName(k[:i], 253); msg != "" || i == 0 {
			return "invalid prefix"
		}
		name = k[i+1:]
	}
	if name == "" {
		return "empty name"
	}
	return checkLabelValue(name)
}

func checkLabelValue(v string) string {
	if v == "" {
		return ""
	}
	if len(v) > 63 {
		return "longer than 63 characters"
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Sprintf("character %q is not allowed", c)
		}
	}
	if !isAlnum(v[0]) || !isAlnum(v[len(v)-1]) {
		return "must start and end with a letter or digit"
	}
	return ""
}
