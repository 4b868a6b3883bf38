/**
 * The mean-square threshold `η*` (in the user's learning rate) for the run's optimizer
 * (docs/momentum.md): one symmetric pencil solve for SGD, heavy ball (with dampening) and Adam;
 * Brent over reduced solves of the compressed model for Nesterov and AdamW, with Nesterov's
 * certified upper bound `(1+β)/(1+2β) · 2/λ_gen(0)` beside it.
 *
 * @module
 */
import {
  type CompressedOptions,
  compressedThreshold,
} from "./compressed_momentum.ts";
import type { MomentumCurvature } from "./curvature.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";
import { symEig } from "./_linalg.ts";
import {
  checkOptimizerModel,
  describeOptimizer,
  hasLinearPencil,
  lrScale,
  meanStableLimit,
  momentumOf,
  type OptimizerModel,
} from "./optimizer_model.ts";

/** Options of {@linkcode momentumThreshold}. */
export interface MomentumThresholdOptions extends CompressedOptions {
  /** Warm start of the pencil solve (`k × k`, basis coordinates). */
  start?: Float64Array;
  /** Nesterov: compute the upper bound (one more pencil solve; default true). */
  upperBound?: boolean;
}

/** Result of {@linkcode momentumThreshold}. */
export interface MomentumThreshold {
  /** Which dynamics, e.g. `"Nesterov (β = 0.9)"`. */
  optimizer: string;
  /**
   * `"pencil"`: a Rayleigh–Ritz value in the subspace (`η*` can only be overstated by a poor
   * basis); `"compressed"`: the compressed model (not one-sided in a subspace, exact for `V = I`).
   */
  method: "pencil" | "compressed";
  /** Threshold on the user's `lr` (`Infinity` when the subspace gives no finite value). */
  etaStar: number;
  /** `2/η*`: stable iff `lr · sharpness < 2` (for Adam, `S_Adam` of §5). */
  sharpness: number;
  /** Pencil only: `λ_gen(β)` of the heavy-ball normal form, `η* = 2/(s λ_gen)`. */
  lambdaGen?: number;
  /** Pencil only: the maximiser (`k × k`, basis coordinates). */
  S?: Float64Array;
  /** Full-batch threshold in the subspace (`p = 0`): for Adam, the `38/λ_max(P⁻¹H)`-style value. */
  fullBatch: number;
  /** Nesterov only: the certified upper bound `(1+β)/(1+2β) · 2/λ_gen(0)`. */
  upperBound?: number;
  /** Nesterov only: `λ_gen(0)`, the plain-SGD value in the same basis, behind the upper bound. */
  lambdaGenSgd?: number;
  /** Reduced solves spent. */
  solves: number;
  converged: boolean;
}

/**
 * `η*` for an optimizer from the curvature in a basis.
 * @param curv `K`, `K₂`, `S ↦ mean_i K_iSK_i` (for Adam: of `P^{−1/2}H_iP^{−1/2}`)
 * @param model the optimizer
 * @param p batch-noise weight in [0, 1]
 * @returns the threshold and how it was obtained
 * @throws {RangeError} on a bad model or `p`
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * import { momentumThreshold } from "./momentum_threshold.ts";
 * // momentum.md §8, Adam with P = diag(2, 0.5): blocks of P^{-1/2} H_i P^{-1/2}
 * const c = fullCurvature([[1, 0, 0, 0], [0, 0, 0, 2], [0.5, 1, 1, 2]].map((h) => new Float64Array(h)));
 * const t = momentumThreshold(c, { kind: "adam", beta1: 0.9 }, 1);
 * if (Math.abs(t.etaStar - 2.264349798320) > 1e-9) throw new Error(String(t.etaStar));
 * if (Math.abs(t.fullBatch - 26.202191846633) > 1e-9) throw new Error(String(t.fullBatch));
 * ```
 */
export function momentumThreshold(
  curv: MomentumCurvature,
  model: OptimizerModel,
  p: number,
  options: MomentumThresholdOptions = {},
): MomentumThreshold {
  checkOptimizerModel(model);
  const kmax = curv.k > 0 ? symEig(curv.K, curv.k).values[0] : 0;
  const base = {
    optimizer: describeOptimizer(model),
    fullBatch: kmax > 0 ? meanStableLimit(model, kmax) : Infinity,
  };
  if (hasLinearPencil(model)) {
    const sol = momentumPencilSolve(curv, momentumOf(model), p, options);
    const sharpness = lrScale(model) * sol.lambdaGen;
    return {
      ...base,
      method: "pencil",
      etaStar: sharpness > 0 ? 2 / sharpness : Infinity,
      sharpness,
      lambdaGen: sol.lambdaGen,
      S: sol.S,
      solves: 1,
      converged: sol.converged,
    };
  }
  const c = compressedThreshold(curv, model, p, options);
  const out: MomentumThreshold = {
    ...base,
    method: "compressed",
    etaStar: c.etaStar,
    sharpness: c.etaStar > 0 ? 2 / c.etaStar : Infinity,
    solves: c.solves,
    converged: c.converged && c.positiveGram,
  };
  if (model.kind === "nesterov" && options.upperBound !== false) {
    const sgd = momentumPencilSolve(curv, 0, p, options);
    const beta = model.momentum;
    out.solves++;
    out.lambdaGenSgd = sgd.lambdaGen;
    if (sgd.lambdaGen > 0) {
      out.upperBound = ((1 + beta) / (1 + 2 * beta)) * (2 / sgd.lambdaGen);
    }
  }
  return out;
}
