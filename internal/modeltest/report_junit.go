package modeltest

// The JUnit rendering of reports, for CI.

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
)

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
