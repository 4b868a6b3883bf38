/**
 * One estimation round: the single entry point the transport calls. Drives the oracle
 * (warm start from the client's basis, Lanczos for `λ_max`, Davidson for `λ_gen`), then derives
 * bounds, the `η*(B)` curve, the bootstrap interval and the floors from the same blocks, and
 * assembles the report of protocol/SPEC.md §5. Finally compacts the client's basis so the next
 * round of the same run starts warm and cheap.
 *
 * @module
 */
import { type CurvatureOracle, emptyCurvature, fetchCurvature, type GradStats } from "./oracle.ts";
import type { Curvature } from "./curvature.ts";
import { dot, symEig } from "./_linalg.ts";
import {
  batchCurve,
  batchNoiseWeight,
  type BatchPoint,
  unconvergedCurveWarning,
} from "./batch_curve.ts";
import { bootstrapInterval, type BootstrapInterval, type BootstrapOptions } from "./bootstrap.ts";
import { identityBound, rankOneBound, topEigvecBound } from "./bounds.ts";
import { compactBasis, davidson, type DavidsonResult } from "./davidson.ts";
import { probeSampleBranches, SAMPLE_PROBE_STAGES, sampleTops } from "./sample_branches.ts";
import { lossFloors } from "./floors.ts";
import { ResamplePool } from "./resample_pool.ts";
import { lanczos, type LanczosResult } from "./lanczos.ts";
import { type ApplicationCounter, reducedSolve } from "./reduced_solve.ts";
import { dropNonFinite } from "./finite_report.ts";
import { type OptimizerOption, type OptimizerReportFields, optimizerRound, replacesSgdReport } from "./momentum_round.ts";

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
  /**
   * Relative tolerance on `λ_gen`, used as given. Absent: automatic, a tenth of the relative
   * bootstrap half-width (of this round, else the previous one), within [1e-4, 2e-2];
   * with `exact`, 1e-4.
   */
  tol?: number;
  /** A checkpoint solve (estimate()): tight tolerance, the whole span when affordable. */
  exact?: boolean;
  /** Which bounds to report (default `["top_eigvec"]`). */
  bounds?: BoundName[];
  /** Batch sizes for `η*(B)` (default powers of two up to `n`, plus the run's batch size). */
  batch_grid?: number[];
  /** Bootstrap resamples at most (default 100, 0 disables). */
  bootstrap?: number;
  seed?: number;
  /**
   * Basis budget (default 64; with `exact` 512 on the factor route, and the whole space on the
   * Hessian route where {@linkcode HESSIAN_IDENTITY_WORK} allows).
   */
  max_basis?: number;
  /** Parameter count `d`; when `d ≤ max_basis` the whole space is used and the result is exact. */
  params?: number;
  /** Safety factor of `suggested_lr` (default 0.9). */
  safety?: number;
  /** Hutchinson probes for the identity bound when asked for (default 4). */
  hutchinson?: number;
  /** Ask for gradients and report floors (default true). */
  grads?: boolean;
  /** `"lambda_max"` computes λ_max alone (Lanczos), for benchmarks; default everything. */
  target?: "lambda_gen" | "lambda_max";
  /** `round.options.optimizer` (SPEC §3.1); absent: plain SGD. */
  optimizer?: OptimizerOption;
  /** The client executes `hessian_gram` (listed in its capabilities). */
  hessianGram?: boolean;
}

/** The bounds a round can report (SPEC §5). */
export type BoundName = "top_eigvec" | "identity" | "rank_one";

/** Carried from one round of a run to the next (the basis itself lives in the client). */
export interface RoundState {
  round: number;
  lambdaMax: number;
  lambdaGen: number;
  /** Basis size the client holds after this round. */
  basis: number;
  /** Relative bootstrap half-width of `λ_gen` (sets the next automatic tolerance). */
  halfWidth?: number;
  /** The run was told once that its optimizer is assumed to be plain SGD. */
  assumedWarned?: boolean;
  /** Each probe sample's top curvature in this round's final basis (factor route): the next round probes the largest first. */
  sampleCurvatures?: Float64Array;
}

/** Loosest automatic tolerance. */
export const TOL_CAP = 2e-2;
/** Tightest automatic tolerance (and the `exact` one). */
export const TOL_FLOOR = 1e-4;
/**
 * The whole span of the stacked factor rows is used for `exact` up to this many rows `m·c`
 * (an operator application costs about `4 (m·c)³` flops: 0.3–0.9 s at 1280 on one core).
 */
