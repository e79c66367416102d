package mirror

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ollamaFixture(t *testing.T) (*fixture, []byte, []byte) {
	gguf := weights(3<<20, 7)
	tmpl := []byte("{{ .Prompt }}")
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     manifestMediaType,
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + sha256hex([]byte("{}")), "size": 2},
		"layers": []map[string]any{
			{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + sha256hex(gguf), "size": len(gguf)},
			{"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + sha256hex(tmpl), "size": len(tmpl)},
		},
	})
	f := newFixture(t, map[string][]byte{
		"ollama/manifests/registry.ollama.ai/library/tiny/latest": manifest,
		"ollama/blobs/sha256-" + sha256hex(gguf):                  gguf,
		"ollama/blobs/sha256-" + sha256hex(tmpl):                  tmpl,
		"ollama/blobs/sha256-" + sha256hex([]byte("{}")):          []byte("{}"),
	}, Options{})
	return f, manifest, gguf
}

func TestOllamaRegistry(t *testing.T) {
	f, manifest, gguf := ollamaFixture(t)
	digest := "sha256:" + sha256hex(gguf)

	resp, body := f.do(t, "GET", "/v2/", "")
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" || string(body) != "{}\n" {
		t.Errorf("/v2/: %s %v %q", resp.Status, resp.Header, body)
	}

	resp, body = f.do(t, "GET", "/v2/library/tiny/manifests/latest", "", "Accept", manifestMediaType)
	want := map[string]string{
		"Content-Type":          manifestMediaType,
		"Docker-Content-Digest": "sha256:" + sha256hex(manifest),
		"Content-Length":        strconv.Itoa(len(manifest)),
	}
	got := map[string]string{}
	for k := range want {
		got[k] = resp.Header.Get(k)
	}
	if diff := cmp.Diff(want, got); diff != "" || resp.StatusCode != 200 || !bytes.Equal(body, manifest) {
		t.Errorf("manifest %s; headers (-want +got)\n%s", resp.Status, diff)
	}

	resp, _ = f.do(t, "HEAD", "/v2/library/tiny/blobs/"+digest, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(len(gguf)) {
		t.Errorf("blob HEAD: %s Content-Length %s", resp.Status, resp.Header.Get("Content-Length"))
	}

	resp, _ = f.do(t, "GET", "/v2/library/tiny/blobs/"+digest, "")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusTemporaryRedirect || loc == nil || loc.Hostname() != "localhost" {
		t.Fatalf("blob GET: %s Location %q, want 307 to localhost", resp.Status, resp.Header.Get("Location"))
	}
	resp, body = f.do(t, "GET", loc.String(), "")
	if resp.StatusCode != 200 || !bytes.Equal(body, gguf) || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("blob host: %s, %d bytes", resp.Status, len(body))
	}
	// Ollama downloads parts with Range: bytes=start-(end-1).
	resp, body = f.do(t, "GET", loc.String(), "", "Range", "bytes=100-1099")
	if resp.StatusCode != 206 || !bytes.Equal(body, gguf[100:1100]) || resp.Header.Get("Content-Range") != "bytes 100-1099/"+strconv.Itoa(len(gguf)) {
		t.Errorf("blob range: %s %q", resp.Status, resp.Header.Get("Content-Range"))
	}
	// The counter is updated when the handler returns, which can be just after the client has
	// read the body: wait for it (bounded).
	wantBytes := int64(len(gguf) + 1000)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := f.srv.Requests().Files["ollama/blobs/sha256-"+sha256hex(gguf)]
		if got.Requests == 2 && got.Bytes == wantBytes {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("blob counter %+v, want 2 requests and %d bytes", got, wantBytes)
			break
		}
	}
}

func TestOllamaErrors(t *testing.T) {
	f, _, gguf := ollamaFixture(t)
	tests := []struct {
		method, url string
		status      int
		code        string
	}{
		{"GET", "/v2/library/tiny/manifests/7b", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/library/nope/manifests/latest", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/library/tiny/blobs/sha256:" + strings.Repeat("0", 64), 404, "BLOB_UNKNOWN"},
		{"GET", "/v2/library/tiny/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
		{"GET", "/v2/library/tiny/blobs/md5:" + sha256hex(gguf), 400, "DIGEST_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			resp, body := f.do(t, tt.method, tt.url, "")
			var got struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &got); err != nil || len(got.Errors) != 1 {
				t.Fatalf("%s: %v %s", resp.Status, err, body)
			}
			if resp.StatusCode != tt.status || got.Errors[0].Code != tt.code || got.Errors[0].Message == "" {
				t.Errorf("%d %+v, want %d %s", resp.StatusCode, got.Errors, tt.status, tt.code)
			}
		})
	}
}

func TestOllamaFaults(t *testing.T) {
	f, _, gguf := ollamaFixture(t)
	digest := "sha256:" + sha256hex(gguf)
	resp, _ := f.do(t, "GET", "/v2/library/tiny/blobs/"+digest, "")
	loc := resp.Header.Get("Location")
	f.srv.SetFaults("ollama:library/tiny", Fault{Kind: FaultStatus, Status: 503, Files: digest, Count: 1},
		Fault{Kind: FaultStatus, Status: 500, On: OnAPI, Count: 1})
	var got []int
	for _, u := range []string{"/v2/library/tiny/manifests/latest", "/v2/library/tiny/manifests/latest", loc, loc} {
		resp, _ := f.do(t, "GET", u, "")
		got = append(got, resp.StatusCode)
	}
	if diff := cmp.Diff([]int{500, 200, 503, 200}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
