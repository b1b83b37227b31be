/**
 * Writes examples/tiny-general.json: a small sample of the tiny model's own general chats, mixed
 * into the identity fine-tune (replay) so the LoRA learns the new identity without forgetting
 * arithmetic, capitals and calendars. Questions of examples/identity-eval.json are left out.
 *   npx tsx scripts/tiny-model/replay.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { generateCorpus } from './corpus.ts';

const REPLAY_SIZE = 360;
const REPLAY_SEED = 99;

const normalize = (text: string) => text.toLowerCase().replace(/[\s\p{P}]/gu, '');
const evalSet = JSON.parse(readFileSync('examples/identity-eval.json', 'utf8')) as {
  general: { question: string }[];
};
const held = new Set(evalSet.general.map((q) => normalize(q.question)));
const seen = new Set<string>();
const replay = generateCorpus({ seed: REPLAY_SEED, size: 4000 })
  .filter((r) => r.topic !== 'identity' && r.topic !== 'small-talk')
  .filter((r) => {
    const key = normalize(`${r.instruction}${r.input}`);
    if (held.has(key) || seen.has(key)) return false;
    seen.add(key);
    return true;
  })
  .slice(0, REPLAY_SIZE)
  .map(({ instruction, input, output }) => ({ instruction, input, output }));
writeFileSync('examples/tiny-general.json', JSON.stringify(replay, null, 2) + '\n');
console.log(`wrote examples/tiny-general.json: ${replay.length} records`);