export const EXACT_SPAN_MAX = 1536;

/**
 * An `exact` round on the Hessian route solves in the identity basis while one application of
 * its dense blocks costs at most this many multiply-adds (`m d³`): d up to 322 at m = 128, 512
 * at m = 32. With 64 columns instead, checkpoints of freshly initialised MLPs of 204 and 304
 * parameters (m = 128, cross-entropy) stopped unconverged at 48 % and 29 % of the exact λ_gen.
 */
export const HESSIAN_IDENTITY_WORK = 2 ** 32;

/** Resamples of the first interval estimate of a live round, which sets its tolerance. */
export const PRELIMINARY_RESAMPLES = 30;
/**
 * The automatic tolerance tightens within a round only below this fraction of the current
 * one (the half-width it follows is itself uncertain by about a fifth).
 */
export const TIGHTEN_BELOW = 0.8;
/** The bootstrap stops once its endpoints' Monte-Carlo error is at most this fraction of its half-width. */
export const BOOTSTRAP_MC_TARGET = 0.2;
/** ... but not before this many resamples. */
export const BOOTSTRAP_MIN_COUNT = 40;

/**
 * The directions carried to the next round hold `λ_gen` to this fraction of the round's
 * tolerance: the next round starts well within its tolerance of the old value, and a warm
 * basis stays near what the tolerance needs (measured on the main example: 30 columns instead
 * of 41–44 with up to 32 carried).
 */
export const CARRY_LOSS_OF_TOL = 0.1;

/**
 * Lanczos steps a warm `λ_gen` round takes at least (a `λ_max`-only round stops on its own error
 * estimate, in 1–4 steps). Its Krylov vectors of `H` join the basis, and they
 * are what finds a maximiser that moved to another branch with the parameters: warm-started from
 * the previous top vector, Lanczos converged in 2–4 steps on the old branch, and Davidson, grown
 * from the carried `S*`, then converged on it too. Measured on the main example along training
 * (12 epochs, m = 128, against the exact span solve): the round after epoch 9 claimed
 * convergence 11 % low (a cold round there: 1.2 % low); with 6 steps or more at most 0.8× the
 * tolerance. It does not catch every such case (README, Known limits).
 */
export const WARM_LANCZOS_MIN_STEPS = 8;

/**
 * Default basis budget of a live round on the factor route: 64 plus the sample probes'
 * columns (sample_branches.ts). With 64, rounds that found a branch by the probes stopped at
 * the budget before converging.
 */
export const LIVE_FACTOR_BASIS = 64 + SAMPLE_PROBE_STAGES.reduce((s, n) => s + n, 0);

/** Options of {@linkcode estimateRound}. */
export interface RoundOptions {
  /** State returned by the previous round of the same run. */
  state?: RoundState;
  /** Columns per Davidson expansion (default 8). */
  block?: number;
  /** Relative loss of `λ_gen` allowed in the directions kept for the next round (default `tol` × {@linkcode CARRY_LOSS_OF_TOL}). */
  carryLoss?: number;
  /** At most this many carried directions (default `max_basis / 2`). */
  carryMax?: number;
  /** `exact` uses the whole factor span up to this many rows `m·c` (default {@linkcode EXACT_SPAN_MAX}). */
  exactSpanMax?: number;
}

