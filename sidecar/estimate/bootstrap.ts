/**
 * Bootstrap interval for `λ_gen` and `η*` (theory §4, "Sampling error"): resample the probe
 * samples with replacement (as multiplicity weights) and re-solve the reduced problem; no new
 * HVPs. Each resample is solved to the accuracy of the point value: in the span of the point
 * estimate's leading maximiser directions, chosen large enough to reproduce the point value to
 * that accuracy (a high-rank `S*` gets a large span), warm-started from `S*`.
 *
 * @module
 */
import { congruence, leadingColumns, symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import type { Curvature } from "./curvature.ts";
import { type ApplicationCounter, rayleighQuotient, reducedSolve } from "./reduced_solve.ts";

/** Options of {@linkcode bootstrapInterval}. */
export interface BootstrapOptions {
  /** Resamples (default 200). */
  count?: number;
  /** Seed (default 1). */
  seed?: number;
  /** Two-sided percentile level (default 0.9). */
  level?: number;
  /**
   * Relative accuracy of the point value (default 1e-6): each resample is solved to the same
   * accuracy, in a subspace that reproduces the point value to within it.
   */
  tol?: number;
  /** The point estimate `λ_gen` in the full basis (default: solved here). */
  lambdaGen?: number;
  /** Stop resampling at this `performance.now()` time (ms). */
  deadline?: number;
  /** Adds the operator applications spent. */
  counter?: ApplicationCounter;
}

/** A percentile bootstrap interval. */
export interface BootstrapInterval {
  lambda_gen_lo: number;
  lambda_gen_hi: number;
  eta_star_lo: number;
  eta_star_hi: number;
  level: number;
  /** Resamples actually solved (fewer than asked when the deadline hit). */
  count: number;
  /** Dimension of the subspace the resamples were solved in. */
  dim: number;
}

/**
 * Percentile bootstrap interval of the reduced `λ_gen`, each resample solved to the accuracy
 * of the point value and warm-started from the point estimate's maximiser `S*`.
 * @param curv per-sample curvature in the basis
 * @param S the point estimate's maximiser (`k × k`)
 * @returns the interval, or undefined when fewer than 2 resamples could be solved
 * @throws {RangeError} on a bad level or count
 */
export function bootstrapInterval(
  curv: Curvature,
  p: number,
  S: Float64Array,
  options: BootstrapOptions = {},
): BootstrapInterval | undefined {
  const { m, k } = curv;
  const count = options.count ?? 200;
  const level = options.level ?? 0.9;
  const tol = options.tol ?? 1e-6;
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`Expected a non-negative integer count, got ${count}`);
  }
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`Expected a level in (0, 1), got ${level}`);
  }
  if (S.length !== k * k) throw new RangeError(`Expected S of ${k}×${k}, got ${S.length} entries`);
  if (count < 2 || m < 2) return undefined;
  const counter = options.counter;
  const point = options.lambdaGen ??
    reducedSolve(curv, p, { start: S, tol: tol / 10, counter }).lambdaGen;
  const { sub, start, dim } = accurateSubspace(curv, p, S, point, tol, counter);
  const rng = new Rng(options.seed ?? 1);
  const values: number[] = [];
  const w = new Float64Array(m);
  for (let b = 0; b < count; b++) {
    if (
      options.deadline !== undefined && performance.now() >= options.deadline
    ) break;
    w.fill(0);
    for (let t = 0; t < m; t++) w[rng.int(m)] += 1;
    // warm-started from S*, two orders of magnitude inside the interval: the residual test suffices
    const sol = reducedSolve(sub, p, { weights: w, start, tol: tol / 3, counter, settle: false });
    if (sol.lambdaGen > 0) values.push(sol.lambdaGen);
  }
  if (values.length < 2) return undefined;
  values.sort((a, b) => a - b);
  const lo = quantile(values, (1 - level) / 2);
  const hi = quantile(values, (1 + level) / 2);
  return {
    lambda_gen_lo: lo,
    lambda_gen_hi: hi,
    eta_star_lo: 2 / hi,
    eta_star_hi: 2 / lo,
    level,
    count: values.length,
    dim,
  };
}

/**
 * The span of `S*`'s leading eigenvectors, doubled from 16 until the reduced value in it is
 * within `tol / 2` of the point value (else the whole basis). A span passes at once when `S*`
 * cut to it already reaches that value (its Rayleigh quotient, one operator application, is a
 * lower bound of the span's value); otherwise, up to 256 directions, a solve in the span
 * decides (beyond, a trial solve costs about what it would save).
 */
function accurateSubspace(
  curv: Curvature,
  p: number,
  S: Float64Array,
  point: number,
  tol: number,
  counter?: ApplicationCounter,
): { sub: Curvature; start: Float64Array; dim: number } {
  const k = curv.k;
  const es = symEig(S, k);
  let rank = 0;
  while (rank < k && Math.abs(es.values[rank]) > 1e-10 * Math.abs(es.values[0])) rank++;
  const target = (1 - tol / 2) * point;
  for (let dim = Math.min(16, rank); dim < Math.min(rank, k); dim = Math.min(2 * dim, rank)) {
    const U = leadingColumns(es.vectors, k, k, dim);
    const sub = curv.rotate(U, dim);
    const start = congruence(S, U, k, dim);
    if (counter) counter.applications++;
    if (rayleighQuotient(sub, p, start) >= target) return { sub, start, dim };
    if (dim > 256) continue;
    const v = reducedSolve(sub, p, { start, tol: tol / 10, counter }).lambdaGen;
    if (v >= target) return { sub, start, dim };
  }
  return { sub: curv, start: S, dim: k };
}
/** Linear-interpolation quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length
    ? sorted[i] * (1 - f) + sorted[i + 1] * f
    : sorted[i];
}
