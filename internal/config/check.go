package config

import (
	"fmt"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
)

// Lookup answers questions about objects that already exist (in the store).
type Lookup interface {
	// Exists reports whether the object exists.
	Exists(kind, namespace, name string) bool
	// Routes returns the stored routes.
	Routes() []*v1.Route
}

// Check validates a batch as a whole against what exists: references to
// other objects (in the batch or stored), and public model names claimed by
// two routes. Missing soft references (a model's token secret) are
// warnings; everything else is fatal.
func Check(items []Item, lookup Lookup) Errors {
	var errs Errors
	inBatch := map[ObjectKey]bool{}
	for _, it := range items {
		inBatch[it.Key()] = true
	}
	exists := func(kind, ns, name string) bool {
		info, ok := v1.KindByName(kind)
		if ok && !info.Namespaced {
			ns = ""
		}
		return inBatch[ObjectKey{kind, ns, name}] || (lookup != nil && lookup.Exists(kind, ns, name))
	}
	for _, it := range items {
		for _, ref := range it.Object.References() {
			found := false
			for _, k := range ref.Kinds {
				if exists(k, ref.Namespace, ref.Name) {
					found = true
					break
				}
			}
			if found {
				continue
			}
			errs = append(errs, it.errorAt(ref.Path, refMessage(ref), refFix(ref), ref.Soft))
		}
	}
	errs = append(errs, routeConflicts(items, lookup)...)
	return errs
}

func refMessage(ref v1.Reference) string {
	var tried []string
	for _, k := range ref.Kinds {
		info, _ := v1.KindByName(k)
		if info.Namespaced {
			tried = append(tried, v1.ObjectKey(k, ref.Namespace, ref.Name))
		} else {
			tried = append(tried, v1.ObjectKey(k, "", ref.Name))
		}
	}
	what := strings.ToLower(ref.Kinds[len(ref.Kinds)-1])
	switch ref.Kinds[0] {
	case v1.KindBaseModel:
		what = "model"
	case v1.KindServingRuntime:
		what = "runtime"
	case v1.KindInferenceService:
		what = "service"
	}
	if ref.Soft {
		return fmt.Sprintf("%s %q not found (looked for %s); the object is accepted and will wait for it", what, ref.Name, strings.Join(tried, " and "))
	}
	return fmt.Sprintf("%s %q not found: there is no %s in this apply or on the server", what, ref.Name, strings.Join(tried, " and no "))
}

func refFix(ref v1.Reference) string {
	switch ref.Kinds[0] {
	case v1.KindSecret:
		return fmt.Sprintf("create it: citadel secret create %s -n %s --from-literal token=hf_...", ref.Name, ref.Namespace)
	case v1.KindBaseModel:
		return "apply the model first (or in the same command), or fix the name; see citadel get models"
	case v1.KindServingRuntime:
		return "apply the runtime first (or in the same command), fix the name (see citadel get runtimes), or remove spec.runtime to select one automatically"
	case v1.KindInferenceService:
		return "apply the InferenceService first (or in the same command), or fix the name; see citadel get isvc -A"
	}
	return "apply it first or fix the name"
}

// routeConflicts reports a public name exposed by two routes.
func routeConflicts(items []Item, lookup Lookup) Errors {
	var errs Errors
	type owner struct {
		key  ObjectKey
		item *Item
	}
	claimed := map[string]owner{}
	batchRoutes := map[ObjectKey]bool{}
	for i := range items {
		if r, ok := items[i].Object.(*v1.Route); ok {
			batchRoutes[KeyOf(r)] = true
		}
	}
	if lookup != nil {
		for _, r := range lookup.Routes() {
			k := KeyOf(r)
			if batchRoutes[k] {
				continue // being replaced by this apply
			}
			for _, n := range r.PublicNames() {
				claimed[n] = owner{key: k}
			}
		}
	}
	for i := range items {
		r, ok := items[i].Object.(*v1.Route)
		if !ok {
			continue
		}
		k := KeyOf(r)
		for mi, m := range r.Spec.Models {
			for ni, n := range append([]string{m.Name}, m.Aliases...) {
				prev, dup := claimed[n]
				if !dup || prev.key == k {
					claimed[n] = owner{key: k, item: &items[i]}
					continue
				}
				path := fmt.Sprintf("spec.models[%d].name", mi)
				if ni > 0 {
					path = fmt.Sprintf("spec.models[%d].aliases[%d]", mi, ni-1)
				}
				where := "on the server"
				if prev.item != nil {
					where = "at " + prev.item.Source.String()
				}
				errs = append(errs, items[i].errorAt(path, fmt.Sprintf("public model name %q is already exposed by %s (%s)", n, prev.key, where), "each public name belongs to one route: rename it or move it into that route", false))
			}
		}
	}
	return errs
}

// errorAt builds an error located at path inside the item.
func (it Item) errorAt(path, msg, fix string, warning bool) *Error {
	k := it.Key()
	e := &Error{File: it.Source.File, Document: it.Source.Document, Line: it.Source.Line, Kind: k.Kind, Name: k.Name, Path: path, Message: msg, Fix: fix, Warning: warning}
	if it.pos != nil {
		d := decoder{pos: it.pos}
		if p := d.lookup(path); p.line > 0 {
			e.Line, e.Column = p.line, p.col
		}
	}
	return e
}

// Locate fills the line of errors that came back from the server (which
// knows file and document but not the original text) from the local items.
func Locate(items []Item, errs Errors) {
	for _, e := range errs {
		for _, it := range items {
			if it.Source.File == e.File && it.Source.Document == e.Document && it.Key().Kind == e.Kind && it.Key().Name == e.Name && it.pos != nil {
				d := decoder{pos: it.pos}
				if p := d.lookup(e.Path); p.line > 0 {
					e.Line, e.Column = p.line, p.col
				}
			}
		}
	}
}