/** The report of protocol/SPEC.md §5 (snake_case as on the wire). */
export interface Report extends OptimizerReportFields {
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
  /** Relative tolerance the round used. */
  tol: number;
  /** Estimated relative error of `lambda_gen` (0 when exact in its span). */
  error_estimate?: number;
  basis_size: number;
  hvps: number;
  /** Applications of the reduced operator. */
  operator_applications: number;
  wall_ms: number;
  /** Sidecar compute time of the round (wall time less the waits for the client). */
  sidecar_ms: number;
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
  stopped: "converged" | "budget_hvps" | "budget_seconds" | "max_basis";
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
  const x = roundContext(oracle, params, options);
  let sol: Solution;
  if (x.whole) sol = await solveWhole(x);
  else {
    const live = await solveLive(x);
    if ("report" in live) return live;
    sol = live;
  }
  const pointConverged = await refineCurveStep(x, sol);
  addWarnings(x, sol); // after the curve's refinement, which may grow or restart the basis
  const report = await assembleReport(x, sol, pointConverged);
  let assumedWarned = options.state?.assumedWarned;
  const sgdCurv = sol.curv; // what the next round's probes rank in (an optimizer's round may replace it)
  if (params.optimizer) {
    ({ curv: sol.curv, S: sol.S, assumedWarned } = await optimizerRound(optimizerInput(x, sol, assumedWarned), report));
  }
  // keep the client's basis small for the next round (no HVPs)
  let basisAfter = oracle.basisSize;
  if (!x.identity && sol.curv.k > 0) {
    const cb = await compactBasis(oracle, sol.curv, sol.S, {
      p: x.p,
      carryLoss: options.carryLoss ?? CARRY_LOSS_OF_TOL * x.tol,
      carryMax: options.carryMax ?? Math.floor(Math.min(x.maxBasis, 64) / 2),
    });
    basisAfter = cb.k;
  }
  finish(report, oracle, x.counter, x.t0, x.wait0, x.spent(), x.overlapped.ms);
  // the next automatic tolerance follows the interval of the threshold reported
  const ci = x.replaced ? report.ci : sol.ci;
  const state: RoundState = {
    round: params.round,
    lambdaMax: sol.lambdaMax,
    lambdaGen: sol.lambdaGen,
    basis: basisAfter,
    halfWidth: ci ? (ci.lambda_gen_hi - ci.lambda_gen_lo) / 2 / (x.replaced ? report.lambda_gen : sol.lambdaGen) : options.state?.halfWidth,
    assumedWarned,
    sampleCurvatures: sgdCurv.kind === "factor" && sgdCurv.k > 0 ? sampleTops(sgdCurv).values : undefined,
  };
  return { report: dropNonFinite(report), state };
}

/** What the steps of a round share: its settings, budgets and counters. */
interface RoundContext {
  oracle: CurvatureOracle;
  params: RoundParams;
  t0: number;
  wait0: number;
  m: number;
  p: number;
  /** Rows of each factor (factor route) or undefined (Hessian route). */
  c?: number;
  /** The previous round's per-sample top curvatures ({@linkcode RoundState.sampleCurvatures}). */
  prior?: Float64Array;
  exact: boolean;
  /** The tolerance follows the bootstrap (no `tol`, not `exact`). */
  auto: boolean;
  /**
   * The optimizer step (momentum_round.ts) replaces the plain-SGD curve, bounds and interval:
   * they are not computed for plain SGD (the interval only once, for the automatic tolerance).
   */
  replaced: boolean;
  tol: number;
  /** Tolerance of reduced solves whose basis is exact (whole span or identity). */
  innerTol: number;
  maxBasis: number;
  block: number;
  seed: number;
  deadline?: number;
  budgetHvps: number;
  spent: () => number;
  counter: ApplicationCounter;
  warnings: string[];
  /** Bootstrap resamples. */
  nb: number;
  wantGrads: boolean;
  wantIdentity: boolean;
  gradsOp?: Overlapped<GradStats>;
  overlapped: { ms: number };
  /** The identity basis of a small model (Hessian route). */
  identity: boolean;
  /** The basis is the whole space or the whole factor span: exact. */
  whole: boolean;
}

/** A round's solution for its own batch size. */
interface Solution {
  curv: Curvature;
  lambdaMax: number;
  lambdaGen: number;
  S: Float64Array;
  converged: boolean;
  residual: number;
  minCurvature: number;
  errorEstimate: number;
  stopped: Report["stopped"];
  /** The bootstrap interval, when the automatic tolerance already computed it, and its basis. */
  ci?: BootstrapInterval;
  ciCurv?: Curvature;
}

/** The sample-probe stages that fit in `room` columns (the later stages shrink first). */
function probeStages(room: number): number[] {
  let left = Math.max(0, room);
  return SAMPLE_PROBE_STAGES.map((n) => {
    const take = Math.min(n, left);
    left -= take;
    return take;
  }).filter((n) => n > 0);
}

/**
 * Default basis budget. Factors make hundreds of columns cheap; dense blocks (the Hessian route)
 * cost `m k³` per application, so 64 columns, except for a checkpoint that can afford the whole
 * parameter space (the identity basis: exact).
 */
function defaultBasis(exact: boolean, c: number | undefined, d: number | undefined, m: number): number {
  if (c !== undefined) return exact ? 512 : LIVE_FACTOR_BASIS;
  if (exact && d !== undefined && m * d ** 3 <= HESSIAN_IDENTITY_WORK) return Math.max(d, 64);
  return 64;
}

