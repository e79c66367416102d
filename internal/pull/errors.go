package pull

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/netclass"
	"citadel.dev/citadel/internal/registry"
)

// Reason codes of failed pulls, declared in api/v1 (see v1.Reasons); these names stay so the
// package's own code reads as before. Each is written to the model's status and names one
// cause; the Error's message says what to do.
const (
	ReasonUnsupportedStorageURI = v1.ReasonUnsupportedStorageURI
	ReasonSecretNotFound        = v1.ReasonSecretNotFound
	ReasonUnauthorized          = v1.ReasonUnauthorized
	ReasonGatedRepo             = v1.ReasonGatedRepo
	ReasonRepoNotFound          = v1.ReasonRepoNotFound
	ReasonRevisionNotFound      = v1.ReasonRevisionNotFound
	ReasonEntryNotFound         = v1.ReasonEntryNotFound
	ReasonHostileFileName       = v1.ReasonHostileFileName
	ReasonConnectionFailed      = v1.ReasonConnectionFailed
	ReasonDNSFailure            = v1.ReasonDNSFailure
	ReasonRateLimited           = v1.ReasonRateLimited
	ReasonUpstreamError         = v1.ReasonUpstreamError
	ReasonDownloadStalled       = v1.ReasonDownloadStalled
	ReasonDownloadIncomplete    = v1.ReasonDownloadIncomplete
	ReasonTruncatedBody         = v1.ReasonTruncatedBody // closed at the same byte, short of its length, attempt after attempt
	ReasonRangeIgnored          = v1.ReasonRangeIgnored  // a warning: the file is fetched in one stream, without split or resume
	ReasonChecksumMismatch      = v1.ReasonChecksumMismatch
	ReasonInsufficientStorage   = v1.ReasonInsufficientStorage
	ReasonStorageNotWritable    = v1.ReasonStorageNotWritable
	ReasonLocalPathNotFound     = v1.ReasonLocalPathNotFound
	ReasonNoFiles               = v1.ReasonNoFiles
	ReasonInternal              = v1.ReasonInternalError
	ReasonCancelled             = v1.ReasonCancelled
	// ReasonInvalidModelFiles: the files arrived intact but no engine can load them (a hostile or damaged
	// safetensors or GGUF header); see CheckFiles.
	ReasonInvalidModelFiles = v1.ReasonInvalidModelFiles
)

// Error is a failed pull: a reason code, the file it concerns (if any), a
// message that says what to do, and whether trying again may help.
//
// The other fields are facts the message also states, for readers that must not parse it
// (the model agent copies them into v1.ModelStatus.LastFailure, which `citadel test` and
// `citadel describe` read); each is zero when not known:
//   - Endpoint and HTTPStatus: the hub or registry that answered (scheme://host) and the
//     HTTP status it answered with;
//   - FileBytesReceived, FileBytesTotal and Idle: File's bytes on disk, its size, and how
//     long no byte of it had come, when it stalled or was cut short;
//   - AcceptURL: the page of a gated repository whose conditions must be accepted;
//   - BytesNeeded, BytesFree and Directory: the room a download needed and what was free
//     in the directory, when there was not enough.
type Error struct {
	Reason     string
	File       string
	Message    string
	Retryable  bool
	Endpoint   string
	HTTPStatus int
	Err        error

	FileBytesReceived, FileBytesTotal int64
	Idle                              time.Duration
	AcceptURL                         string
	BytesNeeded, BytesFree            int64
	Directory                         string
}

func (e *Error) Error() string {
	if e.File != "" && !strings.Contains(e.Message, e.File) {
		return fmt.Sprintf("%s: %s: %s", e.Reason, e.File, e.Message)
	}
	return e.Reason + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// answeredAs copies the endpoint and HTTP status of last (the error that made e, if any)
// that e does not know itself.
func (e *Error) answeredAs(last *Error) *Error {
	if last != nil && e.Endpoint == "" && e.HTTPStatus == 0 {
		e.Endpoint, e.HTTPStatus = last.Endpoint, last.HTTPStatus
	}
	return e
}

// AsError returns err's *Error, classifying other errors.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return classify(err, "")
}

