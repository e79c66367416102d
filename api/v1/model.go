package v1

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// ClusterBaseModel is a cluster-scoped model (OME ome.io/v1beta1).
type ClusterBaseModel struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       BaseModelSpec `json:"spec"`
	Status     ModelStatus   `json:"status,omitzero"`
}

// BaseModel is a namespaced model (OME ome.io/v1beta1).
type BaseModel struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       BaseModelSpec `json:"spec"`
	Status     ModelStatus   `json:"status,omitzero"`
}

// BaseModelSpec is OME's model spec, field for field. Fields describing the
// model (format, framework, architecture, size, capabilities) may be left
// empty: the model agent fills the empty ones from the downloaded files and
// never overwrites what the user wrote.
type BaseModelSpec struct {
	// ModelFormat is the weights format (safetensors, gguf); filled from the files when
	// empty. Runtimes are selected by it.
	ModelFormat ModelFormat `json:"modelFormat,omitzero"`
	// ModelType is the architecture family, config.json's model_type (llama, qwen2);
	// filled from the files when empty.
	ModelType *string `json:"modelType,omitempty"`
	// ModelFramework is the framework the checkpoint was written for (transformers);
	// filled from the files when empty.
	ModelFramework *ModelFrameworkSpec `json:"modelFramework,omitempty"`
	// ModelArchitecture is config.json's architecture (Qwen2ForCausalLM), which runtimes'
	// supportedModelFormats match; filled from the files when empty.
	ModelArchitecture *string `json:"modelArchitecture,omitempty"`
	// Quantization is the weights' quantization (fp8, awq, q4_k_m); filled from the files
	// when empty. A value Citadel does not know is a warning, not an error.
	Quantization *string `json:"quantization,omitempty"`
	// ModelParameterSize is the parameter count, which runtimes' modelSizeRange bounds
	// and the planner sizes memory by; filled from the files when empty.
	ModelParameterSize *ParameterSize `json:"modelParameterSize,omitempty"`
	// ModelCapabilities are what the model does, in OME's words (TEXT_GENERATION,
	// IMAGE_TEXT_TO_TEXT, EMBEDDING); filled from the files when empty.
	ModelCapabilities []string `json:"modelCapabilities,omitempty"`
	// APICapabilities are the OpenAI endpoints it serves (OPENAI_V1_CHAT_COMPLETIONS, …).
	APICapabilities []string `json:"apiCapabilities,omitempty"`
	// ModelConfiguration is OME's copy of config.json; kept as written.
	ModelConfiguration json.RawMessage `json:"modelConfiguration,omitempty"`
	// Storage says where the model comes from and where it is kept.
	Storage *StorageSpec `json:"storage,omitempty"`
	// DisplayName is a name for people; Citadel names the model by metadata.name.
	DisplayName string `json:"displayName,omitempty"`
	// Version is the model's own version, for people.
	Version string `json:"version,omitempty"`
	// Disabled models are not downloaded and not served; services that use one wait
	// (reason ModelDisabled).
	Disabled *bool `json:"disabled,omitempty"`
	// Vendor is who made the model, for people.
	Vendor *string `json:"vendor,omitempty"`
	// CompartmentID is OME's (Oracle Cloud) compartment; kept as written.
	CompartmentID *string `json:"compartmentID,omitempty"`
	// ServingMode is OME's list of serving modes (On-demand, Dedicated). On-demand (without
	// Dedicated) makes the services of the model on-demand: loaded when asked for, evicted
	// when idle or when another model needs the memory (docs/resources.md, "On-demand models").
	ServingMode []string `json:"servingMode,omitempty"`
	// MaxTokens is the model's context length in tokens; filled from the files when
	// empty.
	MaxTokens *int32 `json:"maxTokens,omitempty"`
	// DiffusionPipeline is OME's description of a diffusion model; kept as written.
	DiffusionPipeline json.RawMessage `json:"diffusionPipeline,omitempty"`
	// AdditionalMetadata is free-form string metadata, kept as written.
	AdditionalMetadata map[string]string `json:"additionalMetadata,omitempty"`
}

