// Runs the official ollama npm client against a simulated Ollama and prints what it saw as JSON.
// Usage: node ollama-client.mjs <host, e.g. http://127.0.0.1:11434> <model>
// See internal/sim TestOllamaNodeClient.
import { Ollama } from "ollama";

const [host, model] = process.argv.slice(2);
const ollama = new Ollama({ host });
const messages = [{ role: "user", content: "Say hello to the simulator." }];
const out = {};

const chat = await ollama.chat({ model, messages, stream: false, options: { num_predict: 8 } });
out.chat = { content: chat.message.content, done: chat.done, done_reason: chat.done_reason,
  eval_count: chat.eval_count, prompt_eval_count: chat.prompt_eval_count, total_duration: chat.total_duration };

const stream = await ollama.chat({ model, messages, stream: true, options: { num_predict: 8 } });
let content = "", parts = 0, last = null;
for await (const part of stream) {
  parts++;
  content += part.message.content;
  last = part;
}
out.stream = { content, parts, done_reason: last.done_reason, eval_count: last.eval_count };

const list = await ollama.list();
out.list = list.models.map((m) => m.name);

const show = await ollama.show({ model });
out.show = { architecture: show.model_info["general.architecture"], capabilities: show.capabilities, family: show.details.family };

const embed = await ollama.embed({ model, input: ["one", "two"] });
out.embed = { count: embed.embeddings.length, dims: embed.embeddings[0].length };

try {
  await ollama.chat({ model: "no-such-model", messages, stream: false });
  out.not_found = { error: "no error" };
} catch (e) {
  out.not_found = { name: e.name, status: e.status_code, message: e.error };
}
console.log(JSON.stringify(out));
