/** `loraforge train [config.yaml] [--key value ...]`: the tutorial's fine-tuning pipeline. */
import type { Command } from 'commander';
import { relative } from 'node:path';
import {
  estimateRun,
  flagName,
  formatMemoryEstimate,
  quantizationFlags,
  readConfigFile,
  resolveTrainConfig,
  runTraining,
  shellQuote,
  TRAIN_OPTIONS,
} from '../../index.ts';
import { addTableFlags, givenTableFlags } from '../options.ts';

/** Keys that describe how a run starts, not the run: a resume command leaves them out. */
const START_ONLY_KEYS = new Set(['resume_from_checkpoint', 'overwrite_output_dir']);

/** The command that continues this run: same config file and flags, resuming the latest checkpoint. */
function resumeCommand(configPath: string | undefined, given: Record<string, unknown>): string {
  const args = ['loraforge', 'train', ...(configPath ? [configPath] : [])];
  for (const [key, value] of Object.entries(given)) {
    if (!START_ONLY_KEYS.has(key)) args.push(flagName(key), String(value));
  }
  args.push('--resume-from-checkpoint', 'latest');
  return args.map(shellQuote).join(' ');
}

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .argument('[config]', 'YAML config file (every key can also be given as a flag)')
    .description('fine-tune a model with LoRA (or fully) on an instruction dataset')
    .addHelpText(
      'after',
      '\nExample:\n  loraforge train examples/identity.yaml\n  loraforge train --model Qwen/Qwen2-0.5B-Instruct --dataset data.json --lora-rank 16',
    );
  addTableFlags(cmd, TRAIN_OPTIONS);
  cmd.option('--dry-run', 'print the memory the run will need and exit, loading nothing');
  cmd.action(async (configPath: string | undefined, flags: Record<string, unknown>) => {
    const fromFlags = givenTableFlags(TRAIN_OPTIONS, flags);
    const config = resolveTrainConfig([
      ...(configPath ? [{ values: readConfigFile(configPath), source: configPath }] : []),
      { values: fromFlags, source: 'command line' },
    ]);
    if (flags.dryRun) {
      process.stdout.write(formatMemoryEstimate(await estimateRun(config)) + '\n');
      return;
    }
    const result = await runTraining(config);
    const out = relative(process.cwd(), result.outputDir) || '.';
    if (result.interrupted) {
      const checkpoint = relative(process.cwd(), result.checkpoint ?? result.outputDir);
      process.stdout.write(
        `\nstopped at step ${result.globalStep}; last checkpoint: ${checkpoint}/\n` +
          `resume with: ${resumeCommand(configPath, fromFlags)}\n`,
      );
      process.exitCode = 130; // as shells expect of a run ended by Ctrl-C
      return;
    }
    const lines = [
      '',
      `done: ${result.globalStep} steps, train loss ${result.trainLoss.toFixed(4)}` +
        (result.evalLoss !== undefined ? `, eval loss ${result.evalLoss.toFixed(4)}` : ''),
      `adapter:  ${out}/  (PEFT format: adapter_config.json + adapter_model.safetensors)`,
      `metrics:  ${relative(process.cwd(), result.metricsPath)}`,
      ...(result.plotPaths.length
        ? [`plot:     ${result.plotPaths.map((p) => relative(process.cwd(), p)).join(', ')}`]
        : []),
      `next:     loraforge chat --model ${config.model} --adapter ${out}${quantizationFlags(config)}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });
}
