package engine

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// FromRunner turns an OME runner container into a launch on this host. The
// command and args run verbatim, with Kubernetes' $(VAR) references
// substituted from MODEL_PATH (s.ModelPath, as OME injects it), PORT
// (s.Port) and the runner's own env. Only what one host forces is changed,
// each change said in Notes:
//
//   - the port: the runner's --port is replaced by s.Port (ports are
//     allocated per host), or added when missing; ollama gets OLLAMA_HOST;
//   - the host: --host is replaced by s.Host when s.Host is set;
//   - tensor parallelism: --tp-size/--tp/--tensor-parallel-size/-tp is
//     rewritten to s.TP when s.TP > 0 and differs (added when missing and
//     s.TP > 1);
//   - the GPUs: CUDA_VISIBLE_DEVICES from s.GPUs.
//
// A shell wrapper (sh -c, bash -lc -- SCRIPT) whose script is one simple
// command (words, quotes, line continuations, $VAR/${VAR} of known
// variables, an optional exec) is unwrapped into a direct command, with
// $MODEL_PATH and ${MODEL_PATH} substituted and --flag=value split for
// argparse engines. Any other script is run by its shell as written, with
// MODEL_PATH and PORT in its environment, and its --port/--host/TP flags
// rewritten in the script text.
//
// s.ExtraArgs are appended and s.Env applied over the runner's env; a
// runner variable taken from valueFrom (fieldRef, secretKeyRef, …) must be
// given a value in s.Env. s.MaxModelLen, s.GPUMemoryUtilization and the
// other model settings are not applied: the runner's command line says them.
// The container's probes are converted (httpGet; tcpSocket becomes a TCP
// connect check); missing probes get the engine's defaults. The image,
// volume mounts and working directory are recorded in Notes, not used: no
// container runtime is configured.
//
// Problems with the container are returned as v1.FieldErrors with paths
// relative to the container (command, env[2].valueFrom, startupProbe.exec),
// for the caller to prefix with where the runner lives.
func FromRunner(c v1.Container, s Spec) (Launch, error) {
	if s.Port < 1 || s.Port > 65535 {
		return Launch{}, fmt.Errorf("runner: port %d: want 1-65535 (the supervisor allocates one)", s.Port)
	}
	if s.TP < 0 {
		return Launch{}, fmt.Errorf("runner: tensor parallelism %d: must not be negative", s.TP)
	}
	r := &fromRunner{c: c, s: s, port: strconv.Itoa(s.Port), env: newEnv(), script: -1, origPorts: map[string]bool{}}
	r.checkCommand()
	if err := r.environment(); err != nil {
		return Launch{}, fmt.Errorf("runner: %w", err)
	}
	if err := r.command(); err != nil {
		return Launch{}, fmt.Errorf("runner: %w", err)
	}
	r.findEngine()
	if r.a == nil || r.a.EnvConfig == "" { // an engine configured by its environment gets its address there
		if r.script < 0 {
			r.placeFlags()
		} else {
			r.placeScript()
		}
	}
	l := r.launch()
	r.probes(&l)
	r.unused(&l)
	if len(r.errs) > 0 {
		r.errs.Sort()
		return Launch{}, r.errs
	}
	l.Env = r.env.list()
	return l, nil
}

// fromRunner is FromRunner's work in progress; its phases, in order, fill it in.
type fromRunner struct {
	c    v1.Container
	s    Spec
	port string // s.Port

	env  *envSet
	vars map[string]string // the values of $(VAR) references

	argv       []string
	script     int      // the index of the script in argv when its shell runs it; -1: argv is the command
	a          *Adapter // the engine; nil for a program Citadel does not know
	positional string   // the positional model of the engine's command (vllm serve MODEL)
	head       []string // the engine's program prefix (argv = head + flags), when not a script
	flags      []string
	read       []string        // the engine's flags, for reading (host, served names, metrics)
	origPorts  map[string]bool // the runner's own port values: a probe on one of them probes the engine

	notes []string // until launch, which moves them to the Launch
	errs  v1.FieldErrors
}