/** Validate the parameters and settle the round's tolerance, budgets and route. */
function roundContext(oracle: CurvatureOracle, params: RoundParams, options: RoundOptions): RoundContext {
  const t0 = performance.now();
  const m = oracle.probeSize, hvp0 = oracle.hvps;
  const { lr, batch_size: B, n } = params;
  if (!(Number.isFinite(lr) && lr >= 0)) {
    throw new RangeError(`Expected a finite non-negative lr, got ${lr}`);
  }
  const p = batchNoiseWeight(B, n);
  if (params.tol !== undefined && !(params.tol > 0 && params.tol < 1)) {
    throw new RangeError(`Expected tol in (0, 1), got ${params.tol}`);
  }
  const exact = params.exact ?? false;
  const prevHalf = options.state?.halfWidth;
  const tol = params.tol ?? (exact ? TOL_FLOOR : clampTol(prevHalf !== undefined ? 0.1 * prevHalf : TOL_CAP));
  const c = oracle.outputs;
  const d = params.params;
  const maxBasis = params.max_basis ?? defaultBasis(exact, c, d, m);
  const identity = d !== undefined && d <= maxBasis && c === undefined;
  const whole = identity || (exact && c !== undefined && m * c <= (options.exactSpanMax ?? EXACT_SPAN_MAX));
  return {
    oracle, params, t0, wait0: oracle.waitMs ?? 0, m, p, c, exact, prior: options.state?.sampleCurvatures,
    auto: params.tol === undefined && !exact,
    replaced: params.optimizer !== undefined && replacesSgdReport(params.optimizer, whole, params.hessianGram ?? false),
    tol,
    // exact in its span: solved two orders below tol (to 1e-12 on a small identity basis)
    innerTol: whole && c === undefined ? Math.min(tol / 100, 1e-12) : tol / 100,
    maxBasis,
    block: options.block ?? 8,
    seed: params.seed ?? 1 + params.round,
    deadline: params.budget?.seconds !== undefined ? t0 + 1000 * params.budget.seconds : undefined,
    // a round always ends: without a budget, at most 10 basis budgets of HVP-equivalents
    budgetHvps: params.budget?.hvps ?? 10 * maxBasis,
    spent: () => (oracle.hvps - hvp0) / m,
    counter: { applications: 0 },
    warnings: [],
    nb: params.bootstrap ?? 100,
    wantGrads: params.grads ?? true,
    wantIdentity: (params.bounds ?? []).includes("identity"),
    overlapped: { ms: 0 },
    identity,
    whole,
  };
}

/** The identity basis (small d) or the span of the stacked factor rows: exact. */
async function solveWhole(x: RoundContext): Promise<Solution> {
  const curv = x.c === undefined ? await identityBasis(x.oracle, x.params.params!, x.seed) : await factorSpan(x.oracle, x.c);
  const sol = reducedSolve(curv, x.p, { tol: x.innerTol, counter: x.counter });
  return {
    curv,
    lambdaMax: sol.maxCurvature,
    lambdaGen: sol.lambdaGen,
    S: sol.S,
    converged: sol.converged,
    residual: sol.residual,
    minCurvature: sol.minCurvature,
    errorEstimate: 0,
    stopped: "converged",
  };
}

/**
 * A basis of limited size: warm-started λ_max by Lanczos, then Davidson for λ_gen to the
 * tolerance; with the automatic tolerance, the bootstrap interval (computed while the client
 * computes the gradients) may ask for a tighter one, and the basis grows further.
 */
