package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// embeddings answers /v1/embeddings. Any model embeds (as if served with --task embed): each
// input is prefilled for its token count, and its vector is a deterministic unit vector from
// the input's text (see unitVector).
func (s *OpenAI) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
		Dimensions     *int            `json:"dimensions"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	model, err := s.checkModel(req.Model)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		s.writeError(w, &apiError{status: 400, message: fmt.Sprintf("encoding_format %q: want float or base64", req.EncodingFormat), param: "encoding_format"})
		return
	}
	if req.Dimensions != nil && *req.Dimensions != s.cfg.EmbeddingDim {
		s.writeError(w, badRequest("Model \"%s\" does not support matryoshka representation, changing output dimensions will lead to poor results.", model))
		return
	}
	inputs, err := embeddingInputs(req.Input)
	if err != nil {
		s.writeError(w, err)
		return
	}
	total := 0
	streams := make([]*stream, 0, len(inputs))
	defer func() {
		for _, st := range streams {
			s.engine.Abort(st)
		}
	}()
	for _, in := range inputs {
		if in.tokens >= s.maxLen {
			s.writeError(w, badRequest("This model's maximum context length is %d tokens. However, you requested %d tokens in the input for embedding generation. Please reduce the length of the input.", s.maxLen, in.tokens))
			return
		}
		total += in.tokens
	}
	ctx := r.Context()
	for _, in := range inputs {
		st, err := s.engine.Submit(ctx, in.tokens, 0, []int{1}, []string{"stop"})
		if err != nil {
			s.writeError(w, &apiError{status: http.StatusServiceUnavailable, message: "The engine is not accepting requests: " + err.Error()})
			return
		}
		streams = append(streams, st)
	}
	produced, finished := []int{0}, []bool{false}
	for _, st := range streams {
		for finished[0] = false; !finished[0]; {
			select {
			case <-ctx.Done():
				return
			case <-st.notify:
			}
			if err := st.snapshot(produced, finished); err != nil {
				s.writeError(w, s.submitError(err))
				return
			}
		}
	}
	streams = nil
	type item struct {
		Index     int    `json:"index"`
		Object    string `json:"object"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, len(inputs))
	for i, in := range inputs {
		v := unitVector(s.cfg.Seed, in.text, s.cfg.EmbeddingDim)
		var e any = v
		if req.EncodingFormat == "base64" {
			e = encodeFloat32s(v)
		}
		data[i] = item{Index: i, Object: "embedding", Embedding: e}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "embd-" + s.requestID(), "object": "list", "created": s.cfg.Now().Unix(), "model": model, "data": data,
		"usage": usage{PromptTokens: total, TotalTokens: total},
	})
}

type embeddingInput struct {
	text   string
	tokens int
}

// embeddingInputs reads "input": a string, a list of strings, a list of token IDs or a list
// of lists of token IDs.
func embeddingInputs(raw json.RawMessage) ([]embeddingInput, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []embeddingInput{{one, max(1, countTokens(one))}}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err == nil && len(many) > 0 {
		out := make([]embeddingInput, len(many))
		for i, t := range many {
			out[i] = embeddingInput{t, max(1, countTokens(t))}
		}
		return out, nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err == nil && len(ids) > 0 {
		return []embeddingInput{{fmt.Sprint(ids), len(ids)}}, nil
	}
	var idLists [][]int
	if err := json.Unmarshal(raw, &idLists); err == nil && len(idLists) > 0 {
		out := make([]embeddingInput, len(idLists))
		for i, l := range idLists {
			out[i] = embeddingInput{fmt.Sprint(l), max(1, len(l))}
		}
		return out, nil
	}
	return nil, &apiError{status: 400, message: "input: want a non-empty string, list of strings, list of token IDs or list of lists of token IDs", param: "input"}
}
