/**
 * Which linearised dynamics a threshold is for (docs/momentum.md §1, §5): plain SGD, heavy ball
 * (`SGD(momentum, dampening)`), Nesterov, and Adam/AdamW with a frozen preconditioner. Every
 * model is mapped onto the heavy-ball normal form "learning rate `s·η`, momentum `β`" on the
 * curvature the client measured (for Adam: `P^{−1/2} H_i P^{−1/2}`, applied by the client inside
 * its products), plus, for Nesterov and decoupled decay, its own per-mode `2 × 2` dynamics.
 *
 * @module
 */

/** A linearised optimizer. All learning rates are the user's (the `lr` of the torch optimizer). */
export type OptimizerModel =
  | { kind: "sgd" }
  | { kind: "heavy_ball"; momentum: number; dampening?: number }
  | { kind: "nesterov"; momentum: number }
  | {
    kind: "adam";
    /** `betas[0]`. */
    beta1: number;
    /**
     * AdamW's decoupled decay `ω` (`θ ← (1 − ηω)θ` each step); 0 or absent for Adam. Coupled L2
     * (`Adam(weight_decay=ω)`) is not this: the client adds `ωI` to the per-sample curvature.
     */
    decoupledDecay?: number;
  };

/** Coefficients of the heavy-ball pencil `B_β = c₁ HΣH + c₂ mean_i H_iΣH_i − c₃ [H,[H,Σ]]`. */
export interface PencilCoefficients {
  c1: number;
  c2: number;
  c3: number;
}

/**
 * Check a model's numbers.
 * @throws {RangeError} when a momentum is outside [0, 1), dampening outside [0, 1) or decay < 0
 * @throws {TypeError} on an unknown kind
 * @example
 * ```ts
 * import { checkOptimizerModel } from "./optimizer_model.ts";
 * let threw = false;
 * try { checkOptimizerModel({ kind: "nesterov", momentum: 1 }); } catch { threw = true; }
 * if (!threw) throw new Error("expected a RangeError");
 * ```
 */
export function checkOptimizerModel(model: OptimizerModel): void {
  const unit = (name: string, v: number | undefined) => {
    if (v !== undefined && !(v >= 0 && v < 1)) {
      throw new RangeError(`Expected ${name} in [0, 1), got ${v}`);
    }
  };
  switch (model.kind) {
    case "sgd":
      return;
    case "heavy_ball":
      unit("momentum", model.momentum);
      unit("dampening", model.dampening);
      return;
    case "nesterov":
      unit("momentum", model.momentum);
      return;
    case "adam": {
      unit("beta1", model.beta1);
      const w = model.decoupledDecay ?? 0;
      if (!(w >= 0 && Number.isFinite(w))) {
        throw new RangeError(`Expected a decoupled decay ≥ 0, got ${w}`);
      }
      return;
    }
    default:
      throw new TypeError(
        `Expected an optimizer kind sgd, heavy_ball, nesterov or adam, got ${
          (model as { kind: unknown }).kind
        }`,
      );
  }
}

/**
 * The momentum `β` of the heavy-ball normal form (`β₁` for Adam, 0 for SGD).
 * @example
 * ```ts
 * import { momentumOf } from "./optimizer_model.ts";
 * if (momentumOf({ kind: "adam", beta1: 0.9 }) !== 0.9) throw new Error("β");
 * ```
 */
export function momentumOf(model: OptimizerModel): number {
  switch (model.kind) {
    case "sgd":
      return 0;
    case "adam":
      return model.beta1;
    default:
      return model.momentum;
  }
}

/**
 * Factor `s` with `η_normal = s · lr`: `1 − τ` for dampening `τ` (momentum.md §1), `1 − β₁` for
 * Adam (its EMA is dampening, §5), 1 otherwise. Thresholds in `lr` are `η*_normal / s`.
 * @example
 * ```ts
 * import { lrScale } from "./optimizer_model.ts";
 * if (Math.abs(lrScale({ kind: "adam", beta1: 0.9 }) - 0.1) > 1e-15) throw new Error("s");
 * ```
 */
export function lrScale(model: OptimizerModel): number {
  switch (model.kind) {
    case "heavy_ball":
      return 1 - (model.dampening ?? 0);
    case "adam":
      return 1 - model.beta1;
    default:
      return 1;
  }
}

/**
 * Whether the threshold is one symmetric pencil solve (§3: linear in `η`): SGD, heavy ball with
 * or without dampening, and Adam without decoupled decay. Nesterov and AdamW need Brent (§6).
 * @example
 * ```ts
 * import { hasLinearPencil } from "./optimizer_model.ts";
 * if (hasLinearPencil({ kind: "nesterov", momentum: 0.9 })) throw new Error("Nesterov");
 * ```
 */
export function hasLinearPencil(model: OptimizerModel): boolean {
  return model.kind === "sgd" || model.kind === "heavy_ball" ||
    (model.kind === "adam" && !(model.decoupledDecay ?? 0));
}

/**
 * The same optimizer with its momentum (`β₁` for Adam) replaced, for the `η*(β)` curve; SGD
 * becomes heavy ball.
 * @throws {RangeError} when `beta` is outside [0, 1)
 * @example
 * ```ts
 * import { withMomentum } from "./optimizer_model.ts";
 * const m = withMomentum({ kind: "sgd" }, 0.9);
 * if (m.kind !== "heavy_ball" || m.momentum !== 0.9) throw new Error(JSON.stringify(m));
 * ```
 */
