/** Token embedding lookup. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { kernels, zeroedGrad } from './util.ts';

/** table [vocab, dim] (any float dtype), ids i32 [n] → f32 [n, dim]. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  const k = kernels();
  const dim = table.shape[1]!;
  const out = Tensor.empty([ids.size, dim]);
  k.embeddingForward(table.operand(), ids.operand(), out.operand(), ids.size, dim);
  record(out, [table], (dy) => {
    k.embeddingBackward(dy.operand(), ids.operand(), zeroedGrad(table).operand(), ids.size, dim);
  });
  return out;
}
