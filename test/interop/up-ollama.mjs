// Runs the official ollama npm client against the Ollama front of a live `citadel up`'s gateway
// and prints what it saw as JSON: list, ps, show, a chat through "auto" and a streamed generate.
// Usage: node up-ollama.mjs <host, e.g. http://127.0.0.1:8080> <model for show and generate>
// See test/interop TestUp.
import { Ollama } from "ollama";

const [host, model] = process.argv.slice(2);
const ollama = new Ollama({ host });
const out = {};

out.list = (await ollama.list()).models.map((m) => m.name);
out.ps = (await ollama.ps()).models.map((m) => m.name);

const show = await ollama.show({ model });
out.show = { capabilities: show.capabilities, modelfile: show.modelfile };

const chat = await ollama.chat({ model: "auto", stream: false, options: { num_predict: 8 },
  messages: [{ role: "user", content: "Why does this fail? def f(x): return x +" }] });
out.chat = { model: chat.model, role: chat.message.role, content: chat.message.content, done: chat.done,
  done_reason: chat.done_reason, eval_count: chat.eval_count };

const stream = await ollama.generate({ model, prompt: "Write a two-line poem about the sea.", stream: true, options: { num_predict: 8 } });
let response = "", parts = 0, last = null;
for await (const part of stream) {
  parts++;
  response += part.response;
  last = part;
}
out.generate = { response, parts, done: last.done, done_reason: last.done_reason, eval_count: last.eval_count };

try {
  await ollama.chat({ model: "no-such-model", messages: [{ role: "user", content: "hello" }], stream: false });
  out.not_found = { error: "no error" };
} catch (e) {
  out.not_found = { name: e.name, status: e.status_code, message: e.error };
}
console.log(JSON.stringify(out));
