package v1

import (
	"encoding/json"
	"fmt"
)

// The Kubernetes pod and container fields OME embeds in runtimes and
// services. On one host Citadel interprets command, args, env, ports, probes
// and resources; it records the rest (image, volumes, tolerations, affinity,
// security settings) so that the same files run unchanged on Kubernetes.
// Fields Citadel never interprets are kept as raw JSON.

// PodSpec is the subset of corev1.PodSpec that OME's resources use.
type PodSpec struct {
	Volumes                       []Volume              `json:"volumes,omitempty"`
	InitContainers                []Container           `json:"initContainers,omitempty"`
	Containers                    []Container           `json:"containers,omitempty"`
	NodeSelector                  map[string]string     `json:"nodeSelector,omitempty"`
	Affinity                      json.RawMessage       `json:"affinity,omitempty"`
	Tolerations                   []Toleration          `json:"tolerations,omitempty"`
	ServiceAccountName            string                `json:"serviceAccountName,omitempty"`
	SchedulerName                 string                `json:"schedulerName,omitempty"`
	PriorityClassName             string                `json:"priorityClassName,omitempty"`
	RuntimeClassName              *string               `json:"runtimeClassName,omitempty"`
	HostIPC                       bool                  `json:"hostIPC,omitempty"`
	HostNetwork                   bool                  `json:"hostNetwork,omitempty"`
	HostPID                       bool                  `json:"hostPID,omitempty"`
	DNSPolicy                     string                `json:"dnsPolicy,omitempty"`
	ImagePullSecrets              []LocalObjectRef      `json:"imagePullSecrets,omitempty"`
	SecurityContext               json.RawMessage       `json:"securityContext,omitempty"`
	TerminationGracePeriodSeconds *int64                `json:"terminationGracePeriodSeconds,omitempty"`
	TopologySpreadConstraints     json.RawMessage       `json:"topologySpreadConstraints,omitempty"`
	ShareProcessNamespace         *bool                 `json:"shareProcessNamespace,omitempty"`
	EnableServiceLinks            *bool                 `json:"enableServiceLinks,omitempty"`
	Overhead                      map[string]Quantity   `json:"overhead,omitempty"`
	HostAliases                   json.RawMessage       `json:"hostAliases,omitempty"`
	ReadinessGates                json.RawMessage       `json:"readinessGates,omitempty"`
	DNSConfig                     json.RawMessage       `json:"dnsConfig,omitempty"`
	NodeName                      string                `json:"nodeName,omitempty"`
	RestartPolicy                 string                `json:"restartPolicy,omitempty"`
	ResourceClaims                json.RawMessage       `json:"resourceClaims,omitempty"`
	Subdomain                     string                `json:"subdomain,omitempty"`
	Hostname                      string                `json:"hostname,omitempty"`
	AutomountServiceAccountToken  *bool                 `json:"automountServiceAccountToken,omitempty"`
	PreemptionPolicy              *string               `json:"preemptionPolicy,omitempty"`
	Priority                      *int32                `json:"priority,omitempty"`
	OS                            json.RawMessage       `json:"os,omitempty"`
	EphemeralContainers           json.RawMessage       `json:"ephemeralContainers,omitempty"`
	SchedulingGates               json.RawMessage       `json:"schedulingGates,omitempty"`
	Resources                     *ResourceRequirements `json:"resources,omitempty"`
}

// LocalObjectRef names an object in the same namespace.
type LocalObjectRef struct {
	Name string `json:"name"`
}

// Container is corev1.Container: what OME calls a runner.
type Container struct {
	Name                     string                `json:"name,omitempty"`
	Image                    string                `json:"image,omitempty"`
	ImagePullPolicy          string                `json:"imagePullPolicy,omitempty"`
	Command                  []string              `json:"command,omitempty"`
	Args                     []string              `json:"args,omitempty"`
	WorkingDir               string                `json:"workingDir,omitempty"`
	Ports                    []ContainerPort       `json:"ports,omitempty"`
	Env                      []EnvVar              `json:"env,omitempty"`
	EnvFrom                  json.RawMessage       `json:"envFrom,omitempty"`
	Resources                *ResourceRequirements `json:"resources,omitempty"`
	VolumeMounts             []VolumeMount         `json:"volumeMounts,omitempty"`
	LivenessProbe            *Probe                `json:"livenessProbe,omitempty"`
	ReadinessProbe           *Probe                `json:"readinessProbe,omitempty"`
	StartupProbe             *Probe                `json:"startupProbe,omitempty"`
	Lifecycle                json.RawMessage       `json:"lifecycle,omitempty"`
	SecurityContext          json.RawMessage       `json:"securityContext,omitempty"`
	TerminationMessagePath   string                `json:"terminationMessagePath,omitempty"`
	TerminationMessagePolicy string                `json:"terminationMessagePolicy,omitempty"`
	Stdin                    bool                  `json:"stdin,omitempty"`
	TTY                      bool                  `json:"tty,omitempty"`
	VolumeDevices            json.RawMessage       `json:"volumeDevices,omitempty"`
	RestartPolicy            *string               `json:"restartPolicy,omitempty"`
	ResizePolicy             json.RawMessage       `json:"resizePolicy,omitempty"`
}

