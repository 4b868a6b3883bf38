/**
 * Threshold curves from one set of blocks, no new HVPs (docs/momentum.md §3, §6): `η*(B)` for the
 * run's optimizer with the smallest stable batch at the current `lr`, and `η*(β)` over momentum
 * values 0 … 0.99, which is not monotone when there is batch noise (it rises like `1+β` while
 * noise is negligible and falls to 0 like `1−β` as `β → 1`), with the best `β`.
 *
 * @module
 */
import { batchNoiseWeight } from "./batch_curve.ts";
import type { MomentumCurvature } from "./curvature.ts";
import {
  momentumThreshold,
  type MomentumThresholdOptions,
} from "./momentum_threshold.ts";
import {
  checkOptimizerModel,
  type OptimizerModel,
  withMomentum,
} from "./optimizer_model.ts";

/** Momentum values of the default `η*(β)` grid. */
export const DEFAULT_BETAS: readonly number[] = [
  0,
  0.1,
  0.2,
  0.3,
  0.4,
  0.5,
  0.6,
  0.7,
  0.8,
  0.85,
  0.9,
  0.95,
  0.97,
  0.98,
  0.99,
];

/** One point of `η*(B)`. */
export interface MomentumBatchPoint {
  B: number;
  eta_star: number;
}

/**
 * `η*(B)` over a grid of batch sizes for one optimizer, and the smallest batch at which `lr` is
 * stable (`η*` is non-decreasing in `B`, §3).
 * @param curv the curvature
 * @param model the optimizer
 * @param n training-set size (for `p`)
 * @param grid batch sizes (filtered to 1..n, sorted, deduplicated)
 * @param lr the run's learning rate
 * @param options solve options; `start` warm-starts the first solve, each later one starts from its neighbour's maximiser
 * @param known thresholds already solved (e.g. the run's own batch size in the whole basis), used as given
 * @returns the points and `minStableBatch` (undefined when none on the grid is stable)
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * import { momentumBatchCurve } from "./momentum_curves.ts";
 * const c = fullCurvature([[2, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]].map((h) => new Float64Array(h)));
 * // heavy ball β = 0.9 at lr 0.5: η* = 0.229 (B = 1), 0.787 (B = 2), 3.15 (B = 3)
 * const r = momentumBatchCurve(c, { kind: "heavy_ball", momentum: 0.9 }, 3, [1, 2, 3], 0.5);
 * if (r.minStableBatch !== 2) throw new Error(String(r.minStableBatch));
 * ```
 */
export function momentumBatchCurve(
  curv: MomentumCurvature,
  model: OptimizerModel,
  n: number,
  grid: number[],
  lr: number,
  options: MomentumThresholdOptions = {},
  known: ReadonlyMap<number, number> = new Map(),
): { points: MomentumBatchPoint[]; minStableBatch?: number } {
  checkOptimizerModel(model);
  const bs = [
    ...new Set(grid.filter((B) => Number.isInteger(B) && B >= 1 && B <= n)),
  ].sort((a, b) => a - b);
  // each solve starts from its neighbour's maximiser (the pencil's; Brent keeps the given one)
  let start = options.start;
  const points = bs.map((B) => {
    const k = known.get(B);
    if (k !== undefined) return { B, eta_star: k };
    const t = momentumThreshold(curv, model, batchNoiseWeight(B, n), {
      ...options,
      start,
      upperBound: false,
    });
    if (t.S) start = t.S;
    return { B, eta_star: t.etaStar };
  }).filter((pt) => pt.eta_star > 0);
  const stable = points.find((pt) => lr <= pt.eta_star);
  return { points, minStableBatch: stable?.B };
}

/** One point of `η*(β)`. */
export interface MomentumBetaPoint {
  beta: number;
  eta_star: number;
}

/**
 * `η*(β)` for the optimizer family of `model` (heavy ball for SGD; `β₁` for Adam) at one `p`,
 * with the best momentum refined by golden-section search around the best grid point.
 * @param curv the curvature
 * @param model the optimizer (its own momentum is replaced)
 * @param p batch-noise weight in [0, 1]
 * @param betas momentum grid in [0, 1) (default {@linkcode DEFAULT_BETAS})
 * @returns the points and `best` (the maximiser of `η*`, to about 1e-4 in `β`)
 * @throws {RangeError} when a momentum is outside [0, 1)
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * import { momentumBetaCurve } from "./momentum_curves.ts";
 * const c = fullCurvature([[2, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]].map((h) => new Float64Array(h)));
 * // momentum.md §3: at B = 2 of 3 (p = 0.25) the best heavy-ball β is interior (≈ 0.437)
 * const { best, points } = momentumBetaCurve(c, { kind: "sgd" }, 0.25);
 * if (!(best.beta > 0.4 && best.beta < 0.47)) throw new Error(String(best.beta));
 * if (!(points[0].eta_star < best.eta_star && points.at(-1)!.eta_star < best.eta_star)) throw new Error("shape");
 * ```
 */
export function momentumBetaCurve(
  curv: MomentumCurvature,
  model: OptimizerModel,
  p: number,
  betas: readonly number[] = DEFAULT_BETAS,
  options: MomentumThresholdOptions = {},
): { points: MomentumBetaPoint[]; best: MomentumBetaPoint } {
  const grid = [...new Set(betas)].sort((a, b) => a - b);
  if (grid.length === 0) {
    throw new RangeError("Expected at least one momentum value");
  }
  const at = (beta: number) =>
    momentumThreshold(curv, withMomentum(model, beta), p, options).etaStar;
  const points = grid.map((beta) => ({ beta, eta_star: at(beta) }));
  let j = 0;
  points.forEach((pt, i) => {
    if (pt.eta_star > points[j].eta_star) j = i;
  });
  let best = points[j];
  if (grid.length >= 2) {
    const lo = grid[Math.max(j - 1, 0)],
      hi = grid[Math.min(j + 1, grid.length - 1)];
    const g = goldenMax(at, lo, hi, 1e-5);
    if (g.eta_star > best.eta_star) best = g;
  }
  return { points, best };
}

/** Maximise a unimodal `f` on `[a, b]` by golden-section search to width `tol`. */
function goldenMax(
  f: (x: number) => number,
  a: number,
  b: number,
  tol: number,
): MomentumBetaPoint {
  const r = (Math.sqrt(5) - 1) / 2;
  let x1 = b - r * (b - a), x2 = a + r * (b - a);
  let f1 = f(x1), f2 = f(x2);
  while (b - a > tol) {
    if (f1 >= f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - r * (b - a);
      f1 = f(x1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + r * (b - a);
      f2 = f(x2);
    }
  }
  return f1 >= f2 ? { beta: x1, eta_star: f1 } : { beta: x2, eta_star: f2 };
}