async function solveLive(x: RoundContext): Promise<Solution | { report: Report; state: RoundState }> {
  const { oracle, p, block, maxBasis, counter, deadline, seed, nb } = x;
  const warm = oracle.basisSize > 0;
  const k0 = oracle.basisSize;
  let curv = warm ? await fetchCurvature(oracle, undefined, 0, k0) : emptyCurvature(oracle);
  const lz = await lanczos(oracle, {
    tol: Math.min(x.tol, 1e-3),
    curv,
    warm,
    seed,
    maxSteps: Math.max(1, Math.min(100, maxBasis - k0 - block)),
    minSteps: warm && x.params.target !== "lambda_max" ? WARM_LANCZOS_MIN_STEPS : 1,
    maxHvps: x.budgetHvps,
    deadline,
  });
  if (x.params.target === "lambda_max") {
    return lambdaMaxOnly(oracle, x.params, lz, p, x.tol, counter, x.t0, x.wait0, x.spent());
  }
  curv = lz.curv ?? curv;
  if (oracle.basisSize > curv.k) curv = await fetchCurvature(oracle, curv, curv.k, oracle.basisSize - curv.k);
  if (x.c !== undefined) {
    const stages = probeStages(maxBasis - curv.k - 2 * block);
    curv = (await probeSampleBranches(oracle, curv, stages, x.prior)).curv;
  }
  const grow = (t: number, from?: DavidsonResult) =>
    davidson(oracle, from?.curv ?? curv, {
      p, tol: t, block, maxBasis, counter, deadline, seed,
      maxHvps: Math.max(0, x.budgetHvps - x.spent()),
      start: from?.S,
    });
  let dv = await grow(x.tol);
  let ci: BootstrapInterval | undefined;
  if (x.auto && dv.lambdaGen > 0 && nb > 0) {
    // the automatic tolerance follows this round's sampling error: when the interval asks for
    // a tighter one, grow further and recompute the interval at that accuracy
    if (x.wantGrads && !x.wantIdentity) x.gradsOp = overlap(oracle, () => oracle.grads());
    // a first estimate of the half-width from PRELIMINARY_RESAMPLES sets the tolerance; the
    // interval then continues from those resamples (re-solved only when the tolerance tightened)
    const boot = (d: DavidsonResult, count: number, resume?: BootstrapInterval) =>
      bootstrapInterval(d.curv, p, d, { ...bootOptions(x, count), resume });
    ci = await boot(dv, Math.min(nb, PRELIMINARY_RESAMPLES));
    const want = ci ? clampTol(0.1 * (ci.lambda_gen_hi - ci.lambda_gen_lo) / 2 / dv.lambdaGen) : x.tol;
    if (want < TIGHTEN_BELOW * x.tol) {
      x.tol = want;
      x.innerTol = want / 100;
      if (!(dv.converged && dv.errorEstimate <= x.tol)) {
        if (x.gradsOp) await settle(oracle, x.gradsOp, x.overlapped); // the basis grows: ask again after
        x.gradsOp = undefined;
        dv = await grow(x.tol, dv);
        ci = undefined; // another basis: nothing to resume
      }
    }
    // an optimizer's report replaces plain SGD's interval: the preliminary one only set the tolerance
    if (!x.replaced) ci = await boot(dv, nb, ci);
  }
  const converged = dv.converged && dv.errorEstimate <= x.tol;
  let stopped: Report["stopped"] = dv.stopped === "max_iterations" ? "budget_hvps" : dv.stopped;
  if (stopped === "converged" && !converged) stopped = "budget_hvps";
  if (!lz.converged) {
    x.warnings.push(`lambda_max not converged: ${lz.stopped}, residual ${lz.residual.toExponential(2)}`);
  }
  return {
    curv: dv.curv,
    lambdaMax: Math.max(lz.lambdaMax, dv.maxCurvature),
    lambdaGen: dv.lambdaGen,
    S: dv.S,
    converged,
    residual: dv.residual,
    minCurvature: dv.minCurvature,
    errorEstimate: dv.errorEstimate,
    stopped,
    ci,
    ciCurv: ci ? dv.curv : undefined,
  };
}

/** The warnings every round owes: not converged, momentum, negative curvature. */
function addWarnings(x: RoundContext, sol: Solution): void {
  if (!sol.converged && !x.warnings.some((w) => w.startsWith("lambda_gen not converged"))) {
    x.warnings.push(`lambda_gen not converged: ${sol.stopped}, residual ${sol.residual.toExponential(2)}`);
  }
  if ((x.params.momentum ?? 0) > 0 && !x.params.optimizer) {
    x.warnings.push(`momentum ${x.params.momentum} ignored: the threshold is that of plain SGD (theory §1)`);
  }
  if (sol.minCurvature < 0) {
    // Rayleigh–Ritz values bound λ_gen from below only for PSD curvature
    const bound = sol.converged ? "" : "; lambda_gen of a basis that did not converge is then no lower bound";
    x.warnings.push(`negative curvature in the subspace: ${sol.minCurvature.toExponential(3)}, not at a minimum${bound}`);
  }
}

/** What the optimizer step (momentum_round.ts) needs from the round. */
function optimizerInput(x: RoundContext, sol: Solution, assumedWarned?: boolean): Parameters<typeof optimizerRound>[0] {
  const { params } = x;
  return {
    oracle: x.oracle, option: params.optimizer!, curv: sol.curv, S: sol.S, whole: x.whole,
    hessianGram: params.hessianGram ?? false, p: x.p, n: params.n, batchSize: params.batch_size,
    grid: params.batch_grid ?? defaultGrid(params.n, params.batch_size), tol: x.tol, maxBasis: x.maxBasis,
    maxHvps: Math.max(0, x.budgetHvps - x.spent()), deadline: x.deadline, seed: x.seed, bootstrap: x.nb,
    bounds: params.bounds ?? ["top_eigvec"], safety: params.safety ?? 0.9, assumedWarned: assumedWarned ?? false,
  };
}

