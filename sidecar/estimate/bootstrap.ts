/**
 * Bootstrap interval for `λ_gen` and `η*` (theory §4, "Sampling error"): resample the probe
 * samples with replacement (as multiplicity weights) and re-solve the reduced problem; no new
 * HVPs. Each resample is solved in the whole basis to the accuracy of the point value, in at
 * least {@linkcode RESAMPLE_MIN_STEPS} Lanczos steps over its samples of positive weight, from
 * one start shared by all resamples: the point estimate's maximiser `S*` plus the point
 * problem's next {@linkcode START_BRANCHES} maximisers ({@linkcode branchStart}).
 *
 * Why the whole basis: a span of `S*`'s leading directions that reproduces the point value to
 * `tol / 2` does not reproduce the resamples' values (their maximisers leave it): measured
 * 0.6 % low at `tol` = 1e-3 on a coherent problem (bootstrap_test.ts), so it was removed.
 * A round that needs the interval twice (its tolerance tightened) resumes the first one's
 * resamples when their accuracy suffices (`resume`).
 *
 * @module
 */
import { Rng } from "./_rng.ts";
import type { Curvature } from "./curvature.ts";
import { type ApplicationCounter, ReducedBasis, reducedSolve } from "./reduced_solve.ts";
import type { ResamplePool } from "./resample_pool.ts";

/**
 * Lanczos applications every resample takes at least. A resample's maximiser can lie on another
 * branch than `S*`'s (a sample drawn several times whose curvature points elsewhere): nearly
 * orthogonal to `S*` (|⟨S_w, S*⟩| ≈ 0.02), so the Krylov space from `S*` reaches it only after
 * several steps, and until then the Ritz value converges, with a small residual and a large
 * Ritz gap, to `S*`'s branch. Measured on the main example's network (4 rounds × 100 resamples,
 * basis 45, tol/2 = 0.01): 5–13 % of the resamples stopped after 2–3 steps up to 27 % low; with
 * at least 6 steps 1–3 % were still outside tol/2, with 8 none, with 10 none (worst 4e-5).
 */
export const RESAMPLE_MIN_STEPS = 10;

/**
 * Branches of the point problem below `S*`'s mixed into the resamples' start. From `S*` alone,
 * ten steps were no longer enough once live bases reached 60–80 columns: on 34 live rounds of
 * the main example's network (two runs for choosing, two held out; 40 resamples each, against
 * resample solves to 1e-11), 7 of 720 and 9 of 640 resamples ended outside tol/2 (worst 6.1× and
 * 4.1× tol/2), the interval's ends up to 0.58× and 0.74× tol off. With 4 branches in the start:
 * 1 of 720 and 6 of 640 (worst 1.7× and 3.7×), the ends within 0.20× and 0.31× tol, for about
 * 10 more applications per branch and interval (the resamples' own counts are unchanged). With
 * 2 branches 5 of 720 (2.3×); with 4 and 8 steps, 11 of 640 (9.3×). From `S*` alone with 12
 * steps, 3 and 3 (ends 0.08× and 0.34×), with 15 steps 1 and 0: 100 and 250 more applications
 * per interval of 50 resamples, against about 40 for the branches. It is not a certificate:
 * on synthetic problems of 7 groups (12 seeds × 60 resamples) it left 4 resamples outside
 * tol/2 where `S*` alone left 9, and on problems of 4 groups (16 × 60) 1 where `S*` alone left 1,
 * a different one (benchmarks/RESULTS.md, tenth session).
 */
export const START_BRANCHES = 4;

/** Options of {@linkcode bootstrapInterval}. */
export interface BootstrapOptions {
  /** Resamples (default 200). */
  count?: number;
  /** Seed (default 1). */
  seed?: number;
  /** Two-sided percentile level (default 0.9). */
  level?: number;
  /** Relative accuracy of the point value (default 1e-6): each resample is solved to it. */
  tol?: number;
  /**
   * Stop before `count` once the interval's own Monte-Carlo error is at most this fraction of
   * its half-width (checked every 10 resamples from `minCount` on); default: never.
   */
  mcTarget?: number;
  /** Resamples before the Monte-Carlo check (default 40). */
  minCount?: number;
  /** Stop resampling at this `performance.now()` time (ms). */
  deadline?: number;
  /** Adds the operator applications spent. */
  counter?: ApplicationCounter;
  /** Helpers that solve the resamples in parallel (default: all here, in order). */
  pool?: ResamplePool;
  /**
   * An earlier interval of the same problem: its resamples and their start are reused (not
   * re-solved) when it has the same seed and was solved at least as accurately (`tol` no larger).
   */
  resume?: BootstrapInterval;
}

