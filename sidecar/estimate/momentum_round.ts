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
import type { BatchPoint } from "./batch_curve.ts";
import type { Curvature } from "./curvature.ts";
import { matmul } from "./_linalg.ts";
import { momentumBootstrap } from "./momentum_bootstrap.ts";
import { momentumBounds, naiveThresholds } from "./momentum_bounds.ts";
import { momentumBatchCurve, momentumBetaCurve } from "./momentum_curves.ts";
import { growMomentumBasis } from "./momentum_davidson.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";
import { momentumThreshold } from "./momentum_threshold.ts";
import { type CurvatureOracle, fetchCurvature, fetchK2 } from "./oracle.ts";
import {
  describeOptimizer,
  hasLinearPencil,
  lrScale,
  momentumOf,
  type OptimizerModel,
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
  if (model.kind === "sgd") return sgdOnly();
  if (beta > 0 && !x.whole && !x.hessianGram) {
    warnings.push(`the client does not execute hessian_gram: the threshold is that of plain SGD, not of ${describeOptimizer(model)}`);
    report.optimizer.description = `plain SGD (${describeOptimizer(model)} not modelled)`;
    return sgdOnly();
  }
  const { oracle, p } = x;
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
      warnings.push(`${describeOptimizer(model)}: lambda_gen not converged (${g.stopped}); a subspace value understates it, so eta_star may be overstated`);
    }
  }
  const mc = curv.withK2(K2);
  const thr = momentumThreshold(mc, model, p, { start: S });
  if (thr.S) S = thr.S;
  const sgd0 = momentumPencilSolve(mc, 0, p).lambdaGen;
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
  curves(x, report, mc, model, converged);
  if (hasLinearPencil(model) && thr.lambdaGen !== undefined && thr.lambdaGen > 0) {
    const b = momentumBounds(mc, beta, p, { extra: [], starts: 3, maxIter: 60 });
    const bounds: OptimizerReport["bounds"] = {};
    if (x.bounds.includes("top_eigvec")) bounds.top_eigvec = s * b.topEigvec;
    if (x.bounds.includes("identity")) bounds.identity = s * b.identity;
    if (x.bounds.includes("rank_one")) bounds.rank_one = s * b.rankOne;
    report.bounds = bounds;
  } else delete report.bounds;
  delete report.ci;
  if (x.bootstrap > 0 && Number.isFinite(etaStar)) {
    const ci = momentumBootstrap(curv, K2, model, p, { count: x.bootstrap, seed: x.seed + 104729, start: S, deadline: x.deadline });
    if (ci) {
      report.ci = { lambda_gen_lo: ci.lambda_gen_lo, lambda_gen_hi: ci.lambda_gen_hi, eta_star_lo: ci.eta_star_lo, eta_star_hi: ci.eta_star_hi, level: ci.level };
      if (ci.count < x.bootstrap) warnings.push(`bootstrap cut by the time budget: ${ci.count} of ${x.bootstrap} resamples`);
    }
  }
  return { curv, S, assumedWarned };
}

/** `η*(B)` and `η*(β)` of the optimizer in the round's basis; converged where it was grown for. */
function curves(
  x: OptimizerRoundInput,
  report: OptimizerReport,
  mc: ReturnType<Curvature["withK2"]>,
  model: OptimizerModel,
  converged: boolean,
): void {
  const beta = momentumOf(model);
  const bc = momentumBatchCurve(mc, model, x.n, x.grid, report.lr);
  report.eta_star_by_batch = bc.points.map((pt) => ({
    B: pt.B, eta_star: pt.eta_star, lambda_gen: 2 / pt.eta_star, converged: x.whole || (pt.B === x.batchSize && converged),
  }));
  report.min_stable_batch = bc.minStableBatch;
  if (x.deadline !== undefined && performance.now() >= x.deadline) return;
  const bcurve = momentumBetaCurve(mc, model, x.p);
  report.eta_star_by_momentum = bcurve.points.map((pt) => ({
    momentum: pt.beta, eta_star: pt.eta_star, converged: x.whole || (pt.beta === beta && converged),
  }));
}
