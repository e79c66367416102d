package v1

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The admin API's wire types (citadel serve, default 127.0.0.1:8081).
//
//	POST   /api/v1/apply                       ApplyRequest → ApplyResponse
//	GET    /api/v1/{plural}[?namespace=&labelSelector=]    → List
//	GET    /api/v1/{plural}/{name}[?namespace=]            → object
//	DELETE /api/v1/{plural}/{name}[?namespace=&resourceVersion=] → object
//	PUT    /api/v1/{plural}/{name}/status[?namespace=]     object with status → object
//	GET    /api/v1/events[?kind=&namespace=&name=&limit=]  → EventList
//	GET    /api/v1/watch[?kind=&namespace=]    server-sent events: ADDED, MODIFIED, DELETED, ERROR
//	GET    /healthz, /version
//
// Errors are an ErrorResponse with the HTTP status.

// ApplyItem is one object to apply and where the client read it.
type ApplyItem struct {
	Source Source          `json:"source,omitzero"`
	Object json.RawMessage `json:"object"`
}

// Source says where an object was read from.
type Source struct {
	File     string `json:"file,omitempty"`
	Document int    `json:"document,omitempty"`
	Line     int    `json:"line,omitempty"`
}

// ApplyRequest applies objects atomically: all or nothing.
type ApplyRequest struct {
	Items  []ApplyItem `json:"items"`
	DryRun bool        `json:"dryRun,omitempty"`
}

// ApplyResult says what happened to one object.
type ApplyResult struct {
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name"`
	Action          string `json:"action"` // created, configured, unchanged
	Generation      int64  `json:"generation,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// ApplyResponse lists the results in request order, and warnings.
type ApplyResponse struct {
	DryRun   bool          `json:"dryRun,omitempty"`
	Results  []ApplyResult `json:"results"`
	Warnings []Problem     `json:"warnings,omitempty"`
}

// Problem is one problem in one document of an apply: where (file,
// document, line, field path) and what to do.
type Problem struct {
	File     string `json:"file,omitempty"`
	Document int    `json:"document,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Name     string `json:"name,omitempty"`
	Path     string `json:"path,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
	Warning  bool   `json:"warning,omitempty"`
}

// Error formats as "file:line:col: document N (Kind "name"): path: message (fix: …)".
func (e *Problem) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.Document > 0 {
		fmt.Fprintf(&b, "document %d", e.Document)
		if e.Kind != "" && e.Name != "" {
			fmt.Fprintf(&b, " (%s %q)", e.Kind, e.Name)
		} else if e.Kind != "" {
			fmt.Fprintf(&b, " (%s)", e.Kind)
		}
		b.WriteString(": ")
	} else if e.Kind != "" && e.Name != "" {
		fmt.Fprintf(&b, "%s %q: ", e.Kind, e.Name)
	}
	b.WriteString(FieldError{Path: e.Path, Message: e.Message, Fix: e.Fix}.Error())
	return b.String()
}

// ErrorResponse is every error the admin API returns.
type ErrorResponse struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"` // CamelCase: NotFound, Conflict, Invalid, Unauthorized, BadRequest, Internal
	Message string `json:"message"`
	// Problems lists every problem of an invalid apply.
	Problems []Problem `json:"problems,omitempty"`
}

// Error reasons.
const (
	ReasonNotFound     = "NotFound"
	ReasonConflict     = "Conflict"
	ReasonInvalid      = "Invalid"
	ReasonBadRequest   = "BadRequest"
	ReasonUnauthorized = "Unauthorized"
	ReasonInternal     = "Internal"
	ReasonUnavailable  = "Unavailable"
	// ReasonDeleteBlocked: a cleanup hook refused the delete; the object remains.
	ReasonDeleteBlocked = "DeleteBlocked"
)

// List is the answer of a list call.
type List struct {
	APIVersion      string            `json:"apiVersion"`
	Kind            string            `json:"kind"` // "List"
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Items           []json.RawMessage `json:"items"`
}

// Event is a Kubernetes-style event about an object.
type Event struct {
	Type           string `json:"type"` // Normal or Warning
	Reason         string `json:"reason"`
	Message        string `json:"message"`
	Kind           string `json:"kind"`
	Namespace      string `json:"namespace,omitempty"`
	Name           string `json:"name"`
	Count          int32  `json:"count"`
	FirstTimestamp *Time  `json:"firstTimestamp,omitempty"`
	LastTimestamp  *Time  `json:"lastTimestamp,omitempty"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// EventList is the answer of an events call, oldest first.
type EventList struct {
	Items []Event `json:"items"`
}

// WatchEvent is one change on the watch stream.
type WatchEvent struct {
	Type   string          `json:"type"` // ADDED, MODIFIED, DELETED, ERROR
	Object json.RawMessage `json:"object,omitempty"`
	// Message explains an ERROR (the watcher fell behind and must re-list).
	Message string `json:"message,omitempty"`
}

// VersionInfo describes the server build.
type VersionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Commit    string `json:"commit,omitempty"`
	Schema    int    `json:"schema,omitempty"`
}

func (s Source) String() string {
	var b strings.Builder
	b.WriteString(s.File)
	if s.Line > 0 {
		fmt.Fprintf(&b, ":%d", s.Line)
	}
	if s.Document > 0 {
		fmt.Fprintf(&b, " (document %d)", s.Document)
	}
	return b.String()
}
