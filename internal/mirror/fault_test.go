package mirror

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lfsURL is the signed LFS URL of a file (from the resolve redirect).
func (f *fixture) lfsURL(t testing.TB, repo, file string) string {
	t.Helper()
	resp, _ := f.do(t, "HEAD", "/"+repo+"/resolve/main/"+file, "")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("HEAD %s/%s: %s", repo, file, resp.Status)
	}
	return resp.Header.Get("Location")
}

// get streams a GET and returns status, body bytes received and the read
// error (nil at a clean EOF).
func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, http.Header, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

func TestFaultStatusAndRateLimit(t *testing.T) {
	f := newFixture(t, nil, Options{})
	lfs := f.lfsURL(t, "acme/tiny", "model.safetensors")
	tests := []struct {
		name   string
		fault  Fault
		url    string
		want   []int // statuses of consecutive requests
		header map[string]string
	}{
		{"status first K", Fault{Kind: FaultStatus, Status: 503, Count: 2}, lfs, []int{503, 503, 200, 200}, nil},
		{"status after", Fault{Kind: FaultStatus, Status: 500, After: 1, Count: 1}, lfs, []int{200, 500, 200}, nil},
		{"ratelimit", Fault{Kind: FaultRateLimit, RetryAfter: 7, Count: 1}, lfs, []int{429, 200},
			map[string]string{"Retry-After": "7", "RateLimit": `"api";r=0;t=7`}},
		{"small file via resolve", Fault{Kind: FaultStatus, Status: 502, Count: 1}, f.url + "/acme/tiny/resolve/main/hello.txt", []int{502, 200}, nil},
		{"glob miss", Fault{Kind: FaultStatus, Status: 500, Files: "*.json"}, lfs, []int{200, 200}, nil},
		{"glob hit", Fault{Kind: FaultStatus, Status: 500, Files: "*.safetensors", Count: 1}, lfs, []int{500, 200}, nil},
		{"download fault spares api", Fault{Kind: FaultStatus, Status: 500}, f.url + "/api/models/acme/tiny", []int{200, 200}, nil},
		{"api fault", Fault{Kind: FaultStatus, Status: 500, On: OnAPI, Count: 1}, f.url + "/api/models/acme/tiny", []int{500, 200}, nil},
		{"api fault on tree", Fault{Kind: FaultStatus, Status: 503, On: OnAPI, Count: 1}, f.url + "/api/models/acme/tiny/tree/main", []int{503, 200}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.srv.SetFaults("acme/tiny", tt.fault)
			defer f.srv.SetFaults("acme/tiny")
			var got []int
			for range tt.want {
				status, h, body, err := get(t, f.hc, tt.url)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, status)
				if status >= 400 {
					if !strings.Contains(string(body), `"error"`) {
						t.Errorf("fault body %q", body)
					}
					for k, v := range tt.header {
						if h.Get(k) != v {
							t.Errorf("%s = %q, want %q", k, h.Get(k), v)
						}
					}
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("statuses (-want +got)\n%s", diff)
			}
		})
	}
}

func TestFaultProbabilityIsDeterministic(t *testing.T) {
	run := func() []int {
		f := newFixture(t, map[string][]byte{"hf/a/b/x.txt": helloTxt}, Options{})
		f.srv.SetFaults("a/b", Fault{Kind: FaultStatus, Status: 503, Probability: 0.5, Seed: 42})
		var got []int
		for range 40 {
			status, _, _, _ := get(t, f.hc, f.url+"/a/b/resolve/main/x.txt")
			got = append(got, status)
		}
		return got
	}
	a, b := run(), run()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different decisions (-first +second)\n%s", diff)
	}
	n503 := 0
	for _, s := range a {
		if s == 503 {
			n503++
		}
	}
	if n503 < 10 || n503 > 30 {
		t.Errorf("%d of 40 requests failed with p=0.5: %v", n503, a)
	}
}

