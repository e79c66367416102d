package modeltest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/modelstore"
)

// The renderings of a Report: Markdown for people, JSON for tools, JUnit for CI. Every
// rendering is deterministic: no map is iterated unsorted, numbers have fixed formats, and
// the clock is never read.

// ExitCode is the process's exit status for the report: 0 passed, 1 failed, 2 could not run.
func (r *Report) ExitCode() int {
	if r == nil {
		return 2
	}
	switch r.Result {
	case ResultPassed:
		return 0
	case ResultFailed:
		return 1
	default:
		return 2
	}
}

// Report file names in the directory WriteAll writes.
const (
	ReportMarkdownFile = "report.md"
	ReportJSONFile     = "report.json"
	ReportJUnitFile    = "junit.xml"
)

// WriteAll writes report.md, report.json and junit.xml into dir, creating it. Each file is
// written to a temporary file and renamed, so a reader never sees half a report.
func WriteAll(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{ReportMarkdownFile, r.Markdown()},
		{ReportJSONFile, r.JSON()},
		{ReportJUnitFile, JUnit([]*Report{r})},
	} {
		if err := modelstore.WriteFileAtomic(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// Markdown

// Markdown renders the report: test information, the result and the steps, the details of
// each step with its evidence, the steps that did not run, and the one root cause with its
// evidence and next steps.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s model test\n\n", r.Model)

	b.WriteString("## Test information\n\n")
	// Info comes from the model's spec once it is Ready; the facts fill in what a run that
	// stopped earlier still knows.
	info := func(key string) bool {
		return slices.ContainsFunc(r.Info, func(l string) bool { return strings.HasPrefix(l, key+": ") })
	}
	if !info("Model") {
		fmt.Fprintf(&b, "- **Model**: %s\n", r.Model)
	}
	for _, line := range r.Info {
		b.WriteString("- " + mdInfoLine(line) + "\n")
	}
	if r.Facts.ModelKind != "" && !info("Kind") {
		fmt.Fprintf(&b, "- **Kind**: %s\n", r.Facts.ModelKind)
	}
	if r.Facts.BytesTotal > 0 && !info("Size") {
		fmt.Fprintf(&b, "- **Size**: %s\n", modelinfo.FormatBytes(r.Facts.BytesTotal))
	}
	if r.Namespace != "" {
		fmt.Fprintf(&b, "- **Namespace**: %s\n", r.Namespace)
	}
	if !r.Started.IsZero() {
		fmt.Fprintf(&b, "- **Test date**: %s\n", r.Started.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	fmt.Fprintf(&b, "- **Duration**: %s\n", durationText(r.Duration))

	b.WriteString("\n## Test execution summary\n\n")
	fmt.Fprintf(&b, "**Result: %s**\n\n", mdOneLine(r.resultLine()))
	if len(r.Steps) == 0 {
		b.WriteString("No step ran.\n")
	} else {
		b.WriteString("| # | Step | Status | Duration | Summary |\n")
		b.WriteString("|---|------|--------|---------:|---------|\n")
		for i, s := range r.Steps {
			dur := durationText(s.Duration)
			if s.Status == NotRun || s.Status == Skipped {
				dur = "—"
			}
			summary := s.Summary
			if s.Status == NotRun && summary == "" {
				summary = "blocked by " + cmp.Or(s.BlockedBy, "an earlier step")
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n",
				i+1, mdCell(stepTitleText(s)), mdStatus(s.Status), dur, mdCell(summary))
		}
	}

	var ran, notRun []int
	for i, s := range r.Steps {
		if s.Status == NotRun || s.Status == Skipped {
			notRun = append(notRun, i)
		} else {
			ran = append(ran, i)
		}
	}

	if len(ran) > 0 {
		b.WriteString("\n## Detailed test steps\n")
		for _, i := range ran {
			r.mdStep(&b, i)
		}
	}

	if len(notRun) > 0 {
		b.WriteString("\n## Steps not run\n\n")
		for _, i := range notRun {
			s := r.Steps[i]
			why := "not run: blocked by " + r.blockerText(s.BlockedBy)
			if s.Status == Skipped {
				why = "skipped"
				if s.Summary != "" {
					why += ": " + mdOneLine(s.Summary)
				}
			}
			fmt.Fprintf(&b, "- **%d. %s** (`%s`) — %s\n", i+1, stepTitleText(s), s.Name, why)
		}
	}

	r.mdCause(&b)
	return b.Bytes()
}

// resultLine is the one-line verdict: ✅ PASSED, ❌ FAILED: <code> — <summary>, ⚠️ COULD NOT RUN.
func (r *Report) resultLine() string {
	var line string
	switch r.Result {
	case ResultPassed:
		return "✅ PASSED"
	case ResultFailed:
		line = "❌ FAILED"
	default:
		line = "⚠️ COULD NOT RUN"
	}
	if c := r.Cause; c != nil {
		switch {
		case c.Code != "" && c.Summary != "":
			line += ": " + c.Code + " — " + c.Summary
		case c.Code != "":
			line += ": " + c.Code
		case c.Summary != "":
			line += ": " + c.Summary
		}
	}
	return line
}

// mdStep writes the details of step i: status, duration, summary, evidence and checks.
func (r *Report) mdStep(b *bytes.Buffer, i int) {
	s := r.Steps[i]
	fmt.Fprintf(b, "\n### %d. %s %s\n\n", i+1, stepTitleText(s), mdStatusIcon(s.Status))
	status := fmt.Sprintf("- **Status**: %s in %s", s.Status, durationText(s.Duration))
	if !s.Started.IsZero() {
		status += " (started " + s.Started.UTC().Format("15:04:05 UTC") + ")"
	}
	b.WriteString(status + "\n")
	if s.Summary != "" {
		fmt.Fprintf(b, "- **Summary**: %s\n", mdOneLine(s.Summary))
	}
	if r.Cause != nil && r.Cause.Step == s.Name && s.Status == Failed {
		fmt.Fprintf(b, "- **Root cause**: %s (see below)\n", r.Cause.Code)
	}
	if len(s.Evidence) > 0 {
		b.WriteString("\n**Evidence**:\n\n")
		mdFence(b, s.Evidence)
	}
	if len(s.Checks) > 0 {
		b.WriteString("\n**Checks**:\n\n")
		b.WriteString("| Check | Path | Status | Detail | Values |\n")
		b.WriteString("|-------|------|--------|--------|--------|\n")
		for _, c := range s.Checks {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n",
				mdCell(c.Name), mdCell(c.Path), mdStatus(c.Status), mdCell(c.Detail), mdCell(valuesText(c.Values)))
		}
	}
}

// mdCause writes the root cause: one code, its summary and evidence, whether it is
// systemic (with the probe's checks) and the numbered next steps.
func (r *Report) mdCause(b *bytes.Buffer) {
	c := r.Cause
	if c == nil {
		if r.Result == ResultPassed {
			return
		}
		b.WriteString("\n## Root cause\n\nNo root cause was determined: the run ended without a diagnosis. See the evidence of the failed step above.\n")
		return
	}
	b.WriteString("\n## Root cause\n\n")
	code := c.Code
	if code == "" {
		code = "Unknown"
	}
	fmt.Fprintf(b, "**%s**", code)
	if c.Summary != "" {
		b.WriteString(": " + mdOneLine(c.Summary))
	}
	b.WriteString("\n\n")
	if c.Step != "" {
		fmt.Fprintf(b, "- **Step**: %s\n", r.stepRef(c.Step))
	}
	if c.Systemic {
		b.WriteString("- **Systemic**: yes — the cause is not this model's; every model that needs the same hub, token, storage or agent fails the same way until it is fixed\n")
	}
	if len(c.Evidence) > 0 {
		b.WriteString("\n### Evidence\n\n")
		mdFence(b, c.Evidence)
	}
	if len(r.Systemic) > 0 {
		b.WriteString("\n### Systemic checks\n\n")
		b.WriteString("| Check | Status | Detail |\n")
		b.WriteString("|-------|--------|--------|\n")
		for _, sc := range r.Systemic {
			status := Failed
			if sc.Passed {
				status = Passed
			}
			fmt.Fprintf(b, "| %s | %s | %s |\n", mdCell(sc.Name), mdStatus(status), mdCell(sc.Detail))
		}
	}
	if len(c.NextSteps) > 0 {
		b.WriteString("\n### Next steps\n\n")
		for i, s := range c.NextSteps {
			fmt.Fprintf(b, "%d. %s\n", i+1, mdOneLine(s))
		}
	}
}

// stepRef names a step of the report as "2. Model download (`download`)".
func (r *Report) stepRef(name string) string {
	for i, s := range r.Steps {
		if s.Name == name {
			return fmt.Sprintf("%d. %s (`%s`)", i+1, stepTitleText(s), name)
		}
	}
	return "`" + name + "`"
}

// blockerText names the step that blocked another: "2. Model download (`download`) failing".
func (r *Report) blockerText(name string) string {
	if name == "" {
		return "an earlier step"
	}
	for _, s := range r.Steps {
		if s.Name == name && s.Status == Failed {
			return r.stepRef(name) + " failing"
		}
	}
	return r.stepRef(name)
}

// SuiteMarkdown renders `citadel test suite`: one row per model with its result, cause,
// duration and the steps that passed, then the totals.
func SuiteMarkdown(reports []*Report) []byte {
	var b bytes.Buffer
	b.WriteString("# citadel test suite\n\n")
	var n, passed, failed, errored int
	var total time.Duration
	var rows bytes.Buffer
	for _, r := range reports {
		if r == nil {
			continue
		}
		n++
		total += r.Duration
		switch r.Result {
		case ResultPassed:
			passed++
		case ResultFailed:
			failed++
		default:
			errored++
		}
		cause := "—"
		if r.Cause != nil && r.Cause.Code != "" {
			cause = r.Cause.Code
			if r.Cause.Systemic {
				cause += " (systemic)"
			}
		}
		stepsPassed, stepsCounted := 0, 0
		for _, s := range r.Steps {
			if s.Status == Skipped {
				continue // by choice: neither passed nor failed
			}
			stepsCounted++
			if s.Status == Passed {
				stepsPassed++
			}
		}
		fmt.Fprintf(&rows, "| %s | %s | %s | %s | %d/%d |\n",
			mdCell(r.Model), mdSuiteResult(r.Result), mdCell(cause), durationText(r.Duration), stepsPassed, stepsCounted)
	}
	fmt.Fprintf(&b, "%d %s: %d passed, %d failed, %d could not run · %s\n\n",
		n, plural(n, "model", "models"), passed, failed, errored, durationText(total))
	if n == 0 {
		return b.Bytes()
	}
	b.WriteString("| Model | Result | Cause | Duration | Steps passed |\n")
	b.WriteString("|-------|--------|-------|---------:|-------------:|\n")
	b.Write(rows.Bytes())
	return b.Bytes()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func mdSuiteResult(result string) string {
	switch result {
	case ResultPassed:
		return "✅ passed"
	case ResultFailed:
		return "❌ failed"
	default:
		return "⚠️ could not run"
	}
}

func mdStatusIcon(status string) string {
	switch status {
	case Passed:
		return "✅"
	case Failed:
		return "❌"
	case NotRun:
		return "⏸"
	case Skipped:
		return "⏭"
	}
	return "❔"
}

func mdStatus(status string) string {
	if status == "" {
		status = "unknown"
	}
	return mdStatusIcon(status) + " " + mdCell(status)
}

// stepTitleText is the step's title, else the title of its name in Steps, else its name.
func stepTitleText(s Step) string {
	if s.Title != "" {
		return s.Title
	}
	for _, st := range Steps {
		if st.Name == s.Name {
			return st.Title
		}
	}
	return s.Name
}

// mdInfoLine bolds the key of a "Key: value" line, as the seed reports did.
func mdInfoLine(line string) string {
	line = mdOneLine(line)
	k, v, ok := strings.Cut(line, ": ")
	if !ok || k == "" || len(k) > 40 || strings.ContainsAny(k, "*`[") {
		return line
	}
	return "**" + k + "**: " + v
}

// mdOneLine folds a text onto one line.
func mdOneLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// mdCell makes a text safe in a table cell: one line, pipes escaped.
func mdCell(s string) string {
	return strings.ReplaceAll(mdOneLine(s), "|", `\|`)
}

// mdFence writes lines in a fenced block whose fence is longer than any backtick run in
// them, so evidence is shown verbatim.
func mdFence(b *bytes.Buffer, lines []string) {
	longest, run := 0, 0
	for _, l := range lines {
		for _, c := range l {
			if c == '`' {
				run++
				longest = max(longest, run)
			} else {
				run = 0
			}
		}
		run = 0
	}
	fence := strings.Repeat("`", max(3, longest+1))
	b.WriteString(fence + "text\n")
	for _, l := range lines {
		b.WriteString(strings.TrimRight(l, "\r\n") + "\n")
	}
	b.WriteString(fence + "\n")
}

// valuesText renders a check's values in key order: seconds as durations (ttft_s=210 ms),
// rates and counts as numbers (tokens_per_s=41.3, chunks=18), bytes as sizes.
func valuesText(values map[string]float64) string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+valueText(k, values[k]))
	}
	return strings.Join(parts, ", ")
}