export function withMomentum(
  model: OptimizerModel,
  beta: number,
): OptimizerModel {
  let out: OptimizerModel;
  switch (model.kind) {
    case "sgd":
      out = { kind: "heavy_ball", momentum: beta };
      break;
    case "adam":
      out = { ...model, beta1: beta };
      break;
    default:
      out = { ...model, momentum: beta };
  }
  checkOptimizerModel(out);
  return out;
}

/**
 * Pencil coefficients of §3 for momentum `β` and batch-noise weight `p`:
 * `c₁ = 1/(1+β) − p/(1−β)`, `c₂ = p/(1−β)`, `c₃ = β/((1−β)²(1+β))`.
 * @throws {RangeError} when `β ∉ [0, 1)` or `p ∉ [0, 1]`
 * @example
 * ```ts
 * import { pencilCoefficients } from "./optimizer_model.ts";
 * const c = pencilCoefficients(0, 0.25); // β = 0: theory.md's (1 − p), p, 0
 * if (c.c1 !== 0.75 || c.c2 !== 0.25 || c.c3 !== 0) throw new Error(JSON.stringify(c));
 * ```
 */
export function pencilCoefficients(
  beta: number,
  p: number,
): PencilCoefficients {
  if (!(beta >= 0 && beta < 1)) {
    throw new RangeError(`Expected a momentum in [0, 1), got ${beta}`);
  }
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`Expected p in [0, 1], got ${p}`);
  }
  return {
    c1: 1 / (1 + beta) - p / (1 - beta),
    c2: p / (1 - beta),
    c3: beta / ((1 - beta) ** 2 * (1 + beta)),
  };
}

/**
 * One eigen-mode `λ` of the mean dynamics in the heavy-ball normal form, state `(x, b)`:
 * `z ← m z + f · (gradient noise)`, `m` row-major `2 × 2`, `f` length 2 (momentum.md §1, §3;
 * AdamW §5 after `y = P^{1/2}x`, `b = P^{−1/2}m/(1−β₁)`).
 * @param model the optimizer
 * @param lambda curvature of the mode (an eigenvalue of `K`)
 * @param eta the user's learning rate
 * @returns `m` and `f`
 * @example
 * ```ts
 * import { modeDynamics } from "./optimizer_model.ts";
 * // heavy ball β = 0.5, λ = 1, η = 0.2: x ← x − η(β buf + λ x), buf ← β buf + λ x
 * const { m } = modeDynamics({ kind: "heavy_ball", momentum: 0.5 }, 1, 0.2);
 * if (m.join() !== [0.8, -0.1, 1, 0.5].join()) throw new Error(m.join());
 * ```
 */
export function modeDynamics(
  model: OptimizerModel,
  lambda: number,
  eta: number,
): { m: [number, number, number, number]; f: [number, number] } {
  const s = lrScale(model) * eta, beta = momentumOf(model);
  if (model.kind === "nesterov") {
    return {
      m: [1 - s * (1 + beta) * lambda, -s * beta * beta, lambda, beta],
      f: [-s * (1 + beta), 1],
    };
  }
  const decay = model.kind === "adam" ? eta * (model.decoupledDecay ?? 0) : 0;
  return {
    m: [1 - decay - s * lambda, -s * beta, lambda, beta],
    f: [-s, 1],
  };
}

/**
 * Largest learning rate at which the mean dynamics of a mode of curvature `λ > 0` are stable
 * (Jury's criterion on {@linkcode modeDynamics}): heavy ball `2(1+β)/(sλ)`, Nesterov
 * `2(1+β)/((1+2β)λ)`, AdamW `2(1+β₁)/(ω(1+β₁) + (1−β₁)λ)`. With `λ = λ_max` this is the
 * full-batch threshold (for Adam with `β₁ = 0.9`: `38/λ_max(P⁻¹H)`).
 * @returns `Infinity` when `λ ≤ 0` and nothing else limits it
 * @example
 * ```ts
 * import { meanStableLimit } from "./optimizer_model.ts";
 * const eta = meanStableLimit({ kind: "adam", beta1: 0.9 }, 1);
 * if (Math.abs(eta - 38) > 1e-12) throw new Error(String(eta));
 * ```
 */
export function meanStableLimit(model: OptimizerModel, lambda: number): number {
  const beta = momentumOf(model), s = lrScale(model);
  if (model.kind === "nesterov") {
    return lambda > 0 ? (2 * (1 + beta)) / ((1 + 2 * beta) * lambda) : Infinity;
  }
  const w = model.kind === "adam" ? (model.decoupledDecay ?? 0) : 0;
  const rate = w * (1 + beta) + s * Math.max(lambda, 0);
  return rate > 0 ? (2 * (1 + beta)) / rate : Infinity;
}

/**
 * A short name of the dynamics for reports, e.g. `"heavy ball (β = 0.9)"`.
 * @example
 * ```ts
 * import { describeOptimizer } from "./optimizer_model.ts";
 * const s = describeOptimizer({ kind: "adam", beta1: 0.9, decoupledDecay: 0.01 });
 * if (s !== "AdamW, frozen preconditioner (β₁ = 0.9, ω = 0.01)") throw new Error(s);
 * ```
 */
export function describeOptimizer(model: OptimizerModel): string {
  switch (model.kind) {
    case "sgd":
      return "plain SGD";
    case "heavy_ball":
      return model.dampening
        ? `heavy ball (β = ${model.momentum}, dampening ${model.dampening})`
        : `heavy ball (β = ${model.momentum})`;
    case "nesterov":
      return `Nesterov (β = ${model.momentum})`;
    case "adam":
      return model.decoupledDecay
        ? `AdamW, frozen preconditioner (β₁ = ${model.beta1}, ω = ${model.decoupledDecay})`
        : `Adam, frozen preconditioner (β₁ = ${model.beta1})`;
  }
}