func TestFaultsFromMirrorJSON(t *testing.T) {
	files := map[string][]byte{
		"hf/a/b/x.txt":        helloTxt,
		"hf/a/b/.mirror.json": []byte(`{"faults": [{"kind": "status", "status": 503, "count": 1}, {"kind": "ratelimit", "retryAfter": 3, "on": "api", "count": 1}]}`),
	}
	f := newFixture(t, files, Options{})
	var got []int
	for _, u := range []string{"/api/models/a/b", "/api/models/a/b", "/a/b/resolve/main/x.txt", "/a/b/resolve/main/x.txt"} {
		resp, _ := f.do(t, "GET", u, "")
		got = append(got, resp.StatusCode)
	}
	if diff := cmp.Diff([]int{429, 200, 503, 200}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// An invalid .mirror.json is a clear server error, not silence.
	writeTree(t, f.dir, map[string][]byte{"hf/a/b/.mirror.json": []byte(`{"faults": [{"kind": "explode"}], "privat": true}`)})
	resp, body := f.do(t, "GET", "/api/models/a/b", "")
	if resp.StatusCode != 500 || !strings.Contains(string(body), "hf/a/b/.mirror.json") || !strings.Contains(string(body), "privat") {
		t.Errorf("%s %s", resp.Status, body)
	}
}

func TestFaultCorrupt(t *testing.T) {
	f := newFixture(t, nil, Options{})
	lfs := f.lfsURL(t, "acme/tiny", "model.safetensors")
	f.srv.SetFaults("acme/tiny", Fault{Kind: FaultCorrupt, Offset: 12345, Count: 1})
	status, _, body, err := get(t, f.hc, lfs)
	if err != nil || status != 200 || len(body) != len(bigWeights) {
		t.Fatalf("%d, %d bytes, %v", status, len(body), err)
	}
	var diffs []int
	for i := range body {
		if body[i] != bigWeights[i] {
			diffs = append(diffs, i)
		}
	}
	if diff := cmp.Diff([]int{12345}, diffs); diff != "" || body[12345] != bigWeights[12345]^0xff {
		t.Errorf("corrupted offsets (-want +got)\n%s", diff)
	}
	_, _, body, _ = get(t, f.hc, lfs)
	if !bytes.Equal(body, bigWeights) {
		t.Error("second request corrupted too (count 1)")
	}
}

func TestFaultDropAndWrongLength(t *testing.T) {
	f := newFixture(t, nil, Options{})
	lfs := f.lfsURL(t, "acme/tiny", "model.safetensors")
	n := len(bigWeights)
	tests := []struct {
		name     string
		fault    Fault
		rng      string
		wantLen  int    // Content-Length advertised
		received []byte // bytes before the connection closed
	}{
		{"drop", Fault{Kind: FaultDrop, Bytes: 100000}, "", n, bigWeights[:100000]},
		{"drop in range", Fault{Kind: FaultDrop, Bytes: 10}, "bytes=1000-1999", 1000, bigWeights[1000:1010]},
		{"drop at 0", Fault{Kind: FaultDrop}, "", n, []byte{}},
		{"wronglength", Fault{Kind: FaultWrongLength, Extra: 500}, "", n + 500, bigWeights},
		{"wronglength default", Fault{Kind: FaultWrongLength}, "bytes=0-99", 101, bigWeights[:100]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.srv.SetFaults("acme/tiny", tt.fault)
			defer f.srv.SetFaults("acme/tiny")
			var hdr []string
			if tt.rng != "" {
				hdr = []string{"Range", tt.rng}
			}
			_, h, body, err := get(t, f.hc, lfs, hdr...)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error = %v, want unexpected EOF", err)
			}
			if h.Get("Content-Length") != strconv.Itoa(tt.wantLen) {
				t.Errorf("Content-Length = %s, want %d", h.Get("Content-Length"), tt.wantLen)
			}
			if !bytes.Equal(body, tt.received) {
				t.Errorf("received %d bytes, want %d", len(body), len(tt.received))
			}
		})
	}
}

func TestFaultStall(t *testing.T) {
	f := newFixture(t, nil, Options{})
	lfs := f.lfsURL(t, "acme/tiny", "model.safetensors")
	f.srv.SetFaults("acme/tiny", Fault{Kind: FaultStall, Bytes: 4096, Count: 1})
	// The client's own deadline ends the stall; until then it sees exactly
	// 4096 bytes and no EOF.
	c := &http.Client{Timeout: 300 * time.Millisecond}
	status, h, body, err := get(t, c, lfs)
	if status != 200 || h.Get("Content-Length") != strconv.Itoa(len(bigWeights)) {
		t.Errorf("status %d Content-Length %s", status, h.Get("Content-Length"))
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read error = %v, want the client's timeout", err)
	}
	if !bytes.Equal(body, bigWeights[:4096]) {
		t.Errorf("received %d bytes before the stall, want 4096", len(body))
	}
	// Count 1: the retry goes through, and the stats show what was refetched.
	f.srv.ResetRequests()
	_, _, body, err = get(t, f.hc, lfs, "Range", "bytes=4096-")
	if err != nil || !bytes.Equal(body, bigWeights[4096:]) {
		t.Fatalf("resume: %v, %d bytes", err, len(body))
	}
	got := f.srv.Requests().Files["hf/acme/tiny/model.safetensors"]
	if diff := cmp.Diff(Counter{Requests: 1, Bytes: int64(len(bigWeights) - 4096)}, got); diff != "" {
		t.Errorf("file counter (-want +got)\n%s", diff)
	}
}

