package registry

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

// NotFoundError: the registry has no such model, tag or blob (404).
type NotFoundError struct {
	Name    string // host/namespace/model:tag
	Digest  string // the blob, for BlobURL
	Code    string // registry error code, e.g. MANIFEST_UNKNOWN
	Message string
}

func (e *NotFoundError) Error() string {
	if e.Digest != "" {
		return fmt.Sprintf("blob %s of model %s not found on the registry%s: the manifest refers to a missing layer; try again later or report it to the model's publisher", e.Digest, e.Name, said(e.Message))
	}
	return fmt.Sprintf("model %s not found on the registry%s: check the name and tag (see ollama.com/library)", e.Name, said(e.Message))
}

// HTTPError is any other failed response.
type HTTPError struct {
	Method  string
	Status  int
	Code    string // registry error code, if any
	Message string
	URL     string // as requested; Error() drops its query
	// RetryAfter is the server's Retry-After (on a 429 or 5xx), else 0.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, netclass.RedactURL(e.URL), e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	s += said(e.Message)
	switch {
	case e.Status == http.StatusTooManyRequests && e.RetryAfter > 0:
		return s + ": rate limited; try again in " + e.RetryAfter.String()
	case e.Status == http.StatusTooManyRequests:
		return s + ": rate limited; try again in a few minutes"
	case e.Status >= 500:
		return s + ": the registry failed; try again later"
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return s + ": the registry refused anonymous access; only public models can be pulled"
	case e.Status == http.StatusRequestedRangeNotSatisfiable:
		return s + ": the blob is shorter than expected; delete the partial download and retry"
	}
	return s
}

// RangeIgnoredError: a ranged GET was answered 200 with the whole blob; the download must restart at 0.
type RangeIgnoredError struct{ URL string }

func (e *RangeIgnoredError) Error() string {
	return fmt.Sprintf("GET %s: the server ignored the Range header (200 instead of 206): the download restarts from the beginning", netclass.RedactURL(e.URL))
}

// ManifestError: the manifest cannot be used (not JSON, wrong schema, malformed digest or size, no layers).
type ManifestError struct {
	Name    string
	Problem string
}

func (e *ManifestError) Error() string {
	return fmt.Sprintf("manifest of %s is unusable: %s; check that the registry address is an Ollama registry", e.Name, e.Problem)
}

func said(msg string) string { return netclass.Said("registry", msg) }

// errorBody reads a Docker-style {"errors":[{"code","message"}]} or Ollama-style {"error": "…"} body.
func errorBody(resp *http.Response) (code, msg string) {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxSmallBody))
	var body struct {
		Error  string `json:"error"`
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &body) != nil {
		if ct := resp.Header.Get("Content-Type"); len(b) > 0 && !strings.Contains(strings.ToLower(ct), "html") {
			return "", strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
		}
		return "", ""
	}
	var msgs []string
	if body.Error != "" {
		msgs = append(msgs, body.Error)
	}
	for _, e := range body.Errors {
		if code == "" {
			code = e.Code
		}
		if e.Message != "" {
			msgs = append(msgs, e.Message)
		}
	}
	return code, strings.Join(msgs, "; ")
}

func httpError(resp *http.Response) error {
	code, msg := errorBody(resp)
	return &HTTPError{Method: resp.Request.Method, Status: resp.StatusCode, Code: code, Message: msg, URL: resp.Request.URL.String()}
}

// transportError redacts the URL inside a transport error and explains the common causes; the chain is kept.
func transportError(err error) error {
	return netclass.Explain(err, netclass.Advice{
		Unresolved: "check the registry address and this host's DNS",
		Refused:    "check the registry address and that it is up",
	})
}

// Retryable reports whether trying again may succeed, with the same rules as hub.Retryable: 5xx, 408, 429,
// an ignored Range and transient network failures are retryable; 4xx, not-found, unusable manifests, a
// host that does not resolve, TLS certificate failures and context cancellation are not.
func Retryable(err error) bool {
	if err == nil || netclass.ChainHas(err, context.Canceled) || netclass.ChainHas(err, context.DeadlineExceeded) {
		return false
	}
	var (
		ri *RangeIgnoredError
		uh *UnresolvedHostError
		he *HTTPError
		nf *NotFoundError
		me *ManifestError
	)
	switch {
	case errors.As(err, &ri), errors.As(err, &uh):
		return true
	case errors.As(err, &he):
		return he.Status >= 500 || he.Status == http.StatusRequestTimeout || he.Status == http.StatusTooManyRequests
	case errors.As(err, &nf), errors.As(err, &me):
		return false
	}
	retry, _ := netclass.Transient(err)
	return retry
}
