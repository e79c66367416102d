package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestErrorMapping drives every call kind against answers combining status, X-Error-Code, X-Error-Message
// and body, and compares the typed error (protocols.md §1.8).
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	type call int
	const (
		modelInfo  call = iota // a repository API URL
		fileMeta               // HEAD on a resolve URL
		whoAmI                 // not a repository URL
		getCDN                 // GET of a URL that is not the endpoint's
		getResolve             // GET of a resolve URL on the endpoint
	)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const ep = "{endpoint}" // replaced by the server's URL
	tests := []struct {
		name     string
		call     call
		token    string
		status   int
		code     string
		message  string // X-Error-Message
		header   http.Header
		ctype    string
		body     string
		want     error
		retry    bool
		retryFor time.Duration
	}{
		{
			name: "RepoNotFound code", call: modelInfo, status: 404, code: "RepoNotFound", message: "Repository not found",
			want: &RepoNotFoundError{Repo: "org/m", Endpoint: ep, Message: "Repository not found"},
		},
		{
			name: "RepoNotFound code wins over a 500", call: modelInfo, status: 500, code: "RepoNotFound",
			want: &RepoNotFoundError{Repo: "org/m", Endpoint: ep},
		},
		{
			name: "401 without code on a repository URL is not-found", call: modelInfo, status: 401, body: `{"error":"Repository not found"}`,
			want: &RepoNotFoundError{Repo: "org/m", Endpoint: ep, Message: "Repository not found"},
		},
		{
			name: "401 without code on a resolve URL, with a token", call: fileMeta, token: testToken, status: 401,
			want: &RepoNotFoundError{Repo: "org/m", Endpoint: ep, Authenticated: true},
		},
		{
			name: "401 invalid credentials on a repository URL", call: modelInfo, token: "hf_expired", status: 401, message: invalidCredentials,
			want: &UnauthorizedError{Endpoint: ep, Message: invalidCredentials},
		},
		{
			name: "401 invalid credentials in the body only", call: fileMeta, token: "hf_expired", status: 401, body: `{"error":"` + invalidCredentials + `"}`,
			// HEAD answers have no body: the message is lost and the 401 reads as not-found, as in huggingface_hub.
			want: &RepoNotFoundError{Repo: "org/m", Endpoint: ep, Authenticated: true},
		},
		{
			name: "401 invalid credentials in a GET body", call: modelInfo, token: "hf_expired", status: 401, body: `{"error":"` + invalidCredentials + `"}`,
			want: &UnauthorizedError{Endpoint: ep, Message: invalidCredentials},
		},
		{
			name: "401 on whoami", call: whoAmI, token: testToken, status: 401,
			want: &UnauthorizedError{Endpoint: ep},
		},
		{
			name: "GatedRepo 401 anonymous", call: modelInfo, status: 401, code: "GatedRepo", message: "Access to model org/m is restricted.",
			want: &GatedRepoError{Repo: "org/m", Endpoint: ep, Message: "Access to model org/m is restricted."},
		},
		{
			name: "GatedRepo 403 with a token", call: fileMeta, token: testToken, status: 403, code: "GatedRepo",
			want: &GatedRepoError{Repo: "org/m", Endpoint: ep, Authenticated: true},
		},
		{
			name: "RevisionNotFound", call: modelInfo, status: 404, code: "RevisionNotFound", message: "Invalid rev id: nope",
			want: &RevisionNotFoundError{Repo: "org/m", Revision: "nope", Endpoint: ep, Message: "Invalid rev id: nope"},
		},
		{
			name: "EntryNotFound on HEAD keeps the commit", call: fileMeta, status: 404, code: "EntryNotFound", message: "Entry not found",
			header: http.Header{"X-Repo-Commit": {commitA}},
			want:   &EntryNotFoundError{Repo: "org/m", Revision: "nope", Path: "dir/f.json", Endpoint: ep, Commit: commitA, Message: "Entry not found"},
		},
		{
			name: "EntryNotFound on a resolve GET", call: getResolve, status: 404, code: "EntryNotFound",
			want: &EntryNotFoundError{Repo: "org/m", Revision: "refs/pr/1", Path: "dir/f.json", Endpoint: ep},
		},
		{
			name: "403 without code", call: fileMeta, token: testToken, status: 403, message: "Forbidden: fine-grained token",
			want: &HTTPError{Method: "HEAD", Status: 403, Message: "Forbidden: fine-grained token", URL: ep + "/org/m/resolve/nope/dir/f.json"},
		},
		{
			name: "disabled repository", call: modelInfo, status: 403, message: "Access to this resource is disabled.",
			want: &HTTPError{Method: "GET", Status: 403, Message: "Access to this resource is disabled.", URL: ep + "/api/models/org/m/revision/nope?blobs=true"},
		},
		{
			name: "429 with Retry-After seconds", call: modelInfo, status: 429, header: http.Header{"Retry-After": {"7"}},
			want:  &RateLimitedError{RetryAfter: 7 * time.Second, URL: ep + "/api/models/org/m/revision/nope?blobs=true"},
			retry: true, retryFor: 7 * time.Second,
		},
		{
			name: "429 with RateLimit header", call: fileMeta, status: 429,
			header: http.Header{"Ratelimit": {`"api";r=0;t=55`}, "Ratelimit-Policy": {`"fixed window";"api";q=500;w=300`}},
			want:   &RateLimitedError{RetryAfter: 55 * time.Second, URL: ep + "/org/m/resolve/nope/dir/f.json"},
			retry:  true, retryFor: 55 * time.Second,
		},
		{
			name: "429 with Retry-After date", call: getCDN, status: 429, header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}},
			want:  &RateLimitedError{RetryAfter: 90 * time.Second, URL: "{cdn}/blob"},
			retry: true, retryFor: 90 * time.Second,
		},
		{
			name: "500 with JSON error", call: modelInfo, status: 500, body: `{"error":"boom"}`, ctype: "application/json",
			want:  &HTTPError{Method: "GET", Status: 500, Message: "boom", URL: ep + "/api/models/org/m/revision/nope?blobs=true"},
			retry: true,
		},
		{
			name: "503 with Retry-After", call: getCDN, status: 503, header: http.Header{"Retry-After": {"3"}},
			want:  &HTTPError{Method: "GET", Status: 503, URL: "{cdn}/blob", RetryAfter: 3 * time.Second},
			retry: true, retryFor: 3 * time.Second,
		},
		{
			name: "408", call: getCDN, status: 408,
			want:  &HTTPError{Method: "GET", Status: 408, URL: "{cdn}/blob"},
			retry: true,
		},
		{
			name: "400 with a list of errors and a duplicate header message", call: modelInfo, status: 400, message: "a", body: `{"error":["a","b"]}`,
			want: &HTTPError{Method: "GET", Status: 400, Message: "a; b", URL: ep + "/api/models/org/m/revision/nope?blobs=true"},
		},
		{
			name: "errors[].message and error_description", call: modelInfo, status: 422, body: `{"error_description":"d","errors":[{"message":"m1"},{"message":"m2"}]}`,
			want: &HTTPError{Method: "GET", Status: 422, Message: "d; m1; m2", URL: ep + "/api/models/org/m/revision/nope?blobs=true"},
		},
		{
			name: "plain-text body", call: getCDN, status: 404, body: "no such object\n", ctype: "text/plain",
			want: &HTTPError{Method: "GET", Status: 404, Message: "no such object", URL: "{cdn}/blob"},
		},
		{
			name: "HTML body is not a message", call: getCDN, status: 502, body: "<html>bad gateway</html>", ctype: "text/html",
			want:  &HTTPError{Method: "GET", Status: 502, URL: "{cdn}/blob"},
			retry: true,
		},
		{
			name: "401 on a CDN URL is not a repository answer", call: getCDN, status: 401,
			want: &HTTPError{Method: "GET", Status: 401, URL: "{cdn}/blob"},
		},
		{
			name: "404 without code on a repository URL", call: modelInfo, status: 404,
			want: &HTTPError{Method: "GET", Status: 404, URL: ep + "/api/models/org/m/revision/nope?blobs=true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			answer := func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				if tt.code != "" {
					w.Header().Set("X-Error-Code", tt.code)
				}
				if tt.message != "" {
					w.Header().Set("X-Error-Message", tt.message)
				}
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}
			cdn, _ := server(t, answer)
			srv, _ := server(t, answer)
			c := New(Options{Endpoint: srv.URL, Token: tt.token, Now: func() time.Time { return now }, Retry: Retry{Sleep: noWait}})
			var err error
			switch tt.call {
			case modelInfo:
				_, err = c.ModelInfo(t.Context(), "org/m", "nope")
			case fileMeta:
				_, err = c.FileMeta(t.Context(), "org/m", "nope", "dir/f.json")
			case whoAmI:
				_, err = c.WhoAmI(t.Context())
			case getCDN:
				_, _, err = c.Get(t.Context(), cdn.URL+"/blob", 0, -1)
			case getResolve:
				_, _, err = c.Get(t.Context(), c.ResolveURL("org/m", "refs/pr/1", "dir/f.json"), 0, -1)
			}
			want := fillURLs(tt.want, srv.URL, cdn.URL)
			if diff := cmp.Diff(want, err); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got := Retryable(err); got != tt.retry {
				t.Errorf("Retryable(%v) = %t, want %t", err, got, tt.retry)
			}
			d, ok := RetryAfter(err)
			if d != tt.retryFor || ok != (tt.retryFor > 0) {
				t.Errorf("RetryAfter = %v, %t; want %v", d, ok, tt.retryFor)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error message contains the token: %v", err)
			}
		})
	}
}