func TestFaultThrottle(t *testing.T) {
	// In a synctest bubble the throttle's timers run on the fake clock, so
	// the elapsed time is exact and the test takes no real time.
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string][]byte{"hf/a/b/x.txt": weights(50000, 9)})
		srv, err := New(Options{Dir: dir, CacheFile: "-"})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		srv.SetFaults("a/b", Fault{Kind: FaultThrottle, Rate: 10000})
		rec := httptest.NewRecorder()
		start := time.Now()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/a/b/resolve/main/x.txt", nil))
		if elapsed := time.Since(start); elapsed != 5*time.Second {
			t.Errorf("50000 bytes at 10000 B/s took %v, want 5s", elapsed)
		}
		if rec.Code != 200 || rec.Body.Len() != 50000 {
			t.Errorf("%d, %d bytes", rec.Code, rec.Body.Len())
		}
	})
}

func TestFaultValidate(t *testing.T) {
	tests := []struct {
		f    Fault
		want string // substring of the error; "" for valid
	}{
		{Fault{Kind: FaultStall, Bytes: 10}, ""},
		{Fault{Kind: "boom"}, "kind"},
		{Fault{Kind: FaultThrottle}, "rate"},
		{Fault{Kind: FaultStatus, Status: 200}, "status"},
		{Fault{Kind: FaultStatus, Status: 503, On: "everything"}, "on"},
		{Fault{Kind: FaultDrop, Files: "[", Count: -1}, "files"},
		{Fault{Kind: FaultCorrupt, Probability: 2}, "probability"},
	}
	for _, tt := range tests {
		err := tt.f.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want error containing %q", tt.f, err, tt.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("SetFaults accepted an invalid fault")
		}
	}()
	f := newFixture(t, map[string][]byte{"hf/a/b/x": nil}, Options{})
	f.srv.SetFaults("a/b", Fault{Kind: "boom"})
}

func TestRequestCounters(t *testing.T) {
	f := newFixture(t, nil, Options{})
	lfs := f.lfsURL(t, "acme/tiny", "model.safetensors")
	f.srv.ResetRequests()
	f.do(t, "GET", "/acme/tiny/resolve/main/hello.txt", "")
	f.do(t, "HEAD", "/acme/tiny/resolve/main/hello.txt", "")
	f.do(t, "GET", lfs, "", "Range", "bytes=0-99")
	f.do(t, "GET", lfs, "")
	st := f.srv.Requests()
	wantFiles := map[string]Counter{
		"hf/acme/tiny/hello.txt":         {1, 6},
		"hf/acme/tiny/model.safetensors": {2, int64(100 + len(bigWeights))},
	}
	if diff := cmp.Diff(wantFiles, st.Files); diff != "" {
		t.Errorf("files (-want +got)\n%s", diff)
	}
	if got := st.Paths["/acme/tiny/resolve/main/hello.txt"]; got != (Counter{2, 6}) {
		t.Errorf("resolve path counter %+v", got)
	}
}

// The stall ends when the server shuts down, too.
func TestServeStopsStalledDownloads(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"hf/a/b/w.bin": weights(10000, 1)})
	srv, err := New(Options{Dir: dir, CacheFile: filepath.Join(t.TempDir(), "cache.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetFaults("a/b", Fault{Kind: FaultStall, Bytes: 10})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	c := &http.Client{}
	resp, err := c.Get("http://" + ln.Addr().String() + "/a/b/resolve/main/w.bin") // follows the 302
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel() // the body is stalled; shutting down must not hang
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("stalled body ended cleanly after shutdown")
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(dir, ".mirror-cache.json")); err == nil {
		t.Error("cache written to DIR although CacheFile points elsewhere")
	}
}
