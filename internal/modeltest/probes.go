package modeltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// inference runs the tests on both paths: directly against the engine and through the
// gateway, so that a fault of either is told apart.
func (rn *run) inference(ctx context.Context, s *Step) error {
	if rn.ep == nil {
		return errors.New("the service has no endpoint")
	}
	paths := []struct{ name, base, model string }{{"engine", "http://" + rn.ep.Address, rn.served}}
	if rn.o.Gateway != "" {
		// The gateway knows a service by its name (namespace/name when the name alone is taken).
		paths = append(paths, struct{ name, base, model string }{"gateway", strings.TrimSuffix(rn.o.Gateway, "/"), rn.svcName})
	}
	hc := &http.Client{Timeout: 2 * time.Minute}
	for _, p := range paths {
		pr := &prober{hc: hc, base: p.base, model: p.model, path: p.name}
		if p.name == "gateway" {
			pr.awaitReplica(ctx, 10*time.Second)
		}
		s.Checks = append(s.Checks, pr.models(ctx))
		s.Checks = append(s.Checks, pr.chat(ctx))
		s.Checks = append(s.Checks, pr.stream(ctx))
		if rn.vision {
			s.Checks = append(s.Checks, pr.vision(ctx))
		}
		if rn.embed {
			s.Checks = append(s.Checks, pr.embeddings(ctx))
		}
		s.Checks = append(s.Checks, pr.latency(ctx))
	}
	var failed []string
	for _, c := range s.Checks {
		if c.Status == Failed {
			failed = append(failed, c.Path+" "+c.Name+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		s.Evidence = append(s.Evidence, failed...)
		return fmt.Errorf("%d of %d checks failed: %s", len(failed), len(s.Checks), failed[0])
	}
	s.Summary = fmt.Sprintf("%d checks passed on %d path(s)", len(s.Checks), len(paths))
	return nil
}

// awaitReplica gives the gateway up to d to take the service's ready engine into its table
// (it follows the service's status through a watch): while it answers 503 for the model, it has
// not caught up yet. What it answers after that is what the checks judge.
func (p *prober) awaitReplica(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	body := map[string]any{"model": p.model, "max_tokens": 1, "messages": []any{map[string]any{"role": "user", "content": "hi"}}}
	for time.Now().Before(deadline) {
		resp, _, err := p.post(ctx, "/v1/chat/completions", body)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type prober struct {
	hc                *http.Client
	base, model, path string
}

func (p *prober) check(name string) Check { return Check{Name: name, Path: p.path, Status: Passed} }

func fail(c Check, format string, args ...any) Check {
	c.Status, c.Detail = Failed, fmt.Sprintf(format, args...)
	return c
}

func (p *prober) post(ctx context.Context, path string, body any) (*http.Response, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp, out, err
}

// errorText is an error response's message, or its start.
func errorText(status int, body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return fmt.Sprintf("HTTP %d %v: %s", status, e.Error.Code, e.Error.Message)
	}
	return fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(string(body[:min(len(body), 300)])))
}

func (p *prober) models(ctx context.Context) Check {
	c := p.check("models")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/v1/models", nil)
	resp, err := p.hc.Do(req)
	if err != nil {
		return fail(c, "%v", err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
		return fail(c, "HTTP %d, %v", resp.StatusCode, err)
	}
	var ids []string
	for _, d := range list.Data {
		ids = append(ids, d.ID)
	}
	if !slices.Contains(ids, p.model) {
		return fail(c, "model_not_found: /v1/models does not list %q (it lists %s)", p.model, strings.Join(ids, ", "))
	}
	c.Detail = fmt.Sprintf("lists %q", p.model)
	return c
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func (p *prober) chat(ctx context.Context) Check {
	c := p.check("chat")
	resp, body, err := p.post(ctx, "/v1/chat/completions", map[string]any{"model": p.model, "max_tokens": 16,
		"messages": []map[string]string{{"role": "user", "content": "Reply with one short sentence about the sea."}}})
	if err != nil {
		return fail(c, "%v", err)
	}
	if resp.StatusCode != 200 {
		return fail(c, "%s", errorText(resp.StatusCode, body))
	}
	var r chatResponse
	if err := json.Unmarshal(body, &r); err != nil || len(r.Choices) == 0 {
		return fail(c, "malformed response: %v: %.200s", err, body)
	}
	u := r.Usage
	switch {
	case r.Choices[0].Message.Content == "":
		return fail(c, "empty answer (finish_reason %q)", r.Choices[0].FinishReason)
	case u == nil:
		return fail(c, "no usage in the response")
	case u.PromptTokens <= 0 || u.CompletionTokens <= 0 || u.CompletionTokens > 16 || u.TotalTokens != u.PromptTokens+u.CompletionTokens:
		return fail(c, "implausible usage: prompt %d, completion %d (max 16), total %d", u.PromptTokens, u.CompletionTokens, u.TotalTokens)
	}
	c.Detail = fmt.Sprintf("%d prompt + %d completion tokens, finish_reason %s", u.PromptTokens, u.CompletionTokens, r.Choices[0].FinishReason)
	return c
}

// streamOnce sends a streaming chat and returns TTFT, total time, chunks and completion tokens.
func (p *prober) streamOnce(ctx context.Context, maxTokens int) (ttft, total time.Duration, chunks, tokens int, err error) {
	b, _ := json.Marshal(map[string]any{"model": p.model, "max_tokens": maxTokens, "stream": true, "stream_options": map[string]bool{"include_usage": true},
		"messages": []map[string]string{{"role": "user", "content": "Count slowly."}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, 0, 0, 0, errors.New(errorText(resp.StatusCode, body))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := false
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			break
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ch); err != nil {
			return 0, 0, chunks, 0, fmt.Errorf("malformed chunk %.100q: %v", line, err)
		}
		if ch.Error != nil {
			return 0, 0, chunks, 0, fmt.Errorf("error event mid-stream: %s", ch.Error.Message)
		}
		chunks++
		if len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" && ttft == 0 {
			ttft = time.Since(t0)
		}
		if ch.Usage != nil {
			tokens = ch.Usage.CompletionTokens
		}
	}
	total = time.Since(t0)
	if !done {
		return ttft, total, chunks, tokens, fmt.Errorf("the stream ended without data: [DONE] after %d chunks (%v)", chunks, sc.Err())
	}
	return ttft, total, chunks, tokens, nil
}

func (p *prober) stream(ctx context.Context) Check {
	c := p.check("stream")
	ttft, _, chunks, tokens, err := p.streamOnce(ctx, 16)
	if err != nil {
		return fail(c, "%v", err)
	}
	if ttft == 0 || chunks < 2 {
		return fail(c, "no content chunks (%d chunks)", chunks)
	}
	c.Values = map[string]float64{"ttft_s": ttft.Seconds(), "chunks": float64(chunks), "completion_tokens": float64(tokens)}
	c.Detail = fmt.Sprintf("TTFT %s, %d chunks, [DONE]", ttft.Round(time.Millisecond), chunks)
	return c
}

// testPNG is a generated image: a red square on white.
func testPNG() string {
	img := image.NewRGBA(image.Rect(0, 0, 112, 112))
	for y := range 112 {
		for x := range 112 {
			col := color.RGBA{255, 255, 255, 255}
			if x > 28 && x < 84 && y > 28 && y < 84 {
				col = color.RGBA{220, 20, 20, 255}
			}
			img.Set(x, y, col)
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

func (p *prober) vision(ctx context.Context) Check {
	c := p.check("vision")
	resp, body, err := p.post(ctx, "/v1/chat/completions", map[string]any{"model": p.model, "max_tokens": 16,
		"messages": []map[string]any{{"role": "user", "content": []map[string]any{
			{"type": "text", "text": "What shape and colour is in this image?"},
			{"type": "image_url", "image_url": map[string]string{"url": testPNG()}},
		}}}})
	if err != nil {
		return fail(c, "%v", err)
	}
	if resp.StatusCode != 200 {
		return fail(c, "image request refused: %s", errorText(resp.StatusCode, body))
	}
	var r chatResponse
	if json.Unmarshal(body, &r) != nil || len(r.Choices) == 0 || r.Usage == nil || r.Usage.CompletionTokens == 0 {
		return fail(c, "no tokens for an image request: %.200s", body)
	}
	// The image counts as prompt tokens: a 112×112 image is 16 patches of 28×28.
	c.Values = map[string]float64{"prompt_tokens": float64(r.Usage.PromptTokens)}
	c.Detail = fmt.Sprintf("accepted a 112×112 PNG: %d prompt tokens, %d completion tokens", r.Usage.PromptTokens, r.Usage.CompletionTokens)
	return c
}

func (p *prober) embeddings(ctx context.Context) Check {
	c := p.check("embeddings")
	resp, body, err := p.post(ctx, "/v1/embeddings", map[string]any{"model": p.model, "input": []string{"one", "two"}})
	if err != nil {
		return fail(c, "%v", err)
	}
	if resp.StatusCode != 200 {
		return fail(c, "%s", errorText(resp.StatusCode, body))
	}
	var r struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &r) != nil || len(r.Data) != 2 || len(r.Data[0].Embedding) == 0 {
		return fail(c, "want 2 vectors: %.200s", body)
	}
	c.Detail = fmt.Sprintf("2 vectors of %d", len(r.Data[0].Embedding))
	return c
}

// latency is a short sample: three streams of 64 tokens, median TTFT and tokens per second.
func (p *prober) latency(ctx context.Context) Check {
	c := p.check("latency")
	var ttfts []time.Duration
	var rates []float64
	for range 3 {
		ttft, total, _, tokens, err := p.streamOnce(ctx, 64)
		if err != nil {
			return fail(c, "%v", err)
		}
		ttfts = append(ttfts, ttft)
		if d := total - ttft; d > 0 && tokens > 1 {
			rates = append(rates, float64(tokens-1)/d.Seconds())
		}
	}
	slices.Sort(ttfts)
	slices.Sort(rates)
	c.Values = map[string]float64{"ttft_p50_s": ttfts[1].Seconds()}
	c.Detail = fmt.Sprintf("TTFT p50 %s", ttfts[1].Round(time.Millisecond))
	if len(rates) > 0 {
		c.Values["tokens_per_s"] = rates[len(rates)/2]
		c.Detail += fmt.Sprintf(", %.0f tokens/s", rates[len(rates)/2])
	}
	return c
}