// ContainerPort is a port the engine listens on.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	HostPort      int32  `json:"hostPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// EnvVar is an environment variable, literal or taken from elsewhere.
type EnvVar struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource says where a variable's value comes from. On one host,
// fieldRef metadata.namespace, metadata.name and metadata.labels['…'] are
// filled from the InferenceService; secretKeyRef from a Citadel Secret.
type EnvVarSource struct {
	FieldRef         *FieldSelector  `json:"fieldRef,omitempty"`
	SecretKeyRef     *KeySelector    `json:"secretKeyRef,omitempty"`
	ConfigMapKeyRef  *KeySelector    `json:"configMapKeyRef,omitempty"`
	ResourceFieldRef json.RawMessage `json:"resourceFieldRef,omitempty"`
}

// FieldSelector selects a field of the pod's object.
type FieldSelector struct {
	APIVersion string `json:"apiVersion,omitempty"`
	FieldPath  string `json:"fieldPath"`
}

// KeySelector selects a key of a Secret or ConfigMap.
type KeySelector struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// ResourceRequirements are requests and limits by resource name
// (cpu, memory, nvidia.com/gpu, …).
type ResourceRequirements struct {
	Requests map[string]Quantity `json:"requests,omitempty"`
	Limits   map[string]Quantity `json:"limits,omitempty"`
	Claims   json.RawMessage     `json:"claims,omitempty"`
}

// VolumeMount mounts a volume into a container.
type VolumeMount struct {
	Name             string `json:"name"`
	MountPath        string `json:"mountPath"`
	ReadOnly         bool   `json:"readOnly,omitempty"`
	SubPath          string `json:"subPath,omitempty"`
	SubPathExpr      string `json:"subPathExpr,omitempty"`
	MountPropagation string `json:"mountPropagation,omitempty"`
}

// Volume is a pod volume. The common sources are typed; the rest are kept raw.
type Volume struct {
	Name                  string          `json:"name"`
	EmptyDir              *EmptyDirVolume `json:"emptyDir,omitempty"`
	HostPath              *HostPathVolume `json:"hostPath,omitempty"`
	PersistentVolumeClaim *PVCVolume      `json:"persistentVolumeClaim,omitempty"`
	ConfigMap             json.RawMessage `json:"configMap,omitempty"`
	Secret                json.RawMessage `json:"secret,omitempty"`
	Projected             json.RawMessage `json:"projected,omitempty"`
	CSI                   json.RawMessage `json:"csi,omitempty"`
	NFS                   json.RawMessage `json:"nfs,omitempty"`
	Ephemeral             json.RawMessage `json:"ephemeral,omitempty"`
	DownwardAPI           json.RawMessage `json:"downwardAPI,omitempty"`
	Image                 json.RawMessage `json:"image,omitempty"`
}

// EmptyDirVolume is a scratch directory, in memory with medium: Memory.
type EmptyDirVolume struct {
	Medium    string    `json:"medium,omitempty"`
	SizeLimit *Quantity `json:"sizeLimit,omitempty"`
}

// HostPathVolume is a directory of the host.
type HostPathVolume struct {
	Path string  `json:"path"`
	Type *string `json:"type,omitempty"`
}

// PVCVolume mounts a PersistentVolumeClaim (Kubernetes only).
type PVCVolume struct {
	ClaimName string `json:"claimName"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Toleration is a Kubernetes toleration, recorded.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// Probe is a Kubernetes probe. Citadel runs httpGet, tcpSocket and exec
// probes against local engine processes with the same timing semantics.
type Probe struct {
	HTTPGet                       *HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket                     *TCPSocketAction `json:"tcpSocket,omitempty"`
	Exec                          *ExecAction      `json:"exec,omitempty"`
	GRPC                          json.RawMessage  `json:"grpc,omitempty"`
	InitialDelaySeconds           int32            `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds                int32            `json:"timeoutSeconds,omitempty"`
	PeriodSeconds                 int32            `json:"periodSeconds,omitempty"`
	SuccessThreshold              int32            `json:"successThreshold,omitempty"`
	FailureThreshold              int32            `json:"failureThreshold,omitempty"`
	TerminationGracePeriodSeconds *int64           `json:"terminationGracePeriodSeconds,omitempty"`
}

