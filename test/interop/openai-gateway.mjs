// Runs the official openai npm SDK against the Citadel gateway and prints what it saw as JSON:
// chat, streaming with usage, tools passed through, embeddings, and errors.
// Usage: node openai-gateway.mjs <base-url, e.g. http://127.0.0.1:8080/v1> <chat model> <embedding model> [api key]
// See internal/gateway TestOpenAINodeClientThroughGateway.
import OpenAI from "openai";

const [baseURL, model, embedModel, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: apiKey || "none", maxRetries: 0 });
const messages = [{ role: "user", content: "Say hello through the gateway." }];
const out = {};

const chat = await client.chat.completions.create({ model, messages, max_tokens: 8 });
out.chat = { content: chat.choices[0].message.content, finish_reason: chat.choices[0].finish_reason, usage: chat.usage };

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 8, stream: true, stream_options: { include_usage: true },
});
let content = "", usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) content += c.delta?.content ?? "";
}
out.stream = { content, usage, chunks };

const tools = [{ type: "function", function: { name: "get_weather", description: "weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
const tc = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Weather in Paris?" }], tools, tool_choice: "required", max_tokens: 64 });
const call = tc.choices[0].message.tool_calls?.[0];
out.tools = { finish_reason: tc.choices[0].finish_reason, name: call?.function?.name, arguments_json: (() => { try { JSON.parse(call.function.arguments); return true; } catch { return false; } })() };

const emb = await client.embeddings.create({ model: embedModel, input: ["one", "two"] });
out.embeddings = { count: emb.data.length, dims: emb.data[0].embedding.length };

try {
  await client.chat.completions.create({ model: "no-such-model", messages });
  out.not_found = { error: "no error" };
} catch (e) {
  out.not_found = { not_found_error: e instanceof OpenAI.NotFoundError, status: e.status, code: e.code };
}
try {
  await client.chat.completions.create({ model, messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,@@@" } }] }] });
  out.bad_image = { error: "no error" };
} catch (e) {
  out.bad_image = { bad_request: e instanceof OpenAI.BadRequestError, status: e.status, code: e.code };
}
console.log(JSON.stringify(out));
