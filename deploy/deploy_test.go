package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/deploy"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/sim/simtest"
	"citadel.dev/citadel/internal/telemetry"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := deploy.Files.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dashboard is the part of Grafana's dashboard model the test reads.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                       `json:"id"`
	Type       string                    `json:"type"`
	Title      string                    `json:"title"`
	Datasource json.RawMessage           `json:"datasource"`
	GridPos    *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		RefID      string          `json:"refId"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// exprs are every PromQL expression of the kit, named by where it is.
type exprs map[string]string

// TestDashboard checks the dashboard's shape: what Grafana needs to import it with the
// Prometheus data source as a choice, and a query on every panel.
func TestDashboard(t *testing.T) {
	d, _ := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed", d.Title, d.UID)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want at least 39", d.SchemaVersion)
	}
	var ds bool
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Name == "datasource" && v.Query == "prometheus" {
			ds = true
		}
	}
	if !ds {
		t.Errorf("templating has no datasource variable named datasource over prometheus")
	}
	if len(d.Panels) < 10 {
		t.Errorf("%d panels", len(d.Panels))
	}
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.GridPos == nil || p.Title == "" {
				t.Errorf("panel %d %q: needs a title and a gridPos", p.ID, p.Title)
			}
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
			}
			ids[p.ID] = p.Title
			walk(p.Panels)
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no targets", p.Title)
			}
			if !strings.Contains(string(p.Datasource), "${datasource}") {
				t.Errorf("panel %q: datasource %s, want the ${datasource} variable", p.Title, p.Datasource)
			}
			for _, q := range p.Targets {
				if strings.TrimSpace(q.Expr) == "" || q.RefID == "" {
					t.Errorf("panel %q: a target without expr or refId", p.Title)
				}
			}
		}
	}
	walk(d.Panels)
}

func loadDashboard(t *testing.T) (dashboard, exprs) {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(read(t, "grafana/citadel.json"), &d); err != nil {
		t.Fatalf("grafana/citadel.json: %v", err)
	}
	out := exprs{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, q := range p.Targets {
				out[fmt.Sprintf("dashboard panel %q %s", p.Title, q.RefID)] = q.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			// label_values(METRIC, LABEL): only the metric is a name to check
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("variable %s: definition %q is not label_values(metric, label)", v.Name, v.Definition)
				continue
			}
			out["dashboard variable "+v.Name] = m[1]
		}
	}
	return d, out
}

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// loadRules returns the rules' expressions and the series the recording rules make.
func loadRules(t *testing.T) (exprs, map[string]bool) {
	t.Helper()
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(read(t, "prometheus/rules.yml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("prometheus/rules.yml: %v", err)
	}
	out, recorded := exprs{}, map[string]bool{}
	for _, g := range rf.Groups {
		for i, r := range g.Rules {
			if (r.Record == "") == (r.Alert == "") || r.Expr == "" {
				t.Errorf("group %s rule %d: needs exactly one of record and alert, and an expr", g.Name, i)
			}
			if r.Alert != "" && (r.Labels["severity"] == "" || r.Annotations["summary"] == "") {
				t.Errorf("alert %s: needs a severity label and a summary", r.Alert)
			}
			if r.Record != "" {
				recorded[r.Record] = true
			}
			out[fmt.Sprintf("rules.yml %s %s%s", g.Name, r.Record, r.Alert)] = r.Expr
		}
	}
	return out, recorded
}

// TestPrometheusConfig checks the scrape configuration's jobs and that it loads the rules.
func TestPrometheusConfig(t *testing.T) {
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string           `yaml:"job_name"`
			MetricsPath   string           `yaml:"metrics_path"`
			StaticConfigs []map[string]any `yaml:"static_configs"`
			FileSDConfigs []map[string]any `yaml:"file_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(read(t, "prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatalf("prometheus/prometheus.yml: %v", err)
	}
	if !slices.Contains(cfg.RuleFiles, "rules.yml") {
		t.Errorf("rule_files %v lacks rules.yml", cfg.RuleFiles)
	}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
		if len(sc.StaticConfigs)+len(sc.FileSDConfigs) == 0 {
			t.Errorf("job %s has no targets", sc.JobName)
		}
	}
	for _, j := range []string{"citadel-server", "citadel-gateway", "citadel-engines"} {
		if !jobs[j] {
			t.Errorf("no scrape job %s", j)
		}
	}
	// The admin job's commented authorization, uncommented, sends the admin token.
	var auth struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			Authorization struct {
				Type            string `yaml:"type"`
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(withAdminToken(t, "/etc/prometheus/citadel-admin.token")), &auth); err != nil {
		t.Fatalf("prometheus.yml with the admin job's authorization uncommented: %v", err)
	}
	for _, sc := range auth.ScrapeConfigs {
		if sc.JobName == "citadel-server" && (sc.Authorization.Type != "Bearer" || sc.Authorization.CredentialsFile == "") {
			t.Errorf("citadel-server's authorization, uncommented: %+v, want a Bearer credentials_file", sc.Authorization)
		}
	}
}