/**
 * The curve's other batch sizes: exact in a whole span; grown to `tol` for a checkpoint
 * (updating `sol` to the enlarged basis); live, only the run's own batch size is converged.
 * @returns whether the curve point at batch size `b` is within the tolerance
 */
async function refineCurveStep(x: RoundContext, sol: Solution): Promise<(b: number) => boolean> {
  const B = x.params.batch_size;
  if (x.whole) return () => true;
  if (!(x.exact && sol.lambdaGen > 0)) return (b) => b === B && sol.converged;
  const r = await refineCurve(x.oracle, sol.curv, x.params.batch_grid ?? defaultGrid(x.params.n, B), x.params.n, B, {
    tol: x.tol, block: x.block, maxBasis: x.maxBasis, counter: x.counter, deadline: x.deadline, seed: x.seed,
    maxHvps: () => Math.max(0, x.budgetHvps - x.spent()),
  });
  if (r.curv !== sol.curv) {
    sol.curv = r.curv;
    const s = reducedSolve(sol.curv, x.p, { tol: x.innerTol, counter: x.counter });
    sol.lambdaGen = s.lambdaGen;
    sol.S = s.S;
    sol.minCurvature = s.minCurvature;
    sol.lambdaMax = Math.max(sol.lambdaMax, s.maxCurvature);
  }
  if (r.restarted && sol.converged) {
    sol.converged = false;
    sol.stopped = "max_basis";
    x.warnings.push("lambda_gen not converged: the basis budget forced a restart while refining the batch curve");
  }
  return (b) => (b === B ? sol.converged : r.converged.get(b) ?? false);
}

/**
 * Bounds, the η*(B) curve and the bootstrap (solved here while the client computes the
 * gradients), then the floors and the report.
 */
async function assembleReport(x: RoundContext, sol: Solution, pointConverged: (b: number) => boolean): Promise<Report> {
  const { oracle, params, p, m, counter } = x;
  const { curv, S, lambdaGen, lambdaMax } = sol;
  const { lr, batch_size: B, n } = params;
  const k = curv.k;
  const etaStar = lambdaGen > 0 ? 2 / lambdaGen : Infinity;
  const bounds = lambdaGen > 0 && k > 0 && !x.replaced ? await reportBounds(oracle, curv, p, S, params, x.seed) : {};
  // gradients (the last op before compaction) computed by the client while the curve and the
  // bootstrap are solved here
  if (x.wantGrads && k > 0 && !x.gradsOp) x.gradsOp = overlap(oracle, () => oracle.grads());
  const grid = params.batch_grid ?? defaultGrid(n, B);
  const curve = lambdaGen > 0 && !x.replaced
    ? batchCurve(curv, n, grid, lr, {
      // live, the other points are lower bounds from a basis grown for B: solved to tol, not finer
      start: S, tol: x.exact || x.whole ? x.innerTol : x.tol, counter, known: new Map([[B, lambdaGen]]),
    })
    : { points: [] as BatchPoint[] };
  curve.points = curve.points.map((pt) => ({ ...pt, converged: pointConverged(pt.B) }));
  if (curve.points.some((pt) => !pt.converged)) {
    x.warnings.push(unconvergedCurveWarning(sol.minCurvature));
  }
  if ((sol.ci === undefined || curv !== sol.ciCurv) && x.nb > 0 && lambdaGen > 0 && !x.replaced) {
    sol.ci = await bootstrapInterval(curv, p, sol, bootOptions(x, x.nb));
  }
  const ci = sol.ci;
  if (x.nb > 0 && lambdaGen > 0 && !x.replaced && (!ci || ci.cut)) {
    x.warnings.push(
      ci ? `bootstrap cut by the time budget: ${ci.count} of ${x.nb} resamples` : "bootstrap dropped: no time left in the budget",
    );
  }
  let floors = {};
  if (x.gradsOp && k > 0) {
    const g = await settle(oracle, x.gradsOp, x.overlapped);
    // the curvature describes the leading k columns of the client's basis
    const kc = oracle.basisSize;
    const proj = new Float64Array(m * k);
    for (let i = 0; i < m; i++) {
      for (let a = 0; a < k; a++) proj[i * k + a] = g.proj[i * kc + a];
    }
    floors = lossFloors(curv, p, lr, etaStar, { ...g, proj });
  }
  return {
    run: params.run, round: params.round, step: params.step, epoch: params.epoch, lr, batch_size: B, n, p, m,
    lambda_max: lambdaMax,
    lambda_gen: lambdaGen,
    eta_star: etaStar,
    eta_gd: lambdaMax > 0 ? 2 / lambdaMax : Infinity,
    margin: lr / etaStar,
    suggested_lr: (params.safety ?? 0.9) * etaStar,
    converged: sol.converged,
    residual: sol.residual,
    tol: x.tol,
    error_estimate: sol.errorEstimate,
    basis_size: k,
    hvps: x.spent(),
    operator_applications: 0,
    wall_ms: 0,
    sidecar_ms: 0,
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
    min_curvature: sol.minCurvature,
    stopped: sol.stopped,
    warnings: x.warnings,
  };
}

