package modeltest

// The JSON rendering of a Report, for tools.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// The JSON keeps the structs' field order and tags; only durations change, to seconds as a
// float (372.5 rather than 372500000000). The mirrors below hold the same fields in the
// same order with jsonSeconds for time.Duration; TestJSONMirrors keeps them in step with
// types.go.

// JSON renders the report as indented JSON, with durations in seconds.
func (r *Report) JSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		// Nothing in a report fails to encode (non-finite values are null); should it
		// happen, the JSON still says what the run found.
		b.Reset()
		enc.Encode(map[string]string{"model": r.Model, "result": r.Result, "error": "encode report: " + err.Error()})
	}
	return b.Bytes()
}

// jsonSeconds is a duration that encodes as seconds.
type jsonSeconds time.Duration

func (s jsonSeconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(s).Seconds(), 'f', -1, 64), nil
}

func (s *jsonSeconds) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration in seconds: %w", err)
	}
	*s = jsonSeconds(math.Round(f * float64(time.Second)))
	return nil
}

// jsonFloat is a value that encodes NaN and ±Inf as null, which JSON has no number for.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// jsonMarshal encodes v compactly without escaping <, > and & (evidence is full of them).
func jsonMarshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

type reportJSON struct {
	Model     string          `json:"model"`
	Namespace string          `json:"namespace,omitempty"`
	Started   time.Time       `json:"started"`
	Duration  jsonSeconds     `json:"duration"`
	Result    string          `json:"result"`
	Info      []string        `json:"info,omitempty"`
	Steps     []Step          `json:"steps"`
	Cause     *Cause          `json:"cause,omitempty"`
	Systemic  []SystemicCheck `json:"systemic,omitempty"`
	Facts     Facts           `json:"facts"`
}

// MarshalJSON encodes the report with durations in seconds.
func (r Report) MarshalJSON() ([]byte, error) {
	return jsonMarshal(reportJSON{
		Model: r.Model, Namespace: r.Namespace, Started: r.Started, Duration: jsonSeconds(r.Duration),
		Result: r.Result, Info: r.Info, Steps: r.Steps, Cause: r.Cause, Systemic: r.Systemic, Facts: r.Facts,
	})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *Report) UnmarshalJSON(b []byte) error {
	var j reportJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Report{
		Model: j.Model, Namespace: j.Namespace, Started: j.Started, Duration: time.Duration(j.Duration),
		Result: j.Result, Info: j.Info, Steps: j.Steps, Cause: j.Cause, Systemic: j.Systemic, Facts: j.Facts,
	}
	return nil
}

type stepJSON struct {
	Name      string      `json:"name"`
	Title     string      `json:"title"`
	Status    string      `json:"status"`
	BlockedBy string      `json:"blockedBy,omitempty"`
	Started   time.Time   `json:"started,omitzero"`
	Duration  jsonSeconds `json:"duration"`
	Summary   string      `json:"summary,omitempty"`
	Evidence  []string    `json:"evidence,omitempty"`
	Checks    []Check     `json:"checks,omitempty"`
}

