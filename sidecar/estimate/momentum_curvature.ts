/**
 * The curvature the momentum estimators need, behind one small interface (docs/momentum.md §6):
 * in a basis `V` (`d × k`, orthonormal), `K = mean_i K_i`, `K₂ = Vᵀ H² V = (HV)ᵀ(HV)` and the
 * map `S ↦ mean_i K_i S K_i`. Every momentum estimator is written once over it; today it is
 * built from dense per-sample blocks, a Gauss–Newton factor route (`K_i = A_iᵀA_i`) only has to
 * provide another {@linkcode MomentumCurvature}.
 *
 * For Adam the client applies `P^{−1/2}` inside its products, so `K_i`, `K` and `K₂` are those
 * of `P^{−1/2} H_i P^{−1/2}`; nothing here changes.
 *
 * @module
 */
import { matmul } from "./_linalg.ts";

/** Curvature in a basis of size `k` (row-major `k × k` matrices). */
export interface MomentumCurvature {
  /** Basis size. */
  readonly k: number;
  /** `K = mean_i K_i`. */
  readonly K: Float64Array;
  /** `K₂ = Vᵀ H² V` (equals `K²` only when `V` is `H`-invariant, e.g. `V = I`). */
  readonly K2: Float64Array;
  /** `mean_i K_i S K_i` for symmetric `S` (`k × k`); the hot path, `O(m k³)`. */
  meanCongruence(S: Float64Array): Float64Array;
}

/**
 * A {@linkcode MomentumCurvature} over dense per-sample blocks (`m × k × k`, the oracle's layout).
 * @param blocks per-sample `K_i`
 * @param m probe samples
 * @param k basis size
 * @param K2 `Vᵀ H² V`, `k × k`
 * @param weights per-sample weights (bootstrap multiplicities); all 1 when absent
 * @throws {RangeError} on bad shapes or weights without positive sum
 * @example
 * ```ts
 * import { denseCurvature } from "./momentum_curvature.ts";
 * // V = I: K₂ = K²
 * const c = denseCurvature(new Float64Array([2, 0, 0, 0, 0, 0, 0, 1]), 2, 2, new Float64Array([1, 0, 0, 0.25]));
 * if (c.K[0] !== 1 || c.meanCongruence(new Float64Array([1, 0, 0, 1]))[0] !== 2) throw new Error("K");
 * ```
 */
export function denseCurvature(
  blocks: Float64Array,
  m: number,
  k: number,
  K2: Float64Array,
  weights?: ArrayLike<number>,
): MomentumCurvature {
  if (!Number.isInteger(m) || !Number.isInteger(k) || m < 1 || k < 0) {
    throw new RangeError(
      `Expected m ≥ 1 and k ≥ 0 integers, got m ${m} and k ${k}`,
    );
  }
  if (blocks.length !== m * k * k) {
    throw new RangeError(
      `Expected blocks of ${m}×${k}×${k}, got ${blocks.length} entries`,
    );
  }
  if (K2.length !== k * k) {
    throw new RangeError(`Expected K2 of ${k}×${k}, got ${K2.length} entries`);
  }
  if (weights && weights.length !== m) {
    throw new RangeError(`Expected ${m} weights, got ${weights.length}`);
  }
  const w = Float64Array.from(
    { length: m },
    (_, i) => weights ? weights[i] : 1,
  );
  const total = w.reduce((s, x) => s + x, 0);
  if (!(total > 0) || w.some((x) => !(x >= 0))) {
    throw new RangeError(`Expected non-negative weights with a positive sum`);
  }
  const per: Float64Array[] = [], omega: number[] = [];
  const K = new Float64Array(k * k);
  for (let i = 0; i < m; i++) {
    if (w[i] === 0) continue;
    const b = blocks.subarray(i * k * k, (i + 1) * k * k);
    per.push(b);
    omega.push(w[i] / total);
    for (let t = 0; t < k * k; t++) K[t] += (w[i] / total) * b[t];
  }
  symmetrise(K, k);
  const K2s = Float64Array.from(K2);
  symmetrise(K2s, k);
  return {
    k,
    K,
    K2: K2s,
    meanCongruence(S: Float64Array): Float64Array {
      if (S.length !== k * k) {
        throw new RangeError(
          `Expected S of ${k}×${k}, got ${S.length} entries`,
        );
      }
      const out = new Float64Array(k * k);
      per.forEach((b, j) => {
        const bsb = matmul(matmul(b, S, k, k, k), b, k, k, k);
        for (let t = 0; t < k * k; t++) out[t] += omega[j] * bsb[t];
      });
      symmetrise(out, k);
      return out;
    },
  };
}

/**
 * The exact curvature of explicit per-sample `d × d` Hessians (`V = I`, so `K₂ = H²`), for tests,
 * examples and small problems.
 * @param hessians symmetric `d × d` matrices, row-major, at least one
 * @throws {RangeError} when none is given or sizes differ
 * @example
 * ```ts
 * import { fullCurvature } from "./momentum_curvature.ts";
 * const c = fullCurvature([new Float64Array([2, 0, 0, 0]), new Float64Array([0, 0, 0, 1])]);
 * if (c.K2[0] !== 1 || c.K2[3] !== 0.25) throw new Error(c.K2.join()); // H² = diag(1, 1/4)
 * ```
 */
export function fullCurvature(hessians: Float64Array[]): MomentumCurvature {
  if (hessians.length === 0) {
    throw new RangeError("Expected at least one per-sample Hessian, got 0");
  }
  const d = Math.round(Math.sqrt(hessians[0].length));
  if (hessians.some((h) => h.length !== d * d)) {
    throw new RangeError(`Expected per-sample Hessians of ${d}×${d}`);
  }
  const blocks = new Float64Array(hessians.length * d * d);
  hessians.forEach((h, i) => blocks.set(h, i * d * d));
  const H = new Float64Array(d * d);
  for (const h of hessians) {
    for (let t = 0; t < d * d; t++) H[t] += h[t] / hessians.length;
  }
  return denseCurvature(blocks, hessians.length, d, matmul(H, H, d, d, d));
}

/** Replace `A` by `(A + Aᵀ)/2` in place. */
function symmetrise(a: Float64Array, k: number): void {
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const v = 0.5 * (a[i * k + j] + a[j * k + i]);
      a[i * k + j] = a[j * k + i] = v;
    }
  }
}
