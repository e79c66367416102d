package engine

import (
	"fmt"
	"path/filepath"
	"regexp"
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
	var errs v1.FieldErrors
	var notes []string
	port := strconv.Itoa(s.Port)
	switch {
	case len(c.Command) == 0 && len(c.Args) == 0:
		errs.Add("command", "is empty: nothing to run", "give the engine's command line, e.g. command: [vllm, serve, $(MODEL_PATH)]")
	case len(c.Command) == 0:
		errs.Add("command", "is empty: the args would run under the image's entrypoint, which needs a container runtime",
			"put the program in command, e.g. command: [python3, -m, sglang.launch_server]")
	}

	// The environment, in Kubernetes' order: what OME injects, the runner's
	// env (each value may refer to the variables before it), the runtime's
	// engine env; placement's variables last.
	env := newEnv()
	vars := map[string]string{"MODEL_PATH": s.ModelPath, "PORT": port}
	given := map[string]string{}
	for _, kv := range s.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			given[k] = v
		}
	}
	for i, e := range c.Env {
		path := fmt.Sprintf("env[%d]", i)
		v := expandK8s(e.Value, vars)
		if e.ValueFrom != nil {
			gv, ok := given[e.Name]
			if !ok {
				errs.Add(path+".valueFrom", fmt.Sprintf("%s comes from %s, which is resolved before launch", e.Name, valueSource(e.ValueFrom)),
					fmt.Sprintf("give %s=VALUE in the runtime's engine env", e.Name))
				continue
			}
			v = gv
		}
		switch e.Name {
		case "MODEL_PATH":
			if v != s.ModelPath {
				notes = append(notes, fmt.Sprintf("runner env MODEL_PATH=%s overridden to %s (the model's path on this host)", v, s.ModelPath))
			}
			continue
		case "PORT":
			if v != port {
				notes = append(notes, fmt.Sprintf("runner env PORT=%s overridden to %s (ports are allocated per host)", v, port))
			}
			continue
		}
		vars[e.Name] = v
		env.set(e.Name, v)
	}
	if err := env.apply(s.Env, "runtime env", &notes); err != nil {
		return Launch{}, fmt.Errorf("runner: %w", err)
	}
	env.set("PORT", port)
	if s.ModelPath != "" {
		env.set("MODEL_PATH", s.ModelPath)
	}

	argv := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		argv = append(argv, expandK8s(a, vars))
	}

	// A shell wrapper: unwrap a simple command, else keep the script.
	script := -1 // index of the script in argv, when it is run by its shell
	if i, ok := shellScript(argv); ok {
		words, why := simpleCommand(argv[i], env.get)
		if why == "" && i == len(argv)-1 && len(words) > 0 {
			notes = append(notes, fmt.Sprintf("unwrapped the runner's %s script into a direct command", strings.Join(argv[:i], " ")))
			argv = words
			if len(argv) > 0 && argv[0] == "exec" {
				argv = argv[1:]
			}
			var assign []string
			for len(argv) > 0 && isAssignment(argv[0]) {
				assign, argv = append(assign, argv[0]), argv[1:]
			}
			if err := env.apply(assign, "runner script", &notes); err != nil {
				return Launch{}, fmt.Errorf("runner: %w", err)
			}
		} else {
			if why == "" {
				why = "it has positional parameters"
			}
			script = i
			notes = append(notes, fmt.Sprintf("the runner's script is run by %s as written (%s); MODEL_PATH and PORT are in its environment", argv[0], why))
		}
	}

	// The engine and the flags to read.
	var engine, vllmModel string
	var head, flags []string // argv = head + flags, when not a script
	var read []string        // the engine's flags, for reading
	if script < 0 {
		var prefix int
		engine, prefix, vllmModel = detect(argv)
		head, flags = argv[:prefix], argv[prefix:]
		if engine == VLLM || engine == SGLang {
			flags = splitInline(flags)
		}
		if engine == Ollama && len(s.ExtraArgs) > 0 {
			errs.Add("command", fmt.Sprintf("runtime args %q: ollama serve takes no arguments", s.ExtraArgs),
				"set OLLAMA_* variables in the runtime's engine env")
		}
		flags = append(flags, s.ExtraArgs...)
	} else {
		fields := looseFields(argv[script], env.get)
		for i := range fields {
			if e, prefix, m := detect(fields[i:]); e != "" {
				engine, vllmModel, read = e, m, fields[i+prefix:]
				break
			}
		}
		if len(s.ExtraArgs) > 0 {
			errs.Add("command", fmt.Sprintf("runtime args %q cannot be added to a shell script that is not one simple command", s.ExtraArgs),
				"put the flags in the runner's script, or make the script one command")
		}
	}
	in := engines[engine]
	if engine == "" {
		notes = append(notes, fmt.Sprintf("program %q is not a known engine: run as given, probed by TCP connect unless the runner has probes", filepath.Base(firstOr(argv, ""))))
	}

	// Port, host, tensor parallelism.
	origPorts := map[string]bool{}
	if engine != Ollama {
		if script < 0 {
			var old []string
			var found bool
			flags, old, found = setFlag(flags, "--port", port)
			for _, o := range old {
				origPorts[o] = true
				if o != port {
					notes = append(notes, fmt.Sprintf("runner --port %s replaced by %s (ports are allocated per host)", o, port))
				}
			}
			if !found {
				if engine != "" {
					flags = append(flags, "--port", port)
					notes = append(notes, fmt.Sprintf("added --port %s: the runner sets none, and ports are allocated per host", port))
				} else {
					notes = append(notes, fmt.Sprintf("no --port on the command line: the program must listen on $PORT (%s)", port))
				}
			}
			if s.Host != "" {
				flags, old, found = setFlag(flags, "--host", s.Host)
				for _, o := range old {
					if o != s.Host {
						notes = append(notes, fmt.Sprintf("runner --host %s replaced by %s", o, s.Host))
					}
				}
				if !found && engine != "" {
					flags = append(flags, "--host", s.Host)
				}
			}
			if s.TP > 0 {
				tp := strconv.Itoa(s.TP)
				flags, old, found = setFlag(flags, "--tensor-parallel-size", tp)
				for i, o := range old {
					if o != tp {
						notes = append(notes, fmt.Sprintf("runner %s %s overridden to %s by placement", tpSpelling(flags, i), o, tp))
					}
				}
				if !found && s.TP > 1 {
					if in != nil && in.tpFlag != "" {
						flags = append(flags, in.tpFlag, tp)
						notes = append(notes, fmt.Sprintf("added %s %s: placement gives the engine %d GPUs", in.tpFlag, tp, s.TP))
					} else {
						notes = append(notes, fmt.Sprintf("tensor parallelism %d not applied: no tensor-parallel flag for %s", s.TP, firstOr(argv, "")))
					}
				}
			}
			argv = append(slices.Clone(head), flags...)
			read = flags
		} else {
			text := argv[script]
			var old []string
			var found bool
			text, old, found = rewriteScriptFlag(text, []string{"--port"}, port, "PORT")
			for _, o := range old {
				origPorts[strings.Trim(o, `"'`)] = true
				notes = append(notes, fmt.Sprintf("runner --port %s replaced by %s in the script (ports are allocated per host)", o, port))
			}
			switch {
			case !found && engine != "":
				errs.Add("command", "the script sets no --port, so the engine cannot be given the port allocated to it",
					"add --port $(PORT) to the engine's command line")
			case !found:
				notes = append(notes, fmt.Sprintf("no --port in the script: the program must listen on $PORT (%s)", port))
			}
			if s.Host != "" {
				text, old, _ = rewriteScriptFlag(text, []string{"--host"}, s.Host, "")
				for _, o := range old {
					notes = append(notes, fmt.Sprintf("runner --host %s replaced by %s in the script", o, s.Host))
				}
			}
			if s.TP > 0 {
				tp := strconv.Itoa(s.TP)
				text, old, found = rewriteScriptFlag(text, tpFlags, tp, "")
				for _, o := range old {
					notes = append(notes, fmt.Sprintf("runner tensor parallelism %s overridden to %s by placement in the script", o, tp))
				}
				if !found && s.TP > 1 {
					notes = append(notes, fmt.Sprintf("tensor parallelism %d not applied: the script has no tensor-parallel flag", s.TP))
				}
			}
			argv = slices.Clone(argv)
			argv[script] = text
			read = looseFields(text, env.get)
		}
	}

	// Addresses and names.
	s.Engine = engine
	host := s.Host
	if host == "" {
		if v, ok := flagValue(read, "--host"); ok && len(v) > 0 {
			host = v[0]
		} else if engine == Ollama {
			host = "127.0.0.1"
			if h, ok := env.get("OLLAMA_HOST"); ok {
				host = ollamaHostPart(h)
			}
		} else if in != nil {
			host = in.hostDef
		}
	}
	s.Host = host
	l := Launch{Engine: engine, Host: host, Port: s.Port, Served: runnerNames(engine, read, vllmModel, s)}
	l.Notes = notes
	if engine == VLLM || engine == SGLang {
		hfEnv(s, env.setDefault) // the runner's own settings stay
	}
	placementEnv(s, env, &l)

	// Probes.
	for _, p := range c.Ports {
		origPorts[strconv.Itoa(int(p.ContainerPort))] = true
	}
	for _, pr := range []struct {
		name string
		p    *v1.Probe
		dst  **Probe
	}{{"startupProbe", c.StartupProbe, &l.Startup}, {"readinessProbe", c.ReadinessProbe, &l.Readiness}, {"livenessProbe", c.LivenessProbe, &l.Liveness}} {
		if pr.p == nil {
			continue
		}
		p, perrs, note := convertProbe(pr.name, pr.p, origPorts, s.Port)
		errs = append(errs, perrs...)
		if note != "" {
			l.Notes = append(l.Notes, note)
		}
		*pr.dst = p
	}
	if in != nil {
		l.setProbes(in)
		l.setMetrics(in, read)
	} else {
		l.setProbes(&unknownEngine)
	}

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
	if len(errs) > 0 {
		errs.Sort()
		return Launch{}, errs
	}
	l.Argv = argv
	l.Env = env.list()
	return l, nil
}

