package ollamaapi_test

import (
	"errors"
	"fmt"

	"citadel.dev/citadel/internal/ollamaapi"
)

// An /api/generate request, translated for an OpenAI-compatible engine that serves the model
// as "qwen2.5-7b-instruct".
func ExampleRequest_ToOpenAI() {
	req, err := ollamaapi.Parse(ollamaapi.Generate, []byte(`{"model":"qwen2.5:7b","prompt":"Why is the sky blue?","stream":false,"options":{"num_predict":64}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	path, body, err := req.ToOpenAI("qwen2.5-7b-instruct")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(path)
	fmt.Println(string(body))
	// Output:
	// /v1/chat/completions
	// {"model":"qwen2.5-7b-instruct","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":false,"max_tokens":64}
}

// A request Ollama would reject is an *Error with Ollama's status and wording.
func ExampleParse_error() {
	_, err := ollamaapi.Parse(ollamaapi.Chat, []byte(`{"messages":[{"role":"user","content":"hi"}]}`))
	var e *ollamaapi.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, string(e.JSON()))
	}
	// Output:
	// 400 {"error":"model is required"}
}
