/**
 * Bootstrap interval for `λ_gen` and `η*` (theory §4, "Sampling error"): resample the probe
 * samples with replacement (as multiplicity weights) and re-solve the reduced problem; no new
 * HVPs. To stay cheap each resample is solved in the span of the point estimate's leading
 * maximiser directions, warm-started from `S*`, with a few Lanczos steps.
 *
 * @module
 */
import { congruence, leadingColumns, symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import { checkBlocks, reducedSolve } from "./reduced_solve.ts";

/** Options of {@linkcode bootstrapInterval}. */
export interface BootstrapOptions {
  /** Resamples (default 200). */
  count?: number;
  /** Seed (default 1). */
  seed?: number;
  /** Two-sided percentile level (default 0.9). */
  level?: number;
  /** Lanczos steps per resample (default 10). */
  maxIter?: number;
  /** Dimension of the subspace the resamples are solved in (default 24). */
  maxDim?: number;
  /** Stop resampling at this `performance.now()` time (ms). */
  deadline?: number;
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
}

/**
 * Percentile bootstrap interval of the reduced `λ_gen`.
 * @param blocks per-sample `K_i`, `m × k × k`
 * @param S the point estimate's maximiser (`k × k`)
 * @returns the interval, or undefined when fewer than 2 resamples could be solved
 * @throws {RangeError} on a bad level or count
 */
export function bootstrapInterval(
  blocks: Float64Array,
  m: number,
  k: number,
  p: number,
  S: Float64Array,
  options: BootstrapOptions = {},
): BootstrapInterval | undefined {
  checkBlocks(blocks, m, k);
  const count = options.count ?? 200;
  const level = options.level ?? 0.9;
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`Expected a non-negative integer count, got ${count}`);
  }
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`Expected a level in (0, 1), got ${level}`);
  }
  if (count < 2 || m < 2) return undefined;
  // the subspace of S*'s leading eigenvectors
  const es = symEig(S, k);
  let kb = 0;
  while (
    kb < Math.min(options.maxDim ?? 24, k) &&
    Math.abs(es.values[kb]) > 1e-8 * Math.abs(es.values[0])
  ) kb++;
  const U = leadingColumns(es.vectors, k, k, kb);
  const sb = new Float64Array(m * kb * kb);
  for (let i = 0; i < m; i++) {
    sb.set(
      congruence(blocks.subarray(i * k * k, (i + 1) * k * k), U, k, kb),
      i * kb * kb,
    );
  }
  const start = congruence(S, U, k, kb);
  const rng = new Rng(options.seed ?? 1);
  const values: number[] = [];
  const w = new Float64Array(m);
  for (let b = 0; b < count; b++) {
    if (
      options.deadline !== undefined && performance.now() >= options.deadline
    ) break;
    w.fill(0);
    for (let t = 0; t < m; t++) w[rng.int(m)] += 1;
    const sol = reducedSolve(sb, m, kb, p, {
      weights: w,
      start,
      maxIter: options.maxIter ?? 10,
      tol: 1e-8,
    });
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
  };
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
