package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// writeFile writes a config file into a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// effective runs serve --print-config and reads back what it prints.
func effective(t *testing.T, env map[string]string, args ...string) (map[string]string, string) {
	t.Helper()
	r := citadelEnv(t, env, "", append([]string{"serve", "--print-config"}, args...)...)
	if r.code != 0 {
		t.Fatalf("serve --print-config %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	var m map[string]string
	if err := yaml.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("--print-config wrote invalid YAML: %v\n%s", err, r.stdout)
	}
	return m, r.stdout
}

func TestServeConfigPrecedence(t *testing.T) {
	cfg := writeFile(t, "serve.yaml", `# a host's settings
gatewayAddr: 0.0.0.0:9080
logLevel: warn
maxDownloads: 4
stallTimeout: 2m
dataDir: /srv/citadel
simTimeScale: 0.5
agent: false
`)
	env := map[string]string{"CITADEL_DATA_DIR": "/from/env"}
	got, _ := effective(t, env, "--config", cfg, "--log-level", "debug", "--max-downloads=1")
	for key, want := range map[string]string{
		"gatewayAddr":  "0.0.0.0:9080",   // file over default
		"logLevel":     "debug",          // command line over file
		"maxDownloads": "1",              // command line over file
		"stallTimeout": "2m0s",           // file, parsed as a duration
		"dataDir":      "/srv/citadel",   // file over the environment's default
		"simTimeScale": "0.5",            // file
		"agent":        "false",          // file
		"adminAddr":    "127.0.0.1:8081", // default
		"engines":      "true",           // default
	} {
		if got[key] != want {
			t.Errorf("%s = %q, want %q", key, got[key], want)
		}
	}
	// without the file: the environment's default, then the flags'
	got, _ = effective(t, env)
	if got["dataDir"] != "/from/env" || got["gatewayAddr"] != "127.0.0.1:8080" {
		t.Errorf("no file: dataDir %q, gatewayAddr %q; want /from/env, 127.0.0.1:8080", got["dataDir"], got["gatewayAddr"])
	}
	// with neither, the data dir serve would use, not ""
	for xdg, want := range map[string]string{"": "/home/ada/.local/state/citadel", "/xdg": "/xdg/citadel"} {
		got, _ = effective(t, map[string]string{"HOME": "/home/ada", "XDG_STATE_HOME": xdg})
		if got["dataDir"] != want {
			t.Errorf("HOME=/home/ada XDG_STATE_HOME=%q: dataDir %q, want %q", xdg, got["dataDir"], want)
		}
	}
}

// TestServeConfigKeysAreTheFlags: every flag of serve a user sees has a key, and only they.
func TestServeConfigKeysAreTheFlags(t *testing.T) {
	got, _ := effective(t, nil)
	cmd := newServe(&env{getenv: func(string) string { return "" }})
	n := 0
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "config" || f.Name == "print-config" {
			return
		}
		n++
		if _, ok := got[configKey(f.Name)]; !ok {
			t.Errorf("--%s has no key %s in --print-config", f.Name, configKey(f.Name))
		}
	})
	if len(got) != n || n < 15 {
		t.Errorf("--print-config has %d keys for %d flags", len(got), n)
	}
	for _, k := range []string{"config", "printConfig", "nextStep", "server", "namespace", "token"} {
		if _, ok := got[k]; ok {
			t.Errorf("--print-config has key %s, which is not a setting of serve", k)
		}
	}
}

func TestServeConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "logLevel: info\n\ngatewayAdr: 127.0.0.1:1\n", []string{"serve.yaml:3:", `unknown key "gatewayAdr"`, "did you mean gatewayAddr?"}},
		{"a flag's own spelling", "gateway-addr: off\n", []string{"serve.yaml:1:", `unknown key "gateway-addr"`, "did you mean gatewayAddr?"}},
		{"nothing close", "colour: blue\n", []string{"serve.yaml:1:", `unknown key "colour"`, "keys are citadel serve's flags", "gatewayAddr"}},
		{"bad duration", "agent: true\nstallTimeout: 5 minutes\n", []string{"serve.yaml:2:", "stallTimeout", `"5 minutes" is not a valid duration`}},
		{"bad int", "maxDownloads: two\n", []string{"serve.yaml:1:", "maxDownloads", `"two" is not a valid int`}},
		{"bad bool", "engines: maybe\n", []string{"serve.yaml:1:", "engines", "not a valid bool"}},
		{"a list", "gpus:\n  - rtx-4090\n", []string{"serve.yaml:2:", "gpus needs a single value (string)"}},
		{"no value", "gpus:\n", []string{"serve.yaml:1:", "gpus needs a single value"}},
		{"twice", "gpus: none\ngpus: auto\n", []string{"serve.yaml:2:", "gpus is set twice (first on line 1)"}},
		{"not a mapping", "- gpus: none\n", []string{"serve.yaml:1:", "must be a mapping"}},
		{"a value serve checks itself", "gpus: none\nlogLevel: verbose\n", []string{`serve.yaml:2: logLevel "verbose": use debug, info, warn or error`}},
		{"not YAML", "gpus: [none\n", []string{"serve.yaml: not valid YAML"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeFile(t, "serve.yaml", c.body)
			r := citadelEnv(t, nil, "", "serve", "--config", cfg, "--print-config")
			if r.code != ExitUsage {
				t.Errorf("exit %d, want %d (usage)", r.code, ExitUsage)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("printed a config despite the error:\n%s", r.stdout)
			}
		})
	}
	r := citadelEnv(t, nil, "", "serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if r.code == 0 || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("a missing file: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestPrintConfigRoundTrips: what --print-config prints (from a file and flags) is a file
// --config reads to the same settings, with no flag given; an empty file changes nothing.
func TestPrintConfigRoundTrips(t *testing.T) {
	cfg := writeFile(t, "serve.yaml", "gatewayAddr: \"off\"\naccessLog: \"-\"\nminThroughput: 1.5\ngpus: 2xrtx-4070-ti-super\n")
	first, text := effective(t, nil, "--config", cfg, "--simulate-engines", "--log-format", "json", "--data-dir", "/tmp/x y")
	if !strings.Contains(text, "# --gateway-addr: inference gateway listen address") {
		t.Errorf("--print-config lacks the flags' help as comments:\n%s", text)
	}
	again := writeFile(t, "printed.yaml", text)
	second, text2 := effective(t, nil, "--config", again)
	if text2 != text {
		t.Errorf("printed again from its own output, the config differs:\nfirst:\n%s\nsecond:\n%s", text, text2)
	}
	for _, k := range []string{"gatewayAddr", "accessLog", "minThroughput", "gpus", "simulateEngines", "logFormat", "dataDir"} {
		if first[k] != second[k] {
			t.Errorf("%s: %q, then %q", k, first[k], second[k])
		}
	}
	if first["gatewayAddr"] != "off" || first["simulateEngines"] != "true" || first["dataDir"] != "/tmp/x y" {
		t.Errorf("gatewayAddr %q, simulateEngines %q, dataDir %q", first["gatewayAddr"], first["simulateEngines"], first["dataDir"])
	}
	empty, _ := effective(t, nil, "--config", writeFile(t, "empty.yaml", "# nothing yet\n"))
	defaults, _ := effective(t, nil)
	if len(empty) != len(defaults) || empty["gatewayAddr"] != defaults["gatewayAddr"] {
		t.Errorf("an empty file changed the settings: %v, want %v", empty, defaults)
	}
}

// TestPrintConfigHidesToken: the admin token is a secret; --print-config says it is set.
func TestPrintConfigHidesToken(t *testing.T) {
	got, text := effective(t, map[string]string{"CITADEL_ADMIN_TOKEN": "s3cret-token"})
	if strings.Contains(text, "s3cret-token") {
		t.Fatalf("--print-config shows the admin token:\n%s", text)
	}
	if _, ok := got["adminToken"]; ok || !strings.Contains(text, "adminToken is set") {
		t.Errorf("want a comment that adminToken is set, and no key:\n%s", text)
	}
}

// TestServeRunsFromConfig starts serve from a file alone and checks the server took it: the
// admin API on the file's address, no gateway, the file's data dir.
func TestServeRunsFromConfig(t *testing.T) {
	dataDir := t.TempDir()
	cfg := writeFile(t, "serve.yaml", "adminAddr: 127.0.0.1:0\ngatewayAddr: \"off\"\nengines: false\nagent: false\ndataDir: "+dataDir+"\nlogLevel: error\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "admin API and dashboard on") && time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done
	log := errb.String()
	for _, want := range []string{"admin API and dashboard on http://127.0.0.1:", "data in " + dataDir, "no gateway (--gateway-addr off)", "serving controller off"} {
		if !strings.Contains(log, want) {
			t.Errorf("serve's output lacks %q:\n%s", want, log)
		}
	}
}
