// Package kube is what Citadel's Kubernetes mode shares: the API server's
// names for api/v1's kinds, the conversion of objects between api/v1 and
// the API server's unstructured form, how a process finds its cluster, and
// the names, labels and keys that the controller, the per-node agents, the
// gateway and the Helm chart agree on (names.go). docs/design/0007-kubernetes.md
// says how the pieces fit.
//
// Kubernetes imports stay under internal/kube; the rest of Citadel knows only
// api/v1.
package kube

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	v1 "citadel.dev/citadel/api/v1"
)

// GVK returns the API server's group, version and kind of an api/v1 kind.
func GVK(kind string) (schema.GroupVersionKind, error) {
	info, ok := v1.KindByName(kind)
	if !ok {
		return schema.GroupVersionKind{}, fmt.Errorf("unknown kind %q", kind)
	}
	return schema.FromAPIVersionAndKind(info.APIVersion, info.Kind), nil
}

// GVR returns the group, version and plural resource of an api/v1 kind.
func GVR(kind string) (schema.GroupVersionResource, error) {
	info, ok := v1.KindByName(kind)
	if !ok {
		return schema.GroupVersionResource{}, fmt.Errorf("unknown kind %q", kind)
	}
	gv, err := schema.ParseGroupVersion(info.APIVersion)
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	return gv.WithResource(info.Plural), nil
}

// NewList returns an empty list of an api/v1 kind, for a controller-runtime client.
func NewList(kind string) (*unstructured.UnstructuredList, error) {
	gvk, err := GVK(kind)
	if err != nil {
		return nil, err
	}
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(kind + "List"))
	return l, nil
}

// NewObject returns an empty unstructured object of an api/v1 kind, for a
// controller-runtime client's Get.
func NewObject(kind string) (*unstructured.Unstructured, error) {
	gvk, err := GVK(kind)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// Decode converts an object read from the API server into its api/v1 type,
// metadata (resourceVersion, generation, uid, labels, annotations) and status
// included. Server-only metadata that api/v1 does not model (managedFields,
// finalizers, deletionTimestamp) is read from u directly.
func Decode(u *unstructured.Unstructured) (v1.Object, error) {
	info, ok := v1.KindByName(u.GetKind())
	if !ok {
		return nil, fmt.Errorf("%s %s: not a Citadel kind", u.GetAPIVersion(), u.GetKind())
	}
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
	b, err := json.Marshal(c.Object)
	if err != nil {
		return nil, err
	}
	o := info.New()
	if err := json.Unmarshal(b, o); err != nil {
		return nil, fmt.Errorf("%s %s: %w", info.Kind, objectName(u.GetNamespace(), u.GetName()), err)
	}
	return o, nil
}

// Encode converts an api/v1 object into the API server's unstructured form.
func Encode(o v1.Object) (*unstructured.Unstructured, error) {
	tm := o.GetTypeMeta()
	if tm.Kind == "" {
		return nil, fmt.Errorf("object %q has no kind", o.GetObjectMeta().Name)
	}
	if tm.APIVersion == "" {
		info, ok := v1.KindByName(tm.Kind)
		if !ok {
			return nil, fmt.Errorf("unknown kind %q", tm.Kind)
		}
		tm.APIVersion = info.APIVersion
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(b, &u.Object); err != nil {
		return nil, err
	}
	return u, nil
}

// StatusJSON is the status of u as JSON, for a status patch; nil when it has none.
func StatusJSON(u *unstructured.Unstructured) (json.RawMessage, error) {
	st, ok := u.Object["status"]
	if !ok {
		return nil, nil
	}
	return json.Marshal(st)
}

// Config returns how to reach the API server: the kubeconfig file when one
// is named (the flag, else $KUBECONFIG), else the pod's service account
// (in-cluster), else ~/.kube/config. The error says which were tried.
func Config(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	if kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		where := kubeconfig
		if where == "" {
			where = strings.Join(rules.Precedence, ", ")
		}
		return nil, fmt.Errorf("no Kubernetes API server to talk to: not in a pod (no service account token), and no usable kubeconfig (%s): %w; pass --kubeconfig FILE", where, err)
	}
	return cfg, nil
}

func objectName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// SetStatus makes st the status of u when it differs from old (compared as JSON), for a
// status write, and reports whether it changed anything: an unchanged status is not
// written again.
func SetStatus(u *unstructured.Unstructured, old, st any) (bool, error) {
	ob, err := json.Marshal(old)
	if err != nil {
		return false, err
	}
	nb, err := json.Marshal(st)
	if err != nil {
		return false, err
	}
	if string(ob) == string(nb) {
		return false, nil
	}
	var m map[string]any
	if err := json.Unmarshal(nb, &m); err != nil {
		return false, err
	}
	u.Object["status"] = m
	return true, nil
}
