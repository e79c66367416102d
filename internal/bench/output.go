package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Files is what `citadel bench run --out DIR` and `citadel bench sweep --out DIR` write:
// one Markdown report, its SVG charts and the results as JSON with vLLM's keys, all named
// after the targets, the models and the time of the run so that runs into one directory
// never overwrite each other.
type Files struct {
	Dir      string
	Kind     string // "run" or "sweep": the report's title and part of the names
	Series   []Series
	Formulas map[string]string
	Now      time.Time // the run's start, in the names (UTC, to the second)
}

// Written lists the files one Write created, the report first.
type Written struct {
	Report string   // DIR/<stem>.md
	Files  []string // every file, report first, in the order written
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

// nameOf makes s safe in a file name: "Qwen/Qwen2.5-7B:q4" → "Qwen_Qwen2.5-7B_q4".
func nameOf(s string) string {
	s = strings.Trim(unsafeName.ReplaceAllString(s, "_"), "_.")
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// Stem is the common start of a run's file names: <targets>_<models>_<kind>[-<load>]_<time>,
// e.g. "vllm+gw_qwen_run-8qps_20261207T171500Z". Targets and models appear once each, in
// order; load is the rate and concurrency of a single run (a sweep varies them).
func (o Files) Stem() string {
	var targets, models []string
	for _, s := range o.Series {
		if t := nameOf(s.Label); t != "" && !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
		for _, p := range s.Points {
			if p.R == nil {
				continue
			}
			if m := nameOf(p.R.Model); m != "" && !slices.Contains(models, m) {
				models = append(models, m)
			}
		}
	}
	kind := orName(o.Kind, "run")
	if o.Kind == "run" && len(o.Series) > 0 && len(o.Series[0].Points) > 0 && o.Series[0].Points[0].R != nil {
		r := o.Series[0].Points[0].R
		kind += "-" + loadLabel(r.RequestRate, r.MaxConcurrency)
	}
	parts := []string{orName(strings.Join(targets, "+"), "target"), orName(strings.Join(models, "+"), "model"), kind,
		o.Now.UTC().Format("20060102T150405Z")}
	return strings.Join(parts, "_")
}

func orName(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// loadLabel names a run's load as vLLM's result files do: "infqps", "8qps-concurrency16".
func loadLabel(rate float64, conc int) string {
	s := "infqps"
	if !math.IsInf(rate, 1) && rate > 0 {
		s = strconv.FormatFloat(rate, 'f', -1, 64) + "qps"
	}
	if conc > 0 {
		s += "-concurrency" + strconv.Itoa(conc)
	}
	return s
}

// Write writes the report (<stem>.md), its charts (<stem>-throughput.svg, <stem>-ttft.svg,
// <stem>-cdf-*.svg) and the results (<stem>.json for one target, else <stem>-<target>.json:
// the Result of a run, the list of a sweep's Results). When a file of that stem exists
// already (two runs in the same second), the stem gets "-2", "-3", …: nothing is overwritten.
func (o Files) Write() (Written, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return Written{}, fmt.Errorf("creating the output directory: %w", err)
	}
	base := o.Stem()
	for n := 1; ; n++ {
		stem := base
		if n > 1 {
			stem = fmt.Sprintf("%s-%d", base, n)
		}
		w, err := o.write(stem)
		if errors.Is(err, fs.ErrExist) && n < 100 {
			continue
		}
		return w, err
	}
}

func (o Files) write(stem string) (Written, error) {
	files := []struct {
		name string
		b    []byte
	}{{stem + ".md", markdown("citadel bench "+orName(o.Kind, "run"), o.Series, o.Formulas, stem+"-")}}
	for _, c := range charts(o.Series, stem+"-") {
		files = append(files, struct {
			name string
			b    []byte
		}{c.Name, c.SVG})
	}
	for _, s := range o.Series {
		var v any
		if o.Kind == "run" && len(s.Points) == 1 {
			v = s.Points[0].R
		} else {
			var all []*Result
			for _, p := range s.Points {
				all = append(all, p.R)
			}
			v = all
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return Written{}, fmt.Errorf("encoding the results of %s: %w", s.Label, err)
		}
		name := stem + ".json"
		if len(o.Series) > 1 {
			name = stem + "-" + orName(nameOf(s.Label), "target") + ".json"
		}
		files = append(files, struct {
			name string
			b    []byte
		}{name, b})
	}
	// The report is created exclusively first: it claims the stem.
	var w Written
	for i, f := range files {
		path := filepath.Join(o.Dir, f.name)
		flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		fh, err := os.OpenFile(path, flag, 0o644)
		if err != nil {
			if i == 0 && errors.Is(err, fs.ErrExist) {
				return Written{}, err
			}
			return w, fmt.Errorf("writing %s: %w", path, err)
		}
		_, err = fh.Write(f.b)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return w, fmt.Errorf("writing %s: %w", path, err)
		}
		if i == 0 {
			w.Report = path
		}
		w.Files = append(w.Files, path)
	}
	return w, nil
}