// classify maps a hub, registry, network or disk error to a reason.
func classify(err error, file string) *Error {
	mk := func(reason, msg string, retry bool) *Error {
		return &Error{Reason: reason, File: file, Message: msg, Retryable: retry, Err: err}
	}
	var (
		pe      *Error
		repoNF  *hub.RepoNotFoundError
		gated   *hub.GatedRepoError
		revNF   *hub.RevisionNotFoundError
		entryNF *hub.EntryNotFoundError
		unauth  *hub.UnauthorizedError
		rate    *hub.RateLimitedError
		hostile *hub.HostileFileError
		httpErr *hub.HTTPError
		regNF   *registry.NotFoundError
		dnsErr  *net.DNSError
		metaErr *hub.MetadataError
		manErr  *registry.ManifestError
		rangeIg *hub.RangeIgnoredError
		regRIg  *registry.RangeIgnoredError
	)
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &repoNF):
		return at(mk(ReasonRepoNotFound, err.Error(), false), repoNF.Endpoint, 0)
	case errors.As(err, &gated):
		e := at(mk(ReasonGatedRepo, err.Error(), false), gated.Endpoint, 0)
		e.AcceptURL = strings.TrimRight(gated.Endpoint, "/") + "/" + gated.Repo
		return e
	case errors.As(err, &revNF):
		return at(mk(ReasonRevisionNotFound, err.Error(), false), revNF.Endpoint, 0)
	case errors.As(err, &entryNF):
		return at(mk(ReasonEntryNotFound, err.Error(), false), entryNF.Endpoint, 0)
	case errors.As(err, &unauth):
		return at(mk(ReasonUnauthorized, err.Error(), false), unauth.Endpoint, 0)
	case errors.As(err, &hostile):
		return mk(ReasonHostileFileName, err.Error()+": refused, nothing outside the model directory is ever written", false)
	case errors.As(err, &regNF):
		return mk(ReasonRepoNotFound, err.Error(), false)
	case errors.Is(err, hub.ErrOffline):
		return mk(ReasonConnectionFailed, "HF_HUB_OFFLINE is set: nothing can be downloaded; unset it, or use a model already in the cache", false)
	case errors.As(err, &metaErr), errors.As(err, &manErr):
		return mk(ReasonUpstreamError, err.Error()+": the hub or registry answered something Citadel cannot use; check HF_ENDPOINT / the registry address", false)
	case errors.As(err, &rangeIg), errors.As(err, &regRIg):
		return mk(ReasonUpstreamError, err.Error()+": the server ignores Range requests, so downloads cannot be split or resumed; use a server or mirror that supports them", false)
	case errors.As(err, &rate):
		return at(mk(ReasonRateLimited, err.Error(), true), rate.URL, http.StatusTooManyRequests)
	case errors.Is(err, syscall.ENOSPC):
		return mk(ReasonInsufficientStorage, "the disk filled up while downloading: "+err.Error()+"; free space or point storage at a larger disk", true)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return mk(ReasonStorageNotWritable, err.Error()+": make the directory writable by citadel, or choose another path", false)
	case errors.As(err, &dnsErr):
		return mk(ReasonDNSFailure, fmt.Sprintf("cannot resolve %q: %v; check HF_ENDPOINT / the registry host and this host's DNS", dnsErr.Name, err), dnsErr.IsTemporary)
	case errors.Is(err, syscall.ECONNREFUSED) && netclass.Explained(err): // the client already said what to check
		return mk(ReasonConnectionFailed, err.Error(), true)
	case errors.Is(err, syscall.ECONNREFUSED):
		return mk(ReasonConnectionFailed, err.Error()+": nothing listens there; check HF_ENDPOINT / the registry address and that the hub or mirror is up", true)
	case errors.As(err, &httpErr):
		if httpErr.Status >= 500 || httpErr.Status == 408 {
			return at(mk(ReasonUpstreamError, err.Error(), true), httpErr.URL, httpErr.Status)
		}
		if httpErr.Status == 401 || httpErr.Status == 403 {
			return at(mk(ReasonUnauthorized, err.Error(), false), httpErr.URL, httpErr.Status)
		}
		return at(mk(ReasonUpstreamError, err.Error(), false), httpErr.URL, httpErr.Status)
	case errors.Is(err, context.Canceled):
		return mk(ReasonCancelled, "the pull was cancelled", false)
	}
	if hub.Retryable(err) || registry.Retryable(err) {
		return mk(ReasonConnectionFailed, err.Error(), true)
	}
	return mk(ReasonInternal, err.Error(), false)
}

// at records on e the endpoint (scheme://host of addr, a URL or an endpoint) and the HTTP
// status that answered; status 0 is unknown.
func at(e *Error, addr string, status int) *Error {
	if u, err := url.Parse(addr); err == nil && u.Scheme != "" && u.Host != "" {
		e.Endpoint = u.Scheme + "://" + u.Host
	}
	e.HTTPStatus = status
	return e
}
