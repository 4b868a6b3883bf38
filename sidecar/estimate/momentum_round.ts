/**
 * The optimizer part of a round (SPEC §3.1, §5; docs/momentum.md): after the plain-SGD solve,
 * the threshold of the run's actual optimizer. For momentum > 0 the sidecar fetches
 * `K₂ = VᵀH²V` (`hessian_gram`), grows the basis by Davidson for the heavy-ball pencil at the
 * run's `β` to the round's tolerance (momentum_davidson.ts), and solves: the pencil for heavy
 * ball / dampening / Adam (a Rayleigh–Ritz lower bound of `λ_gen(β)`), Brent over reduced solves
 * of the compressed model for Nesterov and AdamW. A whole-span basis (identity or the factor
 * span) holds `range(H)`, so there `K₂ = K²` exactly and no op is needed.
 *
 * Then the report's threshold fields are those of the optimizer, in units of its own `lr`, with
 * `lambda_gen = 2/eta_star`; the plain-SGD, full-batch and naive values beside them, the `η*(B)`
 * and `η*(β)` curves, the bounds and the bootstrap interval.
 *
 * @module
 */
import { type BatchPoint, unconvergedCurveWarning } from "./batch_curve.ts";
import type { Curvature, MomentumCurvature } from "./curvature.ts";
import { congruence, matmul, symEig } from "./_linalg.ts";
import { momentumBootstrap } from "./momentum_bootstrap.ts";
import { momentumBounds, naiveThresholds } from "./momentum_bounds.ts";
import { DEFAULT_BETAS, momentumBatchCurve } from "./momentum_curves.ts";
import { growMomentumBasis } from "./momentum_davidson.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";
import { momentumThreshold, type MomentumThresholdOptions } from "./momentum_threshold.ts";
import { type CurvatureOracle, fetchCurvature, fetchK2 } from "./oracle.ts";
import {
  describeOptimizer,
  hasLinearPencil,
  lrScale,
  momentumOf,
  type OptimizerModel,
  withMomentum,
} from "./optimizer_model.ts";

/** `round.options.optimizer` as sent (SPEC §3.1; validated by protocol/limits.ts). */
export interface OptimizerOption {
  kind: "sgd" | "heavy_ball" | "nesterov" | "adam";
  momentum?: number;
  dampening?: number;
  beta1?: number;
  decoupled_decay?: number;
  l2?: number;
  name?: string;
  assumed?: boolean;
}

/** The report fields of a round with an optimizer (SPEC §5), snake_case as on the wire. */
export interface OptimizerReportFields {
  optimizer?: {
    kind: string;
    name?: string;
    momentum?: number;
    dampening?: number;
    beta1?: number;
    decoupled_decay?: number;
    l2?: number;
    description: string;
    assumed: boolean;
  };
  method?: "sgd" | "pencil" | "brent";
  eta_star_sgd?: number;
  eta_star_full_batch?: number;
  eta_star_upper?: number;
  naive?: { rescaled: number; effective_lr: number };
  eta_star_by_momentum?: { momentum: number; eta_star: number; converged: boolean }[];
}

/** The round's report as far as this step reads and rewrites it. */
export interface OptimizerReport extends OptimizerReportFields {
  lr: number;
  lambda_max: number;
  lambda_gen: number;
  eta_star: number;
  margin: number;
  suggested_lr: number;
  converged: boolean;
  residual: number;
  error_estimate?: number;
  basis_size: number;
  stopped: "converged" | "budget_hvps" | "budget_seconds" | "max_basis";
  /** The plain-SGD basis' smallest curvature (negative: not at a minimum). */
  min_curvature?: number;
  bounds?: { top_eigvec?: number; identity?: number; identity_se?: number; rank_one?: number };
  eta_star_by_batch?: BatchPoint[];
  min_stable_batch?: number;
  ci?: { lambda_gen_lo: number; lambda_gen_hi: number; eta_star_lo: number; eta_star_hi: number; level: number };
  loss_floor?: number;
  loss_floor_leading?: number;
  grad_norm_floor?: number;
  warnings?: string[];
}

/** What the round hands to {@linkcode optimizerRound}. */
export interface OptimizerRoundInput {
  oracle: CurvatureOracle;
  option: OptimizerOption;
  /** Curvature of the round's basis and its plain-SGD maximiser (warm start). */
  curv: Curvature;
  S: Float64Array;
  /** The basis is the whole space or the whole factor span (exact, `K₂ = K²`). */
  whole: boolean;
  /** The client executes `hessian_gram`. */
  hessianGram: boolean;
  p: number;
  n: number;
  batchSize: number;
  grid: number[];
  tol: number;
  maxBasis: number;
  /** HVP-equivalents left in the round's budget. */
  maxHvps: number;
  deadline?: number;
  seed: number;
  /** Bootstrap resamples (0: none). */
  bootstrap: number;
  /** Bounds asked for. */
  bounds: string[];
  safety: number;
  /** The run was already told that its optimizer is assumed to be plain SGD. */
  assumedWarned: boolean;
}

