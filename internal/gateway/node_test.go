package gateway_test

import (
	"fmt"
	"testing"

	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/npmtest"
	"citadel.dev/citadel/internal/sim"
)

// TestOpenAINodeClientThroughGateway: the official openai SDK, unmodified, through the gateway
// to a simulated vLLM: chat, streaming with usage, tools, embeddings and errors.
func TestOpenAINodeClientThroughGateway(t *testing.T) {
	dir := npmtest.Dir(t, "openai", "ollama")
	e := simVLLM(t, sim.Faults{}, "qwen")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n  - {name: embed, targets: [{url: %q, model: qwen}]}\n", e.URL, e.URL), gateway.Options{})
	type usage struct{ Prompt_tokens, Completion_tokens, Total_tokens int }
	got := npmtest.Run[struct {
		Chat struct {
			Content      string `json:"content"`
			FinishReason string `json:"finish_reason"`
			Usage        usage  `json:"usage"`
		} `json:"chat"`
		Stream struct {
			Content string `json:"content"`
			Usage   *usage `json:"usage"`
		} `json:"stream"`
		Tools struct {
			FinishReason  string `json:"finish_reason"`
			Name          string `json:"name"`
			ArgumentsJSON bool   `json:"arguments_json"`
		} `json:"tools"`
		Embeddings struct{ Count, Dims int } `json:"embeddings"`
		NotFound   struct {
			NotFoundError bool   `json:"not_found_error"`
			Status        int    `json:"status"`
			Code          string `json:"code"`
		} `json:"not_found"`
		BadImage struct {
			BadRequest bool   `json:"bad_request"`
			Status     int    `json:"status"`
			Code       string `json:"code"`
		} `json:"bad_image"`
	}](t, dir, "openai-gateway.mjs", gw+"/v1", "qwen", "embed")
	if got.Chat.Content == "" || got.Chat.Usage.Completion_tokens != 8 {
		t.Errorf("chat: %+v", got.Chat)
	}
	if got.Stream.Content != got.Chat.Content || got.Stream.Usage == nil || *got.Stream.Usage != got.Chat.Usage {
		t.Errorf("stream %+v differs from chat %+v", got.Stream, got.Chat)
	}
	if got.Tools.FinishReason != "tool_calls" || got.Tools.Name != "get_weather" || !got.Tools.ArgumentsJSON {
		t.Errorf("tools: %+v", got.Tools)
	}
	if got.Embeddings.Count != 2 || got.Embeddings.Dims == 0 {
		t.Errorf("embeddings: %+v", got.Embeddings)
	}
	if !got.NotFound.NotFoundError || got.NotFound.Code != "model_not_found" {
		t.Errorf("not found: %+v", got.NotFound)
	}
	if !got.BadImage.BadRequest || got.BadImage.Code != "invalid_image_format" {
		t.Errorf("bad image: %+v", got.BadImage)
	}
}

// TestOllamaNodeClientThroughGateway: the official ollama client, unmodified, through the
// gateway's Ollama front to a simulated Ollama (passed through).
func TestOllamaNodeClientThroughGateway(t *testing.T) {
	dir := npmtest.Dir(t, "openai", "ollama")
	ol := simOllama(t, "qwen2.5:7b")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: \"qwen2.5:7b\", targets: [{url: %q, api: ollama}]}\n", ol.URL), gateway.Options{})
	got := npmtest.Run[struct {
		Chat struct {
			Content   string `json:"content"`
			Done      bool   `json:"done"`
			EvalCount int    `json:"eval_count"`
		} `json:"chat"`
		Stream struct {
			Content string `json:"content"`
			Parts   int    `json:"parts"`
		} `json:"stream"`
		List     []string                  `json:"list"`
		Embed    struct{ Count, Dims int } `json:"embed"`
		NotFound map[string]any            `json:"not_found"`
	}](t, dir, "ollama-client.mjs", gw, "qwen2.5:7b")
	if got.Chat.Content == "" || !got.Chat.Done || got.Chat.EvalCount != 8 {
		t.Errorf("chat: %+v", got.Chat)
	}
	if got.Stream.Content != got.Chat.Content || got.Stream.Parts != 9 {
		t.Errorf("stream: %+v", got.Stream)
	}
	if len(got.List) != 1 || got.List[0] != "qwen2.5:7b" {
		t.Errorf("list: %v", got.List)
	}
	if got.Embed.Count != 2 {
		t.Errorf("embed: %+v", got.Embed)
	}
	if got.NotFound["status"] != 404.0 {
		t.Errorf("not found: %v", got.NotFound)
	}
}
