package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"citadel.dev/citadel/internal/netclass"
)

// RepoNotFoundError: the repository does not exist, or it is private and the request's token (if any) cannot
// read it — the Hub does not tell the two apart.
type RepoNotFoundError struct {
	Repo          string
	Endpoint      string
	Authenticated bool   // a token was sent
	Message       string // the server's message, if any
}

func (e *RepoNotFoundError) Error() string {
	s := fmt.Sprintf("repository %q not found on %s%s", e.Repo, e.Endpoint, said(e.Message))
	if e.Authenticated {
		return s + ": check the name, and that the token's account can read the repository"
	}
	return s + ": check the name, or pass a token if it is private (HF_TOKEN or storage.key)"
}

// GatedRepoError: the repository is gated and the token's account has not accepted its conditions.
type GatedRepoError struct {
	Repo          string
	Endpoint      string
	Authenticated bool
	Message       string
}

func (e *GatedRepoError) Error() string {
	s := fmt.Sprintf("repository %q on %s is gated%s", e.Repo, e.Endpoint, said(e.Message))
	if e.Authenticated {
		return s + fmt.Sprintf(": accept the conditions at %s/%s with the token's account", e.Endpoint, e.Repo)
	}
	return s + fmt.Sprintf(": accept the conditions at %s/%s, then pass a token of that account (HF_TOKEN or storage.key)", e.Endpoint, e.Repo)
}

// RevisionNotFoundError: the branch, tag or commit does not exist in the repository.
type RevisionNotFoundError struct {
	Repo, Revision string
	Endpoint       string
	Message        string
}

func (e *RevisionNotFoundError) Error() string {
	return fmt.Sprintf("revision %q not found in repository %q on %s%s: check the branch, tag or commit", e.Revision, e.Repo, e.Endpoint, said(e.Message))
}

// EntryNotFoundError: the file does not exist at that revision.
type EntryNotFoundError struct {
	Repo, Revision, Path string
	Endpoint             string
	Commit               string // X-Repo-Commit of the 404, when the hub sent one (huggingface_hub's .no_exist marker)
	Message              string
}

func (e *EntryNotFoundError) Error() string {
	return fmt.Sprintf("file %q not found in repository %q at revision %q on %s%s: check the file name and the revision", e.Path, e.Repo, e.Revision, e.Endpoint, said(e.Message))
}

// UnauthorizedError: the token is invalid or expired ("Invalid credentials in Authorization header"),
// or WhoAmI was called without one.
type UnauthorizedError struct {
	Endpoint string
	Message  string
}

func (e *UnauthorizedError) Error() string {
	return fmt.Sprintf("%s rejected the token%s: it is missing, invalid or expired; create one at %s/settings/tokens and set HF_TOKEN or storage.key", e.Endpoint, said(e.Message), e.Endpoint)
}

// RateLimitedError: 429 Too Many Requests.
type RateLimitedError struct {
	RetryAfter time.Duration // 0 when the server did not say
	URL        string
	Message    string
}

func (e *RateLimitedError) Error() string {
	wait := "wait a few minutes"
	if e.RetryAfter > 0 {
		wait = "wait " + e.RetryAfter.String()
	}
	return fmt.Sprintf("rate limited by %s%s: %s, or pass a token (HF_TOKEN or storage.key) for a higher limit", netclass.RedactURL(e.URL), said(e.Message), wait)
}

// HTTPError is any other failed response (5xx, 403 without an error code, 416, …).
type HTTPError struct {
	Method     string
	Status     int
	Code       string // X-Error-Code, if any
	Message    string
	URL        string        // as requested; Error() drops its query
	RetryAfter time.Duration // from Retry-After (e.g. on a 503), else 0
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, netclass.RedactURL(e.URL), e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	s += said(e.Message)
	switch {
	case e.Status >= 500:
		return s + ": the server failed; try again later"
	case e.Status == http.StatusForbidden:
		return s + ": access denied; check the token's permissions, or retry for a fresh download link if this one expired"
	case e.Status == http.StatusNotFound:
		return s + ": check the endpoint (HF_ENDPOINT) and the names"
	case e.Status == http.StatusRequestedRangeNotSatisfiable:
		return s + ": the file is shorter than expected; delete the partial download and retry"
	case e.Status == http.StatusBadRequest:
		return s + ": the request was rejected; check the repository, revision and file names"
	}
	return s
}

