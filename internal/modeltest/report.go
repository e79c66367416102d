package modeltest

import (
	"fmt"
	"os"
	"path/filepath"

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