// HTTPGetAction probes an HTTP endpoint.
type HTTPGetAction struct {
	Path        string       `json:"path,omitempty"`
	Port        IntOrString  `json:"port"`
	Host        string       `json:"host,omitempty"`
	Scheme      string       `json:"scheme,omitempty"`
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is a header sent by an HTTP probe.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocketAction probes a TCP port.
type TCPSocketAction struct {
	Port IntOrString `json:"port"`
	Host string      `json:"host,omitempty"`
}

// ExecAction runs a command.
type ExecAction struct {
	Command []string `json:"command,omitempty"`
}

// Validate checks a container.
func (c *Container) Validate() FieldErrors {
	var errs FieldErrors
	ports := map[string]bool{}
	for i, p := range c.Ports {
		path := fmt.Sprintf("ports[%d]", i)
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			errs.Add(path+".containerPort", fmt.Sprintf("%d is not a valid port", p.ContainerPort), "use a port between 1 and 65535")
		}
		if p.Name != "" {
			ports[p.Name] = true
		}
		oneOf(&errs, path+".protocol", p.Protocol, "TCP", "UDP", "SCTP")
	}
	for i, e := range c.Env {
		if e.Name == "" {
			errs.Add(fmt.Sprintf("env[%d].name", i), "is required", "name the variable")
		}
		if e.Value != "" && e.ValueFrom != nil {
			errs.Add(fmt.Sprintf("env[%d]", i), "sets both value and valueFrom", "keep one of them")
		}
		if vf := e.ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.FieldPath == "" {
			errs.Add(fmt.Sprintf("env[%d].valueFrom.fieldRef.fieldPath", i), "is required", "e.g. metadata.namespace")
		}
	}
	if c.Resources != nil {
		errs.Prefixed("resources", c.Resources.Validate())
	}
	for i, m := range c.VolumeMounts {
		if m.Name == "" || m.MountPath == "" {
			errs.Add(fmt.Sprintf("volumeMounts[%d]", i), "needs both name and mountPath", "e.g. {name: dshm, mountPath: /dev/shm}")
		}
	}
	oneOf(&errs, "imagePullPolicy", c.ImagePullPolicy, "Always", "IfNotPresent", "Never")
	for name, p := range map[string]*Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
		if p != nil {
			errs.Prefixed(name, p.validate(ports))
		}
	}
	errs.Sort()
	return errs
}

// Validate checks the quantities.
func (r *ResourceRequirements) Validate() FieldErrors {
	var errs FieldErrors
	for _, set := range []struct {
		name string
		m    map[string]Quantity
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for k, q := range set.m {
			if _, err := q.Value(); err != nil {
				errs.Add(set.name+"."+k, err.Error(), "")
			}
		}
	}
	for k, req := range r.Requests {
		lim, ok := r.Limits[k]
		if !ok {
			continue
		}
		rv, err1 := req.Value()
		lv, err2 := lim.Value()
		if err1 == nil && err2 == nil && rv > lv {
			errs.Add("requests."+k, fmt.Sprintf("request %s is greater than limit %s", req, lim), "lower the request or raise the limit")
		}
	}
	errs.Sort()
	return errs
}

func (p *Probe) validate(namedPorts map[string]bool) FieldErrors {
	var errs FieldErrors
	handlers := 0
	if p.HTTPGet != nil {
		handlers++
		errs.Prefixed("httpGet", validatePort(p.HTTPGet.Port, namedPorts))
		oneOf(&errs, "httpGet.scheme", p.HTTPGet.Scheme, "HTTP", "HTTPS")
	}
	if p.TCPSocket != nil {
		handlers++
		errs.Prefixed("tcpSocket", validatePort(p.TCPSocket.Port, namedPorts))
	}
	if p.Exec != nil {
		handlers++
		if len(p.Exec.Command) == 0 {
			errs.Add("exec.command", "is empty", "give the command to run")
		}
	}
	if len(p.GRPC) > 0 {
		handlers++
	}
	if handlers != 1 {
		errs.Add("", fmt.Sprintf("has %d handlers", handlers), "set exactly one of httpGet, tcpSocket, exec or grpc")
	}
	for _, f := range []struct {
		name string
		v    int32
		min  int32
	}{{"initialDelaySeconds", p.InitialDelaySeconds, 0}, {"timeoutSeconds", p.TimeoutSeconds, 0}, {"periodSeconds", p.PeriodSeconds, 0}, {"successThreshold", p.SuccessThreshold, 0}, {"failureThreshold", p.FailureThreshold, 0}} {
		if f.v < f.min {
			errs.Add(f.name, fmt.Sprintf("must not be negative, got %d", f.v), "")
		}
	}
	return errs
}

func validatePort(p IntOrString, named map[string]bool) FieldErrors {
	var errs FieldErrors
	if p.IsString {
		if !named[p.Str] {
			errs.Add("port", fmt.Sprintf("names port %q, which the container does not declare", p.Str), "use a number or the name of one of the container's ports")
		}
	} else if p.Int < 1 || p.Int > 65535 {
		errs.Add("port", fmt.Sprintf("%d is not a valid port", p.Int), "use a port between 1 and 65535")
	}
	return errs
}