func fillURLs(err error, endpoint, cdn string) error {
	r := strings.NewReplacer("{endpoint}", endpoint, "{cdn}", cdn)
	switch e := err.(type) {
	case *RepoNotFoundError:
		e.Endpoint = r.Replace(e.Endpoint)
	case *GatedRepoError:
		e.Endpoint = r.Replace(e.Endpoint)
	case *RevisionNotFoundError:
		e.Endpoint = r.Replace(e.Endpoint)
	case *EntryNotFoundError:
		e.Endpoint = r.Replace(e.Endpoint)
	case *UnauthorizedError:
		e.Endpoint = r.Replace(e.Endpoint)
	case *RateLimitedError:
		e.URL = r.Replace(e.URL)
	case *HTTPError:
		e.URL = r.Replace(e.URL)
	}
	return err
}

// TestErrorMessages pins what a user reads: what failed, why, and what to do.
func TestErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{&RepoNotFoundError{Repo: "org/x", Endpoint: "https://hub"},
			`repository "org/x" not found on https://hub: check the name, or pass a token if it is private (HF_TOKEN or storage.key)`},
		{&RepoNotFoundError{Repo: "org/x", Endpoint: "https://hub", Authenticated: true, Message: "Repository not found"},
			`repository "org/x" not found on https://hub (server said "Repository not found"): check the name, and that the token's account can read the repository`},
		{&GatedRepoError{Repo: "org/x", Endpoint: "https://hub", Authenticated: true},
			`repository "org/x" on https://hub is gated: accept the conditions at https://hub/org/x with the token's account`},
		{&GatedRepoError{Repo: "org/x", Endpoint: "https://hub"},
			`repository "org/x" on https://hub is gated: accept the conditions at https://hub/org/x, then pass a token of that account (HF_TOKEN or storage.key)`},
		{&RevisionNotFoundError{Repo: "org/x", Revision: "v2", Endpoint: "https://hub"},
			`revision "v2" not found in repository "org/x" on https://hub: check the branch, tag or commit`},
		{&EntryNotFoundError{Repo: "org/x", Revision: "main", Path: "a.json", Endpoint: "https://hub"},
			`file "a.json" not found in repository "org/x" at revision "main" on https://hub: check the file name and the revision`},
		{&UnauthorizedError{Endpoint: "https://hub", Message: invalidCredentials},
			`https://hub rejected the token (server said "Invalid credentials in Authorization header"): it is missing, invalid or expired; create one at https://hub/settings/tokens and set HF_TOKEN or storage.key`},
		{&RateLimitedError{RetryAfter: 55 * time.Second, URL: "https://hub/api/models/x?cursor=secret"},
			`rate limited by https://hub/api/models/x?…: wait 55s, or pass a token (HF_TOKEN or storage.key) for a higher limit`},
		{&HTTPError{Method: "GET", Status: 503, URL: "https://cdn/x?X-Amz-Signature=secret", Message: "busy"},
			`GET https://cdn/x?…: 503 Service Unavailable (server said "busy"): the server failed; try again later`},
		{&HTTPError{Method: "GET", Status: 416, URL: "https://cdn/x"},
			`GET https://cdn/x: 416 Requested Range Not Satisfiable: the file is shorter than expected; delete the partial download and retry`},
		{&HostileFileError{Repo: "org/x", Path: "../../etc/passwd"},
			`repository "org/x" lists an unsafe file path "../../etc/passwd" (absolute, "..", backslash, control character or empty segment): refusing the listing; report it to the repository owner`},
		{&MetadataError{URL: "http://mirror/org/x/resolve/main/a?sig=1", Problem: "no X-Repo-Commit header"},
			`http://mirror/org/x/resolve/main/a?…: no X-Repo-Commit header: the endpoint does not behave like a Hugging Face Hub; check HF_ENDPOINT, and that no proxy strips or rewrites its headers`},
		{&RangeIgnoredError{URL: "https://cdn/x?sig=1"},
			`GET https://cdn/x?…: the server ignored the Range header (200 instead of 206): the download restarts from the beginning`},
		{&HTTPError{Method: "GET", Status: 500, URL: "https://hub/x", Message: "line1\nline2" + strings.Repeat("x", 400)},
			`GET https://hub/x: 500 Internal Server Error (server said "line1\nline2` + strings.Repeat("x", 289) + `…"): the server failed; try again later`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%T.Error() =\n%s\nwant\n%s", tt.err, got, tt.want)
		}
	}
}