// checkCommand: the container must name its program.
func (r *fromRunner) checkCommand() {
	switch {
	case len(r.c.Command) == 0 && len(r.c.Args) == 0:
		r.errs.Add("command", "is empty: nothing to run", "give the engine's command line, e.g. command: [vllm, serve, $(MODEL_PATH)]")
	case len(r.c.Command) == 0:
		r.errs.Add("command", "is empty: the args would run under the image's entrypoint, which needs a container runtime",
			"put the program in command, e.g. command: [python3, -m, sglang.launch_server]")
	}
}

// environment assembles the environment in Kubernetes' order: what OME injects, the
// runner's env (each value may refer to the variables before it), the runtime's engine
// env; placement's variables come last (launch).
func (r *fromRunner) environment() error {
	s := r.s
	r.vars = map[string]string{"MODEL_PATH": s.ModelPath, "PORT": r.port}
	given := map[string]string{}
	for _, kv := range s.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			given[k] = v
		}
	}
	for i, e := range r.c.Env {
		path := fmt.Sprintf("env[%d]", i)
		v := expandK8s(e.Value, r.vars)
		if e.ValueFrom != nil {
			gv, ok := given[e.Name]
			if !ok {
				r.errs.Add(path+".valueFrom", fmt.Sprintf("%s comes from %s, which is resolved before launch", e.Name, valueSource(e.ValueFrom)),
					fmt.Sprintf("give %s=VALUE in the runtime's engine env", e.Name))
				continue
			}
			v = gv
		}
		switch e.Name {
		case "MODEL_PATH":
			if v != s.ModelPath {
				r.notes = append(r.notes, fmt.Sprintf("runner env MODEL_PATH=%s overridden to %s (the model's path on this host)", v, s.ModelPath))
			}
			continue
		case "PORT":
			if v != r.port {
				r.notes = append(r.notes, fmt.Sprintf("runner env PORT=%s overridden to %s (ports are allocated per host)", v, r.port))
			}
			continue
		}
		r.vars[e.Name] = v
		r.env.set(e.Name, v)
	}
	if err := r.env.apply(s.Env, "runtime env", &r.notes); err != nil {
		return err
	}
	r.env.set("PORT", r.port)
	if s.ModelPath != "" {
		r.env.set("MODEL_PATH", s.ModelPath)
	}
	return nil
}

// command expands the command line's $(VAR) references and unwraps a shell wrapper
// whose script is one simple command; any other script stays, run by its shell.
func (r *fromRunner) command() error {
	r.argv = make([]string, 0, len(r.c.Command)+len(r.c.Args))
	for _, a := range append(slices.Clone(r.c.Command), r.c.Args...) {
		r.argv = append(r.argv, expandK8s(a, r.vars))
	}
	i, ok := shellScript(r.argv)
	if !ok {
		return nil
	}
	words, why := simpleCommand(r.argv[i], r.env.get)
	if why != "" || i != len(r.argv)-1 || len(words) == 0 {
		if why == "" {
			why = "it has positional parameters"
		}
		r.script = i
		r.notes = append(r.notes, fmt.Sprintf("the runner's script is run by %s as written (%s); MODEL_PATH and PORT are in its environment", r.argv[0], why))
		return nil
	}
	r.notes = append(r.notes, fmt.Sprintf("unwrapped the runner's %s script into a direct command", strings.Join(r.argv[:i], " ")))
	argv := words
	if len(argv) > 0 && argv[0] == "exec" {
		argv = argv[1:]
	}
	var assign []string
	for len(argv) > 0 && isAssignment(argv[0]) {
		assign, argv = append(assign, argv[0]), argv[1:]
	}
	r.argv = argv
	return r.env.apply(assign, "runner script", &r.notes)
}

