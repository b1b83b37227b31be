// Entry of the tokenizer worker thread in a checkout (see tokenizer-thread.ts): plain JavaScript
// that registers tsx to run the TypeScript service. The package runs the compiled service instead
// and does not ship this file (scripts/build.mjs).
import { register } from 'tsx/esm/api';

register();
await import('./tokenize-service.ts');