/** A percentile bootstrap interval. */
export interface BootstrapInterval {
  lambda_gen_lo: number;
  lambda_gen_hi: number;
  eta_star_lo: number;
  eta_star_hi: number;
  level: number;
  /** Resamples with a positive value (fewer than asked after a Monte-Carlo stop or the deadline). */
  count: number;
  /** Whether the deadline stopped the resampling. */
  cut: boolean;
  /** Relative accuracy each resample was solved to. */
  tol: number;
  /** Seed of the resamples. */
  seed: number;
  /** The resamples' values in draw order (non-positive ones included), for `resume`. */
  values: number[];
  /** The resamples' start ({@linkcode branchStart}; empty when none was solved), for `resume`. */
  start: Float64Array;
}
/**
 * Percentile bootstrap interval of the reduced `λ_gen`, each resample solved to the accuracy
 * of the point value and started from `S*` and the branches below it ({@linkcode branchStart}). The resamples
 * are solved in batches (up to each Monte-Carlo check), spread over `pool`'s helpers when given.
 * @param curv per-sample curvature in the basis
 * @param S the point estimate's maximiser (`k × k`)
 * @returns the interval, or undefined when fewer than 2 resamples could be solved
 * @throws {RangeError} on a bad level or count
 */
export async function bootstrapInterval(
  curv: Curvature,
  p: number,
  S: Float64Array,
  options: BootstrapOptions = {},
): Promise<BootstrapInterval | undefined> {
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
  const seed = options.seed ?? 1;
  const resumed = options.resume && options.resume.seed === seed && options.resume.tol <= tol ? options.resume : undefined;
  const prior = resumed?.values ?? [];
  const rng = new Rng(seed);
  const drawn: number[] = [];
  let cut = false, start = resumed?.start.length === k * k ? resumed.start : undefined;
  while (drawn.length < count) {
    // the next batch ends at the next multiple of 10 (a Monte-Carlo check) or at count
    const n0 = drawn.length, end = Math.min(count, 10 * Math.floor(n0 / 10) + 10);
    const batch: Float64Array[] = [];
    for (let b = n0; b < end; b++) batch.push(resampleWeights(rng, m));
    const reused = Math.max(0, Math.min(end, prior.length) - n0);
    drawn.push(...prior.slice(n0, n0 + reused));
    if (reused < batch.length) {
      start ??= branchStart(curv, p, S, tol, options.counter, options.deadline);
      const job = { curv, p, S: start, tol, deadline: options.deadline, counter: options.counter };
      const solved = options.pool ? await options.pool.solve(job, batch.slice(reused)) : solveResamples(job, batch.slice(reused));
      drawn.push(...solved);
      if (drawn.length < end) {
        cut = true;
        break;
      }
    }
    const n = drawn.length;
    if (options.mcTarget !== undefined && n >= (options.minCount ?? 40) && n % 10 === 0 && n < count) {
      const v = drawn.filter((x) => x > 0).sort((a, b) => a - b);
      if (v.length >= 2 && monteCarloError(v, level) <= options.mcTarget * (quantile(v, (1 + level) / 2) - quantile(v, (1 - level) / 2)) / 2) break;
    }
  }
  const values = drawn.filter((v) => v > 0).sort((a, b) => a - b);
  if (values.length < 2) return undefined;
  const lo = quantile(values, (1 - level) / 2);
  const hi = quantile(values, (1 + level) / 2);
  return {
    lambda_gen_lo: lo,
    lambda_gen_hi: hi,
    eta_star_lo: 2 / hi,
    eta_star_hi: 2 / lo,
    level,
    count: values.length,
    tol,
    seed,
    values: drawn,
    start: start ?? new Float64Array(0),
    cut,
  };
}

