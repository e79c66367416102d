package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
)

// Defaults applied to zero fields of Spec and Probe.
const (
	DefaultGracePeriod  = 30 * time.Second
	DefaultBackoff      = time.Second
	DefaultMaxBackoff   = 5 * time.Minute
	DefaultBackoffReset = 10 * time.Minute
	DefaultLogMaxBytes  = 10 << 20
	DefaultLogFiles     = 3

	// Kubernetes' probe defaults.
	DefaultProbePeriod           = 10 * time.Second
	DefaultProbeTimeout          = time.Second
	DefaultProbeSuccessThreshold = 1
	DefaultProbeFailureThreshold = 3
)

// Probe is an HTTP GET of http://127.0.0.1:<Spec.Port><Path>, with Kubernetes'
// semantics: it first runs InitialDelay after the process started, then every
// Period; an attempt succeeds when the server answers within Timeout with a
// status from 200 to 399 (redirects are not followed). SuccessThreshold
// successes in a row make a failing probe pass, FailureThreshold failures in
// a row make a passing probe fail. Zero fields take Kubernetes' defaults:
// period 10s, timeout 1s, success threshold 1, failure threshold 3.
type Probe struct {
	Path             string // "/health"; "" means "/"
	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int // must be 1 for startup and liveness probes, as in Kubernetes
	FailureThreshold int
}

func (p Probe) withDefaults() Probe {
	if p.Path == "" {
		p.Path = "/"
	}
	if p.Period == 0 {
		p.Period = DefaultProbePeriod
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultProbeTimeout
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = DefaultProbeSuccessThreshold
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultProbeFailureThreshold
	}
	return p
}

func (p Probe) validate(field string, singleSuccess bool) []error {
	var errs []error
	if !strings.HasPrefix(p.Path, "/") {
		errs = append(errs, fmt.Errorf("%s.path: %q must start with /", field, p.Path))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"initialDelay", p.InitialDelay}, {"period", p.Period}, {"timeout", p.Timeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: %v is negative", field, d.name, d.v))
		}
	}
	if p.SuccessThreshold < 0 || singleSuccess && p.SuccessThreshold > 1 {
		errs = append(errs, fmt.Errorf("%s.successThreshold: %d: must be 1 for startup and liveness probes", field, p.SuccessThreshold))
	}
	if p.FailureThreshold < 0 {
		errs = append(errs, fmt.Errorf("%s.failureThreshold: %d is negative", field, p.FailureThreshold))
	}
	return errs
}

// Spec describes one engine process to supervise. Zero fields take the
// defaults documented on them. A Spec is copied by Start; later changes to
// the caller's value have no effect.
type Spec struct {
	// Name identifies the instance, e.g. "default/mimo-vl-7b-rl/0". It names
	// the record and log files, with every character other than letters,
	// digits, '.', '-' and '_' replaced by '_'.
	Name string

	// Argv is the command; Argv[0] is looked up in $PATH when it has no
	// slash, and its base name labels the engine in errors ("vllm").
	Argv []string
	// Env is the engine's whole environment; nil inherits the daemon's.
	Env []string
	// Dir is the working directory; "" is the daemon's.
	Dir string

	// Port is the port the engine listens on. Start refuses a port that
	// another process uses, and probes target 127.0.0.1:Port. 0: no port
	// (then no probes).
	Port int

	// Startup, Readiness and Liveness are the probes; nil means none.
	// Without a readiness probe the engine is Ready as soon as it runs and
	// its startup probe, if any, has passed.
	Startup, Readiness, Liveness *Probe

	// GracePeriod is how long an engine has to exit after SIGTERM before its
	// process group gets SIGKILL. Default 30s.
	GracePeriod time.Duration

	// Backoff is the delay before the first restart; it doubles with each
	// failure in a row, up to MaxBackoff. Defaults 1s and 5m.
	Backoff, MaxBackoff time.Duration
	// BackoffReset is how long an engine must have been Ready for its next
	// failure to start the back-off over. Default 10 minutes.
	BackoffReset time.Duration

	// LogDir, when set, receives the engine's output in LogDir/<name>.log,
	// rotated when it would grow past LogMaxBytes (default 10 MiB) to
	// <name>.log.1, .2, …, keeping LogFiles old files (default 3).
	LogDir      string
	LogMaxBytes int64
	LogFiles    int

	// Logger receives the supervisor's own messages; nil discards them.
	Logger *slog.Logger

	// OnChange, when set, is called with every new State, one call at a
	// time and in order, from the instance's goroutine: it must return
	// quickly and must not call Stop.
	OnChange func(State)
}

func (s Spec) withDefaults() Spec {
	if s.GracePeriod == 0 {
		s.GracePeriod = DefaultGracePeriod
	}
	if s.Backoff == 0 {
		s.Backoff = DefaultBackoff
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = max(DefaultMaxBackoff, s.Backoff)
	}
	if s.BackoffReset == 0 {
		s.BackoffReset = DefaultBackoffReset
	}
	if s.LogMaxBytes == 0 {
		s.LogMaxBytes = DefaultLogMaxBytes
	}
	if s.LogFiles == 0 {
		s.LogFiles = DefaultLogFiles
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.Argv = append([]string(nil), s.Argv...)
	if s.Env != nil {
		s.Env = append([]string(nil), s.Env...)
	}
	for _, p := range []**Probe{&s.Startup, &s.Readiness, &s.Liveness} {
		if *p != nil {
			q := (*p).withDefaults()
			*p = &q
		}
	}
	return s
}

// validate reports every problem of a defaulted Spec, joined.
func (s Spec) validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name: must be set"))
	}
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		errs = append(errs, errors.New("argv: must name the engine's command"))
	}
	if s.Port < 0 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a TCP port", s.Port))
	}
	for _, p := range []struct {
		field         string
		probe         *Probe
		singleSuccess bool
	}{{"startup", s.Startup, true}, {"readiness", s.Readiness, false}, {"liveness", s.Liveness, true}} {
		if p.probe == nil {
			continue
		}
		if s.Port == 0 {
			errs = append(errs, fmt.Errorf("%s: a probe needs the engine's port", p.field))
		}
		errs = append(errs, p.probe.validate(p.field, p.singleSuccess)...)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"gracePeriod", s.GracePeriod}, {"backoff", s.Backoff}, {"maxBackoff", s.MaxBackoff}, {"backoffReset", s.BackoffReset}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative", d.name, d.v))
		}
	}
	if s.LogMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("logMaxBytes: %d is negative", s.LogMaxBytes))
	}
	if s.LogFiles < 0 {
		errs = append(errs, fmt.Errorf("logFiles: %d is negative", s.LogFiles))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid engine spec %q: %w", s.Name, err)
	}
	return nil
}

// engineLabel names the engine after its command: "/opt/vllm/bin/vllm" → "vllm".
func engineLabel(argv0 string) string {
	return filepath.Base(argv0)
}

// fileName turns an instance name into a file name: "default/mimo/0" →
// "default_mimo_0". Kubernetes names cannot contain '_', so distinct
// namespace/name/replica triples stay distinct.
func fileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' && i > 0
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