// unknownEngine probes a program Citadel does not know by TCP connect.
var unknownEngine = info{
	startup:   Probe{Period: 5 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 360},
	readiness: Probe{Period: 10 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	liveness:  Probe{Period: 30 * time.Second, Timeout: 10 * time.Second, SuccessThreshold: 1, FailureThreshold: 5},
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

// runnerNames returns the names the engine answers to, read from its flags.
func runnerNames(engine string, flags []string, vllmModel string, s Spec) []string {
	first := func(name string) string {
		if v, ok := flagValue(flags, name); ok && len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch engine {
	case VLLM:
		if v, ok := flagValue(flags, "--served-model-name"); ok && len(v) > 0 {
			return v
		}
		if vllmModel != "" {
			return []string{vllmModel}
		}
		if m := first("--model"); m != "" {
			return []string{m}
		}
	case SGLang:
		if n := first("--served-model-name"); n != "" {
			return []string{n}
		}
		if m := first("--model-path"); m != "" {
			return []string{m}
		}
	case LlamaCPP:
		if a := first("--alias"); a != "" {
			return strings.Split(a, ",")
		}
		if m := first("--model"); m != "" {
			return []string{m}
		}
	}
	if s.ModelName == "" && len(s.ServedNames) == 0 {
		return nil
	}
	return servedNames(s)
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

// ollamaHostPart returns the host of an OLLAMA_HOST value (scheme://host:port, host:port or host).
func ollamaHostPart(v string) string {
	if _, rest, ok := strings.Cut(v, "://"); ok {
		v = rest
	}
	if i := strings.LastIndexByte(v, ':'); i >= 0 && !strings.Contains(v[i:], "]") {
		v = v[:i]
	}
	v = strings.Trim(v, "[]")
	if v == "" {
		return "127.0.0.1"
	}
	return v
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

var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true}

// shellScript finds the script of `sh [-opts] -c [--] SCRIPT [args…]`.
func shellScript(argv []string) (int, bool) {
	if len(argv) < 2 || !shells[filepath.Base(argv[0])] {
		return 0, false
	}
	sawC := false
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--" || a == "-":
			if sawC && i+1 < len(argv) {
				return i + 1, true
			}
			return 0, false
		case a == "-o" || a == "+o":
			i++
		case strings.HasPrefix(a, "--"):
			// a long option (--login, --norc)
		case strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+"):
			if strings.ContainsRune(a[1:], 'c') {
				sawC = true
			}
		default:
			if sawC {
				return i, true
			}
			return 0, false
		}
	}
	return 0, false
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func isAssignment(w string) bool {
	k, _, ok := strings.Cut(w, "=")
	return ok && nameRE.MatchString(k)
}

// simpleCommand splits a shell script that is one simple command into its
// words, as the shell would: quotes, backslashes, line continuations,
// comments, and $VAR / ${VAR} of variables lookup knows. Anything else
// (operators, several commands, command substitution, globs, unknown or
// special variables, word splitting of an expansion) returns why not.
func simpleCommand(script string, lookup func(string) (string, bool)) (words []string, why string) {
	var cur strings.Builder
	inWord, ended := false, false // ended: a newline after the first command's words
	endWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	start := func() string {
		if ended {
			return "it has more than one command"
		}
		inWord = true
		return ""
	}
	// expand reads a parameter expansion at script[i] == '$'; it returns the
	// index after it.
	expand := func(i int, quoted bool) (int, string) {
		rest := script[i+1:]
		var name string
		n := 0
		switch {
		case strings.HasPrefix(rest, "("):
			return 0, "it uses command substitution $(…)"
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return 0, "it has an unterminated ${"
			}
			name, n = rest[1:end], end+1
		default:
			for n < len(rest) && (rest[n] == '_' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || n > 0 && rest[n] >= '0' && rest[n] <= '9') {
				n++
			}
			name = rest[:n]
			if name == "" {
				if quoted && (len(rest) == 0 || rest[0] == '"') {
					cur.WriteByte('$')
					return i + 1, ""
				}
				return 0, "it uses a special parameter"
			}
		}
		if !nameRE.MatchString(name) {
			return 0, fmt.Sprintf("it uses the expansion ${%s}", name)
		}
		v, ok := lookup(name)
		if !ok {
			return 0, fmt.Sprintf("it uses $%s, which the launch does not define", name)
		}
		if !quoted && strings.ContainsAny(v, " \t\n*?[") {
			return 0, fmt.Sprintf("unquoted $%s would be split into words", name)
		}
		cur.WriteString(v)
		return i + 1 + n, ""
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
			i++
		case c == '\n':
			endWord()
			if len(words) > 0 {
				ended = true
			}
			i++
		case c == '\\':
			if i+1 < len(script) && script[i+1] == '\n' {
				i += 2
				continue
			}
			if why := start(); why != "" {
				return nil, why
			}
			if i+1 < len(script) {
				cur.WriteByte(script[i+1])
			}
			i += 2
		case c == '#' && !inWord:
			for i < len(script) && script[i] != '\n' {
				i++
			}
		case c == '\'':
			if why := start(); why != "" {
				return nil, why
			}
			end := strings.IndexByte(script[i+1:], '\'')
			if end < 0 {
				return nil, "it has an unterminated single quote"
			}
			cur.WriteString(script[i+1 : i+1+end])
			i += end + 2
		case c == '"':
			if why := start(); why != "" {
				return nil, why
			}
			i++
			for {
				if i >= len(script) {
					return nil, "it has an unterminated double quote"
				}
				d := script[i]
				if d == '"' {
					i++
					break
				}
				switch d {
				case '\\':
					if i+1 < len(script) && strings.IndexByte("$`\"\\\n", script[i+1]) >= 0 {
						if script[i+1] != '\n' {
							cur.WriteByte(script[i+1])
						}
						i += 2
						continue
					}
					cur.WriteByte(d)
					i++
				case '`':
					return nil, "it uses command substitution `…`"
				case '$':
					var why string
					if i, why = expand(i, true); why != "" {
						return nil, why
					}
				default:
					cur.WriteByte(d)
					i++
				}
			}
		case c == '$':
			if why := start(); why != "" {
				return nil, why
			}
			var why string
			if i, why = expand(i, false); why != "" {
				return nil, why
			}
		case strings.IndexByte(";&|<>()`", c) >= 0:
			return nil, fmt.Sprintf("it uses the shell operator %q", c)
		case strings.IndexByte("*?[{}", c) >= 0:
			return nil, fmt.Sprintf("it uses the pattern character %q", c)
		case c == '~' && !inWord:
			return nil, "it uses ~ expansion"
		default:
			if why := start(); why != "" {
				return nil, why
			}
			cur.WriteByte(c)
			i++
		}
	}
	endWord()
	if len(words) == 0 {
		return nil, "it is empty"
	}
	return words, ""
}

// looseFields splits a script into words for reading flags: continuations
// joined, quotes dropped, $VAR and ${VAR} of known variables substituted.
func looseFields(script string, lookup func(string) (string, bool)) []string {
	script = strings.ReplaceAll(script, "\\\n", " ")
	fields := strings.Fields(script)
	for i, f := range fields {
		f = strings.NewReplacer(`"`, "", `'`, "").Replace(f)
		fields[i] = varRE.ReplaceAllStringFunc(f, func(m string) string {
			name := strings.Trim(m, "${}")
			if v, ok := lookup(name); ok {
				return v
			}
			return m
		})
	}
	return fields
}

var varRE = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// rewriteScriptFlag sets the value of a flag (any of names) in a script's
// text. A value that is a reference to keepVar ($PORT, ${PORT}) is left: the
// variable already holds the value. It returns the old values.
func rewriteScriptFlag(script string, names []string, value, keepVar string) (string, []string, bool) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	re := regexp.MustCompile(`(^|\s)(` + strings.Join(quoted, "|") + `)(=|[ \t]+)("[^"]*"|'[^']*'|[^\s\\;&|]+)`)
	var old []string
	found := false
	out := re.ReplaceAllStringFunc(script, func(m string) string {
		sub := re.FindStringSubmatch(m)
		found = true
		v := sub[4]
		bare := strings.Trim(v, `"'`)
		if bare == value || keepVar != "" && (bare == "$"+keepVar || bare == "${"+keepVar+"}") {
			return m
		}
		old = append(old, v)
		return sub[1] + sub[2] + " " + value
	})
	return out, old, found
}
