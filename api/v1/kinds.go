package v1

import (
	"fmt"
	"sort"
	"strings"
)

// Kind names.
const (
	KindClusterBaseModel      = "ClusterBaseModel"
	KindBaseModel             = "BaseModel"
	KindClusterServingRuntime = "ClusterServingRuntime"
	KindServingRuntime        = "ServingRuntime"
	KindInferenceService      = "InferenceService"
	KindRoute                 = "Route"
	KindSecret                = "Secret"
	KindAPIKey                = "APIKey"
)

// KindInfo describes a kind: its API version, names and scope.
type KindInfo struct {
	Kind       string
	APIVersion string
	Plural     string   // lower-case plural, used in API paths
	Singular   string   // lower-case singular
	ShortNames []string // kubectl-style short names
	Namespaced bool
	New        func() Object
}

// Kinds lists every kind, in the order apply writes them (what others
// reference comes first).
var Kinds = []KindInfo{
	{KindSecret, CoreGroupVersion, "secrets", "secret", nil, true, func() Object { return &Secret{} }},
	{KindClusterBaseModel, OMEGroupVersion, "clusterbasemodels", "clusterbasemodel", []string{"cbm", "models", "model"}, false, func() Object { return &ClusterBaseModel{} }},
	{KindBaseModel, OMEGroupVersion, "basemodels", "basemodel", []string{"bm"}, true, func() Object { return &BaseModel{} }},
	{KindClusterServingRuntime, OMEGroupVersion, "clusterservingruntimes", "clusterservingruntime", []string{"csr", "runtimes", "runtime"}, false, func() Object { return &ClusterServingRuntime{} }},
	{KindServingRuntime, OMEGroupVersion, "servingruntimes", "servingruntime", []string{"sr"}, true, func() Object { return &ServingRuntime{} }},
	{KindInferenceService, OMEGroupVersion, "inferenceservices", "inferenceservice", []string{"isvc", "services", "service", "svc"}, true, func() Object { return &InferenceService{} }},
	{KindRoute, CitadelGroupVersion, "routes", "route", []string{"rt"}, true, func() Object { return &Route{} }},
	{KindAPIKey, CitadelGroupVersion, "apikeys", "apikey", []string{"key", "keys"}, false, func() Object { return &APIKey{} }},
}

// LookupKind finds a kind by its Kind, plural, singular or short name
// (case-insensitive). The error lists what is known.
func LookupKind(name string) (KindInfo, error) {
	n := strings.ToLower(name)
	for _, k := range Kinds {
		if n == strings.ToLower(k.Kind) || n == k.Plural || n == k.Singular {
			return k, nil
		}
		for _, s := range k.ShortNames {
			if n == s {
				return k, nil
			}
		}
	}
	return KindInfo{}, fmt.Errorf("unknown resource type %q: known types are %s", name, strings.Join(KindNames(), ", "))
}

// KindByName returns the info of an exact Kind.
func KindByName(kind string) (KindInfo, bool) {
	for _, k := range Kinds {
		if k.Kind == kind {
			return k, true
		}
	}
	return KindInfo{}, false
}

// KindNames lists the kinds with their short names, for help and errors.
func KindNames() []string {
	var out []string
	for _, k := range Kinds {
		s := k.Plural
		if len(k.ShortNames) > 0 {
			s += " (" + strings.Join(k.ShortNames, ", ") + ")"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Order returns the position of kind in Kinds, for ordering writes.
func Order(kind string) int {
	for i, k := range Kinds {
		if k.Kind == kind {
			return i
		}
	}
	return len(Kinds)
}