// HostileFileError: the hub listed a path that cannot be stored safely (absolute, "..", ".", backslash, NUL
// or other control character, empty segment, invalid UTF-8). It is never returned as a file.
type HostileFileError struct {
	Repo, Path string
}

func (e *HostileFileError) Error() string {
	return fmt.Sprintf("repository %q lists an unsafe file path %q (absolute, \"..\", backslash, control character or empty segment): refusing the listing; report it to the repository owner", e.Repo, e.Path)
}

// MetadataError: a response lacked or had a malformed header or field the protocol requires (X-Repo-Commit,
// ETag, size, commit sha, hash): the endpoint does not behave like a Hugging Face Hub.
type MetadataError struct {
	URL     string
	Problem string
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("%s: %s: the endpoint does not behave like a Hugging Face Hub; check HF_ENDPOINT, and that no proxy strips or rewrites its headers", netclass.RedactURL(e.URL), e.Problem)
}

// RangeIgnoredError: a ranged GET was answered with 200 and the whole file; the download must restart at
// byte 0. The body has been closed.
type RangeIgnoredError struct {
	URL string
}

func (e *RangeIgnoredError) Error() string {
	return fmt.Sprintf("GET %s: the server ignored the Range header (200 instead of 206): the download restarts from the beginning", netclass.RedactURL(e.URL))
}

// said formats a server message for inclusion in an error: quoted, bounded, control characters escaped.
func said(msg string) string { return netclass.Said("server", msg) }

const invalidCredentials = "Invalid credentials in Authorization header"

// responseError maps a failed response (status >= 400) to a typed error, per huggingface_hub's
// hf_raise_for_status (https://github.com/huggingface/huggingface_hub/blob/main/src/huggingface_hub/utils/_http.py;
// the X-Error-Code table is in docs/mirror.md, "Endpoints"). It reads at most maxErrorBody bytes and closes the body.
func (c *Client) responseError(resp *http.Response, t target) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	code := strings.TrimSpace(resp.Header.Get("X-Error-Code"))
	headerMsg := strings.TrimSpace(resp.Header.Get("X-Error-Message"))
	msg := serverMessage(headerMsg, body, resp.Header.Get("Content-Type"))
	authenticated := resp.Request != nil && resp.Request.Header.Get("Authorization") != ""
	reqURL := ""
	method := http.MethodGet
	if resp.Request != nil {
		reqURL = resp.Request.URL.String()
		method = resp.Request.Method
	}
	repo := t.repo
	switch {
	case code == "RevisionNotFound":
		return &RevisionNotFoundError{Repo: repo, Revision: t.revision, Endpoint: c.endpoint, Message: msg}
	case code == "EntryNotFound":
		e := &EntryNotFoundError{Repo: repo, Revision: t.revision, Path: t.path, Endpoint: c.endpoint, Message: msg}
		if commit := resp.Header.Get("X-Repo-Commit"); IsCommit(commit) {
			e.Commit = commit
		}
		return e
	case code == "GatedRepo":
		return &GatedRepoError{Repo: repo, Endpoint: c.endpoint, Authenticated: authenticated, Message: msg}
	case code == "RepoNotFound":
		return &RepoNotFoundError{Repo: repo, Endpoint: c.endpoint, Authenticated: authenticated, Message: msg}
	case resp.StatusCode == http.StatusUnauthorized && (headerMsg == invalidCredentials || strings.Contains(msg, invalidCredentials)):
		return &UnauthorizedError{Endpoint: c.endpoint, Message: msg}
	case resp.StatusCode == http.StatusUnauthorized && code == "" && repo != "":
		// The Hub answers 401 for private and missing repositories alike to anonymous users.
		return &RepoNotFoundError{Repo: repo, Endpoint: c.endpoint, Authenticated: authenticated, Message: msg}
	case resp.StatusCode == http.StatusUnauthorized && t.whoami:
		return &UnauthorizedError{Endpoint: c.endpoint, Message: msg}
	case resp.StatusCode == http.StatusTooManyRequests:
		return &RateLimitedError{RetryAfter: netclass.ParseRetryAfter(resp.Header, c.now()), URL: reqURL, Message: msg}
	}
	return &HTTPError{Method: method, Status: resp.StatusCode, Code: code, Message: msg, URL: reqURL, RetryAfter: netclass.ParseRetryAfter(resp.Header, c.now())}
}

