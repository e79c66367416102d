package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	v1 "citadel.dev/citadel/api/v1"
)

// GPUs returns the server's GPU inventory: each GPU's memory, what Citadel's engines hold or
// plan on it, and which services hold it. A server with no serving controller answers with
// an *APIError (reason NotFound) that says so.
func (c *Client) GPUs(ctx context.Context) (v1.GPUList, error) {
	var l v1.GPUList
	err := c.do(ctx, http.MethodGet, "/api/v1/gpus", nil, nil, &l)
	return l, err
}

// Fit asks whether an InferenceService would be placed now beside the running services,
// without applying it. A server with no serving controller answers with an *APIError (reason
// NotFound).
func (c *Client) Fit(ctx context.Context, s *v1.InferenceService) (v1.FitResult, error) {
	var res v1.FitResult
	err := c.do(ctx, http.MethodPost, "/api/v1/fit", nil, s, &res)
	return res, err
}

// Explain asks the server's gateway how it would route a chat request body, without sending
// it (POST /api/v1/explain). api is "openai" (a chat-completions body) or "ollama" (/api/chat).
func (c *Client) Explain(ctx context.Context, body json.RawMessage, api string) (v1.RouteExplanation, error) {
	var x v1.RouteExplanation
	err := c.do(ctx, http.MethodPost, "/api/v1/explain", url.Values{"api": {api}}, body, &x)
	return x, err
}
