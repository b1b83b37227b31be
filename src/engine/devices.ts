/**
 * The compute devices, declared once for the CLI flags, the train config and the typed API:
 * `cpu` (the fastest CPU backend here: native, else WebAssembly), `wasm` (WebAssembly SIMD,
 * always), `webgpu`, and `auto` (a hardware GPU if there is one, else `cpu`).
 */
export const DEVICE_NAMES = ['auto', 'cpu', 'wasm', 'webgpu'] as const;

/** A compute device (see DEVICE_NAMES). */
export type DeviceName = (typeof DEVICE_NAMES)[number];