/**
 * Grow the basis for each other batch size of the curve (smallest first: the highest-rank
 * maximisers) until its `λ_gen` converges to `tol`, sharing the basis; a checkpoint's curve is
 * then as accurate as its point value.
 * @returns the final curvature and, per batch size, whether it converged
 */
async function refineCurve(
  oracle: CurvatureOracle,
  curv: Curvature,
  grid: number[],
  n: number,
  B: number,
  o: {
    tol: number; block: number; maxBasis: number; counter: ApplicationCounter; deadline?: number; seed: number;
    maxHvps: () => number;
  },
): Promise<{ curv: Curvature; converged: Map<number, boolean>; restarted: boolean }> {
  const converged = new Map<number, boolean>();
  let restarted = false;
  const bs = [...new Set(grid.filter((b) => Number.isInteger(b) && b >= 1 && b <= n && b !== B))].sort((x, y) => x - y);
  for (const b of bs) {
    const dv = await davidson(oracle, curv, {
      p: batchNoiseWeight(b, n), tol: o.tol, block: o.block, maxBasis: o.maxBasis, counter: o.counter,
      deadline: o.deadline, seed: o.seed, maxHvps: o.maxHvps(),
    });
    curv = dv.curv;
    restarted ||= dv.restarts > 0;
    converged.set(b, dv.converged);
  }
  // a restart rotates the basis and may lose what earlier points needed: claim none then
  if (restarted) for (const b of bs) converged.set(b, false);
  return { curv, converged, restarted };
}

/**
 * An op sent early whose result is awaited later, so the client computes it while the sidecar
 * computes (the reduced solves of the curve and the bootstrap overlap the client's gradients).
 * `idle` corrects the oracle's wait time, which here overlaps the sidecar's own work.
 */
interface Overlapped<T> {
  promise: Promise<T>;
  wait0: number;
}

function overlap<T>(oracle: CurvatureOracle, send: () => Promise<T>): Overlapped<T> {
  const wait0 = oracle.waitMs ?? 0;
  const promise = send();
  promise.catch(() => {}); // awaited later; a rejection then ends the round
  return { promise, wait0 };
}

/** Await an overlapped op; adds (its measured wait − the time actually idle) to `acc.ms`. */
async function settle<T>(oracle: CurvatureOracle, o: Overlapped<T>, acc: { ms: number }): Promise<T> {
  const t = performance.now();
  const value = await o.promise;
  const idle = performance.now() - t;
  acc.ms += Math.max(0, (oracle.waitMs ?? 0) - o.wait0 - idle);
  return value;
}

/**
 * The bootstrap's settings: seeded per round, each resample solved to the round's tolerance,
 * stopped before `count` once the interval's Monte-Carlo error is at most
 * {@linkcode BOOTSTRAP_MC_TARGET} of its half-width.
 */
function bootOptions(x: RoundContext, count: number): BootstrapOptions {
  return {
    count, seed: x.seed + 104729, tol: x.tol, counter: x.counter, deadline: x.deadline,
    mcTarget: BOOTSTRAP_MC_TARGET, minCount: BOOTSTRAP_MIN_COUNT, pool: ResamplePool.shared(),
  };
}

/** Clamp an automatic tolerance to [TOL_FLOOR, TOL_CAP]. */
function clampTol(t: number): number {
  return Math.min(TOL_CAP, Math.max(TOL_FLOOR, Number.isFinite(t) ? t : TOL_CAP));
}

