// Loading quantized bases: bitsandbytes 4-bit folders (written in bnb's layout by bnb-folder.ts)
// give back exactly the quantization they hold; what is not understood is refused by name; and
// quantizing while loading (the quantizeRows kernel) gives the host quantizer's codes and holds one
// unquantized projection at a time. What touches the device runs on each CPU backend (wasm, native).
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Backend } from '../../src/engine/backend.ts';
import { dequantize, quantize } from '../../src/engine/quant/quantize.ts';
import { QuantizedWeight } from '../../src/engine/quant/quantized-weight.ts';
import { Tensor } from '../../src/engine/tensor.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.ts';
import { bytesToF32, type NamedTensorData } from '../../src/io/safetensors-format.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { mergeToFolder } from '../../src/peft/merge.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';
import { maxAbsDiff, TINY, useCpuBackend } from '../helpers.ts';
import { writeBnb4bitFolder } from './bnb-folder.ts';
import { goldenLogits } from './quantized-golden.ts';

let backend: Backend;
const root = mkdtempSync(join(tmpdir(), 'lf-qload-'));
before(async () => {
  backend = await useCpuBackend();
});
after(() => rmSync(root, { recursive: true, force: true }));

forEachCpuBackend((cpu) => {
  before(async () => {
    backend = await cpu.use();
  });

  for (const [type, doubleQuant] of [
    ['nf4', true],
    ['fp4', false],
  ] as const) {
    test(`a bitsandbytes ${type}${doubleQuant ? ' double-quant' : ''} folder loads as the quantization it holds`, async () => {
      const dir = join(root, `bnb-${type}`);
      const written = writeBnb4bitFolder(TINY, dir, type, doubleQuant);
      const model = loadModel(dir);
      let checked = 0;
      for (const [path, p] of model.projections()) {
        assert.ok(p.weight instanceof QuantizedWeight, `${path} is quantized`);
        const [rows, cols] = p.weight.shape;
        const out = Tensor.empty([rows, cols]);
        p.weight.dequantizeRowsInto(out, 0, rows);
        const want = dequantize(written.get(`${path}.weight`)!);
        assert.deepEqual(out.readSync(), want, `${path}: dequantized values`);
        out.dispose();
        checked++;
      }
      assert.equal(checked, written.size);
      // The same model as quantizing the dense checkpoint while loading it.
      const fromDense = loadModel(TINY, { quantization: { type, doubleQuant } });
      assert.equal(maxAbsDiff(await goldenLogits(model), await goldenLogits(fromDense)), 0);
      model.dispose();
      fromDense.dispose();
    });
  }

  test('quantizing while loading holds one unquantized projection at a time, briefly', () => {
    const dir = join(root, 'random');
    writeRandomModel(dir, {
      architectures: ['Qwen2ForCausalLM'],
      vocab_size: 256,
      hidden_size: 256,
      intermediate_size: 768,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      tie_word_embeddings: true,
    });
    const start = backend.allocatedBytes();
    const dense = peakAllocated(() => loadModel(dir));
    const denseBytes = backend.allocatedBytes() - start;
    dense.result.dispose();
    const nf4 = peakAllocated(() =>
      loadModel(dir, { quantization: { type: 'nf4', doubleQuant: true } }),
    );
    const nf4Bytes = backend.allocatedBytes() - start;
    nf4.result.dispose();
    // The folder is f32: the largest projection as read, quantized by the kernel where it lies.
    const largestProjection = 768 * 256 * 4;
    // Above what the quantized model holds, the peak is one dense projection (and its absmax):
    // two at once would be twice that.
    assert.ok(
      nf4.peak - start - nf4Bytes < largestProjection * 1.25,
      `peak ${nf4.peak - start}, held ${nf4Bytes}`,
    );
    assert.ok(nf4Bytes < denseBytes / 4, `nf4 ${nf4Bytes} vs dense ${denseBytes} bytes`);
    console.log(
      `# load: dense f32 ${denseBytes} B (peak ${dense.peak - start}), nf4+dq ${nf4Bytes} B (peak ${nf4.peak - start})`,
    );
  });

  for (const [type, doubleQuant, dtype] of [
    ['nf4', true, 'BF16'],
    ['fp4', false, 'F32'],
    ['int8', false, 'BF16'],
  ] as const) {
    test(`${type}${doubleQuant ? ' double-quant' : ''} of a ${dtype} checkpoint, quantized on load by the kernel, equals the host quantizer`, () => {
      const dir = join(root, `random-${dtype}`);
      writeRandomModel(
        dir,
        {
          architectures: ['Qwen2ForCausalLM'],
          vocab_size: 64,
          hidden_size: 96,
          intermediate_size: 200,
          num_hidden_layers: 1,
          num_attention_heads: 4,
          num_key_value_heads: 2,
          tie_word_embeddings: true,
        },
        { dtype },
      );
      const model = loadModel(dir, { quantization: { type, doubleQuant } });
      const file = SafetensorsFile.open(join(dir, 'model.safetensors'));
      try {
        for (const [path, p] of model.projections()) {
          assert.ok(p.weight instanceof QuantizedWeight);
          const [rows, cols] = p.weight.shape;
          const info = file.info(`${path}.weight`);
          const values = bytesToF32(info.dtype, file.read(`${path}.weight`), path);
          const want = dequantize(quantize(values, [rows, cols], type, { doubleQuant }));
          const out = Tensor.empty([rows, cols]);
          p.weight.dequantizeRowsInto(out, 0, rows);
          assert.deepEqual(out.readSync(), want, `${path}: dequantized values`);
          out.dispose();
        }
      } finally {
        file.close();
        model.dispose();
      }
    });
  }
});