// ModelFormat is a weights format with an optional version and comparison.
type ModelFormat struct {
	// Name is the format: safetensors, gguf, pytorch, onnx, …
	Name string `json:"name"`
	// Version is the format's version, compared by Operator when a runtime asks for one.
	Version *string `json:"version,omitempty"`
	// Operator compares Version in a runtime's supportedModelFormats; default Equal.
	Operator *string `json:"operator,omitempty"`
	// Weight adds to a runtime's score in automatic selection.
	Weight int64 `json:"weight,omitempty"`
}

// ModelFrameworkSpec is the framework a model was written for (transformers).
type ModelFrameworkSpec struct {
	// Name is the framework: transformers, …
	Name string `json:"name"`
	// Version is the framework's version ("4.41.2"), compared by Operator.
	Version *string `json:"version,omitempty"`
	// Operator compares Version in a runtime's supportedModelFormats; default Equal.
	Operator *string `json:"operator,omitempty"`
	// Weight adds to a runtime's score in automatic selection.
	Weight int64 `json:"weight,omitempty"`
}

// StorageSpec says where a model comes from and where it lives.
type StorageSpec struct {
	// StorageURI is hf://org/repo[@revision], ollama://name[:tag],
	// file:///abs/dir or local:///abs/dir.
	StorageURI *string `json:"storageUri,omitempty"`
	// Path is the absolute directory the model is placed in.
	Path *string `json:"path,omitempty"`
	// SchemaPath is OME's path of a model schema inside the storage; kept as written.
	SchemaPath *string `json:"schemaPath,omitempty"`
	// Parameters are the source's options: secretKey (the key of the token in the
	// secret StorageKey names; default "token"). A token written here works but is
	// warned about: use a secret.
	Parameters *map[string]string `json:"parameters,omitempty"`
	// StorageKey names the Secret holding the access token (as in OME, the
	// secret's name, not a key in it). The key inside the secret is
	// "token" unless parameters.secretKey says otherwise.
	StorageKey *string `json:"key,omitempty"`
	// NodeSelector picks the nodes that keep a copy (OME); on one host, kept as written.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// NodeAffinity is OME's node affinity; on one host, kept as written.
	NodeAffinity json.RawMessage `json:"nodeAffinity,omitempty"`
	// DownloadPolicy is OME's download policy, checked and kept as written; Citadel does
	// not act on it.
	DownloadPolicy *string `json:"downloadPolicy,omitempty"`
}

// AnnotationFilledFromFiles lists the spec fields the model agent filled
// from the model's files (comma-separated). Apply keeps those fields when a
// re-applied file leaves them empty, so applying the same file twice
// changes nothing.
const AnnotationFilledFromFiles = "citadel.dev/filled-from-files"

// Model phases.
const (
	ModelPending     = "Pending"
	ModelDownloading = "Downloading"
	ModelVerifying   = "Verifying"
	ModelReady       = "Ready"
	ModelFailed      = "Failed"
)

