// The op gradient checks (gradcheck-cases.ts) on the CPU backends (wasm, native).
import { registerGradchecks } from './gradcheck-cases.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

forEachCpuBackend(() => {
  registerGradchecks();
});
