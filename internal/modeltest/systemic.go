package modeltest

// The systemic probe: what every model shares (the hub, the token, the storage, the model
// agent), checked when several models are stuck at once, and the one cause it gives them.
// The probe is the diagnosis's only I/O (HTTP requests to the hub, statfs of the storage).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
)

// ProbeInput is what the systemic probe checks.
type ProbeInput struct {
	HubEndpoint string // default https://huggingface.co
	Token       string // "" skips the token check
	StoragePath string // "" skips the storage check
	NeedBytes   int64  // the model's size; 0: only writability is checked
	Client      *http.Client
	Stuck       []Facts // models stuck at once
}

// Systemic check names.
const (
	CheckHub     = "hub"
	CheckToken   = "token"
	CheckStorage = "storage"
	CheckAgent   = "agent"
)

// probeTimeout bounds each request of the probe.
const probeTimeout = 5 * time.Second

// SystemicProbe checks what is shared by every model: the hub is reachable, the token is
// valid, the storage path has space and is writable, the model agent makes progress.
func SystemicProbe(ctx context.Context, in ProbeInput) []SystemicCheck {
	ep := strings.TrimRight(orDefault(in.HubEndpoint, "https://huggingface.co"), "/")
	hc := in.Client
	if hc == nil {
		hc = &http.Client{}
	}
	hub := probeHub(ctx, hc, ep)
	checks := []SystemicCheck{hub}
	if in.Token != "" {
		if hub.Passed {
			checks = append(checks, probeToken(ctx, hc, ep, in.Token))
		} else {
			checks = append(checks, SystemicCheck{Name: CheckToken, Detail: "not checked: the hub is unreachable"})
		}
	}
	if in.StoragePath != "" {
		checks = append(checks, probeStorage(in.StoragePath, in.NeedBytes))
	}
	if len(in.Stuck) > 0 {
		checks = append(checks, probeAgent(in.Stuck))
	}
	return checks
}

func request(ctx context.Context, hc *http.Client, method, target, token string) (*http.Response, []byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "citadel-test")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("no answer within %s", probeTimeout)
		case errors.As(err, &ue):
			err = ue.Err // the URL is in the detail already
		}
		return nil, nil, time.Since(start), err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, body, time.Since(start), nil
}

// Hub check details start with these words; DiagnoseSystemic reads them.
const (
	detailUnreachable = "unreachable: "
	detailNoSpace     = "not enough space: "
	detailNotWritable = "not writable: "
	detailNoAgent     = "no model agent: "
)

func probeHub(ctx context.Context, hc *http.Client, ep string) SystemicCheck {
	c := SystemicCheck{Name: CheckHub}
	u := ep + "/api/models?limit=1"
	resp, _, took, err := request(ctx, hc, http.MethodGet, u, "")
	if err != nil {
		c.Detail = fmt.Sprintf("%sGET %s: %v", detailUnreachable, u, err)
		return c
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		// A mirror without the API: is the host up at all?
		hresp, _, htook, herr := request(ctx, hc, http.MethodHead, ep, "")
		switch {
		case herr != nil:
			c.Detail = fmt.Sprintf("%sGET %s: %s; HEAD %s: %v", detailUnreachable, u, resp.Status, ep, herr)
		case hresp.StatusCode >= 500:
			c.Detail = fmt.Sprintf("%sHEAD %s: %s", detailUnreachable, ep, hresp.Status)
		default:
			c.Passed = true
			c.Detail = fmt.Sprintf("HEAD %s: %s in %s (GET %s: %s: not a full hub API)", ep, hresp.Status, htook.Round(time.Millisecond), u, resp.Status)
		}
		return c
	}
	if resp.StatusCode >= 500 {
		c.Detail = fmt.Sprintf("%sGET %s: %s: the hub answers but fails", detailUnreachable, u, resp.Status)
		return c
	}
	c.Passed = true
	c.Detail = fmt.Sprintf("GET %s: %s in %s", u, resp.Status, took.Round(time.Millisecond))
	if resp.StatusCode == http.StatusTooManyRequests {
		c.Detail += " (reachable, but rate-limiting this host)"
	}
	return c
}

func probeToken(ctx context.Context, hc *http.Client, ep, token string) SystemicCheck {
	c := SystemicCheck{Name: CheckToken}
	u := ep + "/api/whoami-v2"
	resp, body, _, err := request(ctx, hc, http.MethodGet, u, token)
	if err != nil {
		c.Detail = fmt.Sprintf("GET %s: %v", u, err)
		return c
	}
	var who struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &who)
	switch {
	case resp.StatusCode == http.StatusOK:
		c.Passed = true
		c.Detail = "token accepted by " + u
		if who.Name != "" {
			c.Detail += " (account " + who.Name + ")"
		}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		c.Detail = fmt.Sprintf("token rejected: GET %s: %s", u, resp.Status)
		if who.Error != "" {
			c.Detail += ": " + who.Error
		}
	default:
		c.Passed = true // a mirror may not implement whoami: not evidence against the token
		c.Detail = fmt.Sprintf("not verified: GET %s: %s", u, resp.Status)
	}
	return c
}