// MarshalJSON encodes the step with its duration in seconds.
func (s Step) MarshalJSON() ([]byte, error) {
	return jsonMarshal(stepJSON{
		Name: s.Name, Title: s.Title, Status: s.Status, BlockedBy: s.BlockedBy, Started: s.Started,
		Duration: jsonSeconds(s.Duration), Summary: s.Summary, Evidence: s.Evidence, Checks: s.Checks,
	})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (s *Step) UnmarshalJSON(b []byte) error {
	var j stepJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Step{
		Name: j.Name, Title: j.Title, Status: j.Status, BlockedBy: j.BlockedBy, Started: j.Started,
		Duration: time.Duration(j.Duration), Summary: j.Summary, Evidence: j.Evidence, Checks: j.Checks,
	}
	return nil
}

type checkJSON struct {
	Name   string               `json:"name"`
	Path   string               `json:"path"`
	Status string               `json:"status"`
	Detail string               `json:"detail,omitempty"`
	Values map[string]jsonFloat `json:"values,omitempty"`
}

// MarshalJSON encodes the check with non-finite values (a rate over no time) as null.
func (c Check) MarshalJSON() ([]byte, error) {
	j := checkJSON{Name: c.Name, Path: c.Path, Status: c.Status, Detail: c.Detail}
	if c.Values != nil {
		j.Values = make(map[string]jsonFloat, len(c.Values))
		for k, v := range c.Values {
			j.Values[k] = jsonFloat(v)
		}
	}
	return jsonMarshal(j)
}

type factsJSON struct {
	Model            string                `json:"model"`
	ModelKind        string                `json:"modelKind"`
	ModelPhase       string                `json:"modelPhase,omitempty"`
	ModelReason      string                `json:"modelReason,omitempty"`
	ModelMessage     string                `json:"modelMessage,omitempty"`
	ModelFailure     *v1.DownloadFailure   `json:"modelFailure,omitempty"`
	BytesDone        int64                 `json:"bytesDone,omitempty"`
	BytesTotal       int64                 `json:"bytesTotal,omitempty"`
	BytesPerSecond   int64                 `json:"bytesPerSecond,omitempty"`
	LastProgress     time.Time             `json:"lastProgress,omitzero"`
	NoProgressFor    jsonSeconds           `json:"noProgressFor,omitempty"`
	ModelEvents      []v1.Event            `json:"modelEvents,omitempty"`
	ModelSpec        *v1.BaseModelSpec     `json:"-"`
	HubEndpoint      string                `json:"hubEndpoint,omitempty"`
	Gateway          string                `json:"gateway,omitempty"`
	Service          string                `json:"service,omitempty"`
	ServicePhase     string                `json:"servicePhase,omitempty"`
	ServiceReason    string                `json:"serviceReason,omitempty"`
	ServiceMessage   string                `json:"serviceMessage,omitempty"`
	Runtime          string                `json:"runtime,omitempty"`
	Runtimes         []v1.RuntimeCandidate `json:"runtimes,omitempty"`
	Placement        []string              `json:"placement,omitempty"`
	Endpoints        []v1.Endpoint         `json:"endpoints,omitempty"`
	ServiceEvents    []v1.Event            `json:"serviceEvents,omitempty"`
	LogTail          []string              `json:"logTail,omitempty"`
	DownloadTimedOut bool                  `json:"downloadTimedOut,omitempty"`
	ReadyTimedOut    bool                  `json:"readyTimedOut,omitempty"`
}

// MarshalJSON encodes the facts with durations in seconds.
func (f Facts) MarshalJSON() ([]byte, error) {
	return jsonMarshal(factsJSON{
		Model: f.Model, ModelKind: f.ModelKind,
		ModelPhase: f.ModelPhase, ModelReason: f.ModelReason, ModelMessage: f.ModelMessage, ModelFailure: f.ModelFailure,
		BytesDone: f.BytesDone, BytesTotal: f.BytesTotal, BytesPerSecond: f.BytesPerSecond, LastProgress: f.LastProgress,
		NoProgressFor: jsonSeconds(f.NoProgressFor), ModelEvents: f.ModelEvents, ModelSpec: f.ModelSpec,
		HubEndpoint: f.HubEndpoint, Gateway: f.Gateway,
		Service: f.Service, ServicePhase: f.ServicePhase, ServiceReason: f.ServiceReason, ServiceMessage: f.ServiceMessage,
		Runtime: f.Runtime, Runtimes: f.Runtimes, Placement: f.Placement, Endpoints: f.Endpoints,
		ServiceEvents: f.ServiceEvents, LogTail: f.LogTail,
		DownloadTimedOut: f.DownloadTimedOut, ReadyTimedOut: f.ReadyTimedOut,
	})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (f *Facts) UnmarshalJSON(b []byte) error {
	var j factsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Facts{
		Model: j.Model, ModelKind: j.ModelKind,
		ModelPhase: j.ModelPhase, ModelReason: j.ModelReason, ModelMessage: j.ModelMessage, ModelFailure: j.ModelFailure,
		BytesDone: j.BytesDone, BytesTotal: j.BytesTotal, BytesPerSecond: j.BytesPerSecond, LastProgress: j.LastProgress,
		NoProgressFor: time.Duration(j.NoProgressFor), ModelEvents: j.ModelEvents, ModelSpec: j.ModelSpec,
		HubEndpoint: j.HubEndpoint, Gateway: j.Gateway,
		Service: j.Service, ServicePhase: j.ServicePhase, ServiceReason: j.ServiceReason, ServiceMessage: j.ServiceMessage,
		Runtime: j.Runtime, Runtimes: j.Runtimes, Placement: j.Placement, Endpoints: j.Endpoints,
		ServiceEvents: j.ServiceEvents, LogTail: j.LogTail,
		DownloadTimedOut: j.DownloadTimedOut, ReadyTimedOut: j.ReadyTimedOut,
	}
	return nil
}
