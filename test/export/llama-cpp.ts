/**
 * llama.cpp itself (node-llama-cpp's prebuilt CPU binary, no build, no download) as the
 * independent reader of exported GGUF files: tokenization, raw logits and greedy decoding.
 */
import { getLlama, type Llama, type LlamaContextSequence, type LlamaModel } from 'node-llama-cpp';

let llama: Promise<Llama> | undefined;

/** llama.cpp's context size in these checks (it also picks LongRoPE's table: long above the original). */
export const LLAMA_CONTEXT = 256;

export function llamaCpp(): Promise<Llama> {
  llama ??= getLlama({
    gpu: false,
    build: 'never',
    logLevel: 'error' as never,
    progressLogs: false,
  });
  return llama;
}

export async function loadGguf(path: string, opts: { lora?: string } = {}): Promise<LlamaGguf> {
  const model = await (await llamaCpp()).loadModel({ modelPath: path });
  return new LlamaGguf(model, opts.lora);
}

export class LlamaGguf {
  constructor(
    readonly model: LlamaModel,
    private readonly lora?: string,
  ) {}

  /** Tokenization of plain text (special-token texts are not parsed as special tokens). */
  tokenize(text: string): number[] {
    return [...this.model.tokenize(text, false)];
  }

  /** Raw logits after every input token, [tokens.length][vocabSize]. */
  async logits(tokens: number[], vocabSize: number): Promise<Float32Array[]> {
    return this.withSequence(async (seq) => {
      const items = tokens.map((t) => [t, { generateNext: { logits: true } }] as const);
      const results = await seq.controlledEvaluate(items as never);
      return results.map((r) => {
        const out = new Float32Array(vocabSize);
        for (const [id, v] of r!.next!.logits!) out[id] = v;
        return out;
      });
    });
  }

  /** Greedy (argmax) continuation of `prompt`: up to `maxNew` tokens, ending at a stop id. */
  async greedy(prompt: number[], maxNew: number, stopIds: number[]): Promise<number[]> {
    return this.withSequence(async (seq) => {
      const out: number[] = [];
      let input = prompt;
      while (out.length < maxNew) {
        const items = input.map((t, i) =>
          i === input.length - 1 ? [t, { generateNext: { logits: true } }] : t,
        );
        const results = await seq.controlledEvaluate(items as never);
        const logits = results[results.length - 1]!.next!.logits!;
        const next = logits.entries().next().value![0];
        if (stopIds.includes(next)) break;
        out.push(next);
        input = [next];
      }
      return out;
    });
  }

  private async withSequence<T>(fn: (seq: LlamaContextSequence) => Promise<T>): Promise<T> {
    const context = await this.model.createContext({
      contextSize: LLAMA_CONTEXT,
      // One thread: ggml's workers spin while waiting, which stalls on a busy machine.
      threads: 1,
      // llama.cpp keeps keys and values in f16 by default; f32 makes its logits comparable at 1e-3.
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      batchSize: 256,
      sequences: 1,
      ...(this.lora ? { lora: { adapters: [{ filePath: this.lora }] } } : {}),
    });
    try {
      return await fn(context.getSequence());
    } finally {
      await context.dispose();
    }
  }

  dispose(): Promise<void> {
    return this.model.dispose();
  }
}
