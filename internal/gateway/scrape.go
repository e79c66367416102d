package gateway

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Scraper reads the engines' own load every Interval from the replicas that export it
// (MetricsPath set): the series RunningMetric, WaitingMetric and KVMetric of a Prometheus
// text exposition, into Running, Waiting, KVUsage and ScrapedAt. A scrape that fails leaves
// the last values to go stale, and load-aware balancing falls back to in-flight counts.
type Scraper struct {
	Interval time.Duration // between scrapes of a replica; default 200 ms
	Timeout  time.Duration // of one scrape; default 1 s
	Client   *http.Client  // default http.DefaultClient
}

// maxMetricsBody bounds what a scrape reads: vLLM's exposition is some tens of KiB.
const maxMetricsBody = 1 << 20

// Run scrapes the replicas returns (asked afresh each round) until ctx ends, and returns once
// its scrapes have.
func (s *Scraper) Run(ctx context.Context, replicas func() []*Replica) {
	client := cmp.Or(s.Client, http.DefaultClient)
	timeout := cmp.Or(s.Timeout, time.Second)
	wants := func(r *Replica) bool { return r.MetricsPath != "" }
	poll(ctx, cmp.Or(s.Interval, 200*time.Millisecond), replicas, wants, func(r *Replica) {
		_ = scrape(ctx, client, timeout, r)
	})
}

var scrapeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// scrape reads r's metrics once.
func scrape(ctx context.Context, client *http.Client, timeout time.Duration, r *Replica) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.BaseURL+r.MetricsPath, nil)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", r.ID, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4") // the text format, not protobuf
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", r.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		return fmt.Errorf("scraping %s: GET %s answered %s", r.ID, r.MetricsPath, resp.Status)
	}
	buf := scrapeBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer scrapeBuffers.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxMetricsBody+1)); err != nil {
		return fmt.Errorf("scraping %s: reading GET %s: %w", r.ID, r.MetricsPath, err)
	}
	body := buf.Bytes()
	if len(body) > maxMetricsBody {
		// Too long: read the first MiB's whole lines (a cut line could misread a number).
		body = body[:bytes.LastIndexByte(body[:maxMetricsBody], '\n')+1]
	}
	running, waiting, kv, ok := readLoad(body, r)
	if !ok {
		return fmt.Errorf("scraping %s: GET %s has none of %q, %q, %q", r.ID, r.MetricsPath, r.RunningMetric, r.WaitingMetric, r.KVMetric)
	}
	s := &r.State
	s.mu.Lock()
	s.Running, s.Waiting, s.KVUsage, s.ScrapedAt = running, waiting, kv, time.Now()
	s.mu.Unlock()
	return nil
}

// readLoad reads r's load series from an exposition: Running and Waiting are summed over
// their label sets (one per engine core or data-parallel rank), KVUsage, a fraction, is
// their mean. vLLM's KV series had two names (gpu_cache_usage_perc before 0.9,
// kv_cache_usage_perc after, the old one hidden from 0.11): either will do. ok is false when
// none of the series is there (the path serves something else, or the engine is starting).
func readLoad(body []byte, r *Replica) (running, waiting, kv float64, ok bool) {
	names := [4]string{r.RunningMetric, r.WaitingMetric, r.KVMetric, otherKVName(r.KVMetric)}
	sum, n := sumSeries(body, &names)
	switch {
	case n[2] > 0:
		kv = sum[2] / float64(n[2])
	case n[3] > 0:
		kv = sum[3] / float64(n[3])
	}
	// Balancing counts on sane numbers: no negative counts, a fraction within 0-1.
	running, waiting, kv = max(sum[0], 0), max(sum[1], 0), min(max(kv, 0), 1)
	return running, waiting, kv, n[0]+n[1]+n[2]+n[3] > 0
}

func otherKVName(name string) string {
	switch name {
	case "vllm:kv_cache_usage_perc":
		return "vllm:gpu_cache_usage_perc"
	case "vllm:gpu_cache_usage_perc":
		return "vllm:kv_cache_usage_perc"
	}
	return ""
}

// ParseMetric returns the sum over every label set of the samples of the series name in a
// Prometheus (or OpenMetrics) text exposition, and whether it has any. Samples whose value is
// not finite (NaN, ±Inf) are left out. It tolerates whatever it does not understand, line by
// line, and does not allocate.
func ParseMetric(body []byte, name string) (float64, bool) {
	names := [4]string{name}
	sum, n := sumSeries(body, &names)
	return sum[0], n[0] > 0
}

// sumSeries sums, for each non-empty name, the finite samples of that series, and counts them.
func sumSeries(body []byte, names *[4]string) (sum [4]float64, n [4]int) {
	sc := samples{rest: body}
	for {
		name, value, more := sc.next()
		if !more {
			return sum, n
		}
		for i, want := range names {
			if want == "" || string(name) != want {
				continue
			}
			if v, err := strconv.ParseFloat(string(value), 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
				sum[i] += v
				n[i]++
			}
		}
	}
}

// samples walks the sample lines of a text exposition:
//
//	# HELP and # TYPE lines, and blank ones, are skipped
//	name value [timestamp]
//	name{label="value",…} value [timestamp] [# exemplar]
//	{"quoted.name",label="value"} value            (Prometheus 3's UTF-8 names)
//
// Label values may hold escaped quotes (\") and braces. A line it cannot read is skipped.
type samples struct{ rest []byte }

func (s *samples) next() (name, value []byte, ok bool) {
	for len(s.rest) > 0 {
		line := s.rest
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, s.rest = line[:i], line[i+1:]
		} else {
			s.rest = nil
		}
		if name, value, ok = parseSample(line); ok {
			return name, value, true
		}
	}
	return nil, nil, false
}

func parseSample(line []byte) (name, value []byte, ok bool) {
	i := skipBlanks(line, 0)
	if i == len(line) || line[i] == '#' {
		return nil, nil, false
	}
	if line[i] == '{' {
		// {"name", …}: the name is the first item, a quoted string with no "=".
		j := skipBlanks(line, i+1)
		if j == len(line) || line[j] != '"' {
			return nil, nil, false
		}
		end := quoteEnd(line, j)
		if end < 0 {
			return nil, nil, false
		}
		name = line[j+1 : end-1]
		if k := skipBlanks(line, end); k == len(line) || line[k] != ',' && line[k] != '}' {
			return nil, nil, false
		}
		if i = labelsEnd(line, i); i < 0 {
			return nil, nil, false
		}
	} else {
		j := i
		for j < len(line) && line[j] != '{' && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		name = line[i:j]
		i = skipBlanks(line, j)
		if i < len(line) && line[i] == '{' {
			if i = labelsEnd(line, i); i < 0 {
				return nil, nil, false
			}
		}
	}
	i = skipBlanks(line, i)
	j := i
	for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' {
		j++
	}
	if j == i || len(name) == 0 {
		return nil, nil, false
	}
	return name, line[i:j], true
}

func skipBlanks(line []byte, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return i
}

// quoteEnd returns the index after the closing quote of the string opening at line[i], or -1.
func quoteEnd(line []byte, i int) int {
	for i++; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// labelsEnd returns the index after the '}' closing the label set opening at line[i], or -1.
func labelsEnd(line []byte, i int) int {
	for i++; i < len(line); i++ {
		switch line[i] {
		case '"':
			if i = quoteEnd(line, i); i < 0 {
				return -1
			}
			i--
		case '}':
			return i + 1
		}
	}
	return -1
}
