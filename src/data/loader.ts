import { LoraforgeError } from '../util/errors.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { collate, type Batch } from './batch.ts';
import type { EncodedExample } from './examples.ts';
import { packIndices } from './packing.ts';
import { DEFAULT_SEED, Rng, deriveSeed } from '../util/rng.ts';

/** Batching of encoded examples: batch size, padding, shuffling, grouping and packing. */
export interface DataLoaderOptions {
  /** Rows per batch (with packing, each row holds several examples). */
  batchSize: number;
  padId: number;
  /** Reshuffle every epoch (default true); false keeps file order, e.g. for validation. */
  shuffle?: boolean;
  seed?: number;
  /**
   * Put examples of similar length in the same batch to waste less padding: the shuffled order
   * is cut into mega-batches of 50 batches, each sorted by length, longest batch first (the idea
   * of Hugging Face's LengthGroupedSampler; the longest first means out-of-memory shows early).
   */
  groupByLength?: boolean;
  /** Pack several examples per row, up to `packLength` tokens (default: the longest example). */
  packing?: boolean;
  packLength?: number;
}

/** Where a loader is; JSON-serializable, stored in checkpoints. */
export interface LoaderState {
  seed: number;
  epoch: number;
  /** Batches of this epoch already handed out. */
  index: number;
  /** Dataset size, to refuse resuming on a different dataset. */
  examples: number;
}

const MEGA_BATCH_FACTOR = 50;

/** The pad id batches use: the tokenizer's pad token, else eos, else 0 (masked either way). */
export function padIdOf(tokenizer: Tokenizer): number {
  return tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
}

/**
 * Hands out batches forever, epoch after epoch. Each epoch's order is a pure function of
 * (seed, epoch): its RNG is Rng(deriveSeed(seed, epoch)). So the state is just
 * {seed, epoch, index} and restoring it reproduces exactly the batches a run would have seen.
 */
export class DataLoader {
  private readonly seed: number;
  private epochNumber = 0;
  private index = 0;
  private plan: number[][][] | undefined; // batches -> rows -> example indices, for epochNumber

  constructor(
    private readonly examples: readonly EncodedExample[],
    private readonly opts: DataLoaderOptions,
  ) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
      throw new LoraforgeError(`batch size ${opts.batchSize}: expected a whole number >= 1`);
    }
    this.seed = opts.seed ?? DEFAULT_SEED;
    const longest = examples.reduce((max, e) => Math.max(max, e.inputIds.length), 0);
    if (opts.packing && opts.packLength !== undefined && opts.packLength < longest) {
      throw new LoraforgeError(
        `pack length ${opts.packLength} is shorter than the longest example (${longest} tokens)`,
        'use a pack length >= cutoff_len',
      );
    }
  }

  get epoch(): number {
    return this.epochNumber;
  }

  /** Batches in the current epoch (with packing it can differ slightly between epochs). */
  get batchesPerEpoch(): number {
    return this.currentPlan().length;
  }

  /** The next batch, moving on to the next epoch after the last one. */
  next(): Batch {
    const plan = this.currentPlan();
    // loadDataset refuses empty training sets, so this is a caller bug, not a user error.
    if (plan.length === 0) throw new Error('DataLoader.next() on a loader without examples');
    const rows = plan[this.index]!.map((row) => row.map((i) => this.examples[i]!));
    this.index++;
    if (this.index === plan.length) {
      this.epochNumber++;
      this.index = 0;
      this.plan = undefined;
    }
    return collate(rows, this.opts.padId, this.opts.packing === true);
  }

  /** The remaining batches of the current epoch (all of them on a fresh loader; none if empty). */
  *restOfEpoch(): Generator<Batch> {
    const epoch = this.epochNumber;
    while (this.epochNumber === epoch && this.currentPlan().length > 0) yield this.next();
  }

  /** Where the loader is (epoch, order, position), for checkpoints. */
  state(): LoaderState {
    return {
      seed: this.seed,
      epoch: this.epochNumber,
      index: this.index,
      examples: this.examples.length,
    };
  }

  /** Continues from a state returned by `state()` (resuming a run). */
  restore(state: LoaderState): void {
    if (state.seed !== this.seed || state.examples !== this.examples.length) {
      throw new LoraforgeError(
        `cannot resume the data loader: the checkpoint was made with seed ${state.seed} and ${state.examples} examples, this run has seed ${this.seed} and ${this.examples.length}`,
        'resume with the same dataset, cutoff_len, val_size and seed',
      );
    }
    this.epochNumber = state.epoch;
    this.index = 0;
    this.plan = undefined;
    if (state.index >= this.currentPlan().length) {
      throw new LoraforgeError(
        `cannot resume the data loader: epoch ${state.epoch} has no batch ${state.index}`,
      );
    }
    this.index = state.index;
  }

  private currentPlan(): number[][][] {
    this.plan ??= this.planEpoch(this.epochNumber);
    return this.plan;
  }

  private planEpoch(epoch: number): number[][][] {
    const { batchSize, shuffle = true, groupByLength = false, packing = false } = this.opts;
    const lengthOf = (i: number) => this.examples[i]!.inputIds.length;
    let order = Array.from({ length: this.examples.length }, (_, i) => i);
    if (shuffle) new Rng(deriveSeed(this.seed, epoch)).shuffle(order);
    if (groupByLength)
      order = sortWithinMegaBatches(order, lengthOf, batchSize * MEGA_BATCH_FACTOR);
    const packLength =
      this.opts.packLength ?? order.reduce((max, i) => Math.max(max, lengthOf(i)), 0);
    const rows = packing ? packIndices(order, lengthOf, packLength) : order.map((i) => [i]);
    const batches: number[][][] = [];
    for (let i = 0; i < rows.length; i += batchSize) batches.push(rows.slice(i, i + batchSize));
    if (groupByLength) moveLongestFirst(batches, lengthOf);
    return batches;
  }
}

function sortWithinMegaBatches(
  order: number[],
  lengthOf: (i: number) => number,
  size: number,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < order.length; i += size) {
    out.push(...order.slice(i, i + size).sort((a, b) => lengthOf(b) - lengthOf(a)));
  }
  return out;
}

function moveLongestFirst(batches: number[][][], lengthOf: (i: number) => number): void {
  const longestRow = (batch: number[][]) =>
    Math.max(...batch.map((row) => row.reduce((s, i) => s + lengthOf(i), 0)));
  let best = 0;
  batches.forEach((batch, i) => {
    if (longestRow(batch) > longestRow(batches[best]!)) best = i;
  });
  batches.unshift(...batches.splice(best, 1));
}
