// Runs the official openai npm SDK against a simulated engine and prints what it saw as JSON.
// Usage: node openai-client.mjs <base-url, e.g. http://127.0.0.1:8000/v1> <model>
// See internal/sim TestOpenAINodeClient.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-sim", maxRetries: 0 });
const messages = [{ role: "user", content: "Say hello to the simulator." }];
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

try {
  await client.chat.completions.create({ model: "no-such-model", messages });
  out.not_found = { error: "no error" };
} catch (e) {
  out.not_found = { not_found_error: e instanceof OpenAI.NotFoundError, status: e.status };
}
console.log(JSON.stringify(out));
