/**
 * The curvature the momentum estimators need, behind one small interface (docs/momentum.md §6):
 * in a basis `V` (`d × k`, orthonormal), `K = mean_i K_i`, `K₂ = Vᵀ H² V = (HV)ᵀ(HV)` and the
 * map `S ↦ mean_i K_i S K_i`. Every momentum estimator is written once over it; today it is
 * built from dense per-sample blocks, a Gauss–Newton factor route (`K_i = A_iᵀA_i`) only has to
 * provide another {@linkcode MomentumCurvature} ({@linkcode factorCurvature} is one, over `A_i`).
 *
 * For Adam the client applies `P^{−1/2}` inside its products, so `K_i`, `K` and `K₂` are those
 * of `P^{−1/2} H_i P^{−1/2}`; nothing here changes.
 *
 * @module
 */
import { matmul, transpose } from "./_linalg.ts";

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
  const omega = normalisedWeights(m, weights);
  const per: Float64Array[] = [], om: number[] = [];
  const K = new Float64Array(k * k);
  for (let i = 0; i < m; i++) {
    if (omega[i] === 0) continue;
    const b = blocks.subarray(i * k * k, (i + 1) * k * k);
    per.push(b);
    om.push(omega[i]);
    for (let t = 0; t < k * k; t++) K[t] += omega[i] * b[t];
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
      const out = new Float64Array(k * k), scratch = new Float64Array(k * k);
      per.forEach((b, j) => accumulateCongruence(out, b, S, scratch, k, om[j]));
      mirrorUpper(out, k);
      return out;
    },
  };
}

/**
 * A {@linkcode MomentumCurvature} over per-sample factors `K_i = A_iᵀA_i` (`A_i` `c × k`, e.g.
 * Gauss–Newton `Λ_i^{1/2} J_i V`): `mean_i A_iᵀ(A_i S A_iᵀ)A_i` in `O(m(ck² + c²k))`, never
 * forming `K_i`.
 * @param factors `m × c × k`, row-major
 * @param m probe samples
 * @param c rows per factor (outputs)
 * @param k basis size
 * @param K2 `Vᵀ H² V`, `k × k`
 * @param weights per-sample weights (bootstrap multiplicities); all 1 when absent
 * @throws {RangeError} on bad shapes or weights without positive sum
 * @example
 * ```ts
 * import { factorCurvature } from "./momentum_curvature.ts";
 * // A_1 = (1, 1): K_1 = [[1, 1], [1, 1]]; A_2 = (2, 0): K_2 = diag(4, 0)
 * const c = factorCurvature(new Float64Array([1, 1, 2, 0]), 2, 1, 2, new Float64Array(4));
 * const n = c.meanCongruence(new Float64Array([1, 0, 0, 0])); // mean_i K_i e₁e₁ᵀ K_i
 * if (c.K[0] !== 2.5 || n[0] !== 8.5 || n[1] !== 0.5) throw new Error(n.join());
 * ```
 */
export function factorCurvature(
  factors: Float64Array,
  m: number,
  c: number,
  k: number,
  K2: Float64Array,
  weights?: ArrayLike<number>,
): MomentumCurvature {
  if (![m, c, k].every(Number.isInteger) || m < 1 || c < 1 || k < 0) {
    throw new RangeError(
      `Expected m ≥ 1, c ≥ 1 and k ≥ 0 integers, got m ${m}, c ${c} and k ${k}`,
    );
  }
  if (factors.length !== m * c * k) {
    throw new RangeError(
      `Expected factors of ${m}×${c}×${k}, got ${factors.length} entries`,
    );
  }
  if (K2.length !== k * k) {
    throw new RangeError(`Expected K2 of ${k}×${k}, got ${K2.length} entries`);
  }
  const omega = normalisedWeights(m, weights);
  const per: { A: Float64Array; At: Float64Array; w: number }[] = [];
  const K = new Float64Array(k * k);
  for (let i = 0; i < m; i++) {
    if (omega[i] === 0) continue;
    const A = factors.subarray(i * c * k, (i + 1) * c * k);
    const At = transpose(A, c, k);
    per.push({ A, At, w: omega[i] });
    matmul(At, A, k, c, k).forEach((x, t) => (K[t] += omega[i] * x));
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
      for (const { A, At, w } of per) {
        const inner = matmul(matmul(A, S, c, k, k), At, c, k, c); // A S Aᵀ, c × c
        const r = matmul(matmul(At, inner, k, c, c), A, k, c, k);
        for (let t = 0; t < k * k; t++) out[t] += w * r[t];
      }
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

/** Weights normalised to sum 1 (all 1 when absent). */
function normalisedWeights(
  m: number,
  weights?: ArrayLike<number>,
): Float64Array {
  if (weights && weights.length !== m) {
    throw new RangeError(`Expected ${m} weights, got ${weights.length}`);
  }
  const w = Float64Array.from(
    { length: m },
    (_, i) => (weights ? weights[i] : 1),
  );
  const total = w.reduce((s, x) => s + x, 0);
  if (!(total > 0) || w.some((x) => !(x >= 0))) {
    throw new RangeError(`Expected non-negative weights with a positive sum`);
  }
  return w.map((x) => x / total);
}

/** Copy the upper triangle of `A` onto its lower triangle. */
function mirrorUpper(a: Float64Array, k: number): void {
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) a[j * k + i] = a[i * k + j];
  }
}

/**
 * `acc += c · K S K` on the upper triangle, for symmetric `K`, `S` (`k × k`), `scratch` for `K S`
 * (the hot path: fused, no allocation per sample; the same kernel as reduced_solve.ts's).
 */
function accumulateCongruence(
  acc: Float64Array,
  K: Float64Array,
  S: Float64Array,
  scratch: Float64Array,
  k: number,
  c: number,
): void {
  scratch.fill(0);
  for (let i = 0; i < k; i++) {
    const io = i * k;
    for (let l = 0; l < k; l++) {
      const x = K[io + l];
      if (x === 0) continue;
      const lo = l * k;
      for (let j = 0; j < k; j++) scratch[io + j] += x * S[lo + j];
    }
  }
  for (let i = 0; i < k; i++) {
    const io = i * k;
    for (let l = 0; l < k; l++) {
      const x = c * scratch[io + l];
      if (x === 0) continue;
      const lo = l * k;
      for (let j = i; j < k; j++) acc[io + j] += x * K[lo + j];
    }
  }
}
