/**
 * One estimation round: the single entry point the transport calls. Drives the oracle
 * (warm start from the client's basis, Lanczos for `λ_max`, Davidson for `λ_gen`), then derives
 * bounds, the `η*(B)` curve, the bootstrap interval and the floors from the same blocks, and
 * assembles the report of protocol/SPEC.md §5. Finally compacts the client's basis so the next
 * round of the same run starts warm and cheap.
 *
 * @module
 */
import type { CurvatureOracle } from "./oracle.ts";
import { dot, symEig } from "./_linalg.ts";
import { extendBlocks } from "./_blocks.ts";
import {
  batchCurve,
  batchNoiseWeight,
  type BatchPoint,
} from "./batch_curve.ts";
import { bootstrapInterval } from "./bootstrap.ts";
import { identityBound, rankOneBound, topEigvecBound } from "./bounds.ts";
import { compactBasis, davidson } from "./davidson.ts";
import { lossFloors } from "./floors.ts";
import { lanczos } from "./lanczos.ts";
import { meanBlock, reducedSolve } from "./reduced_solve.ts";

/** What the client's `round` message (and `hello`) tell the estimators. */
export interface RoundParams {
  run: string;
  /** 0-based round index within the run. */
  round: number;
  step: number;
  epoch: number;
  lr: number;
  batch_size: number;
  /** Training-set size. */
  n: number;
  momentum?: number;
  /** HVP-equivalents and seconds this round may spend. */
  budget?: { hvps?: number; seconds?: number };
  /** Relative tolerance on `λ_gen` (default 1e-3). */
  tol?: number;
  /** Batch sizes for `η*(B)` (default powers of two up to `n`, plus the run's batch size). */
  batch_grid?: number[];
  /** Bootstrap resamples (default 200, 0 disables). */
  bootstrap?: number;
  seed?: number;
  /** Basis budget (default 64). */
  max_basis?: number;
  /** Parameter count `d`; when `d ≤ max_basis` the whole space is used and the result is exact. */
  params?: number;
  /** Safety factor of `suggested_lr` (default 0.9). */
  safety?: number;
  /** Hutchinson probes for the identity bound (default 4, 0 disables). */
  hutchinson?: number;
  /** Ask for gradients and report floors (default true). */
  grads?: boolean;
  /** `"lambda_max"` computes λ_max alone (Lanczos), for benchmarks; default everything. */
  target?: "lambda_gen" | "lambda_max";
}

/** Carried from one round of a run to the next (the basis itself lives in the client). */
export interface RoundState {
  round: number;
  lambdaMax: number;
  lambdaGen: number;
  /** Basis size the client holds after this round. */
  basis: number;
}

/** Options of {@linkcode estimateRound}. */
export interface RoundOptions {
  /** State returned by the previous round of the same run. */
  state?: RoundState;
  /** Columns per Davidson expansion (default 8). */
  block?: number;
  /** Keep `S*` eigen-directions down to this fraction of the largest for the next round (default 1e-2). */
  carryTol?: number;
  /** At most this many carried directions (default `max_basis / 2`). */
  carryMax?: number;
}

/** The report of protocol/SPEC.md §5 (snake_case as on the wire). */
export interface Report {
  run: string;
  round: number;
  step: number;
  epoch: number;
  lr: number;
  batch_size: number;
  n: number;
  p: number;
  m: number;
  lambda_max: number;
  lambda_gen: number;
  eta_star: number;
  eta_gd: number;
  margin: number;
  suggested_lr: number;
  converged: boolean;
  residual: number;
  basis_size: number;
  hvps: number;
  wall_ms: number;
  time: number;
  bounds?: {
    top_eigvec?: number;
    identity?: number;
    identity_se?: number;
    rank_one?: number;
  };
  eta_star_by_batch?: BatchPoint[];
  min_stable_batch?: number;
  ci?: {
    lambda_gen_lo: number;
    lambda_gen_hi: number;
    eta_star_lo: number;
    eta_star_hi: number;
    level: number;
  };
  loss_floor?: number;
  loss_floor_leading?: number;
  grad_norm?: number;
  grad_norm_floor?: number;
  min_curvature?: number;
  stopped?: "converged" | "budget_hvps" | "budget_seconds" | "max_basis";
  warnings?: string[];
}

/**
 * Run one round against the oracle and assemble the report.
 * @param oracle the curvature oracle (remote client or synthetic)
 * @param params the round's parameters
 * @param options state of the previous round and tuning
 * @returns the report and the state to pass to the next round of the same run
 * @throws {RangeError} on invalid parameters (lr, batch size, n)
 * @example
 * ```ts
 * import { estimateRound, SyntheticOracle } from "./mod.ts";
 * const o = new SyntheticOracle([
 *   new Float64Array([2, 0, 0, 0]), new Float64Array([0, 0, 0, 1]), new Float64Array([1, 1, 1, 1]),
 * ]);
 * const { report } = await estimateRound(o, { run: "x", round: 0, step: 0, epoch: 0, lr: 0.5, batch_size: 1, n: 3, params: 2 });
 * if (Math.abs(report.lambda_gen - 1.862790641860) > 1e-9) throw new Error(String(report.lambda_gen));
 * ```
 */