// ModelStatus is the observed state of a model: Citadel's phase,
// conditions and download progress, plus OME's state fields for tools that
// read them.
type ModelStatus struct {
	Status `json:",inline"`
	// BytesDone and BytesTotal are the download's progress over all nodes (one node on a
	// single host).
	BytesDone  int64 `json:"bytesDone,omitempty"`
	BytesTotal int64 `json:"bytesTotal,omitempty"`
	// BytesPerSecond is the current download speed.
	BytesPerSecond int64 `json:"bytesPerSecond,omitempty"`
	// FilesDone and FilesTotal count the model's files.
	FilesDone  int32 `json:"filesDone,omitempty"`
	FilesTotal int32 `json:"filesTotal,omitempty"`
	// LastProgressTime is when the last byte arrived: a stalled download is failed
	// after serve's --stall-timeout.
	LastProgressTime *Time `json:"lastProgressTime,omitempty"`
	// Revision is the commit the files come from (a Hugging Face repository's sha).
	Revision string `json:"revision,omitempty"`
	// Nodes is the per-node state.
	Nodes []NodeModelStatus `json:"nodes,omitempty"`
	// OME-compatible fields: state (Creating, Importing, In_Transit,
	// In_Training, Ready, Failed) and the node name lists.
	State       string   `json:"state,omitempty"`
	Lifecycle   string   `json:"lifecycle,omitempty"`
	NodesReady  []string `json:"nodesReady,omitempty"`
	NodesFailed []string `json:"nodesFailed,omitempty"`
	// LastFailure is the facts behind the message of the last failed download, for readers
	// that must not parse the message (citadel test, citadel describe). Default is none: set
	// when a download fails, kept while the agent retries (the phase moves on, the failure
	// is still the last), cleared when the model is Ready or its spec changes.
	LastFailure *DownloadFailure `json:"lastFailure,omitempty"`
}

// DownloadFailure is what the model agent knew when a download (or the lookup of its
// secret) failed: facts the status message also states in words. Each field is set only
// when known; a reader that finds one empty may still find it in the message.
type DownloadFailure struct {
	// Reason is the failure's reason code, as in the status's reason (a v1.Reason*
	// constant); the status's reason may be another (ModelFilesMissing) around it.
	Reason string `json:"reason"`
	// File is the repository path of the file that failed. Default is "" (the failure
	// concerns no one file).
	File string `json:"file,omitempty"`
	// Endpoint is the scheme://host of the hub, mirror or registry that answered. Default
	// is "" (not known, or no server answered).
	Endpoint string `json:"endpoint,omitempty"`
	// HTTPStatus is the HTTP status the endpoint answered with. Default is 0 (no answer,
	// or not an HTTP failure).
	HTTPStatus int32 `json:"httpStatus,omitempty"`
	// FileBytesReceived and FileBytesTotal are the bytes of File on disk and its size
	// when it failed (a stall, a truncated body). Default is 0 (not known).
	FileBytesReceived int64 `json:"fileBytesReceived,omitempty"`
	FileBytesTotal    int64 `json:"fileBytesTotal,omitempty"`
	// IdleSeconds is how long File had received no byte when it was failed for it.
	// Default is 0 (not a stall).
	IdleSeconds int64 `json:"idleSeconds,omitempty"`
	// Attempt counts the automatic attempts that failed in a row, this one included.
	// Default is 0 (not retried automatically).
	Attempt int32 `json:"attempt,omitempty"`
	// AcceptURL is the page whose conditions the token's account must accept (a gated
	// repository). Default is "".
	AcceptURL string `json:"acceptUrl,omitempty"`
	// Secret is the secret the token was to come from, when it is missing or lacks the
	// key. Default is none.
	Secret *FailureSecret `json:"secret,omitempty"`
	// BytesNeeded and BytesFree are the room the download needed and what was free in
	// Directory, when there was not enough. Default is 0 (not a space failure).
	BytesNeeded int64 `json:"bytesNeeded,omitempty"`
	BytesFree   int64 `json:"bytesFree,omitempty"`
	// Directory is the directory the space check or the write concerned. Default is "".
	Directory string `json:"directory,omitempty"`
}

// FailureSecret is the secret named by spec.storage.key, as the agent looked it up.
type FailureSecret struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Key is the key the token was read from (spec.storage.parameters.secretKey, "token"
	// by default).
	Key string `json:"key"`
	// Found says the secret exists; Keys are the keys it has then (their values are
	// never copied). Default is false: the secret does not exist.
	Found bool     `json:"found,omitempty"`
	Keys  []string `json:"keys,omitempty"`
}

