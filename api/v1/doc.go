// Package v1 holds Citadel's resource types: OME's ome.io/v1beta1 kinds
// (ClusterBaseModel, BaseModel, ClusterServingRuntime, ServingRuntime,
// InferenceService), accepted field for field as OME writes them, Citadel's own
// citadel.dev/v1alpha1 Route, and a Kubernetes-shaped v1 Secret.
//
// Every kind has Default, which fills the documented defaults in place, and
// Validate, which returns every problem at once as FieldErrors with a field
// path ("spec.storage.storageUri") and a fix. The package imports only the
// standard library so that the CLI, the daemon, the client and (later) the
// Kubernetes controller share one definition.
package v1