/**
 * The resamples' common start: `S*` plus the point problem's next {@linkcode START_BRANCHES}
 * maximisers (solves deflated by the pairs before them, to `tol / 2`), each of unit norm, so that
 * a resample whose maximiser lies on one of those branches has it in its Krylov space from the
 * first step.
 * @param S the point estimate's maximiser (`k × k`)
 * @param deadline `performance.now()` time (ms) after which no more branches are solved
 * @returns a `k × k` start
 */
export function branchStart(
  curv: Curvature,
  p: number,
  S: Float64Array,
  tol: number,
  counter?: ApplicationCounter,
  deadline?: number,
): Float64Array {
  const basis = new ReducedBasis(curv);
  // S*'s value as its Rayleigh quotient (one application): S* is the first deflated pair
  const top = reducedSolve(basis, p, { start: S, maxIter: 1, counter });
  const pairs = [{ S, lambdaGen: top.lambdaGen }];
  const start = Float64Array.from(S);
  // a deflated solve needs a direction left over: at most dim − 1 pairs beside S*
  const room = Math.min(START_BRANCHES, (basis.r * (basis.r + 1)) / 2 - 1);
  for (let j = 0; j < room && top.lambdaGen > 0 && !(deadline !== undefined && performance.now() >= deadline); j++) {
    const next = reducedSolve(basis, p, { tol: tol / 2, deflate: pairs, seed: 7 + j, counter });
    if (!(next.lambdaGen > 0)) break;
    pairs.push({ S: next.S, lambdaGen: next.lambdaGen });
    for (let t = 0; t < start.length; t++) start[t] += next.S[t];
  }
  return start;
}

/** One resample's multiplicity weights: `m` draws with replacement. */
export function resampleWeights(rng: Rng, m: number): Float64Array {
  const w = new Float64Array(m);
  for (let t = 0; t < m; t++) w[rng.int(m)] += 1;
  return w;
}

/** What every resample of one interval shares. */
export interface ResampleJob {
  curv: Curvature;
  p: number;
  /** The resamples' start ({@linkcode branchStart}). */
  S: Float64Array;
  /** The point value's tolerance (each resample is solved to half of it). */
  tol: number;
  /** `performance.now()` time (ms) after which no resample starts. */
  deadline?: number;
  counter?: ApplicationCounter;
}

/**
 * `λ_gen` of each resample in order, solved here; stops at the deadline (fewer values).
 * To half the point value's tolerance, from the job's start, never in fewer than
 * {@linkcode RESAMPLE_MIN_STEPS} applications (the residual test cannot see a maximiser off
 * `S*`'s branch).
 */
export function solveResamples(job: ResampleJob, weights: Float64Array[]): number[] {
  const out: number[] = [];
  for (const w of weights) {
    if (job.deadline !== undefined && performance.now() >= job.deadline) break;
    const sol = reducedSolve(job.curv, job.p, { weights: w, start: job.S, tol: job.tol / 2, minIter: RESAMPLE_MIN_STEPS });
    if (job.counter) job.counter.applications += sol.iterations;
    out.push(sol.lambdaGen);
  }
  return out;
}

/**
 * Monte-Carlo standard error of the interval's endpoints (the larger of the two): the spread of
 * the sorted values over ±1 binomial standard deviation of each endpoint's rank.
 */
export function monteCarloError(sorted: number[], level: number): number {
  const n = sorted.length;
  let worst = 0;
  for (const q of [(1 - level) / 2, (1 + level) / 2]) {
    const sd = Math.sqrt(n * q * (1 - q));
    const at = (f: number) => quantile(sorted, Math.min(1, Math.max(0, f)));
    worst = Math.max(worst, (at(q + sd / n) - at(q - sd / n)) / 2);
  }
  return worst;
}

/** Linear-interpolation quantile of sorted values. */
export function quantile(sorted: number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length
    ? sorted[i] * (1 - f) + sorted[i + 1] * f
    : sorted[i];
}
