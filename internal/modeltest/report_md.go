package modeltest

// The Markdown rendering of a Report, and of a suite of them, for people.

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"citadel.dev/citadel/internal/modelinfo"
)

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