func probeStorage(path string, need int64) SystemicCheck {
	c := SystemicCheck{Name: CheckStorage}
	dir, note := filepath.Clean(path), ""
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			c.Detail = fmt.Sprintf("%s%s: no existing directory on its path", detailNotWritable, path)
			return c
		}
		dir = parent
		note = fmt.Sprintf(" (%s does not exist yet; checked %s)", path, dir)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		c.Detail = fmt.Sprintf("%scannot stat %s: %v", detailNotWritable, dir, err)
		return c
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	tmp, err := os.CreateTemp(dir, ".citadel-test-*")
	if err != nil {
		c.Detail = fmt.Sprintf("%s%v%s", detailNotWritable, err, note)
		return c
	}
	name := tmp.Name()
	tmp.Close()
	if err := os.Remove(name); err != nil {
		c.Detail = fmt.Sprintf("%sremoving %s: %v%s", detailNotWritable, name, err, note)
		return c
	}
	if need > 0 && free < need {
		c.Detail = fmt.Sprintf("%sneed %s, %s free on %s%s", detailNoSpace, modelinfo.FormatBytes(need), modelinfo.FormatBytes(free), dir, note)
		return c
	}
	c.Passed = true
	c.Detail = fmt.Sprintf("%s free on %s, writable%s", modelinfo.FormatBytes(free), dir, note)
	if need > 0 {
		c.Detail = fmt.Sprintf("%s free on %s (the model needs %s), writable%s", modelinfo.FormatBytes(free), dir, modelinfo.FormatBytes(need), note)
	}
	return c
}

func probeAgent(stuck []Facts) SystemicCheck {
	c := SystemicCheck{Name: CheckAgent}
	var moving, lines []string
	awaiting := 0
	for _, f := range stuck {
		if f.ModelReason == v1.ReasonAwaitingAgent {
			awaiting++
		}
		if f.NoProgressFor < time.Minute && (f.BytesDone > 0 || !f.LastProgress.IsZero()) {
			moving = append(moving, fmt.Sprintf("%s (%s of %s)", f.Model, modelinfo.FormatBytes(f.BytesDone), modelinfo.FormatBytes(f.BytesTotal)))
		}
		lines = append(lines, stuckLine(f))
	}
	switch {
	case awaiting == len(stuck):
		c.Detail = fmt.Sprintf("%severy stuck model waits with AwaitingAgent: %s", detailNoAgent, strings.Join(lines, "; "))
	case len(moving) > 0:
		c.Passed = true
		c.Detail = "bytes moved in the last minute for " + strings.Join(moving, ", ")
	default:
		c.Detail = fmt.Sprintf("no bytes moved in the last minute for any of %d stuck models: %s", len(stuck), strings.Join(lines, "; "))
	}
	return c
}

func stuckLine(f Facts) string {
	s := fmt.Sprintf("%s: %s", f.Model, orDefault(f.ModelPhase, "no status"))
	if f.ModelReason != "" {
		s += " (" + f.ModelReason + ")"
	}
	s += fmt.Sprintf(", %s of %s, no progress for %s", modelinfo.FormatBytes(f.BytesDone), modelinfo.FormatBytes(f.BytesTotal), f.NoProgressFor.Round(time.Second))
	return s
}

func rerun(names []string) string {
	cmds := make([]string, 0, len(names))
	for _, n := range names {
		cmds = append(cmds, "citadel test model "+n)
	}
	return strings.Join(cmds, "; ")
}

func checkLine(c SystemicCheck) string {
	st := "ok"
	if !c.Passed {
		st = "FAILED"
	}
	return fmt.Sprintf("systemic check %s: %s: %s", c.Name, st, c.Detail)
}

// checkCode names a failed check's cause.
func checkCode(c SystemicCheck) string {
	switch c.Name {
	case CheckHub:
		return CodeHubUnreachable
	case CheckToken:
		return v1.ReasonUnauthorized
	case CheckStorage:
		if strings.HasPrefix(c.Detail, detailNoSpace) {
			return v1.ReasonInsufficientStorage
		}
		return v1.ReasonStorageNotWritable
	case CheckAgent:
		if strings.HasPrefix(c.Detail, detailNoAgent) {
			return CodeNoModelAgent
		}
		return CodeAgentStalled
	}
	return c.Name
}

