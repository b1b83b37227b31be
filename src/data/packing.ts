/**
 * Groups examples (by index, in the given order) into rows of at most `rowLength` tokens.
 * First fit over the most recent open rows: an example goes into the first of the last
 * `window` rows with room, else starts a new row. The window keeps packing O(n) and keeps
 * rows close to the (shuffled) input order, while filling rows better than next-fit.
 */
export function packIndices(
  order: readonly number[],
  lengthOf: (index: number) => number,
  rowLength: number,
  window = 16,
): number[][] {
  const rows: number[][] = [];
  const free: number[] = [];
  for (const index of order) {
    const length = lengthOf(index);
    let target = -1;
    for (let r = Math.max(0, rows.length - window); r < rows.length; r++) {
      if (free[r]! >= length) {
        target = r;
        break;
      }
    }
    if (target < 0) {
      rows.push([]);
      free.push(rowLength);
      target = rows.length - 1;
    }
    rows[target]!.push(index);
    free[target]! -= length;
  }
  return rows;
}