export async function estimateRound(
  oracle: CurvatureOracle,
  params: RoundParams,
  options: RoundOptions = {},
): Promise<{ report: Report; state: RoundState }> {
  const t0 = performance.now();
  const m = oracle.probeSize;
  const hvp0 = oracle.hvps;
  const { lr, batch_size: B, n } = params;
  if (!(Number.isFinite(lr) && lr >= 0)) {
    throw new RangeError(`Expected a finite non-negative lr, got ${lr}`);
  }
  const p = batchNoiseWeight(B, n);
  const tol = params.tol ?? 1e-3;
  if (!(tol > 0 && tol < 1)) {
    throw new RangeError(`Expected tol in (0, 1), got ${tol}`);
  }
  const maxBasis = params.max_basis ?? 64;
  const block = options.block ?? 8;
  const seed = params.seed ?? 1 + params.round;
  const deadline = params.budget?.seconds !== undefined
    ? t0 + 1000 * params.budget.seconds
    : undefined;
  // a round always ends: without a budget, at most 10 basis budgets of HVP-equivalents
  const budgetHvps = params.budget?.hvps ?? 10 * maxBasis;
  const spent = () => (oracle.hvps - hvp0) / m;
  const warnings: string[] = [];

  let blocks: Float64Array, k: number;
  let lambdaMax: number, lambdaGen: number, S: Float64Array;
  let converged: boolean, residual: number, minCurvature: number;
  let stopped: Report["stopped"];
  const d = params.params;
  if (d !== undefined && d <= maxBasis) {
    // small model: the identity basis, exact
    if (oracle.basisSize !== d) {
      await oracle.reset();
      await oracle.random(d, seed);
    }
    k = oracle.basisSize;
    blocks = await oracle.blocks(0, k);
    const sol = reducedSolve(blocks, m, k, p, { tol: 1e-13 });
    lambdaMax = sol.maxCurvature;
    ({ lambdaGen, S, converged, residual, minCurvature } = sol);
    stopped = "converged";
  } else {
    const warm = oracle.basisSize > 0;
    let warmK: Float64Array | undefined;
    if (warm) {
      k = oracle.basisSize;
      blocks = await oracle.blocks(0, k);
      warmK = meanBlock(blocks, m, k);
    } else {
      k = 0;
      blocks = new Float64Array(0);
    }
    const lz = await lanczos(oracle, {
      tol,
      warmK,
      seed,
      maxSteps: Math.max(1, Math.min(100, maxBasis - k - block)),
      maxHvps: budgetHvps,
      deadline,
    });
    if (params.target === "lambda_max") {
      // λ_max alone (benchmarks against power iteration / Lanczos tools): no λ_gen work
      const report = {
        run: params.run, round: params.round, step: params.step, epoch: params.epoch, lr, batch_size: B, n, p, m,
        lambda_max: lz.lambdaMax, eta_gd: 2 / lz.lambdaMax, converged: lz.converged, residual: lz.residual,
        basis_size: oracle.basisSize, hvps: spent(), wall_ms: performance.now() - t0, time: Date.now() / 1000,
        stopped: lz.converged ? "converged" : "budget_hvps", warnings,
      } as unknown as Report;
      const state: RoundState = { round: params.round, lambdaMax: lz.lambdaMax, lambdaGen: NaN, basis: oracle.basisSize };
      return { report: dropNonFinite(report), state };
    }
    const k2 = oracle.basisSize;
    if (k2 > k) {
      const add = await oracle.blocks(k, k2 - k);
      blocks = k === 0 ? add : extendBlocks(blocks, add, m, k, k2 - k);
      k = k2;
    }
    const remaining = budgetHvps !== undefined
      ? Math.max(0, budgetHvps - spent())
      : undefined;
    const dv = await davidson(oracle, blocks, {
      p,
      tol,
      block,
      maxBasis,
      maxHvps: remaining,
      deadline,
      warmStart: warm,
    });
    ({ blocks, k, lambdaGen, S, converged, residual, minCurvature } = dv);
    lambdaMax = Math.max(lz.lambdaMax, dv.maxCurvature);
    stopped = dv.stopped === "max_iterations" ? "budget_hvps" : dv.stopped;
    if (!lz.converged) {
      warnings.push(
        `lambda_max not converged: ${lz.stopped}, residual ${
          lz.residual.toExponential(2)
        }`,
      );
    }
  }
  if (!converged) {
    warnings.push(
      `lambda_gen not converged: ${stopped}, residual ${
        residual.toExponential(2)
      }`,
    );
  }
  if ((params.momentum ?? 0) > 0) {
    warnings.push(
      `momentum ${params.momentum} ignored: the threshold is that of plain SGD (theory §1)`,
    );
  }
  if (minCurvature < 0) {
    warnings.push(
      `negative curvature in the subspace: ${
        minCurvature.toExponential(3)
      }, not at a minimum`,
    );
  }

  const etaStar = lambdaGen > 0 ? 2 / lambdaGen : Infinity;
  const K = meanBlock(blocks, m, k);
  const ek = symEig(K, k);
  const top = Float64Array.from({ length: k }, (_, a) => ek.vectors[a * k]);
  const es = symEig(S, k);
  const topS = Float64Array.from({ length: k }, (_, a) => es.vectors[a * k]);

  // bounds
  const bounds: NonNullable<Report["bounds"]> = {};
  if (k > 0 && lambdaGen > 0) {
    bounds.top_eigvec = topEigvecBound(blocks, m, k, p, top);
    // a lower bound at any u: a few ascent steps from 3 starts are enough for a report
    bounds.rank_one = rankOneBound(blocks, m, k, p, { extra: [topS], starts: 3, maxIter: 60 });
    const r = params.hutchinson ?? 4;
    if (r > 0) {
      const h = await oracle.hutchinson(r, seed + 7919);
      const idb = identityBound(h, m, r, p, dot(K, K));
      if (idb) {
        bounds.identity = idb.value;
        bounds.identity_se = idb.se;
      }
    }
  }
  // batch curve
  const grid = params.batch_grid ?? defaultGrid(n, B);
  const curve = lambdaGen > 0
    ? batchCurve(blocks, m, k, n, grid, lr, S)
    : { points: [] as BatchPoint[] };
  // bootstrap
  const nb = params.bootstrap ?? 100;
  const ci = nb > 0 && lambdaGen > 0
    ? bootstrapInterval(blocks, m, k, p, S, {
      count: nb,
      seed: seed + 104729,
      deadline,
    })
    : undefined;
  // floors
  let floors = {};
  if ((params.grads ?? true) && k > 0) {
    const g = await oracle.grads();
    // the client's basis may hold columns beyond the blocks (a passed residual check appended
    // them); the blocks describe the leading k columns
    const kc = oracle.basisSize;
    const proj = new Float64Array(m * k);
    for (let i = 0; i < m; i++) {
      for (let a = 0; a < k; a++) proj[i * k + a] = g.proj[i * kc + a];
    }
    floors = lossFloors(blocks, m, k, p, lr, etaStar, { ...g, proj });
  }

  const report: Report = {
    run: params.run,
    round: params.round,
    step: params.step,
    epoch: params.epoch,
    lr,
    batch_size: B,
    n,
    p,
    m,
    lambda_max: lambdaMax,
    lambda_gen: lambdaGen,
    eta_star: etaStar,
    eta_gd: lambdaMax > 0 ? 2 / lambdaMax : Infinity,
    margin: lr / etaStar,
    suggested_lr: (params.safety ?? 0.9) * etaStar,
    converged,
    residual,
    basis_size: k,
    hvps: spent(),
    wall_ms: 0,
    time: Date.now() / 1000,
    bounds,
    eta_star_by_batch: curve.points,
    min_stable_batch: curve.minStableBatch,
    ci: ci && {
      lambda_gen_lo: ci.lambda_gen_lo,
      lambda_gen_hi: ci.lambda_gen_hi,
      eta_star_lo: ci.eta_star_lo,
      eta_star_hi: ci.eta_star_hi,
      level: ci.level,
    },
    ...floors,
    min_curvature: minCurvature,
    stopped,
    warnings,
  };
  // keep the client's basis small for the next round (no HVPs)
  let basisAfter = oracle.basisSize;
  if (!(d !== undefined && d <= maxBasis) && k > 0) {
    const c = await compactBasis(oracle, blocks, S, {
      carryTol: options.carryTol,
      carryMax: options.carryMax ?? Math.floor(maxBasis / 2),
    });
    basisAfter = c.k;
  }
  report.hvps = spent();
  report.wall_ms = performance.now() - t0;
  const state: RoundState = {
    round: params.round,
    lambdaMax,
    lambdaGen,
    basis: basisAfter,
  };
  return { report: dropNonFinite(report), state };
}