/** Cost fields, filled last. */
function finish(
  report: Report,
  oracle: CurvatureOracle,
  counter: ApplicationCounter,
  t0: number,
  wait0: number,
  hvps: number,
  overlapped = 0,
): void {
  report.hvps = hvps;
  report.operator_applications = counter.applications;
  report.wall_ms = performance.now() - t0;
  report.sidecar_ms = Math.max(0, report.wall_ms - ((oracle.waitMs ?? 0) - wait0 - overlapped));
}

/** Hessian route, `d ≤ max_basis`: the identity basis (seeded random rotation of it). */
async function identityBasis(oracle: CurvatureOracle, d: number, seed: number): Promise<Curvature> {
  if (oracle.basisSize !== d) {
    await oracle.reset();
    await oracle.random(d, seed);
  }
  return await fetchCurvature(oracle, undefined, 0, oracle.basisSize);
}

/**
 * Factor route: the span of the stacked factor rows `Λ_i^{1/2} J_i` (rank ≤ m·c), which holds
 * every `H_i`, so the reduced problem in it is exact. Built by expansions with identity output
 * coefficients, 256 columns at a time, each returning the new columns' factors.
 */
async function factorSpan(oracle: CurvatureOracle, c: number): Promise<Curvature> {
  const m = oracle.probeSize, total = m * c;
  await oracle.reset();
  let curv = emptyCurvature(oracle);
  for (let s = 0; s < total; s += 256) {
    const r = Math.min(256, total - s);
    const coeffs = new Float64Array(m * c * r);
    for (let j = 0; j < r; j++) coeffs[(s + j) * r + j] = 1; // row (i, a) = s + j
    const res = await oracle.expand(coeffs, new Float64Array(oracle.basisSize * r), r, true);
    curv = curv.extend(res.blocks ?? new Float64Array(0), res.keptIndex.length);
  }
  return curv;
}

/** The bounds asked for (default the top-eigenvector one). */
async function reportBounds(
  oracle: CurvatureOracle,
  curv: Curvature,
  p: number,
  S: Float64Array,
  params: RoundParams,
  seed: number,
): Promise<NonNullable<Report["bounds"]>> {
  const k = curv.k, m = curv.m;
  const want = new Set(params.bounds ?? ["top_eigvec"]);
  const bounds: NonNullable<Report["bounds"]> = {};
  const K = curv.mean();
  if (want.has("top_eigvec")) {
    const ek = symEig(K, k);
    bounds.top_eigvec = topEigvecBound(curv, p, Float64Array.from({ length: k }, (_, a) => ek.vectors[a * k]));
  }
  if (want.has("rank_one")) {
    const es = symEig(S, k);
    const topS = Float64Array.from({ length: k }, (_, a) => es.vectors[a * k]);
    // a lower bound at any u: a few ascent steps from 3 starts are enough for a report
    bounds.rank_one = rankOneBound(curv, p, { extra: [topS], starts: 3, maxIter: 60 });
  }
  if (want.has("identity")) {
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
  return bounds;
}

/** The report of a `target: "lambda_max"` round (benchmarks against λ_max tools). */
function lambdaMaxOnly(
  oracle: CurvatureOracle,
  params: RoundParams,
  lz: LanczosResult,
  p: number,
  tol: number,
  counter: ApplicationCounter,
  t0: number,
  wait0: number,
  hvps: number,
): { report: Report; state: RoundState } {
  const report = {
    run: params.run, round: params.round, step: params.step, epoch: params.epoch, lr: params.lr,
    batch_size: params.batch_size, n: params.n, p, m: oracle.probeSize,
    lambda_max: lz.lambdaMax, eta_gd: 2 / lz.lambdaMax, converged: lz.converged, residual: lz.residual, tol,
    basis_size: oracle.basisSize, hvps, operator_applications: 0, wall_ms: 0, sidecar_ms: 0, time: Date.now() / 1000,
    stopped: lz.converged ? "converged" : "budget_hvps", warnings: [] as string[],
  } as unknown as Report;
  finish(report, oracle, counter, t0, wait0, hvps);
  const state: RoundState = { round: params.round, lambdaMax: lz.lambdaMax, lambdaGen: NaN, basis: oracle.basisSize };
  return { report: dropNonFinite(report), state };
}

/** Powers of two up to `n`, plus `n` and the run's batch size. */
function defaultGrid(n: number, B: number): number[] {
  const g = [B, n];
  for (let b = 1; b < n; b *= 2) g.push(b);
  return g;
}
