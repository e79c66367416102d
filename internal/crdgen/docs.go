package main

import (
	"reflect"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/apidoc"
)

// docs gives the doc comments of api/v1's types and fields (read from its
// source by internal/apidoc) as the CRDs' descriptions, which kubectl explain
// shows.
type docs struct{ pkg *apidoc.Package }

func loadDocs() (docs, error) {
	p, err := apidoc.LoadAPI()
	return docs{p}, err
}

// podTypes are api/v1's copies of Kubernetes' pod types. Their fields are
// described by kubectl explain pod.spec; leaving them out here keeps the
// runtime and service CRDs, which hold a pod spec several times, under the
// size kubectl apply can store.
var podTypes = []reflect.Type{
	reflect.TypeFor[v1.PodSpec](), reflect.TypeFor[v1.Container](), reflect.TypeFor[v1.ContainerPort](),
	reflect.TypeFor[v1.EnvVar](), reflect.TypeFor[v1.EnvVarSource](), reflect.TypeFor[v1.FieldSelector](),
	reflect.TypeFor[v1.KeySelector](), reflect.TypeFor[v1.ResourceRequirements](), reflect.TypeFor[v1.VolumeMount](),
	reflect.TypeFor[v1.Volume](), reflect.TypeFor[v1.EmptyDirVolume](), reflect.TypeFor[v1.HostPathVolume](),
	reflect.TypeFor[v1.PVCVolume](), reflect.TypeFor[v1.Toleration](), reflect.TypeFor[v1.Probe](),
	reflect.TypeFor[v1.HTTPGetAction](), reflect.TypeFor[v1.HTTPHeader](), reflect.TypeFor[v1.TCPSocketAction](),
	reflect.TypeFor[v1.ExecAction](), reflect.TypeFor[v1.LocalObjectRef](),
}

// typeDoc is the doc comment of type t.
func (d docs) typeDoc(t reflect.Type) string {
	if at := d.pkg.Types[t.Name()]; at != nil && t.PkgPath() == apiPath {
		return at.Doc
	}
	return ""
}

// fieldDoc is the doc comment of field goName of struct t, or else the
// summary of the field's type.
func (d docs) fieldDoc(t reflect.Type, goName string) string {
	if t.PkgPath() != apiPath {
		return ""
	}
	for _, p := range podTypes {
		if p == t {
			return ""
		}
	}
	at := d.pkg.Types[t.Name()]
	if at == nil {
		return ""
	}
	for _, f := range at.Fields {
		if f.GoName != goName || f.Inline {
			continue
		}
		if f.Doc != "" {
			return f.Doc
		}
		if ft := d.pkg.Types[strings.TrimLeft(f.GoType, "*[]")]; ft != nil && ft.Struct {
			return ft.Summary()
		}
	}
	return ""
}

var apiPath = reflect.TypeFor[v1.ObjectMeta]().PkgPath()