// NodeModelStatus is one node's copy of a model.
type NodeModelStatus struct {
	Node    string `json:"node"`
	Phase   string `json:"phase"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Path is where the model's files are on this node: storage.path, else the snapshot
	// directory in the HF cache; for an Ollama model, its GGUF weights blob.
	Path string `json:"path,omitempty"`
	// Store is the model store the files belong to: the HF cache root (HF_HUB_CACHE) or the
	// Ollama models directory (OLLAMA_MODELS) an engine must be pointed at.
	Store string `json:"store,omitempty"`
	// OllamaName is the name an Ollama server knows the model by, with its tag
	// (deepcoder:14b; registry.ollama.ai/library/ is left out as Ollama does).
	OllamaName       string `json:"ollamaName,omitempty"`
	BytesDone        int64  `json:"bytesDone,omitempty"`
	BytesTotal       int64  `json:"bytesTotal,omitempty"`
	BytesPerSecond   int64  `json:"bytesPerSecond,omitempty"`
	LastProgressTime *Time  `json:"lastProgressTime,omitempty"`
	// LastFailure is this node's ModelStatus.LastFailure. Default is none.
	LastFailure *DownloadFailure `json:"lastFailure,omitempty"`
}

// Model capabilities Citadel knows: the values of OME's Go constants, plus
// those OME's own shipped model files use (IMAGE_TO_TEXT, TEXT_TO_EMBEDDING,
// VIDEO_TEXT_TO_TEXT, REWARD_SCORING, IMAGE_TEXT_TO_EMBEDDING,
// AUDIO_TEXT_TO_TEXT). OME's CRD takes any string, so another value is a
// warning at apply, not an error.
var modelCapabilities = []string{
	"TEXT_GENERATION", "TEXT_SUMMARIZATION", "TEXT_EMBEDDINGS", "TEXT_RERANK", "CHAT", "VISION",
	"EMBEDDING", "RERANK", "TEXT_TO_TEXT", "TEXT_TO_AUDIO", "TEXT_TO_IMAGE", "TEXT_TO_VIDEO",
	"IMAGE_TEXT_TO_TEXT", "IMAGE_TEXT_TO_AUDIO", "IMAGE_TEXT_TO_IMAGE", "IMAGE_TEXT_TO_VIDEO",
	"VIDEO_TEXT_TO_AUDIO", "AUDIO_TO_TEXT", "AUDIO_TO_AUDIO", "AUDIO_TRANSLATION", "IMAGE_TO_TEXT",
	"TEXT_TO_EMBEDDING", "VIDEO_TEXT_TO_TEXT", "REWARD_SCORING", "IMAGE_TEXT_TO_EMBEDDING", "AUDIO_TEXT_TO_TEXT",
}

var apiCapabilities = []string{
	"OPENAI_V1_CHAT_COMPLETIONS", "OPENAI_V1_RESPONSES", "OPENAI_V1_EMBEDDINGS", "OPENAI_V1_IMAGES_GENERATIONS",
	"OPENAI_V1_IMAGES_EDITS", "OPENAI_V1_AUDIO_SPEECH", "OPENAI_V1_AUDIO_TRANSCRIPTIONS",
	"OPENAI_V1_AUDIO_TRANSLATIONS", "OPENAI_V1_REALTIME",
}

// Quantizations Citadel knows: OME's (fp8, fbgemm_fp8, int4), the common
// HF methods (quantization_config.quant_method) and GGUF file types.
// OME's CRD takes any string: another value is a warning at apply.
var quantizations = []string{
	"fp8", "fbgemm_fp8", "int4", "int8", "awq", "gptq", "bitsandbytes", "compressed-tensors", "mxfp4",
	"nvfp4", "w8a8", "w4a16", "awq_marlin", "gptq_marlin", "modelopt", "hqq", "experts_int8",
	"q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_0", "q4_1", "q4_k_m", "q4_k_s", "q5_0", "q5_1", "q5_k_m", "q5_k_s",
	"q6_k", "q8_0", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq3_s", "iq4_nl", "iq4_xs", "f16", "bf16", "f32",
}

// KnownQuantization reports whether q is a quantization Citadel knows, in
// any case (Q4_K_M is q4_k_m).
func KnownQuantization(q string) bool {
	for _, k := range quantizations {
		if strings.EqualFold(q, k) {
			return true
		}
	}
	return false
}

// Format operators.
var formatOperators = []string{"Equal", "GreaterThan", "GreaterThanOrEqual"}

// Default fills the model's defaults.
func (m *ClusterBaseModel) Default() {
	m.APIVersion, m.Kind = OMEGroupVersion, KindClusterBaseModel
	m.Spec.defaults()
}

// Default fills the model's defaults.
func (m *BaseModel) Default() {
	m.APIVersion, m.Kind = OMEGroupVersion, KindBaseModel
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	m.Spec.defaults()
}

func (s *BaseModelSpec) defaults() {
	if s.ModelFormat.Name != "" && s.ModelFormat.Weight == 0 {
		s.ModelFormat.Weight = 1
	}
	if f := s.ModelFramework; f != nil && f.Weight == 0 {
		f.Weight = 1
	}
	if st := s.Storage; st != nil && st.DownloadPolicy == nil {
		p := "AlwaysDownload"
		st.DownloadPolicy = &p
	}
}

// Validate checks the model on its own.
func (m *ClusterBaseModel) Validate() FieldErrors {
	errs := validateMeta(&m.ObjectMeta, false)
	errs.Prefixed("spec", m.Spec.validate())
	return errs
}

// Validate checks the model on its own.
func (m *BaseModel) Validate() FieldErrors {
	errs := validateMeta(&m.ObjectMeta, true)
	errs.Prefixed("spec", m.Spec.validate())
	return errs
}

// References returns the token secret, if any.
func (m *ClusterBaseModel) References() []Reference {
	return m.Spec.secretRefs(ClusterSecretNamespace)
}

// References returns the token secret, if any.
func (m *BaseModel) References() []Reference { return m.Spec.secretRefs(m.Namespace) }

// ClusterSecretNamespace is where secrets named by cluster-scoped objects
// live, as in OME, whose model agent reads them from namespace "ome".
const ClusterSecretNamespace = "ome"

func (s *BaseModelSpec) secretRefs(ns string) []Reference {
	if s.Storage == nil || s.Storage.StorageKey == nil || *s.Storage.StorageKey == "" {
		return nil
	}
	return []Reference{{Path: "spec.storage.key", Kinds: []string{KindSecret}, Namespace: ns, Name: *s.Storage.StorageKey, Soft: true}}
}

// SecretKey is the key inside the token secret: parameters.secretKey or "token".
func (s *StorageSpec) SecretKey() string {
	if s.Parameters != nil {
		if k := (*s.Parameters)["secretKey"]; k != "" {
			return k
		}
	}
	return "token"
}

func (s *BaseModelSpec) validate() FieldErrors {
	var errs FieldErrors
	if s.Storage == nil {
		errs.Add("storage", "is required", "say where the model comes from, e.g. storage: {storageUri: hf://org/repo}")
	} else {
		errs.Prefixed("storage", s.Storage.validate())
	}
	if s.ModelFormat.Name == "" && (s.ModelFormat.Version != nil || s.ModelFormat.Operator != nil) {
		errs.Add("modelFormat.name", "is required when modelFormat is set", "e.g. modelFormat: {name: safetensors}")
	}
	if s.ModelFormat.Operator != nil {
		oneOf(&errs, "modelFormat.operator", *s.ModelFormat.Operator, formatOperators...)
	}
	if f := s.ModelFramework; f != nil {
		if f.Name == "" {
			errs.Add("modelFramework.name", "is required", "e.g. modelFramework: {name: transformers, version: \"4.41.2\"}")
		}
		if f.Operator != nil {
			oneOf(&errs, "modelFramework.operator", *f.Operator, formatOperators...)
		}
	}
	if s.ModelParameterSize != nil {
		if _, err := s.ModelParameterSize.Count(); err != nil {
			errs.Add("modelParameterSize", err.Error(), "")
		}
	}
	for i, c := range s.ModelCapabilities {
		knownValue(&errs, fmt.Sprintf("modelCapabilities[%d]", i), "capability", c, false, modelCapabilities...)
	}
	for i, c := range s.APICapabilities {
		knownValue(&errs, fmt.Sprintf("apiCapabilities[%d]", i), "API capability", c, false, apiCapabilities...)
	}
	if s.Quantization != nil {
		knownValue(&errs, "quantization", "quantization", *s.Quantization, true, quantizations...)
	}
	for i, m := range s.ServingMode {
		knownValue(&errs, fmt.Sprintf("servingMode[%d]", i), "serving mode", m, false, "On-demand", "Dedicated")
	}
	if s.MaxTokens != nil && *s.MaxTokens <= 0 {
		errs.Add("maxTokens", fmt.Sprintf("must be positive, got %d", *s.MaxTokens), "")
	}
	if len(s.ModelConfiguration) > 0 && s.ModelConfiguration[0] != '{' && string(s.ModelConfiguration) != "null" {
		errs.Add("modelConfiguration", "must be a mapping", "write it as key: value pairs")
	}
	return errs
}

func (s *StorageSpec) validate() FieldErrors {
	var errs FieldErrors
	if s.StorageURI == nil || *s.StorageURI == "" {
		errs.Add("storageUri", "is required", "e.g. storageUri: hf://XiaomiMiMo/MiMo-VL-7B-RL or ollama://qwen2.5:7b")
	} else if _, err := ParseStorageURI(*s.StorageURI); err != nil {
		errs.Add("storageUri", err.Error(), "")
	}
	if s.Path != nil && *s.Path != "" && !path.IsAbs(*s.Path) {
		errs.Add("path", fmt.Sprintf("%q is not an absolute path", *s.Path), "write the full directory, e.g. /raid/models/org/name")
	}
	if s.DownloadPolicy != nil {
		oneOf(&errs, "downloadPolicy", *s.DownloadPolicy, "AlwaysDownload", "ReuseIfExists")
	}
	if s.StorageKey != nil && *s.StorageKey != "" {
		if msg := checkDNSName(*s.StorageKey, 253); msg != "" {
			errs.Add("key", fmt.Sprintf("invalid secret name %q: %s", *s.StorageKey, msg), "key names a Secret (not a token): e.g. key: hf-token")
		}
	}
	if s.Parameters != nil {
		if t := (*s.Parameters)["token"]; t != "" {
			errs = append(errs, FieldError{Path: "parameters.token", Message: "holds a plaintext token in the resource", Fix: "move it into a Secret (citadel secret create NAME --from-literal token=...) and name it in storage.key", Warning: true})
		}
	}
	return errs
}

// StorageURI is a parsed storage.storageUri.
type StorageURI struct {
	Scheme string // hf, ollama, file
	// hf: Repo is org/name, Revision defaults to "main".
	Repo     string
	Revision string
	// ollama: Registry (empty = default), Name is namespace/model, Tag defaults to "latest".
	Registry string
	Name     string
	Tag      string
	// file and local: Path is absolute.
	Path string
}

// Schemes OME defines that Citadel does not download from (yet).
var unsupportedSchemes = map[string]string{
	"pvc":    "PersistentVolumeClaims exist only on Kubernetes",
	"oci":    "OCI Object Storage downloads are not implemented",
	"ocios":  "OCI Object Storage downloads are not implemented",
	"s3":     "S3 downloads are not implemented",
	"gs":     "Google Cloud Storage downloads are not implemented",
	"az":     "Azure Blob downloads are not implemented",
	"github": "GitHub release downloads are not implemented",
	"vendor": "vendor:// models are provided by a vendor integration Citadel does not have",
	"http":   "plain URLs are not model repositories",
	"https":  "plain URLs are not model repositories",
}

// ParseStorageURI parses and checks a storage URI.
func ParseStorageURI(s string) (StorageURI, error) {
	const supported = "hf://org/repo[@revision], ollama://name[:tag], file:///abs/dir or local:///abs/dir"
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return StorageURI{}, fmt.Errorf("%q has no scheme: use %s", s, supported)
	}
	switch scheme {
	case "hf":
		repo, rev, hasRev := strings.Cut(rest, "@")
		if hasRev && rev == "" {
			return StorageURI{}, fmt.Errorf("%q has an empty revision after '@': name a branch, tag or commit, or drop the '@'", s)
		}
		if rev == "" {
			rev = "main"
		}
		parts := strings.Split(repo, "/")
		if repo == "" || len(parts) > 2 {
			return StorageURI{}, fmt.Errorf("%q is not a Hugging Face repository: write hf://org/name, e.g. hf://XiaomiMiMo/MiMo-VL-7B-RL", s)
		}
		for _, p := range parts {
			if msg := checkRepoPart(p); msg != "" {
				return StorageURI{}, fmt.Errorf("%q: repository name %q %s", s, p, msg)
			}
		}
		if strings.ContainsAny(rev, " \t") {
			return StorageURI{}, fmt.Errorf("%q: revision %q contains spaces", s, rev)
		}
		return StorageURI{Scheme: "hf", Repo: repo, Revision: rev}, nil
	case "ollama":
		u := StorageURI{Scheme: "ollama", Tag: "latest"}
		name := rest
		if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
			u.Tag = name[i+1:]
			name = name[:i]
			if u.Tag == "" {
				return StorageURI{}, fmt.Errorf("%q has an empty tag after ':': e.g. ollama://qwen2.5:7b", s)
			}
		}
		parts := strings.Split(name, "/")
		if len(parts) == 3 || (len(parts) == 2 && strings.ContainsAny(parts[0], ".:")) {
			u.Registry, parts = parts[0], parts[1:]
		}
		if name == "" || len(parts) > 2 {
			return StorageURI{}, fmt.Errorf("%q is not an Ollama model: write ollama://name[:tag] or ollama://namespace/name:tag", s)
		}
		for _, p := range parts {
			if msg := checkRepoPart(p); msg != "" {
				return StorageURI{}, fmt.Errorf("%q: name %q %s", s, p, msg)
			}
		}
		if len(parts) == 1 {
			parts = []string{"library", parts[0]}
		}
		u.Name = strings.Join(parts, "/")
		return u, nil
	case "file", "local":
		p := rest
		if !path.IsAbs(p) {
			return StorageURI{}, fmt.Errorf("%q: the path %q is not absolute: write %s:///abs/dir (three slashes)", s, p, scheme)
		}
		return StorageURI{Scheme: scheme, Path: path.Clean(p)}, nil
	}
	if why, ok := unsupportedSchemes[scheme]; ok && why != "" {
		return StorageURI{}, fmt.Errorf("scheme %q is not supported by Citadel yet (%s): use %s", scheme, why, supported)
	}
	return StorageURI{}, fmt.Errorf("unsupported scheme %q: use %s", scheme, supported)
}

func checkRepoPart(p string) string {
	if p == "" {
		return "is empty"
	}
	if len(p) > 96 {
		return "is longer than 96 characters"
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Sprintf("contains %q, which is not allowed", c)
		}
	}
	if p == "." || p == ".." || strings.Contains(p, "..") {
		return "must not contain '..'"
	}
	return ""
}
