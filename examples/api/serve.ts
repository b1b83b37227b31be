/**
 * Serves the shipped tiny chat model with a LoRA adapter over the OpenAI API, asks one question
 * through HTTP, then shuts the server down.   node serve.js <adapter folder>
 */
import { createServer, loadChatPipeline, ModelServeEngine } from 'loraforge';
import { shipped } from './shipped.ts';

const adapter = process.argv[2] ?? 'runs/api-identity';

const pipeline = await loadChatPipeline({ model: shipped('assets/tiny-chat'), device: 'cpu' });
const engine = new ModelServeEngine(pipeline, 'tiny-chat');
await engine.loadAdapter('identity', adapter); // requests pick it with "model": "identity"
const server = createServer(engine);
const { host, port } = await server.listen(0, '127.0.0.1');

const response = await fetch(`http://${host}:${port}/v1/chat/completions`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    model: 'identity',
    messages: [{ role: 'user', content: 'Who are you?' }],
    max_tokens: 48,
    temperature: 0,
  }),
});
const reply = (await response.json()) as { choices: { message: { content: string } }[] };
console.log(reply.choices[0]!.message.content);

await server.close();
pipeline.dispose();
