package kube

import (
	"encoding/json"
	"fmt"

	v1 "citadel.dev/citadel/api/v1"
)

// OME's values of a node's model label and of a ConfigMap entry's status.
const (
	EntryReady    = "Ready"
	EntryUpdating = "Updating"
	EntryFailed   = "Failed"
	EntryDeleted  = "Deleted"
)

// NodeEntry is one model's entry in a node's ConfigMap (data key
// ModelEntryKey). Its first fields are OME's ModelEntry (name, status,
// progress), so OME's tools that read the ConfigMaps still work; Citadel's
// whole per-node status is under "citadel". The agent on the node writes it;
// the controller reads every node's entry into the model's status.
type NodeEntry struct {
	// Name is the model's name.
	Name string `json:"name"`
	// Status is Ready, Updating, Failed or Deleted (OME's values).
	Status string `json:"status"`
	// Progress is OME's DownloadProgress, while the model downloads.
	Progress *EntryProgress `json:"progress,omitempty"`
	// Config is what the node read from the model's files for the spec fields the model
	// left empty (the single-host agent's filled fields: modelFormat, modelArchitecture,
	// modelParameterSize, …), as a JSON object of spec fields. OME's entry has the same
	// key; the controller fills the model's empty spec fields from a Ready node's.
	Config json.RawMessage `json:"config,omitempty"`
	// UID and Generation are those of the model the entry describes: an entry
	// of an older object of the same name is not this object's.
	UID        string `json:"uid,omitempty"`
	Generation int64  `json:"generation,omitempty"`
	// Citadel is the node's status of the model, as on one host.
	Citadel v1.NodeModelStatus `json:"citadel"`
}

// EntryProgress is OME's DownloadProgress.
type EntryProgress struct {
	Phase            string `json:"phase"` // Scanning, Downloading, Finalizing
	TotalBytes       int64  `json:"totalBytes"`
	CompletedBytes   int64  `json:"completedBytes"`
	TotalFiles       int32  `json:"totalFiles"`
	CompletedFiles   int32  `json:"completedFiles"`
	SpeedBytesPerSec int64  `json:"speedBytesPerSec"`
	LastUpdated      string `json:"lastUpdated,omitempty"`
}

// EntryStatus maps a model phase on a node to OME's label and entry value.
func EntryStatus(phase string) string {
	switch phase {
	case "Ready":
		return EntryReady
	case "Failed":
		return EntryFailed
	default:
		return EntryUpdating
	}
}

// ParseEntry reads an entry; the error names the node and key.
func ParseEntry(node, key, data string) (NodeEntry, error) {
	var e NodeEntry
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return NodeEntry{}, fmt.Errorf("ConfigMap %s, key %s: %w", node, key, err)
	}
	if e.Citadel.Node == "" {
		e.Citadel.Node = node
	}
	if e.Citadel.Phase == "" { // written by OME's agent: only its status is known
		switch e.Status {
		case EntryReady:
			e.Citadel.Phase = "Ready"
		case EntryFailed:
			e.Citadel.Phase = "Failed"
		default:
			e.Citadel.Phase = "Downloading"
		}
	}
	return e, nil
}