// TestRetryable classifies the hub's typed errors, and real transport failures as the client returns them;
// netclass's tests cover the network-level cases one by one.
func TestRetryable(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	get := func(ctx context.Context, u string) error {
		body, _, err := c.Get(ctx, u, 0, -1)
		if err != nil {
			return err
		}
		defer body.Close()
		_, err = io.ReadAll(body)
		return err
	}

	// Connection refused: a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String() + "/x?X-Amz-Signature=SECRETSIG"
	ln.Close()
	refused := get(t.Context(), closedURL)

	// The server hangs up before answering, and mid-body.
	hijack := func(write string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString(write)
			buf.Flush()
			conn.Close()
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	hangup := get(t.Context(), hijack("").URL)
	truncated := get(t.Context(), hijack("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort").URL)

	// No response headers in time.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	impatient := New(Options{HTTPClient: &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: time.Millisecond}}})
	_, _, headerTimeout := impatient.Get(t.Context(), slow.URL, 0, -1)

	// The caller gives up.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cancelled := get(ctx, slow.URL)
	dctx, dcancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer dcancel()
	deadline := get(dctx, slow.URL)

	// An untrusted certificate.
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	untrusted := get(t.Context(), tlsSrv.URL)

	dnsNotFound := transportError(&url.Error{Op: "Get", URL: "https://hub.invalid/x", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "hub.invalid", IsNotFound: true}}})

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", refused, true},
		{"server hung up before answering", hangup, true},
		{"truncated body", truncated, true},
		{"response header timeout", headerTimeout, true},
		{"context cancelled", cancelled, false},
		{"context deadline", deadline, false},
		{"untrusted certificate", untrusted, false},
		{"DNS no such host", dnsNotFound, false},
		{"range ignored", &RangeIgnoredError{URL: "u"}, true},
		{"rate limited", &RateLimitedError{}, true},
		{"500", &HTTPError{Status: 500}, true},
		{"502", &HTTPError{Status: 502}, true},
		{"408", &HTTPError{Status: 408}, true},
		{"429", &HTTPError{Status: 429}, true},
		{"401", &HTTPError{Status: 401}, false},
		{"403", &HTTPError{Status: 403}, false},
		{"404", &HTTPError{Status: 404}, false},
		{"416", &HTTPError{Status: 416}, false},
		{"repo not found", &RepoNotFoundError{}, false},
		{"gated", &GatedRepoError{}, false},
		{"revision not found", &RevisionNotFoundError{}, false},
		{"entry not found", &EntryNotFoundError{}, false},
		{"unauthorized", &UnauthorizedError{}, false},
		{"hostile", fmt.Errorf("listing: %w", &HostileFileError{}), false},
		{"metadata", &MetadataError{}, false},
		{"offline", ErrOffline, false},
		{"unknown", errors.New("something else"), false},
		{"cancelled wrapping a 500", errors.Join(context.Canceled, &HTTPError{Status: 500}), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable(%v) = %t, want %t", tt.name, tt.err, got, tt.want)
		}
	}
	if strings.Contains(refused.Error(), "SECRETSIG") {
		t.Errorf("transport error leaks the signed query: %v", refused)
	}
	for _, want := range []string{"nothing accepts connections there", "HF_ENDPOINT"} {
		if !strings.Contains(refused.Error(), want) {
			t.Errorf("connection refused error %q lacks %q", refused, want)
		}
	}
	if !strings.Contains(dnsNotFound.Error(), "configuration error and is not retried") {
		t.Errorf("DNS error %q does not say it is a configuration error", dnsNotFound)
	}
}
