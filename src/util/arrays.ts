/** Array helpers safe for any length. */

/**
 * Appends every element of `items` to `target`. `target.push(...items)` passes each element as
 * a call argument, so an array of ~100k+ elements (one long record's token ids) overflows the
 * call stack with a RangeError.
 */
export function appendAll<T>(target: T[], items: Iterable<T>): void {
  for (const item of items) target.push(item);
}
