/**
 * Teaches the shipped tiny chat model a new identity with a LoRA adapter, and saves the adapter
 * (PEFT files) to a folder.   node train.js [adapter folder] [steps]
 */
import { train } from 'loraforge';
import { shipped } from './shipped.ts';

const outputDir = process.argv[2] ?? 'runs/api-identity';
const steps = Number(process.argv[3] ?? 20);

const result = await train(
  {
    model: shipped('assets/tiny-chat'),
    dataset: shipped('examples/identity.json'),
    set: { name: '小李', author: '小张' }, // fills {{name}} / {{author}} in the records
    template: 'tutorial',
    device: 'cpu',
    output_dir: outputDir,
    max_steps: steps,
    per_device_train_batch_size: 4,
    learning_rate: 2e-3,
    logging_steps: 1,
  },
  { onLog: (record) => console.log(JSON.stringify(record)) },
);
console.log(`adapter saved to ${result.outputDir} after ${result.globalStep} steps`);
