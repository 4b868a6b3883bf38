/**
 * `η*(B')` over a grid of batch sizes from the same blocks (theory §4, "Other batch sizes for
 * free"): one reduced solve per `B'` with its own `p`, no new HVPs.
 *
 * @module
 */
import type { Curvature } from "./curvature.ts";
import { type ApplicationCounter, ReducedBasis, reducedSolve } from "./reduced_solve.ts";

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
  /**
   * Whether `lambda_gen` is within the round's tolerance of the exact value (set by the round:
   * false for a point only solved in a basis grown for another batch size, where it is a
   * Rayleigh–Ritz lower bound, so `eta_star` may be overstated).
   */
  converged?: boolean;
}

/**
 * The warning a report owes when some curve point did not converge. Its value is a Rayleigh–Ritz
 * value of the basis: a lower bound of `λ_gen` only when the curvature is PSD, so with negative
 * curvature (not at a minimum) it bounds nothing.
 * @param minCurvature the basis' smallest curvature
 */
export function unconvergedCurveWarning(minCurvature: number): string {
  return minCurvature < 0
    ? "eta_star_by_batch: points with converged false are Rayleigh–Ritz values of a basis with negative curvature, no bounds of lambda_gen (eta_star may be over- or understated)"
    : "eta_star_by_batch: points with converged false are Rayleigh–Ritz lower bounds of lambda_gen (eta_star may be overstated)";
}

/** Options of {@linkcode batchCurve}. */
export interface BatchCurveOptions {
  /** Maximiser to warm-start the first solve (each later one starts from its neighbour's). */
  start?: Float64Array;
  /** Relative eigenvalue error of each solve (default 1e-9). */
  tol?: number;
  /** Adds the operator applications spent. */
  counter?: ApplicationCounter;
  /** Already solved points (e.g. the run's own batch size), reused instead of re-solved. */
  known?: Map<number, number>;
}

/**
 * `η*` and `λ_gen` for each batch size on the grid, and the smallest one at which `lr` is stable.
 * Solves run from the largest `B` down, each warm-started from the previous maximiser (the
 * maximiser changes smoothly with `p`), all in one {@linkcode ReducedBasis} (it does not depend
 * on `p`).
 * @param curv per-sample curvature in the basis
 * @param grid batch sizes (filtered to 1..n, sorted, deduplicated)
 * @param lr the current learning rate
 * @returns the points and `minStableBatch` (undefined when none on the grid is stable)
 */
export function batchCurve(
  curv: Curvature,
  n: number,
  grid: number[],
  lr: number,
  options: BatchCurveOptions = {},
): { points: BatchPoint[]; minStableBatch?: number } {
  const bs = [
    ...new Set(grid.filter((B) => Number.isInteger(B) && B >= 1 && B <= n)),
  ].sort((a, b) => a - b);
  const points: BatchPoint[] = [];
  let start = options.start;
  let basis: ReducedBasis | undefined;
  for (const B of bs.slice().reverse()) {
    const known = options.known?.get(B);
    let value: number;
    if (known !== undefined) value = known;
    else {
      basis ??= new ReducedBasis(curv);
      const sol = reducedSolve(basis, batchNoiseWeight(B, n), {
        start,
        tol: options.tol ?? 1e-9,
        counter: options.counter,
      });
      value = sol.lambdaGen;
      if (sol.lambdaGen > 0) start = sol.S;
    }
    if (value > 0) points.unshift({ B, eta_star: 2 / value, lambda_gen: value });
  }
  const stable = points.find((pt) => lr <= pt.eta_star);
  return { points, minStableBatch: stable?.B };
}
