/**
 * `η*(B')` over a grid of batch sizes from the same blocks (theory §4, "Other batch sizes for
 * free"): one reduced solve per `B'` with its own `p`, no new HVPs.
 *
 * @module
 */
import { reducedSolve } from "./reduced_solve.ts";

/**
 * Batch-noise weight `p = (n − B) / (B (n − 1))` for sampling without replacement.
 * @throws {RangeError} unless `1 ≤ B ≤ n` are integers
 * @example
 * ```ts
 * import { batchNoiseWeight } from "./batch_curve.ts";
 * if (batchNoiseWeight(2, 3) !== 0.25) throw new Error("p");
 * ```
 */
export function batchNoiseWeight(B: number, n: number): number {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Expected n to be a positive integer, got ${n}`);
  }
  if (!Number.isInteger(B) || B < 1 || B > n) {
    throw new RangeError(`Expected a batch size in 1..${n}, got ${B}`);
  }
  return n === 1 ? 0 : (n - B) / (B * (n - 1));
}

/** One point of the curve. */
export interface BatchPoint {
  B: number;
  eta_star: number;
  lambda_gen: number;
}

/**
 * `η*` and `λ_gen` for each batch size on the grid, and the smallest one at which `lr` is stable.
 * @param blocks per-sample `K_i`, `m × k × k`
 * @param grid batch sizes (filtered to 1..n, sorted, deduplicated)
 * @param lr the current learning rate
 * @param start optional maximiser to warm-start each solve
 * @returns the points and `minStableBatch` (undefined when none on the grid is stable)
 */
export function batchCurve(
  blocks: Float64Array,
  m: number,
  k: number,
  n: number,
  grid: number[],
  lr: number,
  start?: Float64Array,
): { points: BatchPoint[]; minStableBatch?: number } {
  const bs = [
    ...new Set(grid.filter((B) => Number.isInteger(B) && B >= 1 && B <= n)),
  ].sort((a, b) => a - b);
  const points: BatchPoint[] = [];
  for (const B of bs) {
    const sol = reducedSolve(blocks, m, k, batchNoiseWeight(B, n), {
      start,
      tol: 1e-9,
    });
    if (sol.lambdaGen > 0) {
      points.push({
        B,
        eta_star: 2 / sol.lambdaGen,
        lambda_gen: sol.lambdaGen,
      });
    }
  }
  const stable = points.find((pt) => lr <= pt.eta_star);
  return { points, minStableBatch: stable?.B };
}