// findEngine recognises the engine by its command (in a script, by the first command
// of a known engine in it) and takes the runtime's extra args.
func (r *fromRunner) findEngine() {
	s := r.s
	if r.script < 0 {
		var prefix int
		r.a, prefix, r.positional = detect(r.argv)
		r.head, r.flags = r.argv[:prefix], r.argv[prefix:]
		if r.a != nil && r.a.splitInline {
			r.flags = splitInline(r.flags)
		}
		if r.a != nil && r.a.EnvConfig != "" && len(s.ExtraArgs) > 0 {
			r.errs.Add("command", fmt.Sprintf("runtime args %q: %s takes no arguments", s.ExtraArgs, r.a.command()),
				fmt.Sprintf("set %s* variables in the runtime's engine env", r.a.EnvConfig))
		}
		r.flags = append(r.flags, s.ExtraArgs...)
	} else {
		fields := looseFields(r.argv[r.script], r.env.get)
		for i := range fields {
			if a, prefix, m := detect(fields[i:]); a != nil {
				r.a, r.positional, r.read = a, m, fields[i+prefix:]
				break
			}
		}
		if len(s.ExtraArgs) > 0 {
			r.errs.Add("command", fmt.Sprintf("runtime args %q cannot be added to a shell script that is not one simple command", s.ExtraArgs),
				"put the flags in the runner's script, or make the script one command")
		}
	}
	if r.a == nil {
		r.notes = append(r.notes, fmt.Sprintf("program %q is not a known engine: run as given, probed by TCP connect unless the runner has probes", filepath.Base(firstOr(r.argv, ""))))
	}
}

// placeFlags sets what one host forces on a direct command line: the allocated port,
// the bind host, and the placement's tensor parallelism.
func (r *fromRunner) placeFlags() {
	s, port := r.s, r.port
	var old []string
	var found bool
	r.flags, old, found = setFlag(r.flags, "--port", port)
	for _, o := range old {
		r.origPorts[o] = true
		if o != port {
			r.notes = append(r.notes, fmt.Sprintf("runner --port %s replaced by %s (ports are allocated per host)", o, port))
		}
	}
	if !found {
		if r.a != nil {
			r.flags = append(r.flags, "--port", port)
			r.notes = append(r.notes, fmt.Sprintf("added --port %s: the runner sets none, and ports are allocated per host", port))
		} else {
			r.notes = append(r.notes, fmt.Sprintf("no --port on the command line: the program must listen on $PORT (%s)", port))
		}
	}
	if s.Host != "" {
		r.flags, old, found = setFlag(r.flags, "--host", s.Host)
		for _, o := range old {
			if o != s.Host {
				r.notes = append(r.notes, fmt.Sprintf("runner --host %s replaced by %s", o, s.Host))
			}
		}
		if !found && r.a != nil {
			r.flags = append(r.flags, "--host", s.Host)
		}
	}
	if s.TP > 0 {
		tp := strconv.Itoa(s.TP)
		r.flags, old, found = setFlag(r.flags, "--tensor-parallel-size", tp)
		for i, o := range old {
			if o != tp {
				r.notes = append(r.notes, fmt.Sprintf("runner %s %s overridden to %s by placement", tpSpelling(r.flags, i), o, tp))
			}
		}
		if !found && s.TP > 1 {
			if r.a != nil && r.a.TPFlag != "" {
				r.flags = append(r.flags, r.a.TPFlag, tp)
				r.notes = append(r.notes, fmt.Sprintf("added %s %s: placement gives the engine %d GPUs", r.a.TPFlag, tp, s.TP))
			} else {
				r.notes = append(r.notes, fmt.Sprintf("tensor parallelism %d not applied: no tensor-parallel flag for %s", s.TP, firstOr(r.argv, "")))
			}
		}
	}
	r.argv = append(slices.Clone(r.head), r.flags...)
	r.read = r.flags
}

