/** `loraforge info`: the compute backend a command would run on, and the native builds here. */
import type { Command } from 'commander';
import { NATIVE_ISA_ENV, nativeVariants, selectBackend, type BackendOptions } from '../../index.ts';
import { addDeviceOptions } from '../options.ts';

export function registerInfo(program: Command): void {
  addDeviceOptions(program.command('info'))
    .description('print the compute backend (with its ISA variant) and the native builds found')
    .action(async (flags: BackendOptions) => {
      const lines = [
        `loraforge ${program.version()}, Node ${process.version}, ${process.platform}-${process.arch}`,
      ];
      lines.push(`native:  ${nativeLine()}`);
      const backend = await selectBackend(flags);
      lines.push(`device:  ${backend.describe()}`);
      process.stdout.write(`${lines.join('\n')}\n`);
      backend.dispose();
    });
}

function nativeLine(): string {
  try {
    const variants = nativeVariants();
    const runs = variants.filter((v) => v.supported).map((v) => v.name);
    return `${variants.map((v) => v.name).join(', ')} built; this CPU runs ${runs.join(', ') || 'none'} (${NATIVE_ISA_ENV}=<variant> forces one)`;
  } catch (err) {
    return `none (${(err as Error).message})`;
  }
}
