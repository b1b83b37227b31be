/** `loraforge train [config.yaml] [--key value ...]`: the tutorial's fine-tuning pipeline. */
import { Option, type Command } from 'commander';
import { relative } from 'node:path';
import {
  readConfigFile,
  resolveTrainConfig,
  runTraining,
  TRAIN_KEYS,
  type TrainKey,
} from '../../index.ts';

function flagName(key: string): string {
  return `--${key.replaceAll('_', '-')}`;
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
  for (const [key, spec] of Object.entries(TRAIN_KEYS)) {
    const value = spec.kind === 'boolean' ? '[bool]' : '<value>';
    const def = 'default' in spec ? ` (default ${JSON.stringify(spec.default)})` : '';
    cmd.addOption(new Option(`${flagName(key)} ${value}`, `${spec.help}${def}`));
  }
  cmd.action(async (configPath: string | undefined, flags: Record<string, unknown>) => {
    const fromFlags: Record<string, unknown> = {};
    for (const key of Object.keys(TRAIN_KEYS) as TrainKey[]) {
      const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
      if (flags[camel] !== undefined) fromFlags[key] = flags[camel];
    }
    const config = resolveTrainConfig([
      ...(configPath ? [{ values: readConfigFile(configPath), source: configPath }] : []),
      { values: fromFlags, source: 'command line' },
    ]);
    const result = await runTraining(config);
    const out = relative(process.cwd(), result.outputDir) || '.';
    const lines = [
      '',
      result.interrupted
        ? `stopped at step ${result.globalStep}; resume with: loraforge train ${configPath ?? ''} --resume-from-checkpoint latest`
        : `done: ${result.globalStep} steps, train loss ${result.trainLoss.toFixed(4)}` +
          (result.evalLoss !== undefined ? `, eval loss ${result.evalLoss.toFixed(4)}` : ''),
      `adapter:  ${out}/  (PEFT format: adapter_config.json + adapter_model.safetensors)`,
      `metrics:  ${relative(process.cwd(), result.metricsPath)}`,
      ...(result.plotPaths.length
        ? [`plot:     ${result.plotPaths.map((p) => relative(process.cwd(), p)).join(', ')}`]
        : []),
      `next:     loraforge chat --model ${config.model} --adapter ${out}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });
}