/**
 * The heavy-ball normal form of the optimizer sent.
 * @example
 * ```ts
 * import { modelOf } from "./momentum_round.ts";
 * const m = modelOf({ kind: "adam", beta1: 0.9, decoupled_decay: 0.01 });
 * if (m.kind !== "adam" || m.decoupledDecay !== 0.01) throw new Error(JSON.stringify(m));
 * ```
 */
export function modelOf(o: OptimizerOption): OptimizerModel {
  switch (o.kind) {
    case "heavy_ball":
      return { kind: "heavy_ball", momentum: o.momentum ?? 0, dampening: o.dampening ?? 0 };
    case "nesterov":
      return { kind: "nesterov", momentum: o.momentum ?? 0 };
    case "adam":
      return { kind: "adam", beta1: o.beta1 ?? 0, decoupledDecay: o.decoupled_decay ?? 0 };
    default:
      return { kind: "sgd" };
  }
}

/**
 * Whether {@linkcode optimizerRound} replaces the plain-SGD report's threshold fields (curve,
 * bounds, interval): then the round need not compute them for plain SGD first.
 * @example
 * ```ts
 * import { replacesSgdReport } from "./momentum_round.ts";
 * if (!replacesSgdReport({ kind: "adam", beta1: 0.9 }, false, true)) throw new Error("adam");
 * if (replacesSgdReport({ kind: "heavy_ball", momentum: 0.9 }, false, false)) throw new Error("no gram");
 * ```
 */
export function replacesSgdReport(o: OptimizerOption, whole: boolean, hessianGram: boolean): boolean {
  const model = modelOf(o);
  return model.kind !== "sgd" && (momentumOf(model) === 0 || whole || hessianGram);
}

/**
 * Rewrite `report` (the plain-SGD round's) for the run's optimizer.
 * @returns the final curvature and maximiser (for compacting the client's basis) and whether
 *   the "assumed plain SGD" warning has now been given in this run
 */
