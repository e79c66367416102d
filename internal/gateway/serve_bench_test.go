package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/residency"
)

// BenchmarkServe is one chat request through the gateway's Serve, in process, over loopback,
// to an upstream that answers at once: the gateway's own HTTP/1.1 server against net/http's
// (allocs/op and a CPU profile tell where a request's time goes):
//
//	go test -run '^$' -bench Serve -benchmem -cpuprofile cpu.out ./internal/gateway/
func BenchmarkServe(b *testing.B) {
	const answer = `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	defer up.Close()
	for _, name := range []string{"lean", "stdlib"} {
		b.Run(name, func(b *testing.B) {
			gw := New(Options{Routes: []*v1.Route{routeTo("m", up.URL)}, StdlibHTTP: name == "stdlib"})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan struct{})
			go func() { defer close(served); _ = gw.Serve(ctx, ln) }()
			defer func() { cancel(); <-served }()
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			url := "http://" + ln.Addr().String() + "/v1/chat/completions"
			const body = `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// dedicatedOnly is a residency manager that manages none of the gateway's services.
type dedicatedOnly struct{}

func (dedicatedOnly) OnDemand(string) bool { return false }
func (dedicatedOnly) Acquire(context.Context, string, func(residency.Progress)) (func(), error) {
	panic("Acquire of a service that is not on-demand")
}
func (dedicatedOnly) Load(context.Context, string) error   { return nil }
func (dedicatedOnly) Unload(context.Context, string) error { return nil }
func (dedicatedOnly) States() []residency.State            { return nil }

// BenchmarkServeResidency is BenchmarkServe's request with Options.Residency nil and set to a
// manager that does not manage the service: the cost residency adds to a dedicated model's
// request (one OnDemand call per target tried):
//
//	go test -run '^$' -bench ServeResidency -benchmem -count 5 ./internal/gateway/
func BenchmarkServeResidency(b *testing.B) {
	const answer = `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	defer up.Close()
	for _, name := range []string{"nil", "set"} {
		b.Run(name, func(b *testing.B) {
			opts := Options{Routes: []*v1.Route{routeTo("m", up.URL)}}
			if name == "set" {
				opts.Residency = dedicatedOnly{}
			}
			gw := New(opts)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan struct{})
			go func() { defer close(served); _ = gw.Serve(ctx, ln) }()
			defer func() { cancel(); <-served }()
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			url := "http://" + ln.Addr().String() + "/v1/chat/completions"
			const body = `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
