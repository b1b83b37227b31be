/** Token embedding lookup. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { kernels, zeroedGrad } from './util.ts';

/** table [vocab, dim] (any float dtype), ids i32 [n] → f32 [n, dim]. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  const k = kernels();
  const dim = table.shape[1]!;
  const out = Tensor.empty([ids.size, dim]);
  k.embeddingForward(
    { table: table.operand(), ids: ids.operand(), out: out.operand() },
    { count: ids.size, dim },
  );
  record(out, [table], (dy) => {
    k.embeddingBackward(
      { dout: dy.operand(), ids: ids.operand(), dTable: zeroedGrad(table).operand() },
      { count: ids.size, dim },
    );
  });
  return out;
}
