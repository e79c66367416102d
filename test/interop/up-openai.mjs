// Runs the official openai npm SDK against the gateway of a live `citadel up` and prints what it
// saw as JSON: the model list, a code question through "auto" (plain and streamed) with the
// x-citadel-route header, an image answered by the vision model, and an unknown model's error.
// Usage: node up-openai.mjs <base-url, e.g. http://127.0.0.1:8080/v1>
// See test/interop TestUp.
import OpenAI from "openai";

const [baseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0, timeout: 30_000 });
const code = [{ role: "user", content: "Why does this fail? def f(x): return x +" }];
// a 1×1 PNG
const png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
const out = {};

const models = [];
for await (const m of client.models.list()) models.push(m.id);
out.models = models;

{
  const { data, response } = await client.chat.completions.create({ model: "auto", messages: code, max_tokens: 16 }).withResponse();
  out.chat = { status: response.status, route: response.headers.get("x-citadel-route"), model: data.model,
    content: data.choices[0].message.content, finish_reason: data.choices[0].finish_reason, usage: data.usage };
}

{
  const { data: stream, response } = await client.chat.completions.create({
    model: "auto", messages: code, max_tokens: 16, stream: true, stream_options: { include_usage: true },
  }).withResponse();
  let content = "", usage = null, chunks = 0, finish_reason = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      content += c.delta?.content ?? "";
      finish_reason = c.finish_reason ?? finish_reason;
    }
  }
  out.stream = { status: response.status, route: response.headers.get("x-citadel-route"), content, chunks, usage, finish_reason };
}

{
  const messages = [{ role: "user", content: [{ type: "text", text: "What is in this image?" }, { type: "image_url", image_url: { url: png } }] }];
  const { data, response } = await client.chat.completions.create({ model: "auto", messages, max_tokens: 16 }).withResponse();
  out.vision = { status: response.status, route: response.headers.get("x-citadel-route"), content: data.choices[0].message.content };
}

try {
  await client.chat.completions.create({ model: "no-such-model", messages: code });
  out.not_found = { error: "no error" };
} catch (e) {
  out.not_found = { not_found_error: e instanceof OpenAI.NotFoundError, status: e.status, code: e.code, type: e.type, param: e.param, message: e.message };
}
console.log(JSON.stringify(out));
