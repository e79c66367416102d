// Package client is the Go client of Citadel's admin API (citadel serve,
// default 127.0.0.1:8081). The citadel CLI uses only this package to talk
// to the server.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// DefaultAddress is where citadel serve listens for admin calls.
const DefaultAddress = "127.0.0.1:8081"

// Client calls one Citadel server.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer token" on every call.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the HTTP client (its timeouts apply to every call
// but Watch, which streams until cancelled).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client of the server at addr ("host:port" or an http(s) URL).
func New(addr string, opts ...Option) (*Client, error) {
	if addr == "" {
		addr = DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("server address %q is not host:port or an http(s) URL", addr)
	}
	c := &Client{base: u, hc: &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
	}}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Address is the server's host:port.
func (c *Client) Address() string { return c.base.Host }

// APIError is an error answer of the server.
type APIError struct {
	v1.ErrorResponse
}

func (e *APIError) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	var b strings.Builder
	b.WriteString(e.Message)
	for i := range e.Problems {
		b.WriteString("\n")
		b.WriteString(e.Problems[i].Error())
	}
	return b.String()
}

// IsNotFound reports whether err is a NotFound answer.
func IsNotFound(err error) bool { return reasonIs(err, v1.ReasonNotFound) }

// IsConflict reports whether err is a Conflict answer (stale resourceVersion).
func IsConflict(err error) bool { return reasonIs(err, v1.ReasonConflict) }

func reasonIs(err error, reason string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Reason == reason
}

// UnreachableError means no server answered at the address.
type UnreachableError struct {
	Address string
	Err     error
	// Hint, when set, replaces the advice to start citadel serve (a Kubernetes API server
	// is reached another way).
	Hint string
}

