/** `loraforge train [config.yaml] [--key value ...]`: the tutorial's fine-tuning pipeline. */
import { Option, type Command } from 'commander';
import { relative } from 'node:path';
import {
  camel,
  flagName,
  readConfigFile,
  resolveTrainConfig,
  runTraining,
  TRAIN_OPTIONS,
} from '../../index.ts';

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .argument('[config]', 'YAML config file (every key can also be given as a flag)')
    .description('fine-tune a model with LoRA (or fully) on an instruction dataset')
    .addHelpText(
      'after',
      '\nExample:\n  loraforge train examples/identity.yaml\n  loraforge train --model Qwen/Qwen2-0.5B-Instruct --dataset data.json --lora-rank 16',
    );
  for (const [key, spec] of Object.entries(TRAIN_OPTIONS)) {
    const value = spec.kind === 'boolean' ? '[bool]' : '<value>';
    const choices = spec.choices ? `: ${spec.choices.join(' | ')}` : '';
    const def = spec.default !== undefined ? ` (default ${JSON.stringify(spec.default)})` : '';
    cmd.addOption(new Option(`${flagName(key)} ${value}`, `${spec.help}${choices}${def}`));
  }
  cmd.action(async (configPath: string | undefined, flags: Record<string, unknown>) => {
    const fromFlags: Record<string, unknown> = {};
    for (const key of Object.keys(TRAIN_OPTIONS)) {
      if (flags[camel(key)] !== undefined) fromFlags[key] = flags[camel(key)];
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