export async function optimizerRound(
  x: OptimizerRoundInput,
  report: OptimizerReport,
): Promise<{ curv: Curvature; S: Float64Array; assumedWarned: boolean }> {
  const o = x.option, model = modelOf(o), beta = momentumOf(model), s = lrScale(model);
  const warnings = report.warnings ??= [];
  let assumedWarned = x.assumedWarned;
  if (o.assumed && !assumedWarned) {
    warnings.push(`optimizer ${o.name ?? "(unnamed)"} is not modelled: the threshold assumes plain SGD`);
    assumedWarned = true;
  }
  if ((o.l2 ?? 0) > 0) {
    warnings.push(`l2 (coupled weight decay ${o.l2}) is not modelled: the threshold is that of the loss without it`);
  }
  report.optimizer = {
    kind: o.kind, name: o.name, momentum: o.momentum, dampening: o.dampening, beta1: o.beta1,
    decoupled_decay: o.decoupled_decay, l2: o.l2, description: describeOptimizer(model), assumed: o.assumed ?? false,
  };
  let { curv, S } = x;
  const sgdOnly = () => {
    report.method = "sgd";
    report.eta_star_sgd = report.eta_star;
    report.eta_star_full_batch = report.lambda_max > 0 ? 2 / report.lambda_max : undefined;
    return { curv, S, assumedWarned };
  };
  if (!replacesSgdReport(o, x.whole, x.hessianGram)) {
    if (model.kind === "sgd") return sgdOnly();
    warnings.push(`the client does not execute hessian_gram: the threshold is that of plain SGD, not of ${describeOptimizer(model)}`);
    report.optimizer.description = `plain SGD (${describeOptimizer(model)} not modelled)`;
    return sgdOnly();
  }
  const { oracle, p } = x;
  const t0 = performance.now();
  if (oracle.basisSize > curv.k) curv = await fetchCurvature(oracle, curv, curv.k, oracle.basisSize - curv.k);
  const k = curv.k;
  let K2: Float64Array;
  let converged = report.converged, errorEstimate = report.error_estimate, stopped = report.stopped;
  if (beta === 0 || x.whole || k === 0) {
    // V holds range(H) (or c₃ = 0, where K₂ is not used): K₂ = K² exactly
    const K = curv.mean();
    K2 = matmul(K, K, k, k, k);
  } else {
    K2 = await fetchK2(oracle, undefined, 0);
    const g = await growMomentumBasis(oracle, curv, K2, {
      beta, p, tol: x.tol, maxBasis: x.maxBasis, maxHvps: x.maxHvps, deadline: x.deadline, start: S,
    });
    ({ curv, K2 } = g);
    S = g.sol.S;
    converged = g.converged;
    errorEstimate = g.errorEstimate;
    stopped = g.stopped;
    if (!g.converged) {
      // a Rayleigh–Ritz value bounds λ_gen(β) from below only for PSD curvature
      const why = (report.min_curvature ?? 0) < 0
        ? "with negative curvature a subspace value bounds nothing, so eta_star may be over- or understated"
        : "a subspace value understates it, so eta_star may be overstated";
      warnings.push(`${describeOptimizer(model)}: lambda_gen not converged (${g.stopped}); ${why}`);
    }
  }
  const mc = curv.withK2(K2);
  // a whole span is exact: solved to machine accuracy; a live basis two orders below tol (the
  // curves and resamples one order), as the plain-SGD estimators do
  const tight = x.whole ? {} : { tol: x.tol / 100, xtol: x.tol / 100 };
  const loose = x.whole ? {} : { tol: x.tol / 10, xtol: x.tol / 10 };
  const thr = momentumThreshold(mc, model, p, { ...tight, start: S });
  if (thr.S) S = thr.S;
  // Nesterov's upper bound already solved the plain-SGD pencil
  const sgd0 = thr.lambdaGenSgd ?? momentumPencilSolve(mc, 0, p, tight).lambdaGen;
  const kmax = k > 0 ? symEig(mc.K, curv.k).values[0] : 0;
  if (kmax > 1.01 * report.lambda_max) {
    // a Rayleigh quotient above λ_max: λ_max was not converged, or the basis is not orthonormal
    warnings.push(`curvature ${kmax.toPrecision(6)} in the ${describeOptimizer(model)} basis exceeds lambda_max ${report.lambda_max.toPrecision(6)}: lambda_max not converged or the client's basis not orthonormal`);
  }
  const etaStar = thr.etaStar > 0 ? thr.etaStar : Infinity;
  report.method = thr.method === "pencil" ? "pencil" : "brent";
  report.eta_star = etaStar;
  report.lambda_gen = 2 / etaStar;
  report.margin = report.lr / etaStar;
  report.suggested_lr = x.safety * etaStar;
  report.converged = converged;
  report.error_estimate = errorEstimate;
  report.stopped = stopped;
  report.basis_size = curv.k;
  report.eta_star_sgd = sgd0 > 0 ? 2 / sgd0 : undefined;
  report.eta_star_full_batch = thr.fullBatch;
  report.eta_star_upper = thr.upperBound;
  const naive = naiveThresholds(sgd0, beta, s);
  report.naive = { rescaled: naive.gdRescaled, effective_lr: naive.effectiveLr };
  // the loss floors of theory.md are plain-SGD quantities
  delete report.loss_floor;
  delete report.loss_floor_leading;
  delete report.grad_norm_floor;
  // the curves (lower bounds off the run's own point) are solved in the leading directions of S*
  // that reproduce the point value; a whole span keeps everything. The curves and the bootstrap
  // take at most as long again as this step so far (at least 1 s), within the round's budget.
  const red = x.whole ? { mc, start: S } : accurateSubspace(mc, model, p, S, thr.sharpness, x.tol);
  const extras = Math.min(x.deadline ?? Infinity, performance.now() + Math.max(1000, performance.now() - t0));
  const deadline = x.whole ? x.deadline : extras;
  // the run's own point is the point value (solved in the whole basis), not solved again
  const batchCurve = momentumBatchCurve(red.mc, model, x.n, x.grid, report.lr, { ...loose, start: red.start }, new Map([[x.batchSize, etaStar]]));
  report.eta_star_by_batch = batchCurve.points.map((pt) => ({
    B: pt.B, eta_star: pt.eta_star, lambda_gen: 2 / pt.eta_star, converged: x.whole || (pt.B === x.batchSize && converged),
  }));
  report.min_stable_batch = batchCurve.minStableBatch;
  const unconverged = unconvergedCurveWarning(report.min_curvature ?? 0);
  if (report.eta_star_by_batch.some((pt) => !pt.converged) && !warnings.includes(unconverged)) warnings.push(unconverged);
  if (hasLinearPencil(model) && thr.lambdaGen !== undefined && thr.lambdaGen > 0) {
    // the rank-one ascent (the costly one) only when asked
    const b = momentumBounds(mc, beta, p, { extra: [], starts: x.bounds.includes("rank_one") ? 3 : 0, maxIter: 60 });
    const bounds: OptimizerReport["bounds"] = {};
    if (x.bounds.includes("top_eigvec")) bounds.top_eigvec = s * b.topEigvec;
    if (x.bounds.includes("identity")) bounds.identity = s * b.identity;
    if (x.bounds.includes("rank_one")) bounds.rank_one = s * b.rankOne;
    report.bounds = bounds;
  } else delete report.bounds;
  delete report.ci;
  if (x.bootstrap > 0 && Number.isFinite(etaStar)) {
    // resamples in the whole basis, warm-started from S*: a span that only reproduces the point
    // value does not reproduce the resamples' (bootstrap.ts; it left an interval 0.6 % low)
    const ci = momentumBootstrap(mc.curvature, mc.K2, model, p, {
      // at most half of what is left, so that the η*(β) curve after it is not starved
      ...loose, center: report.lambda_gen, count: x.bootstrap, seed: x.seed + 104729, start: S, deadline: halfway(deadline),
    });
    if (ci) {
      report.ci = { lambda_gen_lo: ci.lambda_gen_lo, lambda_gen_hi: ci.lambda_gen_hi, eta_star_lo: ci.eta_star_lo, eta_star_hi: ci.eta_star_hi, level: ci.level };
      if (ci.count < x.bootstrap) warnings.push(`bootstrap cut by the time budget: ${ci.count} of ${x.bootstrap} resamples`);
    }
  }
  {
    const pts = momentumCurve(red.mc, model, p, { ...loose, start: red.start }, deadline, [beta, etaStar]);
    report.eta_star_by_momentum = pts.map((pt) => ({
      momentum: pt.beta, eta_star: pt.eta_star, converged: x.whole || (pt.beta === beta && converged),
    }));
    if (pts.length < DEFAULT_BETAS.length) warnings.push(`eta_star_by_momentum cut by the time budget: ${pts.length} of ${DEFAULT_BETAS.length} values`);
  }
  return { curv, S, assumedWarned };
}

