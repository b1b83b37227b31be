/**
 * `loraforge demo`: the tutorial's story on the shipped tiny chat model: ask who it is, fine-tune
 * a LoRA on the identity dataset, ask again, and show before | after side by side.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import {
  ChatPipeline,
  evalComparisonJson,
  formatEvalTable,
  loadAdapter,
  loadEvalSet,
  LoraforgeError,
  QUANTIZATION_OPTIONS,
  quantizationFlags,
  quantizationFromOptions,
  readConfigFile,
  resolveTrainConfig,
  runTraining,
  selectBackend,
  writeFileAtomic,
} from '../../index.ts';
import { addTableFlags, givenTableFlags } from '../options.ts';
import { evaluateWithProgress } from './eval.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');

export function registerDemo(program: Command): void {
  const demo = program
    .command('demo')
    .description(
      'fine-tune the shipped tiny chat model to say its name is 小李 and its developer 小张, before | after',
    )
    .option('-o, --output-dir <dir>', 'where the adapter and plots go', 'runs/demo')
    .option('--config <file>', 'training config', join(ROOT, 'examples', 'identity.yaml'))
    .option('--eval <file>', 'held-out questions', join(ROOT, 'examples', 'identity-eval.json'))
    .option('--threads <n>', 'CPU threads (default: all cores)', Number)
    .option('--max-steps <n>', 'stop training after n steps (a quick run)', Number);
  // QLoRA's frozen-base flags: the demo then asks and trains on the quantized model.
  addTableFlags(demo, QUANTIZATION_OPTIONS).action(
    async (flags: {
      [quantizationFlag: string]: unknown;
      outputDir: string;
      config: string;
      eval: string;
      threads?: number;
      maxSteps?: number;
    }) => {
      const raw = readConfigFile(flags.config);
      // Paths in the shipped config are relative to the project, wherever the demo runs from.
      const fromRoot = (path: string) => (existsSync(join(ROOT, path)) ? join(ROOT, path) : path);
      if (typeof raw.model === 'string') raw.model = fromRoot(raw.model);
      if (typeof raw.dataset === 'string')
        raw.dataset = raw.dataset
          .split(',')
          .map((f) => fromRoot(f.trim()))
          .join(',');
      const config = resolveTrainConfig([
        { values: raw, source: flags.config },
        {
          values: {
            output_dir: flags.outputDir,
            // Running the demo again replaces its earlier run (files of the user's are kept).
            overwrite_output_dir: true,
            threads: flags.threads,
            max_steps: flags.maxSteps,
            device: 'cpu',
            ...givenTableFlags(QUANTIZATION_OPTIONS, flags),
          },
          source: 'command line',
        },
      ]);
      if (!existsSync(join(config.model, 'model.safetensors'))) {
        throw new LoraforgeError(
          `${config.model}: the tiny chat model is missing`,
          'run `npm run build:tiny-model`',
        );
      }
      const target = { name: config.set?.name ?? '小李', author: config.set?.author ?? '小张' };
      const set = loadEvalSet(flags.eval);
      const say = (line: string) => process.stdout.write(`${line}\n`);

      await selectBackend({ device: 'cpu', threads: config.threads });
      const pipeline = await ChatPipeline.load({
        model: config.model,
        template: config.template,
        quantization: quantizationFromOptions(config),
      });
      say(
        `1/3  asking the base model ${set.identity.length + set.general.length} held-out questions`,
      );
      const before = await evaluateWithProgress(pipeline, set, target, 'before');

      say(
        `2/3  LoRA fine-tune on ${relative(process.cwd(), config.dataset) || config.dataset} (${target.name} / ${target.author})`,
      );
      const result = await runTraining(config, { log: (line) => say(`     ${line}`) });

      say('3/3  asking again with the adapter');
      const adapter = loadAdapter(result.outputDir, pipeline.model);
      adapter.attach(pipeline.model, { frozen: true });
      const after = await evaluateWithProgress(pipeline, set, target, 'after');

      say('');
      say(formatEvalTable(before, after));
      const jsonPath = join(result.outputDir, 'demo-eval.json');
      writeFileAtomic(jsonPath, JSON.stringify(evalComparisonJson(before, after), null, 2) + '\n');
      const out = relative(process.cwd(), result.outputDir) || '.';
      say('');
      say(`adapter:   ${out}/ (PEFT format)`);
      say(`loss plot: ${result.plotPaths.map((p) => relative(process.cwd(), p)).join(', ')}`);
      say(`results:   ${relative(process.cwd(), jsonPath)}`);
      say(
        `next:      loraforge chat --model ${relative(process.cwd(), config.model)} --adapter ${out}${quantizationFlags(config)}`,
      );
      adapter.dispose();
      pipeline.dispose();
    },
  );
}