// serverMessage gathers the server's explanation as huggingface_hub's _format does: X-Error-Message, then
// the JSON body's "error" (string or list), "error_description" and "errors[].message", or a non-HTML text
// body; trimmed, deduplicated, joined with "; ".
func serverMessage(headerMsg string, body []byte, contentType string) string {
	var parts []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s == "" {
			return
		}
		for _, p := range parts {
			if p == s {
				return
			}
		}
		parts = append(parts, s)
	}
	add(headerMsg)
	var data struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		Errors           []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &data); err == nil {
		var one string
		var list []string
		if json.Unmarshal(data.Error, &one) == nil {
			add(one)
		} else if json.Unmarshal(data.Error, &list) == nil {
			for _, s := range list {
				add(s)
			}
		}
		add(data.ErrorDescription)
		for _, e := range data.Errors {
			add(e.Message)
		}
	} else if len(body) > 0 && !strings.Contains(strings.ToLower(contentType), "html") {
		add(strings.ToValidUTF8(string(body), "�"))
	}
	return strings.Join(parts, "; ")
}

// RetryAfter returns how long the server asked to wait (429, or a 5xx with Retry-After).
func RetryAfter(err error) (time.Duration, bool) {
	var rl *RateLimitedError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		return rl.RetryAfter, true
	}
	var he *HTTPError
	if errors.As(err, &he) && he.RetryAfter > 0 {
		return he.RetryAfter, true
	}
	return 0, false
}

// Retryable reports whether trying again may succeed.
//
// True: 5xx, 408 and 429 responses, a Range ignored by the server, connection refused/reset/aborted,
// broken pipe, unreachable networks, network timeouts (a [*NoAnswerError] too), a connection closed before
// or during a response (EOF, unexpected EOF), temporary DNS failures, and a download host other than the
// endpoint that does not resolve ([*UnresolvedHostError]).
//
// False: 4xx answers (including the typed not-found, gated and unauthorized errors), hostile listings,
// malformed metadata, offline mode, an endpoint that does not resolve ("no such host": a configuration error),
// TLS certificate failures, and context cancellation or deadline (context.Canceled / DeadlineExceeded in
// the chain: the caller gave up; a stall watchdog that cancels an attempt decides on its own), and any
// error this function does not recognise.
func Retryable(err error) bool {
	if err == nil || netclass.ChainHas(err, context.Canceled) || netclass.ChainHas(err, context.DeadlineExceeded) {
		return false
	}
	var (
		rl   *RateLimitedError
		ri   *RangeIgnoredError
		uh   *UnresolvedHostError
		he   *HTTPError
		perm interface{ permanent() }
	)
	switch {
	case errors.As(err, &rl), errors.As(err, &ri), errors.As(err, &uh):
		return true
	case errors.As(err, &he):
		return he.Status >= 500 || he.Status == http.StatusRequestTimeout || he.Status == http.StatusTooManyRequests
	case errors.As(err, &perm), errors.Is(err, ErrOffline):
		return false
	}
	retry, _ := netclass.Transient(err)
	return retry
}

func (*RepoNotFoundError) permanent()     {}
func (*GatedRepoError) permanent()        {}
func (*RevisionNotFoundError) permanent() {}
func (*EntryNotFoundError) permanent()    {}
func (*UnauthorizedError) permanent()     {}
func (*HostileFileError) permanent()      {}
func (*MetadataError) permanent()         {}
