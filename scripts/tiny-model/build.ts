/**
 * `npm run build:tiny-model`: makes the small chat model that ships in assets/tiny-chat, from
 * nothing but this repository: the seeded corpus, the project's own BPE tokenizer, a random
 * Qwen2-architecture init, and full fine-tuning with loraforge's Trainer. Deterministic for a
 * given machine (same seeds, same kernels); writes bf16 weights (< 10 MB).
 *
 * The model is trained with the tutorial's prompt format ("Human: …\n\nAssistant: "), so base
 * chat, the identity LoRA and evaluation all speak the same format.
 */
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/io/atomic.ts';
import {
  SafetensorsFile,
  bytesToF32,
  encodeSafetensors,
  f32ToBf16,
  type NamedTensorData,
} from '../../src/io/safetensors.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { runTraining } from '../../src/train/run.ts';
import { corpusToJsonl, generateCorpus } from './corpus.ts';

export const TINY_CHAT_CONFIG = {
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  vocab_size: 2048,
  hidden_size: 256,
  intermediate_size: 640,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 512,
  rope_theta: 10000.0,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  bos_token_id: null,
  eos_token_id: 2047,
  torch_dtype: 'bfloat16',
};

const ASSETS = 'assets/tiny-chat';

async function main(): Promise<void> {
  const work = join('.tmp', 'tiny-model-build');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  // Distinct records only: repeats would just cost time; epochs do the repeating.
  const seen = new Set<string>();
  const records = generateCorpus().filter((r) => {
    const key = `${r.instruction}\u0000${r.input}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const corpusPath = join(work, 'corpus.jsonl');
  writeFileSync(corpusPath, corpusToJsonl(records));
  console.log(`corpus: ${records.length} distinct records`);

  const initDir = join(work, 'init');
  writeRandomModel(initDir, TINY_CHAT_CONFIG, { dtype: 'F32', seed: 1 });
  for (const file of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(ASSETS, file), join(initDir, file));

  const outputDir = join(work, 'train');
  const epochs = Number(process.env.TINY_EPOCHS ?? 6);
  const config = resolveTrainConfig([
    {
      source: 'build-tiny-model',
      values: {
        model: initDir,
        dataset: corpusPath,
        template: 'tutorial',
        finetuning_type: 'full',
        cutoff_len: 96,
        val_size: 200,
        packing: true,
        per_device_train_batch_size: 16,
        num_train_epochs: epochs,
        learning_rate: 1e-3,
        weight_decay: 0.05,
        lr_scheduler_type: 'cosine',
        warmup_steps: 100,
        max_grad_norm: 1,
        logging_steps: 50,
        eval_steps: 500,
        save_steps: 500,
        save_total_limit: 1,
        seed: 7,
        dtype: 'f32',
        output_dir: outputDir,
        ...(process.env.TINY_MAX_STEPS ? { max_steps: Number(process.env.TINY_MAX_STEPS) } : {}),
      },
    },
  ]);
  const result = await runTraining(config);
  console.log(`trained ${result.globalStep} steps, eval loss ${result.evalLoss?.toFixed(4)}`);

  // Ship bf16 weights: half the bytes, and what a bf16 Qwen checkpoint looks like.
  const trained = SafetensorsFile.open(join(outputDir, 'model.safetensors'));
  const tensors: NamedTensorData[] = trained.names().map((name) => {
    const info = trained.info(name);
    return {
      name,
      dtype: 'BF16',
      shape: info.shape,
      data: f32ToBf16(bytesToF32(info.dtype, trained.read(name))),
    };
  });
  trained.close();
  writeFileAtomic(join(ASSETS, 'model.safetensors'), encodeSafetensors(tensors));
  writeFileAtomic(join(ASSETS, 'config.json'), JSON.stringify(TINY_CHAT_CONFIG, null, 2) + '\n');
  writeFileAtomic(
    join(ASSETS, 'generation_config.json'),
    JSON.stringify(
      { eos_token_id: TINY_CHAT_CONFIG.eos_token_id, do_sample: false, max_new_tokens: 64 },
      null,
      2,
    ) + '\n',
  );
  copyFileSync(join(outputDir, 'loss.png'), join(ASSETS, 'training-loss.png'));
  console.log(`wrote ${ASSETS}/ (model.safetensors, config.json, generation_config.json)`);
}

await main();