func (e *UnreachableError) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("cannot reach %s: %v: %s", e.Address, e.Err, e.Hint)
	}
	return fmt.Sprintf("no citadel server at %s: start it with `citadel serve` (or pass --server ADDRESS): %v", e.Address, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, c.hc, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, query url.Values, body any) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || isDialError(err) {
			return nil, &UnreachableError{Address: c.base.Host, Err: err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		ae := &APIError{}
		if json.Unmarshal(b, &ae.ErrorResponse) != nil || ae.Message == "" {
			ae.Code, ae.Reason = resp.StatusCode, http.StatusText(resp.StatusCode)
			ae.Message = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return nil, ae
	}
	return resp, nil
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Apply applies objects atomically (all or nothing); with DryRun nothing is stored.
func (c *Client) Apply(ctx context.Context, req v1.ApplyRequest) (*v1.ApplyResponse, error) {
	var resp v1.ApplyResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/apply", nil, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// ListOptions filter a list.
type ListOptions struct {
	Namespace     string // "" = all namespaces
	LabelSelector string // Kubernetes syntax: a=b,c!=d,e in (x,y)
}

func plural(kind string) (v1.KindInfo, error) { return v1.LookupKind(kind) }

// Get returns one object. kind may be any kind name or short name.
func (c *Client) Get(ctx context.Context, kind, namespace, name string) (v1.Object, error) {
	info, err := plural(kind)
	if err != nil {
		return nil, err
	}
	o := info.New()
	err = c.do(ctx, http.MethodGet, "/api/v1/"+info.Plural+"/"+url.PathEscape(name), nsQuery(namespace), nil, o)
	return o, err
}

// List returns the objects of a kind.
func (c *Client) List(ctx context.Context, kind string, opts ListOptions) ([]v1.Object, error) {
	info, err := plural(kind)
	if err != nil {
		return nil, err
	}
	q := nsQuery(opts.Namespace)
	if opts.LabelSelector != "" {
		q.Set("labelSelector", opts.LabelSelector)
	}
	var list v1.List
	if err := c.do(ctx, http.MethodGet, "/api/v1/"+info.Plural, q, nil, &list); err != nil {
		return nil, err
	}
	out := make([]v1.Object, 0, len(list.Items))
	for _, raw := range list.Items {
		o := info.New()
		if err := json.Unmarshal(raw, o); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", info.Kind, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// Delete removes an object; resourceVersion, when non-empty, must match.
func (c *Client) Delete(ctx context.Context, kind, namespace, name, resourceVersion string) (v1.Object, error) {
	info, err := plural(kind)
	if err != nil {
		return nil, err
	}
	q := nsQuery(namespace)
	if resourceVersion != "" {
		q.Set("resourceVersion", resourceVersion)
	}
	o := info.New()
	err = c.do(ctx, http.MethodDelete, "/api/v1/"+info.Plural+"/"+url.PathEscape(name), q, nil, o)
	return o, err
}

// Retry asks the server to try an object again: a Failed model is
// downloaded again at once (its backoff reset), a Ready model's files are
// checked; an InferenceService retries the Failed model it waits for
// (engines restart by themselves). The result's Action says what happened,
// e.g. "retried (was Failed: DownloadStalled)" or "unchanged (...)".
func (c *Client) Retry(ctx context.Context, kind, namespace, name string) (v1.ApplyResult, error) {
	var res v1.ApplyResult
	info, err := plural(kind)
	if err != nil {
		return res, err
	}
	err = c.do(ctx, http.MethodPost, "/api/v1/"+info.Plural+"/"+url.PathEscape(name)+"/retry", nsQuery(namespace), nil, &res)
	return res, err
}

// UpdateStatus writes o's status; o's resourceVersion, when set, must match.
func (c *Client) UpdateStatus(ctx context.Context, o v1.Object) (v1.Object, error) {
	info, err := plural(o.GetTypeMeta().Kind)
	if err != nil {
		return nil, err
	}
	m := o.GetObjectMeta()
	out := info.New()
	err = c.do(ctx, http.MethodPut, "/api/v1/"+info.Plural+"/"+url.PathEscape(m.Name)+"/status", nsQuery(m.Namespace), o, out)
	return out, err
}

// EventFilter selects events; empty fields match all.
type EventFilter struct {
	Kind, Namespace, Name string
	Limit                 int
}

// Events returns events, oldest first.
func (c *Client) Events(ctx context.Context, f EventFilter) ([]v1.Event, error) {
	q := url.Values{}
	for k, v := range map[string]string{"kind": f.Kind, "namespace": f.Namespace, "name": f.Name} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var list v1.EventList
	err := c.do(ctx, http.MethodGet, "/api/v1/events", q, nil, &list)
	return list.Items, err
}

// Watch calls fn for every change of kind ("" = all) in namespace ("" =
// all), starting with one ADDED per existing object, until ctx is
// cancelled, fn returns an error, or the server ends the stream.
func (c *Client) Watch(ctx context.Context, kind, namespace string, fn func(v1.WatchEvent) error) error {
	q := nsQuery(namespace)
	if kind != "" {
		info, err := plural(kind)
		if err != nil {
			return err
		}
		q.Set("kind", info.Kind)
	}
	streaming := &http.Client{Transport: c.hc.Transport}
	resp, err := c.send(ctx, streaming, http.MethodGet, "/api/v1/watch", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev v1.WatchEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("decoding watch event: %w", err)
		}
		if ev.Type == "ERROR" {
			return errors.New(ev.Message)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch stream: %w", err)
	}
	return io.ErrUnexpectedEOF
}

// Health returns nil when the server and its store answer.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// Version returns the server's build.
func (c *Client) Version(ctx context.Context) (v1.VersionInfo, error) {
	var v v1.VersionInfo
	err := c.do(ctx, http.MethodGet, "/version", nil, nil, &v)
	return v, err
}

func nsQuery(ns string) url.Values {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	return q
}

// DecodeObject decodes one object of any kind from JSON.
func DecodeObject(raw []byte) (v1.Object, error) {
	var tm v1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return nil, err
	}
	info, ok := v1.KindByName(tm.Kind)
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", tm.Kind)
	}
	o := info.New()
	if err := json.Unmarshal(raw, o); err != nil {
		return nil, err
	}
	return o, nil
}

// Logs writes an InferenceService replica's engine log to w: the last tail
// lines, then, with follow, new lines until ctx ends.
func (c *Client) Logs(ctx context.Context, namespace, name string, replica, tail int, follow bool, w io.Writer) error {
	q := url.Values{"namespace": {namespace}, "replica": {strconv.Itoa(replica)}, "tail": {strconv.Itoa(tail)}}
	if follow {
		q.Set("follow", "true")
	}
	hc := c.hc
	if follow {
		// A quiet engine may not write for a long time, and the answer starts with its
		// first line: no response-header timeout while following.
		hc = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	}
	resp, err := c.send(ctx, hc, http.MethodGet, "/api/v1/inferenceservices/"+url.PathEscape(name)+"/logs", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
