/**
 * Davidson expansion for the heavy-ball pencil (docs/momentum.md §6), as a recipe the client
 * executes without the sidecar ever seeing `d`-vectors. With the Ritz pair `(λ, S)` and kept
 * directions `Y` (`k × q`), the full-space residual of the pencil applied to `V Y` is
 *
 *     R = Σ_i (H_iV) C_i + V C_V + H (HV C_H),
 *     C_i = ω_i [c₂ S K_i Y + (c₁ + 2c₃) S K Y − μ S Y],   C_V = −S (c₃ K₂ + μ K) Y,
 *     C_H = −c₃ S Y,                                        μ = λ/2,
 *
 * (`HV = Σ_i ω_i H_iV`): the per-sample reduction of theory.md §4 plus ONE extra mean-Hessian
 * product, `H · (HV C_H)`, for the commutator term (absent at `β = 0`). Its part orthogonal to
 * `V` gives the new directions.
 *
 * @module
 */
import { matmul, symEig } from "./_linalg.ts";
import { pencilCoefficients } from "./optimizer_model.ts";

/** Coefficients of {@linkcode momentumExpansion}. */
export interface MomentumExpansion {
  /** Kept directions. */
  q: number;
  /** `C_i`, `m × k × q`. */
  perSample: Float64Array;
  /** `C_V`, `k × q`. */
  basis: Float64Array;
  /** `C_H`, `k × q` (all zero when `β = 0`: no extra product needed). */
  second: Float64Array;
}

/**
 * The expansion recipe for the residual of the momentum pencil at `(λ, S)`.
 * @param blocks per-sample `K_i`, `m × k × k`
 * @param m probe samples
 * @param k basis size
 * @param K2 `Vᵀ H² V`, `k × k`
 * @param beta momentum in [0, 1)
 * @param p batch-noise weight in [0, 1]
 * @param S Ritz maximiser (`k × k`, basis coordinates, any scale)
 * @param lambdaGen its Ritz value
 * @param Y kept directions, `k × q` (e.g. {@linkcode leadingDirections} of `S`)
 * @param q number of kept directions
 * @param weights per-sample weights (default all 1)
 * @returns `C_i`, `C_V`, `C_H`
 * @throws {RangeError} on bad shapes, `β` or `p`
 * @example
 * ```ts
 * import { momentumExpansion } from "./momentum_expansion.ts";
 * // one sample, k = 1: K = K₁ = 2, K₂ = 4, S = 1, Y = 1, β = 0, p = 0, λ = 2 (exact): C_1 = 2 − 1 = 1
 * const e = momentumExpansion(new Float64Array([2]), 1, 1, new Float64Array([4]), 0, 0,
 *   new Float64Array([1]), 2, new Float64Array([1]), 1);
 * if (e.perSample[0] !== 1 || e.basis[0] !== -2 || e.second[0] !== 0) throw new Error("C");
 * ```
 */
export function momentumExpansion(
  blocks: Float64Array,
  m: number,
  k: number,
  K2: Float64Array,
  beta: number,
  p: number,
  S: Float64Array,
  lambdaGen: number,
  Y: Float64Array,
  q: number,
  weights?: ArrayLike<number>,
): MomentumExpansion {
  const { c1, c2, c3 } = pencilCoefficients(beta, p);
  if (blocks.length !== m * k * k) {
    throw new RangeError(
      `Expected blocks of ${m}×${k}×${k}, got ${blocks.length} entries`,
    );
  }
  for (
    const [name, a, n] of [["K2", K2, k * k], ["S", S, k * k], [
      "Y",
      Y,
      k * q,
    ]] as const
  ) {
    if (a.length !== n) {
      throw new RangeError(`Expected ${name} of ${n} entries, got ${a.length}`);
    }
  }
  if (weights && weights.length !== m) {
    throw new RangeError(`Expected ${m} weights, got ${weights.length}`);
  }
  const w = Float64Array.from(
    { length: m },
    (_, i) => (weights ? weights[i] : 1),
  );
  const total = w.reduce((s, x) => s + x, 0);
  const mu = lambdaGen / 2;
  const K = new Float64Array(k * k);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k * k; t++) {
      K[t] += (w[i] / total) * blocks[i * k * k + t];
    }
  }
  const SY = matmul(S, Y, k, k, q);
  const SKY = matmul(S, matmul(K, Y, k, k, q), k, k, q);
  const common = SKY.map((x, t) => (c1 + 2 * c3) * x - mu * SY[t]);
  const perSample = new Float64Array(m * k * q);
  for (let i = 0; i < m; i++) {
    const om = w[i] / total;
    if (om === 0) continue;
    const SKiY = matmul(
      S,
      matmul(blocks.subarray(i * k * k, (i + 1) * k * k), Y, k, k, q),
      k,
      k,
      q,
    );
    for (let t = 0; t < k * q; t++) {
      perSample[i * k * q + t] = om * (c2 * SKiY[t] + common[t]);
    }
  }
  const SK2Y = matmul(S, matmul(K2, Y, k, k, q), k, k, q);
  const basis = SK2Y.map((x, t) => -(c3 * x + mu * SKY[t]));
  const second = SY.map((x) => (c3 === 0 ? 0 : -c3 * x));
  return { q, perSample, basis, second };
}

/**
 * The `q` leading eigenvectors of a symmetric `S` by `|eigenvalue|` (the directions worth keeping).
 * @returns `k × q`, orthonormal columns
 * @example
 * ```ts
 * import { leadingDirections } from "./momentum_expansion.ts";
 * const Y = leadingDirections(new Float64Array([0.1, 0, 0, -2]), 2, 1);
 * if (Math.abs(Math.abs(Y[1]) - 1) > 1e-12) throw new Error(Y.join());
 * ```
 */
export function leadingDirections(
  S: Float64Array,
  k: number,
  q: number,
): Float64Array {
  const { values, vectors } = symEig(S, k);
  const order = [...values.keys()].sort((a, b) =>
    Math.abs(values[b]) - Math.abs(values[a])
  );
  const qq = Math.min(q, k);
  const out = new Float64Array(k * qq);
  for (let j = 0; j < qq; j++) {
    for (let a = 0; a < k; a++) out[a * qq + j] = vectors[a * k + order[j]];
  }
  return out;
}