func valueText(key string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	switch {
	case strings.HasSuffix(key, "_per_s"):
		return numberText(v)
	case strings.HasSuffix(key, "_ms"):
		return durationText(time.Duration(math.Round(v * float64(time.Millisecond))))
	case strings.HasSuffix(key, "_s"):
		return durationText(time.Duration(math.Round(v * float64(time.Second))))
	case strings.HasSuffix(key, "_bytes"):
		return modelinfo.FormatBytes(int64(v))
	}
	return numberText(v)
}

// numberText formats a number: whole numbers without decimals, others with one decimal
// from 10 on and two below (41.3, 0.87).
func numberText(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// durationText formats a duration for people: 420 µs, 850 ms, 1.2 s, 6 min 12 s, 1 h 5 min.
func durationText(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	switch {
	case d == 0:
		return "0 s"
	case d < time.Millisecond:
		return neg + strconv.FormatInt(d.Microseconds(), 10) + " µs"
	case d.Round(time.Millisecond) < time.Second:
		return neg + strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
	case d.Round(100*time.Millisecond) < time.Minute:
		return neg + strconv.FormatFloat(d.Round(100*time.Millisecond).Seconds(), 'f', 1, 64) + " s"
	case d.Round(time.Second) < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%s%d min %d s", neg, int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%s%d h %d min", neg, int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

// ---------------------------------------------------------------------------------------
// JSON
//
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
	BytesDone        int64                 `json:"bytesDone,omitempty"`
	BytesTotal       int64                 `json:"bytesTotal,omitempty"`
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
		ModelPhase: f.ModelPhase, ModelReason: f.ModelReason, ModelMessage: f.ModelMessage,
		BytesDone: f.BytesDone, BytesTotal: f.BytesTotal, LastProgress: f.LastProgress,
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
		ModelPhase: j.ModelPhase, ModelReason: j.ModelReason, ModelMessage: j.ModelMessage,
		BytesDone: j.BytesDone, BytesTotal: j.BytesTotal, LastProgress: j.LastProgress,
		NoProgressFor: time.Duration(j.NoProgressFor), ModelEvents: j.ModelEvents, ModelSpec: j.ModelSpec,
		HubEndpoint: j.HubEndpoint, Gateway: j.Gateway,
		Service: j.Service, ServicePhase: j.ServicePhase, ServiceReason: j.ServiceReason, ServiceMessage: j.ServiceMessage,
		Runtime: j.Runtime, Runtimes: j.Runtimes, Placement: j.Placement, Endpoints: j.Endpoints,
		ServiceEvents: j.ServiceEvents, LogTail: j.LogTail,
		DownloadTimedOut: j.DownloadTimedOut, ReadyTimedOut: j.ReadyTimedOut,
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// JUnit

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	Skipped   *junitSkipped `xml:"skipped"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"` // evidence keeps its lines; encoding/xml splits a "]]>" in it
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnitSuiteName and JUnitClassname name the suite and the test cases of JUnit.
const (
	JUnitSuiteName = "citadel test"
	JUnitClassname = "citadel.model"
)

// JUnit renders reports as one JUnit suite with a test case per step (<model>.<step>): the
// step that shows the root cause fails with "<code>: <summary>" and the evidence, steps
// that did not run are skipped with what blocked them, and a report that could not run is
// an error.
func JUnit(reports []*Report) []byte {
	suite := junitSuite{Name: JUnitSuiteName}
	var total time.Duration
	var first time.Time
	for _, r := range reports {
		if r == nil {
			continue
		}
		total += r.Duration
		if !r.Started.IsZero() && (first.IsZero() || r.Started.Before(first)) {
			first = r.Started
		}
		suite.Cases = append(suite.Cases, r.junitCases()...)
	}
	for _, c := range suite.Cases {
		suite.Tests++
		switch {
		case c.Failure != nil:
			suite.Failures++
		case c.Error != nil:
			suite.Errors++
		case c.Skipped != nil:
			suite.Skipped++
		}
	}
	suite.Time = junitSeconds(total)
	if !first.IsZero() {
		suite.Timestamp = first.UTC().Format("2006-01-02T15:04:05")
	}
	doc := junitSuites{
		Name: JUnitSuiteName, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []junitSuite{suite},
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		// Only unsupported types fail to marshal; these structs have none.
		panic("modeltest: junit: " + err.Error())
	}
	return append(append([]byte(xml.Header), out...), '\n')
}

// junitCases is a test case per step; the root cause goes on the step where it showed.
func (r *Report) junitCases() []junitCase {
	cases := make([]junitCase, 0, len(r.Steps)+1)
	at := r.causeStepIndex()
	for i, s := range r.Steps {
		c := junitCase{Classname: JUnitClassname, Name: r.Model + "." + s.Name, Time: junitSeconds(s.Duration)}
		switch {
		case i == at:
			c.Failure = r.junitCause()
		case s.Status == Failed:
			c.Failure = &junitProblem{Message: s.Summary, Text: xmlText(stepProblemText(s))}
			if c.Failure.Message == "" {
				c.Failure.Message = s.Name + " failed"
			}
		case s.Status == NotRun:
			blocker := s.BlockedBy
			if blocker == "" {
				blocker = "an earlier step"
			}
			c.Skipped = &junitSkipped{Message: "not run: blocked by " + blocker}
		case s.Status == Skipped:
			msg := "skipped"
			if s.Summary != "" {
				msg += ": " + s.Summary
			}
			c.Skipped = &junitSkipped{Message: msg}
		}
		if r.Result == ResultError && c.Failure != nil {
			c.Error, c.Failure = c.Failure, nil
		}
		cases = append(cases, c)
	}
	if at < 0 && r.Result != ResultPassed {
		// The run failed or could not run with no failed step to show it on.
		c := junitCase{Classname: JUnitClassname, Name: r.Model + ".run", Time: junitSeconds(r.Duration)}
		if r.Result == ResultFailed {
			c.Failure = r.junitCause()
		} else {
			c.Error = r.junitCause()
		}
		cases = append(cases, c)
	}
	return cases
}

// causeStepIndex is the failed step that carries the root cause: the cause's step if it
// failed, else the first failed step; -1 when no step failed.
func (r *Report) causeStepIndex() int {
	if r.Result == ResultPassed {
		return -1
	}
	first := -1
	for i, s := range r.Steps {
		if s.Status != Failed {
			continue
		}
		if r.Cause != nil && s.Name == r.Cause.Step {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

// junitCause is the root cause as a JUnit failure: "<code>: <summary>", the evidence and
// the next steps.
func (r *Report) junitCause() *junitProblem {
	c := r.Cause
	if c == nil {
		msg := "failed without a diagnosis"
		if r.Result == ResultError {
			msg = "could not run"
		}
		p := &junitProblem{Message: msg}
		if i := r.firstFailed(); i >= 0 {
			p.Text = xmlText(stepProblemText(r.Steps[i]))
		}
		return p
	}
	p := &junitProblem{Message: c.Code + ": " + c.Summary, Type: c.Code}
	var t strings.Builder
	for _, e := range c.Evidence {
		t.WriteString(e + "\n")
	}
	if c.Systemic {
		t.WriteString("\nSystemic: the cause is not this model's.\n")
		for _, sc := range r.Systemic {
			status := Failed
			if sc.Passed {
				status = Passed
			}
			fmt.Fprintf(&t, "  %s: %s — %s\n", sc.Name, status, sc.Detail)
		}
	}
	if len(c.NextSteps) > 0 {
		t.WriteString("\nNext steps:\n")
		for i, s := range c.NextSteps {
			fmt.Fprintf(&t, "%d. %s\n", i+1, s)
		}
	}
	p.Text = xmlText(t.String())
	return p
}

func (r *Report) firstFailed() int {
	for i, s := range r.Steps {
		if s.Status == Failed {
			return i
		}
	}
	return -1
}

// stepProblemText is a failed step's evidence and its failed checks.
func stepProblemText(s Step) string {
	var t strings.Builder
	for _, e := range s.Evidence {
		t.WriteString(e + "\n")
	}
	for _, c := range s.Checks {
		if c.Status == Failed {
			fmt.Fprintf(&t, "check %s (%s) failed: %s\n", c.Name, c.Path, c.Detail)
		}
	}
	return t.String()
}

// xmlText replaces what XML 1.0 cannot hold (control characters such as a log's ANSI
// colours) with U+FFFD: CDATA is written verbatim, unlike attributes, which
// encoding/xml cleans itself.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r',
			r >= 0x20 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD,
			r >= 0x10000 && r <= 0x10FFFF:
			return r
		}
		return '\uFFFD'
	}, s)
}

func junitSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}