/**
 * The smallest basis of leading eigenvectors of `S*` (by `|eigenvalue|`; 8, 16, 32, … of them)
 * in which the threshold is within `tol/2` of the point value `sharpness`; the whole basis when
 * none smaller is.
 */
function accurateSubspace(
  mc: MomentumCurvature,
  model: OptimizerModel,
  p: number,
  S: Float64Array,
  sharpness: number,
  tol: number,
): { mc: MomentumCurvature; start: Float64Array } {
  const k = mc.k;
  if (!(sharpness > 0) || !Number.isFinite(sharpness)) return { mc, start: S };
  const es = symEig(S, k);
  const order = [...es.values.keys()].sort((a, b) => Math.abs(es.values[b]) - Math.abs(es.values[a]));
  for (let r = 8; r < k; r *= 2) {
    const U = new Float64Array(k * r);
    for (let a = 0; a < k; a++) {
      for (let j = 0; j < r; j++) U[a * r + j] = es.vectors[a * k + order[j]];
    }
    const sub = mc.curvature.rotate(U, r).withK2(congruence(mc.K2, U, k, r));
    const start = congruence(S, U, k, r);
    const v = momentumThreshold(sub, model, p, { tol: tol / 10, xtol: tol / 10, start, upperBound: false }).sharpness;
    if (Math.abs(v - sharpness) <= (tol / 2) * sharpness) return { mc: sub, start };
  }
  return { mc, start: S };
}

/** Halfway between now and `deadline` (undefined stays undefined). */
function halfway(deadline?: number): number | undefined {
  if (deadline === undefined || !Number.isFinite(deadline)) return deadline;
  const now = performance.now();
  return now + Math.max(0, deadline - now) / 2;
}

/** `η*(β)` over {@linkcode DEFAULT_BETAS} (the run's optimizer with its momentum replaced), until `deadline`. */
function momentumCurve(
  mc: MomentumCurvature,
  model: OptimizerModel,
  p: number,
  solve: MomentumThresholdOptions,
  deadline?: number,
  known?: [number, number],
): { beta: number; eta_star: number }[] {
  const out: { beta: number; eta_star: number }[] = [];
  // each solve starts from its neighbour's maximiser (the pencil's; Brent keeps the given one)
  let start = solve.start;
  for (const beta of DEFAULT_BETAS) {
    if (deadline !== undefined && performance.now() >= deadline) break;
    if (known && beta === known[0]) {
      out.push({ beta, eta_star: known[1] });
      continue;
    }
    const t = momentumThreshold(mc, withMomentum(model, beta), p, { ...solve, start, upperBound: false });
    if (t.S) start = t.S;
    out.push({ beta, eta_star: t.etaStar });
  }
  return out;
}
