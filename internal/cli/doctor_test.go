package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/internal/doctor"
)

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// doctorLine is the line of check name in doctor's output.
func doctorLine(t *testing.T, out, name string) string {
	t.Helper()
	for l := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == name {
			return l
		}
	}
	t.Fatalf("no %s line in:\n%s", name, out)
	return ""
}

// TestDoctorThisHost runs citadel doctor end to end on this machine, with a server, a hub that
// refuses, and free ports: it must say what this host has (here: no GPU, no engine) and finish fast.
func TestDoctorThisHost(t *testing.T) {
	srv := startServer(t, t.TempDir(), "")
	home := t.TempDir()
	env := map[string]string{
		"HOME": home, "CITADEL_SERVER": srv.addr,
		"HF_ENDPOINT": "http://" + freeAddr(t), // refuses: hermetic, and quick
	}
	start := time.Now()
	r := citadelEnv(t, env, "", "doctor", "--admin-addr", freeAddr(t), "--gateway-addr", freeAddr(t), "--timeout", "2s")
	took := time.Since(start)
	t.Logf("doctor took %s:\n%s", took, r.stdout)
	if r.code != 0 {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if took > 10*time.Second {
		t.Errorf("doctor took %s", took)
	}
	gpu := doctorLine(t, r.stdout, "gpu")
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		for _, s := range []string{"warn", "nvidia-smi is not on PATH", "--simulate-engines"} {
			if !strings.Contains(gpu, s) {
				t.Errorf("gpu line lacks %q: %s", s, gpu)
			}
		}
	}
	for _, e := range doctor.Engines {
		line := doctorLine(t, r.stdout, "engine/"+e.Name)
		if _, err := exec.LookPath(e.Program); err != nil && !strings.Contains(line, e.Program+" is not on PATH") {
			t.Errorf("engine line: %s", line)
		}
		if strings.HasPrefix(line, "fail") {
			t.Errorf("a missing engine fails: %s", line)
		}
	}
	data := doctorLine(t, r.stdout, "disk/data-dir")
	if !strings.HasPrefix(data, "ok") || !strings.Contains(data, filepath.Join(home, ".local", "state", "citadel")) || !strings.Contains(data, "default of citadel serve") {
		t.Errorf("data dir: %s", data)
	}
	if l := doctorLine(t, r.stdout, "disk/hf-cache"); !strings.Contains(l, "under the data dir") {
		t.Errorf("hf cache: %s", l)
	}
	if l := doctorLine(t, r.stdout, "hub"); !strings.HasPrefix(l, "warn") || !strings.Contains(l, "unreachable: connection refused") {
		t.Errorf("hub: %s", l)
	}
	for _, name := range []string{"port/admin", "port/gateway"} {
		if l := doctorLine(t, r.stdout, name); !strings.HasPrefix(l, "ok") || !strings.Contains(l, "free") {
			t.Errorf("%s: %s", name, l)
		}
	}
	if l := doctorLine(t, r.stdout, "server"); !strings.HasPrefix(l, "ok") || !strings.Contains(l, "healthy, version") {
		t.Errorf("server: %s", l)
	}
	if !strings.Contains(r.stdout, "0 failed") {
		t.Errorf("summary: %s", r.stdout)
	}

	// The admin port held by that server is ok: a citadel serve answers there.
	r = citadelEnv(t, env, "", "doctor", "--admin-addr", srv.addr, "--gateway-addr", "off", "-o", "json")
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if r.code != 0 || rep.Failed {
		t.Errorf("exit %d, failed %v", r.code, rep.Failed)
	}
	for _, c := range rep.Checks {
		if c.Name == "port/gateway" {
			t.Errorf("--gateway-addr off still checked: %+v", c)
		}
		if c.Name == "port/admin" && (c.Status != doctor.OK || !strings.Contains(c.Finding, "citadel serve's admin API")) {
			t.Errorf("admin port: %+v", c)
		}
	}
}

// TestDoctorFails: a check that fails (a port held by another program, a data dir that is a
// file) makes doctor exit 1, in JSON too.
func TestDoctorFails(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "not citadel") }))
	defer other.Close()
	file := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": t.TempDir(), "CITADEL_SERVER": freeAddr(t), "HF_ENDPOINT": "http://" + freeAddr(t), "CITADEL_DATA_DIR": file}
	r := citadelEnv(t, env, "", "doctor", "--admin-addr", freeAddr(t), "--gateway-addr", other.Listener.Addr().String(), "--timeout", "1s")
	if r.code != ExitError {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if l := doctorLine(t, r.stdout, "port/gateway"); !strings.HasPrefix(l, "fail") || !strings.Contains(l, "another program") || !strings.Contains(l, "fix:") {
		t.Errorf("gateway port: %s", l)
	}
	if l := doctorLine(t, r.stdout, "disk/data-dir"); !strings.HasPrefix(l, "fail") || !strings.Contains(l, "is not a directory") || !strings.Contains(l, "CITADEL_DATA_DIR") {
		t.Errorf("data dir: %s", l)
	}
	if l := doctorLine(t, r.stdout, "server"); !strings.HasPrefix(l, "warn") {
		t.Errorf("no server is not a warning: %s", l)
	}
	r = citadelEnv(t, env, "", "doctor", "-o", "json", "--gateway-addr", "off", "--admin-addr", freeAddr(t))
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != ExitError || !rep.Failed {
		t.Errorf("json: exit %d, failed %v, %v", r.code, rep.Failed, err)
	}
}

func TestDoctorUsage(t *testing.T) {
	for _, args := range [][]string{{"doctor", "-o", "yaml"}, {"doctor", "extra"}, {"doctor", "--timeout", "0s"}} {
		if r := citadelEnv(t, map[string]string{}, "", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
}
