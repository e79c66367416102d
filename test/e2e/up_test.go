package e2e

import (
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestUp is the README's first command: citadel up, on a sandboxed home with default paths,
// reaches ready, and every request it prints works as printed and reaches the task its
// comment names. Ctrl-C stops it cleanly; a second run, with --admin-token, reuses what was
// downloaded and prints the dashboard's link with the token.
func TestUp(t *testing.T) {
	h := newHost(t)
	admin, gw := freeAddr(t), freeAddr(t)
	out, stop := upUntilReady(t, h, admin, gw)
	if resp, err := http.Get("http://" + admin + "/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("the dashboard up prints: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	for _, want := range []string{"Dashboard: http://" + admin + "/", "4 model stand-ins", "simulated GPUs 2xrtx-4070-ti-super", "applied examples/seed-001",
		"service mimo-vl-7b-rl            Ready vllm on GPUs [0 1]", "The engines are simulated", "examples/gpu-host/README.md"} {
		if !strings.Contains(out, want) {
			t.Errorf("citadel up's output lacks %q", want)
		}
	}
	if strings.Contains(out, "citadel: next:") {
		t.Error("citadel up printed serve's next step (apply the files), which up has done")
	}
	// every printed curl works as printed: same URL, header and body
	curl := regexp.MustCompile(`(?m)^  # (\w+)\n  curl -si (\S+) -H 'content-type: application/json' -d '(.*)'$`)
	tried := 0
	for _, m := range curl.FindAllStringSubmatch(out, -1) {
		task, url, body := m[1], m[2], strings.ReplaceAll(m[3], `'\''`, "'")
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		route := resp.Header.Get("X-Citadel-Route")
		if resp.StatusCode != 200 || !strings.HasPrefix(route, "task="+task+" ") {
			t.Errorf("%s request: %d, x-citadel-route %q", task, resp.StatusCode, route)
		}
		if task == "vision" && !strings.Contains(route, "service=default/mimo-vl-7b-rl") {
			t.Errorf("the image went to %q, not the vision model", route)
		}
		tried++
	}
	if tried != 4 {
		t.Errorf("%d curl examples found in the output, want 4 (text, code, reasoning, image):\n%s", tried, out)
	}

	stop()

	// a second run on the same home downloads nothing again
	const token = "e2e-up-token"
	admin = freeAddr(t)
	out, _ = upUntilReady(t, h, admin, freeAddr(t), "--admin-token", token)
	if strings.Contains(out, "Downloading") {
		t.Errorf("the second citadel up downloaded again:\n%s", out)
	}
	link := "http://" + admin + "/?token=" + token
	if n := strings.Count(out, link); n != 1 || !strings.Contains(out, "Dashboard: "+link+" ") {
		t.Errorf("citadel up --admin-token printed the dashboard's link %s %d times, want once after \"Dashboard: \":\n%s", link, n, out)
	}
	if resp, err := http.Get("http://" + admin + "/"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the dashboard without the token: %v %v, want 401", err, resp)
	} else {
		resp.Body.Close()
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if resp, err := browser.Get(link); err != nil || resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" {
		t.Errorf("the dashboard's link: %v %v, want the dashboard, at / without the token", err, resp)
	} else {
		resp.Body.Close()
	}
	// the printed admin curl carries the token
	m := regexp.MustCompile(`(?m)^  curl -s -H 'authorization: (Bearer \S+)' (http://\S+/api/v1/\S+)$`).FindStringSubmatch(out)
	if m == nil || m[1] != "Bearer "+token {
		t.Fatalf("citadel up --admin-token printed no admin curl with the token:\n%s", out)
	}
	req, _ := http.NewRequest(http.MethodGet, m[2], nil)
	req.Header.Set("Authorization", m[1])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("the admin curl %s: %v %v", m[0], err, resp)
	} else {
		resp.Body.Close()
	}
}

// upUntilReady runs citadel up until it has printed its "Try:" block and returns the output
// and a stop func (Ctrl-C; it must exit 0), also run when the test ends.
func upUntilReady(t *testing.T, h *host, admin, gw string, flags ...string) (string, func()) {
	t.Helper()
	cmd := exec.Command(h.bin, append([]string{"up", "--admin-addr", admin, "--gateway-addr", gw, "--timeout", "3m"}, flags...)...)
	cmd.Env = slices.Clone(h.env)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(out.String(), "citadel up: ready in") {
		select {
		case err := <-done:
			t.Fatalf("citadel up exited before ready: %v\n%s", err, out.String())
		case <-deadline:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("citadel up not ready in 3 minutes:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// wait for the whole "Try:" block, then Ctrl-C
	for !strings.Contains(out.String(), "reuses what was downloaded") {
		time.Sleep(20 * time.Millisecond)
	}
	text := out.String()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("citadel up after Ctrl-C: %v\n%s", err, out.String())
				}
			case <-time.After(30 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Errorf("citadel up did not stop within 30 s of Ctrl-C")
			}
		})
	}
	t.Cleanup(stop)
	return text, stop
}
