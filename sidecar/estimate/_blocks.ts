/**
 * Bookkeeping for per-sample blocks `K_i = Vᵀ H_i V` when the basis grows.
 *
 * @module
 */

/**
 * Enlarge `m × k × k` blocks with the oracle's blocks of `c` new columns (`m × (k + c) × c`,
 * the new columns against the whole enlarged basis), symmetrising the new-new part.
 * @returns `m × (k + c) × (k + c)`
 */
export function extendBlocks(
  old: Float64Array,
  add: Float64Array,
  m: number,
  k: number,
  c: number,
): Float64Array {
  const kn = k + c;
  if (old.length !== m * k * k) {
    throw new RangeError(
      `Expected blocks of ${m}×${k}×${k}, got ${old.length} entries`,
    );
  }
  if (add.length !== m * kn * c) {
    throw new RangeError(
      `Expected new blocks of ${m}×${kn}×${c}, got ${add.length} entries`,
    );
  }
  const out = new Float64Array(m * kn * kn);
  for (let i = 0; i < m; i++) {
    for (let a = 0; a < kn; a++) {
      for (let b = 0; b < kn; b++) {
        let v: number;
        if (a < k && b < k) v = old[(i * k + a) * k + b];
        else if (a >= k && b >= k) {
          v = 0.5 *
            (add[(i * kn + a) * c + (b - k)] + add[(i * kn + b) * c + (a - k)]);
        } else if (b >= k) v = add[(i * kn + a) * c + (b - k)];
        else v = add[(i * kn + b) * c + (a - k)];
        out[(i * kn + a) * kn + b] = v;
      }
    }
  }
  return out;
}