// withAdminToken is prometheus.yml with the citadel-server job's authorization uncommented and
// its credentials file at path.
func withAdminToken(t *testing.T, path string) string {
	t.Helper()
	const commented = "    # authorization:\n    #   type: Bearer\n    #   credentials_file: /etc/prometheus/citadel-admin.token\n"
	cfg := string(read(t, "prometheus/prometheus.yml"))
	if !strings.Contains(cfg, commented) {
		t.Fatalf("prometheus.yml lacks the citadel-server job's commented authorization:\n%s", commented)
	}
	return strings.Replace(cfg, commented, "    authorization:\n      type: Bearer\n      credentials_file: "+path+"\n", 1)
}

// TestPromtool checks the kit with Prometheus's own promtool: the configuration (as shipped and
// with the admin token), the rules, and the rules' unit tests (prometheus/rules_test.yml).
// Without promtool on PATH it is skipped, unless CITADEL_REQUIRE_PROMTOOL=1. Debian's
// prometheus package has it.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CITADEL_REQUIRE_PROMTOOL") == "1" {
			t.Fatal("CITADEL_REQUIRE_PROMTOOL=1 but promtool is not on PATH (apt-get install prometheus)")
		}
		t.Skip("promtool not on PATH; set CITADEL_REQUIRE_PROMTOOL=1 to make this a failure")
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "citadel-admin.token")
	for name, b := range map[string][]byte{
		"prometheus.yml":      read(t, "prometheus/prometheus.yml"),
		"with-token.yml":      []byte(withAdminToken(t, token)),
		"rules.yml":           read(t, "prometheus/rules.yml"),
		"rules_test.yml":      read(t, "prometheus/rules_test.yml"),
		"citadel-admin.token": []byte("s3cret\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "config", "with-token.yml"},
		{"check", "rules", "rules.yml"},
		{"test", "rules", "rules_test.yml"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestSystemdUnit checks the unit runs citadel serve and keeps the GPU devices reachable.
func TestSystemdUnit(t *testing.T) {
	unit := string(read(t, "systemd/citadel.service"))
	for _, want := range []string{"ExecStart=/usr/local/bin/citadel serve", "EnvironmentFile=", "Restart=on-failure", "StateDirectory=citadel", "KillMode=mixed"} {
		if !strings.Contains(unit, want) {
			t.Errorf("citadel.service lacks %q", want)
		}
	}
	var set []string // the unit's settings, comments left out
	for _, l := range strings.Split(unit, "\n") {
		if l = strings.TrimSpace(l); l != "" && l[0] != '#' && l[0] != ';' {
			set = append(set, l)
		}
	}
	for _, bad := range []string{"PrivateDevices=yes", "PrivateDevices=true", "DevicePolicy=strict", "DevicePolicy=closed", "MemoryDenyWriteExecute=yes", "MemoryDenyWriteExecute=true",
		"ProtectClock=yes", "ProtectClock=true"} {
		if slices.Contains(set, bad) {
			t.Errorf("citadel.service sets %q, which keeps engines from the GPUs (a device allow-list) or breaks CUDA's JIT", bad)
		}
	}
	env := string(read(t, "systemd/citadel.env"))
	for _, want := range []string{"CITADEL_DATA_DIR=", "HF_HOME=", "OLLAMA_MODELS="} {
		if !strings.Contains(env, want) {
			t.Errorf("citadel.env lacks %s", want)
		}
	}
}

// TestMetricNamesAreExposed runs a gateway in front of simulated vLLM (two metric
// generations), SGLang and llama.cpp engines, sends it traffic that makes every gateway series
// appear (streams, a failing target with a fallback, a virtual model), runs citadel serve with
// a model downloaded from a mirror and a Ready service on a simulated GPU, scrapes every
// /metrics and checks that each metric name in the dashboard and the rules is one of them, or
// a series a recording rule makes, or Prometheus's own up.
func TestMetricNamesAreExposed(t *testing.T) {
	_, dash := loadDashboard(t)
	rules, recorded := loadRules(t)

	newEngine := func(cfg sim.Config) string {
		cfg.Plan = simtest.Plan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
		cfg.LoadTime = -1
		s, err := sim.NewOpenAI(cfg)
		if err != nil {
			t.Fatal(err)
		}
		url, _ := simtest.Serve(t, s)
		return url
	}
	engines := map[string]string{
		"vllm":       newEngine(sim.Config{ServedModelNames: []string{"qwen"}}),
		"vllm-0.10":  newEngine(sim.Config{ServedModelNames: []string{"old"}, VLLMVersion: "0.10.1"}),
		"sglang":     newEngine(sim.Config{Engine: sim.EngineSGLang, ServedModelNames: []string{"sg"}, EnableMetrics: true}),
		"llamacpp":   newEngine(sim.Config{Engine: sim.EngineLlamaCPP, ServedModelNames: []string{"cpp"}, EnableMetrics: true}),
		"vllm-fails": newEngine(sim.Config{ServedModelNames: []string{"bad"}, Faults: sim.Faults{FailRate: 1}}),
	}
	routes := fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: kit}
spec:
  models:
  - {name: qwen, targets: [{url: %q, model: qwen, engine: vllm}]}
  - {name: old, targets: [{url: %q, model: old, engine: vllm}]}
  - {name: sg, targets: [{url: %q, model: sg, engine: sglang}]}
  - {name: cpp, targets: [{url: %q, model: cpp, engine: llamacpp}]}
  - name: flaky
    targets: [{url: %q, model: bad, engine: vllm}]
    fallback: [{url: %[1]q, model: qwen, engine: vllm}]
  - name: auto
    tasks:
    - {task: code, model: sg, keywords: [git]}
    - {task: general, model: qwen}
`, engines["vllm"], engines["vllm-0.10"], engines["sglang"], engines["llamacpp"], engines["vllm-fails"])
	items, errs := config.Decode(strings.NewReader(routes), "routes.yaml")
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	opts := gateway.Options{HealthInterval: 100 * time.Millisecond, ScrapeInterval: 50 * time.Millisecond}
	for _, it := range items {
		if r, ok := it.Object.(*v1.Route); ok {
			opts.Routes = append(opts.Routes, r)
		}
	}
	gw := gateway.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.Run(ctx) }()
	ts := httptest.NewServer(gw.Handler())
	t.Cleanup(func() { ts.Close(); cancel(); <-done })

	for _, model := range []string{"qwen", "old", "sg", "cpp", "flaky", "auto"} {
		for _, stream := range []bool{false, true} {
			body := fmt.Sprintf(`{"model":%q,"max_tokens":6,"stream":%t,"messages":[{"role":"user","content":"how do I squash commits with git?"}]}`, model, stream)
			resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s stream=%t: %d %s", model, stream, resp.StatusCode, b)
			}
		}
	}
	// an unknown model: a 404 in the requests counter
	resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"nope","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	exposed := map[string]string{"up": "Prometheus"} // up is the scraper's own series
	add := func(source, url string) {
		t.Helper()
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s /metrics: %d %s", source, resp.StatusCode, b)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" || line[0] == '#' {
				continue
			}
			name, _, _ := strings.Cut(line, " ")
			name, _, _ = strings.Cut(name, "{")
			if _, ok := exposed[name]; !ok {
				exposed[name] = source
			}
		}
	}
	// the gateway scrapes the engines' load in the background; wait for its replica gauges
	deadline := time.Now().Add(5 * time.Second)
	for {
		add("gateway", ts.URL)
		if _, ok := exposed["citadel_gateway_replica_kv_cache_usage"]; ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, url := range engines {
		add(name, url)
	}
	serve := serveMetrics(t)
	checkServeValues(t, serve)
	for _, s := range serve {
		if _, ok := exposed[s.name]; !ok {
			exposed[s.name] = "citadel serve"
		}
	}
	// Series a simulated GPU cannot show: accepted when citadel serve describes them.
	described := describedNames()
	for _, name := range []string{"citadel_gpu_utilization_ratio"} {
		if _, ok := exposed[name]; !ok && described[name] {
			exposed[name] = "citadel serve with nvidia-smi"
		}
	}

	// the series a test of this kind must see, so that the traffic above stays sufficient
	for _, want := range []string{"citadel_gateway_requests_total", "citadel_gateway_retries_total", "citadel_gateway_failovers_total",
		"citadel_gateway_task_decisions_total", "citadel_gateway_time_to_first_token_seconds_bucket", "citadel_gateway_tokens_total",
		"citadel_gateway_replica_kv_cache_usage", "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "sglang:num_running_reqs", "llamacpp:requests_processing",
		"citadel_model_phase", "citadel_model_download_bytes", "citadel_service_phase", "citadel_gpu_memory_bytes", "citadel_agent_downloads_total"} {
		if _, ok := exposed[want]; !ok {
			t.Errorf("no source exposes %s", want)
		}
	}

	used := map[string]bool{}
	check := func(all exprs) {
		keys := make([]string, 0, len(all))
		for k := range all {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, where := range keys {
			if err := balanced(all[where]); err != nil {
				t.Errorf("%s: %v in %q", where, err, all[where])
			}
			names := metricNames(all[where])
			if len(names) == 0 && !strings.HasPrefix(all[where], "vector(") { // an objective is a constant
				t.Errorf("%s: no metric name in %q", where, all[where])
			}
			for _, n := range names {
				used[n] = true
				if _, ok := exposed[n]; !ok && !recorded[n] {
					t.Errorf("%s: %s is exposed by neither the gateway, a simulated engine nor citadel serve, nor recorded by rules.yml", where, n)
				}
			}
		}
	}
	check(dash)
	check(rules)
	for _, want := range []string{"citadel_gateway_task_decisions_total", "citadel_gateway_overhead_seconds_bucket", "vllm:num_requests_running",
		"sglang:num_running_reqs", "llamacpp:requests_processing", "vllm:time_to_first_token_seconds_bucket",
		"citadel_model_phase", "citadel_model_download_bytes", "citadel_model_size_bytes", "citadel_service_phase", "citadel_service_replicas_ready",
		"citadel_gpu_memory_bytes", "citadel_gpu_utilization_ratio"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	t.Logf("%d expressions use %d metric names; %d names exposed", len(dash)+len(rules), len(used), len(exposed))
}

// describedNames are the metric names citadel serve's collector describes.
func describedNames() map[string]bool {
	ch := make(chan *prometheus.Desc, 100)
	go func() { telemetry.New(telemetry.Options{}).Describe(ch); close(ch) }()
	out := map[string]bool{}
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

var (
	fqName      = regexp.MustCompile(`fqName: "([^"]+)"`)
	labelValues = regexp.MustCompile(`^label_values\(\s*([^,{)\s]+)`)
	stringLit   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	variable    = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_]\w*`)
	brackets    = regexp.MustCompile(`\[[^\]]*\]|\{[^}]*\}`)
	grouping    = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	token       = regexp.MustCompile(`[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?[a-z]*|[A-Za-z_:][A-Za-z0-9_:]*`)
	keywords    = map[string]bool{"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "offset": true, "bool": true, "inf": true, "nan": true, "Inf": true, "NaN": true}
)

// metricNames are the metric names a PromQL expression selects: identifiers outside strings,
// label matchers, ranges and grouping clauses that are neither keywords nor called.
func metricNames(expr string) []string {
	s := stringLit.ReplaceAllString(expr, `""`)
	s = variable.ReplaceAllString(s, "")
	s = brackets.ReplaceAllString(s, "")
	s = grouping.ReplaceAllString(s, "")
	var out []string
	for _, loc := range token.FindAllStringIndex(s, -1) {
		tok := s[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || keywords[tok] {
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	if balanced(`sum(rate(x[5m])`) == nil || balanced(`a{b="("}`) != nil {
		t.Error("balanced: wrong verdict")
	}
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le, model) (rate(citadel_gateway_time_to_first_token_seconds_bucket{model=~"$model"}[$__rate_interval])))`: {"citadel_gateway_time_to_first_token_seconds_bucket"},
		`sum without (code) (rate(vllm:prompt_tokens_total[5m] offset 1h)) / on(model) group_left() up`:                                              {"vllm:prompt_tokens_total", "up"},
		`1 - (sum(rate(a_total{code=~"5.."}[1h])) or vector(0)) > bool 1e-3`:                                                                         {"a_total"},
		`max by (model_name) (sglang:token_usage) and llamacpp:requests_deferred unless x:y:z`:                                                       {"sglang:token_usage", "llamacpp:requests_deferred", "x:y:z"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// balanced reports brackets that do not pair up outside string literals: the syntax slip a
// name check cannot see.
func balanced(expr string) error {
	var stack []rune
	pair := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for i, r := range stringLit.ReplaceAllString(expr, `""`) {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pair[r] {
				return fmt.Errorf("unmatched %q at %d", r, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("%d brackets left open", len(stack))
	}
	return nil
}