// DiagnoseSystemic: when several models are stuck at once and a systemic check fails, the
// cause is systemic (Cause.Systemic, Code "Systemic" + the failing check, e.g.
// "SystemicHubUnreachable"), naming every stuck model. nil otherwise.
func DiagnoseSystemic(stuck []Facts, checks []SystemicCheck) *Cause {
	if len(stuck) < 2 {
		return nil
	}
	return systemicCause(stuck, checks)
}

func systemicCause(stuck []Facts, checks []SystemicCheck) *Cause {
	var fail *SystemicCheck
	for _, name := range []string{CheckHub, CheckToken, CheckStorage, CheckAgent} { // causes before symptoms
		for i := range checks {
			if checks[i].Name == name && !checks[i].Passed && !strings.HasPrefix(checks[i].Detail, "not checked") {
				fail = &checks[i]
				break
			}
		}
		if fail != nil {
			break
		}
	}
	if fail == nil || len(stuck) == 0 {
		return nil
	}
	code := checkCode(*fail)
	// The hub the probe checked (HF_ENDPOINT: a mirror), else the one the runs were given.
	hub := ""
	for _, ch := range checks {
		if ch.Name == CheckHub {
			hub = endpointIn(ch.Detail)
		}
	}
	if hub == "" {
		hub = orDefault(strings.TrimRight(stuck[0].HubEndpoint, "/"), defaultHub)
	}
	names := make([]string, 0, len(stuck))
	for _, f := range stuck {
		names = append(names, f.Model)
	}
	c := &Cause{Code: CodeSystemic + code, Step: StepDownload, Systemic: true}
	what := map[string]string{
		CodeHubUnreachable:           "the hub is unreachable",
		v1.ReasonUnauthorized:        "the hub rejects the token",
		v1.ReasonInsufficientStorage: "the storage has no room",
		v1.ReasonStorageNotWritable:  "the storage is not writable",
		CodeNoModelAgent:             "no model agent runs",
		CodeAgentStalled:             "the model agent moves no bytes for any of them",
	}[code]
	models := "model " + names[0] + " is"
	if len(names) > 1 {
		models = fmt.Sprintf("%d models (%s) are", len(names), strings.Join(names, ", "))
	}
	c.Summary = fmt.Sprintf("Not a fault of the models: %s stuck because %s: %s", models, what, strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(fail.Detail, detailUnreachable), detailNoSpace), detailNotWritable), detailNoAgent))
	c.Evidence = append(c.Evidence, checkLine(*fail))
	for _, ch := range checks {
		if ch.Name != fail.Name {
			c.Evidence = append(c.Evidence, checkLine(ch))
		}
	}
	for _, f := range stuck {
		l := "stuck " + stuckLine(f)
		if f.ModelMessage != "" {
			l += ": " + f.ModelMessage
		}
		c.Evidence = append(c.Evidence, l)
	}
	switch code {
	case CodeHubUnreachable:
		c.NextSteps = []string{
			fmt.Sprintf("from the server's host: curl -sS -o /dev/null -w '%%{http_code}\\n' %s/api/models?limit=1", hub),
			"check DNS, the firewall and the proxy (HTTPS_PROXY / NO_PROXY) of `citadel serve`; unset HF_HUB_OFFLINE",
			"the agent resumes every model on its own once the hub answers; then rerun them: " + rerun(names),
		}
	case v1.ReasonUnauthorized:
		c.NextSteps = []string{
			fmt.Sprintf("create a new read token at %s/settings/tokens and export it as HF_TOKEN", hub),
			"replace the shared secret: " + tokenSecretCmd(v1.ClusterSecretNamespace, "hf-token", "token"),
			"then rerun them: " + rerun(names),
		}
	case v1.ReasonInsufficientStorage:
		c.NextSteps = []string{
			"df -h on the storage path; free space (citadel delete model NAME) or move the cache: citadel serve --data-dir DIR",
			"test fewer models at once: their sizes add up",
		}
	case v1.ReasonStorageNotWritable:
		c.NextSteps = []string{"make the storage path writable by the user that runs citadel serve (ls -ld PATH), or set another spec.storage.path"}
	case CodeNoModelAgent:
		c.NextSteps = []string{"start the server with the agent: citadel serve --agent=true (the default)"}
	default:
		c.NextSteps = []string{
			"the agent is alive but no download moves: check the server's log for the model agent (citadel serve --log-level debug)",
			"see the slots: citadel get models; lower or raise citadel serve --max-downloads",
			"restart `citadel serve`: partial files are kept and resumed",
		}
	}
	return c
}
