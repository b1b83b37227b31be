// Entry of the tokenizer worker thread (see tokenizer-thread.ts). Plain JavaScript so that it
// starts under any loader; tsx is registered here to run the TypeScript service.
import { register } from 'tsx/esm/api';

register();
await import('./tokenize-service.ts');