/** Powers of two up to `n`, plus `n` and the run's batch size. */
function defaultGrid(n: number, B: number): number[] {
  const g = [B, n];
  for (let b = 1; b < n; b *= 2) g.push(b);
  return g;
}

/** Remove non-finite numbers (and empty optional maps/arrays) so the report never carries NaN or ±Inf. */
function dropNonFinite(r: Report): Report {
  const clean = (v: unknown): unknown => {
    if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
    if (Array.isArray(v)) return v.map(clean).filter((x) => x !== undefined);
    if (v && typeof v === "object") {
      const o: Record<string, unknown> = {};
      for (const [key, x] of Object.entries(v)) {
        const c = clean(x);
        if (c !== undefined) o[key] = c;
      }
      return o;
    }
    return v;
  };
  const out = clean(r) as Record<string, unknown>;
  for (const key of ["bounds", "ci"]) {
    const v = out[key] as Record<string, unknown> | undefined;
    if (v && Object.keys(v).length === 0) delete out[key];
  }
  if (out.ci && Object.keys(out.ci as object).length < 5) delete out.ci;
  for (const key of ["eta_star_by_batch", "warnings"]) {
    if (Array.isArray(out[key]) && (out[key] as unknown[]).length === 0) {
      delete out[key];
    }
  }
  return out as unknown as Report;
}