// placeScript sets the port, host and tensor parallelism in a script's text.
func (r *fromRunner) placeScript() {
	s, port := r.s, r.port
	text := r.argv[r.script]
	text, old, found := rewriteScriptFlag(text, []string{"--port"}, port, "PORT")
	for _, o := range old {
		r.origPorts[strings.Trim(o, `"'`)] = true
		r.notes = append(r.notes, fmt.Sprintf("runner --port %s replaced by %s in the script (ports are allocated per host)", o, port))
	}
	switch {
	case !found && r.a != nil:
		r.errs.Add("command", "the script sets no --port, so the engine cannot be given the port allocated to it",
			"add --port $(PORT) to the engine's command line")
	case !found:
		r.notes = append(r.notes, fmt.Sprintf("no --port in the script: the program must listen on $PORT (%s)", port))
	}
	if s.Host != "" {
		text, old, _ = rewriteScriptFlag(text, []string{"--host"}, s.Host, "")
		for _, o := range old {
			r.notes = append(r.notes, fmt.Sprintf("runner --host %s replaced by %s in the script", o, s.Host))
		}
	}
	if s.TP > 0 {
		tp := strconv.Itoa(s.TP)
		text, old, found = rewriteScriptFlag(text, tpFlags(), tp, "")
		for _, o := range old {
			r.notes = append(r.notes, fmt.Sprintf("runner tensor parallelism %s overridden to %s by placement in the script", o, tp))
		}
		if !found && s.TP > 1 {
			r.notes = append(r.notes, fmt.Sprintf("tensor parallelism %d not applied: the script has no tensor-parallel flag", s.TP))
		}
	}
	r.argv = slices.Clone(r.argv)
	r.argv[r.script] = text
	r.read = looseFields(text, r.env.get)
}

// launch is the engine's address, names and environment; the notes so far move to it.
func (r *fromRunner) launch() Launch {
	s := r.s
	host := s.Host
	if host == "" {
		if v, ok := flagValue(r.read, "--host"); ok && len(v) > 0 {
			host = v[0]
		} else if r.a != nil {
			host = r.a.HostDefault
			if r.a.hostEnv != "" {
				if h, ok := r.env.get(r.a.hostEnv); ok {
					host = hostPart(h)
				}
			}
		}
	}
	s.Host = host
	l := Launch{Host: host, Port: s.Port, Served: r.served(), Argv: r.argv, Notes: r.notes}
	r.notes = nil
	if r.a != nil {
		l.Engine = r.a.Name
		engineEnv(r.a, s, r.env.setDefault) // the runner's own settings stay
	}
	placementEnv(r.a, s, r.env, &l.Notes)
	return l
}

// served is the names the engine answers to, read from its flags, else the spec's.
func (r *fromRunner) served() []string {
	if r.a != nil && r.a.served != nil {
		if names := r.a.served(r.read, r.positional); len(names) > 0 {
			return names
		}
	}
	if r.s.ModelName == "" && len(r.s.ServedNames) == 0 {
		return nil
	}
	return servedNames(r.s)
}

// probes converts the container's probes; the engine's defaults fill the others.
func (r *fromRunner) probes(l *Launch) {
	for _, p := range r.c.Ports {
		r.origPorts[strconv.Itoa(int(p.ContainerPort))] = true
	}
	for _, pr := range []struct {
		name string
		p    *v1.Probe
		dst  **Probe
	}{{"startupProbe", r.c.StartupProbe, &l.Startup}, {"readinessProbe", r.c.ReadinessProbe, &l.Readiness}, {"livenessProbe", r.c.LivenessProbe, &l.Liveness}} {
		if pr.p == nil {
			continue
		}
		p, perrs, note := convertProbe(pr.name, pr.p, r.origPorts, r.s.Port)
		r.errs = append(r.errs, perrs...)
		if note != "" {
			l.Notes = append(l.Notes, note)
		}
		*pr.dst = p
	}
	if r.a == nil {
		l.setProbes(unknown)
		return
	}
	l.setProbes(r.a)
	l.setMetrics(r.a, r.read)
}

