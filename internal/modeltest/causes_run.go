package modeltest

// The causes of the test's own steps (apply, cleanup, a test that could not run) and the
// honest answer when no cause is shown: Unknown, with every piece of evidence.

import (
	"fmt"
	"slices"
)

func (d *diag) couldNotRun() *Cause {
	c := &Cause{Code: CodeTestCouldNotRun, Step: StepApply}
	if d.failed != nil {
		c.Step = d.failed.Name
		c.Summary = "The test could not run: " + d.failed.Summary
		c.Evidence = append(c.Evidence, d.failed.Evidence...)
	} else {
		c.Summary = "The test could not run."
	}
	c.NextSteps = []string{"citadel version (is `citadel serve` running and reachable?)", "check the files given to citadel test: citadel apply -f FILE --dry-run"}
	return c
}

func (d *diag) applyFailed() *Cause {
	c := &Cause{Code: CodeApplyFailed, Step: StepApply, Summary: "The server refused the objects: " + d.failed.Summary}
	c.Evidence = append(c.Evidence, d.failed.Evidence...)
	c.NextSteps = []string{"citadel apply -f FILE --dry-run (shows each field error)"}
	return c
}

func (d *diag) cleanupFailed() *Cause {
	c := &Cause{Code: CodeCleanupFailed, Step: StepCleanup, Summary: "Every test passed, but cleanup failed: " + d.failed.Summary}
	c.Evidence = append(c.Evidence, d.failed.Evidence...)
	ns, name := d.serviceRef()
	c.NextSteps = []string{fmt.Sprintf("citadel get isvc -A -l citadel.dev/test=true; delete what is left: citadel delete isvc %s -n %s", name, ns)}
	return c
}

// unknown is the honest answer: every piece of evidence and the commands that gather more.
func (d *diag) unknown(why string) *Cause {
	f := d.f
	c := &Cause{Code: CodeUnknown, Step: StepDownload}
	if d.failed != nil {
		c.Step = d.failed.Name
	}
	c.Summary = "No single cause is shown by the evidence: " + why + "."
	for _, s := range d.r.Steps {
		if s.Status == Failed {
			c.Evidence = append(c.Evidence, fmt.Sprintf("step %s failed: %s", s.Name, s.Summary))
			c.Evidence = append(c.Evidence, s.Evidence...)
		}
	}
	if f.ModelPhase != "" || f.ModelReason != "" {
		c.Evidence = append(c.Evidence, d.modelStatusLine(), d.progressLine())
	}
	c.Evidence = append(c.Evidence, d.modelEventLines()...)
	if f.ServicePhase != "" || f.ServiceReason != "" {
		c.Evidence = append(c.Evidence, d.serviceStatusLine())
	}
	c.Evidence = append(c.Evidence, d.serviceEventLines()...)
	c.Evidence = append(c.Evidence, tailLines(d.tail())...)
	for _, sc := range d.r.Systemic {
		c.Evidence = append(c.Evidence, checkLine(sc))
	}
	c.Evidence = slices.DeleteFunc(c.Evidence, func(s string) bool { return s == "" })
	c.NextSteps = []string{d.describeModel(), "citadel events --for " + d.modelObject()}
	if f.Service != "" {
		c.NextSteps = append(c.NextSteps, d.describeService(), d.logsCmd())
	}
	c.NextSteps = append(c.NextSteps, "the server's own log (citadel serve --log-level debug) for the model agent and the serving controller",
		fmt.Sprintf("rerun with --keep to inspect the objects afterwards: citadel test model %s --keep", orDefault(f.Model, d.r.Model)))
	return c
}
