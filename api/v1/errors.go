package v1

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem in one field: where (Path, e.g.
// "spec.storage.storageUri"), what is wrong (Message) and what to do (Fix).
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Warning marks a problem that does not stop the object from being
	// applied (a missing secret the object will wait for).
	Warning bool `json:"warning,omitempty"`
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Fix != "" {
		b.WriteString(" (fix: ")
		b.WriteString(e.Fix)
		b.WriteString(")")
	}
	return b.String()
}

// FieldErrors collects every problem of an object.
type FieldErrors []FieldError

// Add appends an error.
func (l *FieldErrors) Add(path, msg, fix string) {
	*l = append(*l, FieldError{Path: path, Message: msg, Fix: fix})
}

// Addf appends an error with a formatted message and no fix.
func (l *FieldErrors) Addf(path, format string, args ...any) {
	*l = append(*l, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Prefixed appends errs with prefix joined to each path.
func (l *FieldErrors) Prefixed(prefix string, errs FieldErrors) {
	for _, e := range errs {
		switch {
		case e.Path == "":
			e.Path = prefix
		case strings.HasPrefix(e.Path, "["):
			e.Path = prefix + e.Path
		default:
			e.Path = prefix + "." + e.Path
		}
		*l = append(*l, e)
	}
}

// Sort orders errors by path, keeping the order of errors on one path.
func (l FieldErrors) Sort() {
	sort.SliceStable(l, func(i, j int) bool { return l[i].Path < l[j].Path })
}

// Errors returns the non-warning entries.
func (l FieldErrors) Errors() FieldErrors {
	var out FieldErrors
	for _, e := range l {
		if !e.Warning {
			out = append(out, e)
		}
	}
	return out
}

func (l FieldErrors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// oneOf checks v against allowed values and, when it is not one of them,
// suggests the closest by case-insensitive match.
func oneOf[T ~string](errs *FieldErrors, path string, v T, allowed ...T) {
	if v == "" {
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	fix := "use one of: " + strings.Join(names, ", ")
	for _, a := range allowed {
		if strings.EqualFold(normalizeEnum(string(v)), normalizeEnum(string(a))) {
			fix = fmt.Sprintf("did you mean %q? (values are case-sensitive)", a)
			break
		}
	}
	errs.Add(path, fmt.Sprintf("unsupported value %q", v), fix)
}

// knownValue checks v against the values Citadel knows for a field that
// OME's CRD leaves a free string: an unknown value is a warning, never an
// error, so that OME's files apply unchanged. what names the field's values
// in the message ("capability"). With fold, a value differing only in case
// is known (quantization names: Q4_K_M is q4_k_m).
func knownValue(errs *FieldErrors, path, what, v string, fold bool, known ...string) {
	if v == "" {
		return
	}
	for _, k := range known {
		if v == k || fold && strings.EqualFold(v, k) {
			return
		}
	}
	fix := "known values: " + strings.Join(known, ", ")
	for _, k := range known {
		if strings.EqualFold(normalizeEnum(v), normalizeEnum(k)) {
			fix = fmt.Sprintf("did you mean %q?", k)
			break
		}
	}
	*errs = append(*errs, FieldError{Path: path, Warning: true, Fix: fix,
		Message: fmt.Sprintf("%q is not a %s Citadel knows; accepted as written (OME accepts any value here), but Citadel does not act on it", v, what)})
}

func normalizeEnum(s string) string {
	return strings.NewReplacer("-", "", "_", "", " ", "").Replace(s)
}
