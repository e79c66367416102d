package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"unicode/utf8"

	v1 "citadel.dev/citadel/api/v1"
)

// The names that the controller, the agents, the gateway and the chart agree on.
// Where OME has a name for the same thing, it is OME's, so that what OME users
// look at (node labels, the per-node ConfigMaps, finalizers, pod labels) is where
// they expect it.
const (
	// DefaultNamespace is where Citadel's own objects live (agent Leases, the
	// per-node ConfigMaps) when POD_NAMESPACE is not set.
	DefaultNamespace = "citadel"

	// ModelLabelDomain prefixes the node labels that say a model is on a node:
	// models.ome.io/clusterbasemodel.<name> or models.ome.io/<ns>.basemodel.<name>,
	// valued Ready, Updating or Failed (ModelLabel).
	ModelLabelDomain = "models.ome.io"
	// NodeStatusLabel marks the per-node ConfigMaps (named after the node) that hold
	// each model's entry on that node, as OME's agent writes them.
	NodeStatusLabel = "models.ome/basemodel-status"
	// NodeLabel names the node of a per-node ConfigMap.
	NodeLabel = "node"
	// NodeNameAnnotation and ManagedByAnnotation annotate the per-node ConfigMaps.
	NodeNameAnnotation  = "models.ome.io/node-name"
	ManagedByAnnotation = "models.ome.io/managed-by"
	// ReserveArtifactLabel on a model keeps its files on the nodes when it is deleted.
	ReserveArtifactLabel = "models.ome/reserve-model-artifact"

	// Finalizers, OME's names: the controller removes them once every live
	// agent has removed the model (an agent that is gone holds nothing up).
	ClusterBaseModelFinalizer = "clusterbasemodels.ome.io/finalizer"
	BaseModelFinalizer        = "basemodels.ome.io/finalizer"

	// AgentLeasePrefix + node name is each agent's heartbeat Lease
	// (coordination.k8s.io/v1) in the agents' namespace.
	AgentLeasePrefix = "citadel-agent-"
	// AgentLeaseDuration is the Lease's leaseDurationSeconds: an agent renews
	// it every third of that; past it, the agent counts as not reporting.
	AgentLeaseDurationSeconds = 30
	// ControllerLeaderLease is the controller's leader-election Lease.
	ControllerLeaderLease = "citadel-controller"

	// InferenceServiceLabel and ComponentLabel are on every engine pod, as OME
	// sets them (OME's router discovers engines by them).
	InferenceServiceLabel = "ome.io/inferenceservice"
	ComponentLabel        = "component"
	ComponentEngine       = "engine"
	// ManagedByLabel = ManagedBy marks what the controller made (Deployments,
	// Services) and, through the Service, the EndpointSlices of engines.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "citadel"
	// EngineSuffix names an InferenceService's engine Deployment and Service:
	// <isvc>-engine, as OME names them.
	EngineSuffix = "-engine"
	// EnginePortName is the engine container's port name and the Service's port name.
	EnginePortName = "http"
	// ServiceNameLabel is the label the EndpointSlice controller puts on a
	// Service's slices.
	ServiceNameLabel = "kubernetes.io/service-name"

	// GPUResource is the extended resource of NVIDIA GPUs.
	GPUResource = "nvidia.com/gpu"
)

// Namespace is the namespace of Citadel's own objects: $POD_NAMESPACE (set by
// the chart from the downward API), else DefaultNamespace.
func Namespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return DefaultNamespace
}

// ModelLabel is the node label key that says where a model is, OME's:
// models.ome.io/clusterbasemodel.<name> for a ClusterBaseModel and
// models.ome.io/<namespace>.basemodel.<name> for a BaseModel. The name part
// of a label key has at most 63 characters; OME keeps it to 49 and shortens
// a longer model name (and, for a BaseModel, namespace) to an 8-hex sha256
// prefix and the name's tail.
func ModelLabel(kind, namespace, name string) string {
	const max = 49
	if kind == v1.KindClusterBaseModel {
		return ModelLabelDomain + "/clusterbasemodel." + shorten(name, max-len("clusterbasemodel."))
	}
	avail := max - len(".basemodel.")
	if len(namespace)+len(name) > avail {
		nsMax := min(len(namespace), 8)
		namespace = shorten(namespace, nsMax)
		name = shorten(name, avail-len(namespace))
	}
	return ModelLabelDomain + "/" + namespace + ".basemodel." + name
}

// ModelEntryKey is the data key of a model's entry in a per-node ConfigMap,
// OME's: clusterbasemodel.<name> or <namespace>.basemodel.<name>.
func ModelEntryKey(kind, namespace, name string) string {
	if kind == v1.KindClusterBaseModel {
		return "clusterbasemodel." + name
	}
	return namespace + ".basemodel." + name
}

// EngineName is the name of an InferenceService's engine Deployment and Service. A
// Service name is a DNS label of at most 63 characters that starts with a letter, so a
// long name keeps its head and ends with a hash of the whole.
func EngineName(isvc string) string {
	max := 63 - len(EngineSuffix)
	if len(isvc) <= max {
		return isvc + EngineSuffix
	}
	sum := sha256.Sum256([]byte(isvc))
	return strings.TrimRight(isvc[:max-9], "-.") + "-" + hex.EncodeToString(sum[:])[:8] + EngineSuffix
}

// AgentLease is the name of node's agent Lease.
func AgentLease(node string) string { return shorten(AgentLeasePrefix+node, 253) }

// shorten keeps s when it fits in max bytes, else returns an 8-hex sha256
// prefix of s, a dash, and the tail of s that fits.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:8]
	if max <= len(h)+1 {
		return h[:max]
	}
	return h + "-" + s[len(s)-(max-len(h)-1):]
}

// EventNote cuts an event's message to the 1 kB the API server takes (events.k8s.io/v1
// refuses a longer note, and the event is lost), at a rune boundary, with an ellipsis; the
// object's status keeps the whole message.
func EventNote(s string) string {
	const max = 1024
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
