package v1

// GPUList is the host's GPUs as the serving controller sees them (GET /api/v1/gpus).
type GPUList struct {
	// Source is where the inventory comes from: "nvidia-smi", or the simulated profiles
	// given to serve --gpus (e.g. "2xrtx-4070-ti-super").
	Source string `json:"source,omitempty"`
	// Error is the last inventory failure, when the inventory could not be read.
	Error string `json:"error,omitempty"`
	Items []GPU  `json:"items"`
}

// GPU is one GPU: what it is, how much memory it has, and who holds it.
type GPU struct {
	Index       int    `json:"index"`
	UUID        string `json:"uuid,omitempty"`
	Name        string `json:"name,omitempty"`
	Profile     string `json:"profile,omitempty"` // the performance profile planned with (e.g. rtx-4070-ti-super)
	MemoryTotal int64  `json:"memoryTotal"`       // bytes; 0 when the driver does not say ([N/A])
	// MemoryUsed is memory held by processes Citadel did not start (read when serve first looked).
	MemoryUsed int64 `json:"memoryUsed"`
	// Planned is memory Citadel's engines hold or reserve on this GPU, by the planner's arithmetic.
	Planned int64  `json:"planned,omitempty"`
	MIG     string `json:"mig,omitempty"` // "Enabled" when MIG mode is on
	// Note says what is unknown about the GPU or why it is not used for placement.
	Note    string      `json:"note,omitempty"`
	Holders []GPUHolder `json:"holders,omitempty"`
}

// GPUHolder is one engine replica on a GPU.
type GPUHolder struct {
	Service string `json:"service"` // namespace/name of the InferenceService
	Replica int    `json:"replica"`
	Engine  string `json:"engine,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`  // the planner's reservation (an exclusive engine) or need (a shared model)
	Shared  bool   `json:"shared,omitempty"` // a model of a shared multi-model server (Ollama)
}

// FitResult says whether an InferenceService would be placed now beside the running services
// (POST /api/v1/fit), without applying it or moving anything.
type FitResult struct {
	// Checked is false when the service cannot be planned yet (its model is not Ready, no
	// runtime fits, …): Reason and Message say why.
	Checked bool   `json:"checked"`
	Fits    bool   `json:"fits"`
	Reason  string `json:"reason,omitempty"` // Unschedulable, or why it was not checked
	Message string `json:"message,omitempty"`
	// Placement is the planner's arithmetic: the engine settings it used, where the service
	// would go, or why it does not fit and the edits that would make it fit.
	Placement []string `json:"placement,omitempty"`
}
