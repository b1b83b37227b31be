/**
 * Loads the shipped tiny chat model with a saved LoRA adapter and asks it a question, once as a
 * stream of text and once as a Promise.   node chat.js <adapter folder> [question]
 */
import { loadChatPipeline, streamChat, type ChatMessage } from 'loraforge';
import { shipped } from './shipped.ts';

const adapter = process.argv[2] ?? 'runs/api-identity';
const question = process.argv[3] ?? 'Who are you?';

const pipeline = await loadChatPipeline({
  model: shipped('assets/tiny-chat'),
  adapter,
  device: 'cpu',
});
const messages: ChatMessage[] = [{ role: 'user', content: question }];

for await (const text of streamChat(pipeline, messages, { maxNewTokens: 48 })) {
  process.stdout.write(text);
}
process.stdout.write('\n');

const { text, finishReason } = await pipeline.chat(messages, { maxNewTokens: 48 });
console.log(`(again, as a Promise: ${JSON.stringify(text)}, ${finishReason})`);
pipeline.dispose();
