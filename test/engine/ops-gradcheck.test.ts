// The op gradient checks (gradcheck-cases.ts) on the CPU backend.
import { before } from 'node:test';
import { useCpuBackend } from '../helpers.ts';
import { registerGradchecks } from './gradcheck-cases.ts';

before(() => useCpuBackend());
registerGradchecks();
