/**
 * Acquires a WebGPU device: `navigator.gpu` in a browser, Dawn (the `webgpu` npm package) in Node.
 * The device is created with the adapter's own limits rather than WebGPU's conservative defaults
 * (128 MiB bindings, 16 KiB workgroup memory), since weights and activations of real models need
 * the larger ones, and with shader-f16 / subgroups / subgroup matrices when the adapter offers them.
 */
import { LoraforgeError } from '../../util/errors.ts';
import type { MatrixConfig } from './gemm-matrix.ts';

export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export interface WebGpuContext {
  device: GPUDevice;
  adapterInfo: WebGpuAdapterInfo;
  /** Optional features that were requested and granted. */
  shaderF16: boolean;
  subgroups: boolean;
  /** The subgroup size when the adapter has subgroups of one size only (kernels may rely on it). */
  fixedSubgroupSize: number | null;
  /** The adapter's largest subgroup (0 without subgroups). */
  maxSubgroupSize: number;
  /**
   * Subgroup-matrix shapes with f32 results (`chromium-experimental-subgroup-matrix`, granted):
   * empty where the adapter has none (no cooperative matrices, or an older driver).
   */
  subgroupMatrixConfigs: MatrixConfig[];
  limits: GPUSupportedLimits;
  /** Destroys the device (Dawn's instance stays for the process: see findGpu). */
  destroy(): void;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Dawn toggles for Node, e.g. `['backend=vulkan']`; ignored in browsers. */
  dawnFlags?: string[];
  /**
   * `'compatibility'` also accepts adapters that only offer WebGPU's compatibility mode, such as
   * Chromium's OpenGL ES adapter (how a page reaches Mesa's lavapipe, through ANGLE); the default
   * asks for a core adapter.
   */
  featureLevel?: 'core' | 'compatibility';
}

const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  // Alignments default to 256 bytes; the adapter's (smaller) values waste less at binding edges.
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;

const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix' as GPUFeatureName;
const WANTED_FEATURES: GPUFeatureName[] = [
  'shader-f16',
  'subgroups' as GPUFeatureName,
  SUBGROUP_MATRIX,
];

/**
 * Dawn offers experimental features (subgroup matrices among them) only to an instance created
 * with `allow_unsafe_apis`; Node runs no untrusted shaders, so every instance gets it.
 */
const UNSAFE_APIS = 'allow_unsafe_apis';

function withUnsafeApis(flags: string[]): string[] {
  const features = flags.findIndex((f) => f.startsWith('enable-dawn-features='));
  if (features < 0) return [...flags, `enable-dawn-features=${UNSAFE_APIS}`];
  if (flags[features]!.split(/[=,]/).includes(UNSAFE_APIS)) return flags;
  return flags.map((f, i) => (i === features ? `${f},${UNSAFE_APIS}` : f));
}

/** The adapter's subgroup-matrix shapes that kernels can use: f16 or f32 components, f32 results. */
function matrixConfigs(info: GPUAdapterInfo): MatrixConfig[] {
  const configs = (info as { subgroupMatrixConfigs?: Iterable<Record<string, unknown>> })
    .subgroupMatrixConfigs;
  return [...(configs ?? [])].flatMap((c) =>
    (c.componentType === 'f16' || c.componentType === 'f32') && c.resultComponentType === 'f32'
      ? [{ component: c.componentType, M: Number(c.M), N: Number(c.N), K: Number(c.K) }]
      : [],
  );
}

export async function acquireWebGpu(options: AcquireOptions = {}): Promise<WebGpuContext> {
  // Dawn's GPU object must stay referenced while the device is used: findGpu keeps it.
  const gpu = await findGpu(options.dawnFlags ?? []);
  // Dawn rejects (rather than resolving null) when a requested backend or adapter is missing.
  const adapter = await gpu
    .requestAdapter({
      powerPreference: options.powerPreference ?? 'high-performance',
      ...(options.featureLevel ? { featureLevel: options.featureLevel } : {}),
    })
    .catch((err: Error) => {
      throw noAdapter(`: ${err.message.split('\n')[0]}`);
    });
  if (!adapter) throw noAdapter('');
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  device.lost.then((info) => {
    if (info.reason !== 'destroyed') console.error(`WebGPU device lost: ${info.message}`);
  });
  const info = adapter.info;
  return {
    device,
    adapterInfo: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
    },
    shaderF16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups' as GPUFeatureName),
    fixedSubgroupSize:
      device.features.has('subgroups' as GPUFeatureName) &&
      info.subgroupMinSize !== undefined &&
      info.subgroupMinSize === info.subgroupMaxSize
        ? info.subgroupMinSize
        : null,
    maxSubgroupSize: device.features.has('subgroups' as GPUFeatureName)
      ? (info.subgroupMaxSize ?? 0)
      : 0,
    subgroupMatrixConfigs: device.features.has(SUBGROUP_MATRIX) ? matrixConfigs(info) : [],
    limits: device.limits,
    destroy() {
      device.destroy();
    },
  };
}

/**
 * Whether an adapter is a hardware GPU: not a software rasterizer such as Mesa's lavapipe or
 * Chromium's SwiftShader, which run WGSL on the CPU far slower than the wasm CPU backend. Dawn
 * marks those as fallback adapters and reports their architecture as "software".
 */
export function isHardwareAdapter(info: {
  isFallbackAdapter?: boolean;
  architecture?: string;
  description?: string;
}): boolean {
  if (info.isFallbackAdapter) return false;
  if (info.architecture === 'software') return false;
  return !/llvmpipe|lavapipe|swiftshader|softpipe/i.test(info.description ?? '');
}

/**
 * Looks for a hardware GPU adapter without creating a device (what `--device auto` asks);
 * false when WebGPU is unavailable, finds no adapter, or finds only a software one.
 */
export async function hasHardwareGpu(): Promise<boolean> {
  try {
    const gpu = await findGpu([]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    return adapter !== null && isHardwareAdapter(adapter.info);
  } catch {
    return false;
  }
}

function noAdapter(detail: string): LoraforgeError {
  return new LoraforgeError(
    `WebGPU: no GPU adapter found${detail}`,
    'install a GPU driver, or on a CPU-only Debian machine run scripts/install-lavapipe.sh as root',
  );
}

const dawnInstances = new Map<string, GPU>();

async function findGpu(dawnFlags: string[]): Promise<GPU> {
  const browserGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (browserGpu) return browserGpu;
  if (typeof process === 'undefined' || !process.versions?.node) {
    throw new LoraforgeError(
      'WebGPU: this browser has no navigator.gpu',
      'use a browser with WebGPU enabled',
    );
  }
  let dawn: typeof import('webgpu');
  try {
    dawn = await import('webgpu');
  } catch (err) {
    throw new LoraforgeError(
      `WebGPU: cannot load the 'webgpu' package (${(err as Error).message})`,
      'run npm install',
    );
  }
  // Dawn's constants (GPUBufferUsage, GPUShaderStage, ...) are globals in browsers; kernels use them.
  Object.assign(globalThis, dawn.globals);
  // One Dawn instance per set of flags for the whole process: an instance being finalized by the
  // garbage collector while another one starts can crash Dawn on lavapipe (seen as SIGSEGV /
  // SIGABRT in test/webgpu/select-backend.test.ts when a device is destroyed and a new adapter
  // asked for). A destroyed device does not keep Node running; the instance alone does not either.
  const flags = withUnsafeApis(dawnFlags);
  const key = flags.join(' ');
  let instance = dawnInstances.get(key);
  if (!instance) {
    instance = dawn.create(flags);
    dawnInstances.set(key, instance);
  }
  return instance;
}
