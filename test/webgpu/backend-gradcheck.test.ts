// The op gradient checks (test/engine/gradcheck-cases.ts) on the WebGPU backend.
import { registerGradchecks } from '../engine/gradcheck-cases.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const { skip } = await useWebGpuBackend();
registerGradchecks(skip);