/** A copy of the nf4 folder with one change to its config or tensors. */
function brokenFolder(
  name: string,
  change: { config?: (c: Record<string, unknown>) => void; state?: string },
): string {
  const dir = join(root, name);
  cpSync(join(root, 'bnb-nf4'), dir, { recursive: true });
  if (change.config) {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    change.config(config);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  }
  if (change.state) {
    const file = SafetensorsFile.open(join(dir, 'model.safetensors'));
    const tensors: NamedTensorData[] = file.names().map((n) => {
      const info = file.info(n);
      const isState = n.endsWith('.quant_state.bitsandbytes__nf4');
      const data = isState ? new TextEncoder().encode(change.state) : file.read(n);
      return { name: n, dtype: info.dtype, shape: isState ? [data.length] : info.shape, data };
    });
    file.close();
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
  }
  return dir;
}

test('what a quantized checkpoint holds and loraforge does not understand is refused by name', () => {
  const cases: [string, Parameters<typeof brokenFolder>[1], RegExp][] = [
    [
      'gptq',
      { config: (c) => (c.quantization_config = { quant_method: 'gptq' }) },
      /quant_method 'gptq'/,
    ],
    [
      'eight-bit',
      { config: (c) => (c.quantization_config = { load_in_8bit: true }) },
      /load_in_8bit/,
    ],
    [
      'unknown-state-key',
      {
        state: JSON.stringify({
          quant_type: 'nf4',
          blocksize: 64,
          dtype: 'float32',
          shape: [64, 64],
          nested_blocksize: 256,
          nested_dtype: 'float32',
          nested_offset: 0,
          zero_point: 3,
        }),
      },
      /key 'zero_point', not understood/,
    ],
  ];
  for (const [name, change, message] of cases) {
    assert.throws(() => loadModel(brokenFolder(name, change)), message, name);
  }
});

test('merging into a bitsandbytes folder is refused by name (the dense checkpoint takes the merge)', async () => {
  const model = loadModel(TINY);
  const adapter = LoraAdapter.create(model, makeLoraConfig({}), 0);
  await assert.rejects(
    mergeToFolder(join(root, 'bnb-nf4'), adapter, join(root, 'merged')),
    /merging into a quantized checkpoint \(quantization_config\) is not supported yet/,
  );
  adapter.dispose();
  model.dispose();
});

/** Runs `fn` and returns the largest allocatedBytes the backend reached meanwhile. */
function peakAllocated<T>(fn: () => T): { result: T; peak: number } {
  const { alloc, free } = backend;
  let peak = backend.allocatedBytes();
  backend.alloc = (bytes) => {
    const storage = alloc.call(backend, bytes);
    peak = Math.max(peak, backend.allocatedBytes());
    return storage;
  };
  backend.free = (storage) => free.call(backend, storage);
  try {
    return { result: fn(), peak };
  } finally {
    backend.alloc = alloc;
    backend.free = free;
  }
}
