/** The CPU backend in Node: cpu-backend.ts with Node's runtime host registered (runtime.ts). */
import './runtime.ts';

export * from './cpu-backend.ts';
