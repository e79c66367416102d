package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// MarshalJSON writes the Result in vLLM's --save-result shape: the struct's fields in order,
// then every Metrics key, sorted. Infinite numbers are written as the strings "inf" / "-inf"
// (as vLLM writes request_rate), NaN as null, MaxConcurrency 0 as null (vLLM's None).
func (r *Result) MarshalJSON() ([]byte, error) {
	var w jsonWriter
	w.buf.WriteByte('{')
	w.str("label", r.Label)
	w.str("model_id", r.Model)
	w.str("backend", r.Backend)
	w.num("request_rate", r.RequestRate)
	w.num("burstiness", r.Burstiness)
	if r.MaxConcurrency == 0 {
		w.raw("max_concurrency", "null")
	} else {
		w.integer("max_concurrency", r.MaxConcurrency)
	}
	w.num("duration", r.Duration)
	w.integer("completed", r.Completed)
	w.integer("failed", r.Failed)
	w.integer("total_input_tokens", r.TotalInputTokens)
	w.integer("total_output_tokens", r.TotalOutputTokens)
	w.num("request_throughput", r.RequestThroughput)
	if r.RequestGoodput == nil {
		w.raw("request_goodput", "null")
	} else {
		w.num("request_goodput", *r.RequestGoodput)
	}
	w.num("output_throughput", r.OutputThroughput)
	w.num("total_token_throughput", r.TotalTokenThroughput)
	w.num("max_output_tokens_per_s", r.MaxOutputTokensPerS)
	w.integer("max_concurrent_requests", r.MaxConcurrentReqs)
	w.ints("input_lens", r.InputLens)
	w.ints("output_lens", r.OutputLens)
	w.nums("ttfts", r.TTFTs)
	w.key("itls")
	w.buf.WriteByte('[')
	for i, l := range r.ITLs {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.numList(l)
	}
	w.buf.WriteByte(']')
	w.nums("latencies", r.Latencies)
	w.nums("start_times", r.StartTimes)
	w.nums("queue_times", r.QueueTimes)
	w.key("errors")
	w.buf.WriteByte('[')
	for i, e := range r.Errors {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		_ = w.value(e)
	}
	w.buf.WriteByte(']')
	w.num("citadel_send_lag_p99_ms", r.SendLagP99Ms)
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.num(k, r.Metrics[k])
	}
	w.buf.WriteByte('}')
	return w.buf.Bytes(), w.err
}

type jsonWriter struct {
	buf bytes.Buffer
	n   int
	err error
}

func (w *jsonWriter) key(k string) {
	if w.n > 0 {
		w.buf.WriteByte(',')
	}
	w.n++
	b, _ := json.Marshal(k)
	w.buf.Write(b)
	w.buf.WriteByte(':')
}

func (w *jsonWriter) value(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return err
	}
	w.buf.Write(b)
	return nil
}

func (w *jsonWriter) raw(k, v string)         { w.key(k); w.buf.WriteString(v) }
func (w *jsonWriter) str(k, v string)         { w.key(k); _ = w.value(v) }
func (w *jsonWriter) integer(k string, v int) { w.key(k); w.buf.WriteString(strconv.Itoa(v)) }
func (w *jsonWriter) num(k string, v float64) {
	w.key(k)
	w.float(v)
}

func (w *jsonWriter) float(v float64) {
	switch {
	case math.IsNaN(v):
		w.buf.WriteString("null")
	case math.IsInf(v, 1):
		w.buf.WriteString(`"inf"`)
	case math.IsInf(v, -1):
		w.buf.WriteString(`"-inf"`)
	default:
		_ = w.value(v)
	}
}

func (w *jsonWriter) ints(k string, v []int) {
	w.key(k)
	w.buf.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.buf.WriteString(strconv.Itoa(x))
	}
	w.buf.WriteByte(']')
}

func (w *jsonWriter) nums(k string, v []float64) { w.key(k); w.numList(v) }

func (w *jsonWriter) numList(v []float64) {
	w.buf.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.float(x)
	}
	w.buf.WriteByte(']')
}

// ParseResult reads one result file written by MarshalJSON or by vllm bench serve
// --save-result. Use it rather than json.Unmarshal for vLLM's files: encoding/json rejects the
// bare Infinity/NaN tokens Python writes (e.g. "burstiness": Infinity) before UnmarshalJSON runs.
func ParseResult(b []byte) (*Result, error) {
	r := new(Result)
	if err := r.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return r, nil
}