// unused notes what a container says that one host does not use.
func (r *fromRunner) unused(l *Launch) {
	c := r.c
	if c.Image != "" {
		l.Notes = append(l.Notes, fmt.Sprintf("image %s recorded, not used: no container runtime configured", c.Image))
	}
	if len(c.VolumeMounts) > 0 {
		var mounts []string
		for _, m := range c.VolumeMounts {
			mounts = append(mounts, m.MountPath)
		}
		l.Notes = append(l.Notes, fmt.Sprintf("volume mounts %s recorded, not used: the engine runs on the host's filesystem", strings.Join(mounts, ", ")))
	}
	if c.WorkingDir != "" {
		l.Notes = append(l.Notes, fmt.Sprintf("working directory %s recorded, not used: it is a path inside the image", c.WorkingDir))
	}
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// tpSpelling returns how the i-th tensor-parallel flag is spelled in args.
func tpSpelling(args []string, i int) string {
	n := 0
	for _, o := range parseOpts(args) {
		if o.name != "" && canon(o.name) == "--tensor-parallel-size" {
			if n == i {
				return o.name
			}
			n++
		}
	}
	return "--tensor-parallel-size"
}

func (e *envSet) setDefault(k, v string) {
	if _, ok := e.m[k]; !ok {
		e.m[k] = v
	}
}

func valueSource(vf *v1.EnvVarSource) string {
	switch {
	case vf.FieldRef != nil:
		return "fieldRef " + vf.FieldRef.FieldPath
	case vf.SecretKeyRef != nil:
		return fmt.Sprintf("secret %s key %s", vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
	case vf.ConfigMapKeyRef != nil:
		return fmt.Sprintf("config map %s key %s", vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
	}
	return "valueFrom"
}

// convertProbe converts a Kubernetes probe, with Kubernetes' defaults for
// unset timings (period 10s, timeout 1s, thresholds 1 and 3).
func convertProbe(name string, p *v1.Probe, enginePorts map[string]bool, port int) (*Probe, v1.FieldErrors, string) {
	var errs v1.FieldErrors
	out := &Probe{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:          time.Duration(p.TimeoutSeconds) * time.Second,
		SuccessThreshold: int(p.SuccessThreshold),
		FailureThreshold: int(p.FailureThreshold),
	}
	if out.Period == 0 {
		out.Period = 10 * time.Second
	}
	if out.Timeout == 0 {
		out.Timeout = time.Second
	}
	if out.SuccessThreshold == 0 {
		out.SuccessThreshold = 1
	}
	if out.FailureThreshold == 0 {
		out.FailureThreshold = 3
	}
	var probePort v1.IntOrString
	switch {
	case p.Exec != nil:
		errs.Add(name+".exec", "exec probes are not supported: they run a command inside the container's image",
			"use an httpGet probe on the engine's health endpoint")
	case len(p.GRPC) > 0:
		errs.Add(name+".grpc", "gRPC probes are not supported", "use an httpGet probe on the engine's health endpoint")
	case p.HTTPGet != nil:
		if sch := p.HTTPGet.Scheme; sch != "" && !strings.EqualFold(sch, "HTTP") {
			errs.Add(name+".httpGet.scheme", fmt.Sprintf("%s is not supported: local engines are probed over plain HTTP", sch), "remove scheme")
		}
		out.Path = p.HTTPGet.Path
		if out.Path == "" {
			out.Path = "/"
		}
		probePort = p.HTTPGet.Port
	case p.TCPSocket != nil:
		probePort = p.TCPSocket.Port // Path "" is a TCP connect check
	default:
		errs.Add(name, "has no handler", "set httpGet")
	}
	note := ""
	if !probePort.IsString && probePort.Int != 0 && !enginePorts[strconv.Itoa(int(probePort.Int))] {
		note = fmt.Sprintf("%s port %d is not the engine's port: probed on %d", name, probePort.Int, port)
	}
	return out, errs, note
}

// expandK8s substitutes Kubernetes $(VAR) references: $$ is a literal $,
// and an undefined reference is left as written.
func expandK8s(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
