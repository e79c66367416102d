package v1

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Quantity is a Kubernetes resource quantity ("10", "500m", "30Gi", "1.5G"),
// kept as written. YAML numbers are accepted (cpu: 10). Parse reports a
// precise error; Validate calls it so that a bad quantity names its field.
type Quantity string

// UnmarshalJSON accepts a string or a number.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	s, err := stringOrNumber(b)
	if err != nil {
		return fmt.Errorf("expected a quantity such as 30Gi, 500m or 4")
	}
	*q = Quantity(s)
	return nil
}

var binarySuffixes = map[string]float64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
var decimalSuffixes = map[string]float64{"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}

// Value returns the quantity as a number (bytes for memory, cores for CPU).
func (q Quantity) Value() (float64, error) {
	s := strings.TrimSpace(string(q))
	if s == "" {
		return 0, fmt.Errorf("empty quantity")
	}
	i := len(s)
	for i > 0 && !(s[i-1] >= '0' && s[i-1] <= '9' || s[i-1] == '.') {
		i--
	}
	num, suf := s[:i], s[i:]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.HasPrefix(num, "+") {
		return 0, fmt.Errorf("invalid quantity %q: expected a number followed by an optional suffix", string(q))
	}
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid quantity %q: must not be negative", string(q))
	}
	// ParseFloat also takes hex floats and underscores; Kubernetes takes
	// plain decimals, with an exponent (1e3) only when there is no suffix.
	if !decimal(num, suf == "") {
		return 0, fmt.Errorf("invalid quantity %q: expected a number followed by an optional suffix", string(q))
	}
	m, ok := binarySuffixes[suf]
	if !ok {
		m, ok = decimalSuffixes[suf]
	}
	if ok {
		if math.IsInf(f*m, 0) {
			return 0, fmt.Errorf("invalid quantity %q: too large", string(q))
		}
		return f * m, nil
	}
	hint := ""
	switch strings.ToUpper(suf) {
	case "B", "GB", "MB", "KB", "TB":
		hint = fmt.Sprintf(": Kubernetes quantities have no %q suffix; write %sGi (binary) or %sG (decimal)", suf, num, num)
	case "GIB", "MIB", "KIB", "TIB":
		hint = fmt.Sprintf(": write %s%si", num, suf[:1])
	default:
		hint = ": use Ki, Mi, Gi, Ti (binary), k, M, G, T (decimal) or m (milli)"
	}
	return 0, fmt.Errorf("invalid quantity %q, unknown suffix %q%s", string(q), suf, hint)
}

// ParameterSize is a model size in parameters, as OME writes it: "7B",
// "7.62B", "500M", "1.5T". The suffix is required (a bare "7" is ambiguous).
type ParameterSize string

// UnmarshalJSON accepts a string (numbers are rejected as ambiguous).
func (p *ParameterSize) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected a parameter count string such as \"7B\"")
	}
	*p = ParameterSize(s)
	return nil
}

// Count returns the number of parameters.
func (p ParameterSize) Count() (float64, error) {
	s := strings.TrimSpace(string(p))
	if s == "" {
		return 0, fmt.Errorf("empty parameter count")
	}
	mult := map[byte]float64{'K': 1e3, 'M': 1e6, 'B': 1e9, 'T': 1e12}
	last := s[len(s)-1]
	m, ok := mult[last]
	if !ok {
		m, ok = mult[last-'a'+'A']
	}
	if !ok {
		hint := "add a suffix: K, M, B or T, e.g. 7B"
		if strings.HasSuffix(s, "i") || strings.HasSuffix(s, "iB") {
			hint = "this looks like a byte size; model sizes here are parameter counts such as 7B or 8.3B"
		}
		return 0, fmt.Errorf("invalid parameter count %q: %s", s, hint)
	}
	f, err := strconv.ParseFloat(s[:len(s)-1], 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || !decimal(s[:len(s)-1], false) {
		hint := "write a positive number followed by K, M, B or T, e.g. 7B or 8.31B"
		if strings.HasSuffix(s, "GB") || strings.HasSuffix(s, "MB") || strings.HasSuffix(s, "Gb") {
			hint = "this looks like a byte size; model sizes here are parameter counts such as 7B"
		}
		return 0, fmt.Errorf("invalid parameter count %q: %s", s, hint)
	}
	if math.IsInf(f*m, 0) {
		return 0, fmt.Errorf("invalid parameter count %q: too large", s)
	}
	return f * m, nil
}

// decimal reports whether s is a plain decimal number: digits with at most
// one '.', then, when exp is set, an optional exponent such as e3 or E-2.
func decimal(s string, exp bool) bool {
	if e := strings.IndexAny(s, "eE"); e >= 0 && exp {
		x := s[e+1:]
		if x != "" && (x[0] == '+' || x[0] == '-') {
			x = x[1:]
		}
		if x == "" || strings.Trim(x, "0123456789") != "" {
			return false
		}
		s = s[:e]
	}
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// Duration is a Go duration string ("30s", "5m", "1h30m").
type Duration string

// UnmarshalJSON accepts a string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected a duration string such as \"30s\" or \"5m\"")
	}
	*d = Duration(s)
	return nil
}

// Std parses the duration.
func (d Duration) Std() (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil {
		if _, nerr := strconv.ParseFloat(string(d), 64); nerr == nil {
			return 0, fmt.Errorf("invalid duration %q: add a unit, e.g. %ss", string(d), string(d))
		}
		return 0, fmt.Errorf("invalid duration %q: use a number with a unit (ms, s, m, h), e.g. 30s or 1m30s", string(d))
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", string(d))
	}
	return v, nil
}

// IntOrString is an int or a string, as Kubernetes uses for probe ports.
type IntOrString struct {
	IsString bool
	Int      int32
	Str      string
}

// UnmarshalJSON accepts an integer or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString = true
		return json.Unmarshal(b, &v.Str)
	}
	var n int32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("expected an integer or a string")
	}
	*v = IntOrString{Int: n}
	return nil
}

// MarshalJSON encodes the int or the string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.Str)
	}
	return json.Marshal(v.Int)
}

func (v IntOrString) String() string {
	if v.IsString {
		return v.Str
	}
	return strconv.Itoa(int(v.Int))
}

func stringOrNumber(b []byte) (string, error) {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}