// UnmarshalJSON reads a Result written by MarshalJSON or a vLLM --save-result file: the fixed
// keys into the struct fields, and any other numeric mean_/median_/std_/p<N>_<metric>_ms key
// into Metrics. It accepts "inf"/"-inf" strings and Python's bare Infinity/-Infinity/NaN for
// numbers, null for NaN (request_goodput: nil; max_concurrency: 0), endpoint_type when backend
// is missing, and drops the empty strings vLLM's per-request errors list holds for successes.
// Other keys (date, num_prompts, generated_texts, probe_*, spec_decode_*, …) are ignored;
// empty arrays read as nil.
func (r *Result) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(pythonJSON(b), &m); err != nil {
		return fmt.Errorf("bench result: %w", err)
	}
	*r = Result{Metrics: map[string]float64{}}
	var errs []error
	note := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	strField := func(key string, dst *string) {
		if raw, ok := m[key]; ok {
			note(key, decodeString(raw, dst))
		}
	}
	numField := func(key string, dst *float64) {
		if raw, ok := m[key]; ok {
			note(key, decodeFloat(raw, dst))
		}
	}
	intField := func(key string, dst *int) {
		if raw, ok := m[key]; ok {
			note(key, decodeInt(raw, dst))
		}
	}
	strField("label", &r.Label)
	strField("model_id", &r.Model)
	strField("backend", &r.Backend)
	if r.Backend == "" {
		strField("endpoint_type", &r.Backend)
	}
	numField("request_rate", &r.RequestRate)
	numField("burstiness", &r.Burstiness)
	intField("max_concurrency", &r.MaxConcurrency)
	numField("duration", &r.Duration)
	intField("completed", &r.Completed)
	intField("failed", &r.Failed)
	intField("total_input_tokens", &r.TotalInputTokens)
	intField("total_output_tokens", &r.TotalOutputTokens)
	numField("request_throughput", &r.RequestThroughput)
	if raw, ok := m["request_goodput"]; ok && !isNull(raw) {
		var g float64
		note("request_goodput", decodeFloat(raw, &g))
		r.RequestGoodput = &g
	}
	numField("output_throughput", &r.OutputThroughput)
	numField("total_token_throughput", &r.TotalTokenThroughput)
	numField("max_output_tokens_per_s", &r.MaxOutputTokensPerS)
	intField("max_concurrent_requests", &r.MaxConcurrentReqs)
	numField("citadel_send_lag_p99_ms", &r.SendLagP99Ms)

	intList := func(key string) []int {
		raw, ok := m[key]
		if !ok || isNull(raw) {
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			note(key, err)
			return nil
		}
		var out []int
		for _, it := range items {
			var v int
			note(key, decodeInt(it, &v))
			out = append(out, v)
		}
		return out
	}
	floatList := func(key string, raw json.RawMessage) ([]float64, bool) {
		if isNull(raw) {
			return nil, false
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			note(key, err)
			return nil, false
		}
		out := make([]float64, len(items))
		for i, it := range items {
			note(key, decodeFloat(it, &out[i]))
		}
		return out, true
	}
	topFloats := func(key string) []float64 {
		raw, ok := m[key]
		if !ok {
			return nil
		}
		l, _ := floatList(key, raw)
		if len(l) == 0 {
			return nil
		}
		return l
	}
	r.InputLens = intList("input_lens")
	r.OutputLens = intList("output_lens")
	r.TTFTs = topFloats("ttfts")
	if raw, ok := m["itls"]; ok && !isNull(raw) {
		var lists []json.RawMessage
		if err := json.Unmarshal(raw, &lists); err != nil {
			note("itls", err)
		}
		for _, l := range lists {
			v, ok := floatList("itls", l)
			if !ok {
				v = []float64{}
			}
			r.ITLs = append(r.ITLs, v)
		}
	}
	r.Latencies = topFloats("latencies")
	r.StartTimes = topFloats("start_times")
	r.QueueTimes = topFloats("queue_times")
	if raw, ok := m["errors"]; ok && !isNull(raw) {
		var items []json.RawMessage
		note("errors", json.Unmarshal(raw, &items))
		for _, it := range items {
			var s string
			note("errors", decodeString(it, &s))
			if s != "" {
				r.Errors = append(r.Errors, s)
			}
		}
	}

	for k, raw := range m {
		if !IsMetricKey(k) {
			continue
		}
		var v float64
		if decodeFloat(raw, &v) == nil { // a non-numeric value under such a key is not a statistic
			r.Metrics[k] = v
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bench result: %w", errors.Join(errs...))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func decodeString(raw json.RawMessage, dst *string) error {
	if isNull(raw) {
		*dst = ""
		return nil
	}
	return json.Unmarshal(raw, dst)
}

// decodeFloat reads a JSON number, null (NaN), or one of the strings "inf", "-inf",
// "Infinity", "-Infinity", "nan" (any case).
func decodeFloat(raw json.RawMessage, dst *float64) error {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		*dst = math.NaN()
		return nil
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "inf", "+inf", "infinity", "+infinity":
			*dst = math.Inf(1)
		case "-inf", "-infinity":
			*dst = math.Inf(-1)
		case "nan":
			*dst = math.NaN()
		default:
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("not a number: %q", s)
			}
			*dst = v
		}
		return nil
	}
	return json.Unmarshal(raw, dst)
}

// decodeInt reads a whole JSON number (Python may write 4.0); null reads as 0.
func decodeInt(raw json.RawMessage, dst *int) error {
	if isNull(raw) {
		*dst = 0
		return nil
	}
	var f float64
	if err := decodeFloat(raw, &f); err != nil {
		return err
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("not a whole number: %s", raw)
	}
	*dst = int(f)
	return nil
}

// pythonJSON rewrites the bare NaN, Infinity and -Infinity tokens Python's json module writes
// (outside strings) into null, "inf" and "-inf", which encoding/json accepts.
func pythonJSON(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(b) {
					i++
					out = append(out, b[i])
				}
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case bytes.HasPrefix(b[i:], []byte("-Infinity")):
			out = append(out, `"-inf"`...)
			i += len("-Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("Infinity")):
			out = append(out, `"inf"`...)
			i += len("Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
		default:
			out = append(out, c)
		}
	}
	return out
}
