/**
 * Per-sample curvature in the working basis, behind one small interface so every estimator
 * (reduced solve, Davidson, bounds, bootstrap, `η*(B)` curve, floors) is written once for both
 * routes of protocol/SPEC.md §4:
 * - `dense`: blocks `K_i = Vᵀ H_i V` (`m × k × k`, the Hessian route);
 * - `factor`: factors `A_i = Λ_i^{1/2} J_i V` (`m × c × k`, the Gauss–Newton route), with
 *   `K_i = A_iᵀ A_i`.
 *
 * The hot operation is {@linkcode Curvature.sandwich}, `Y ↦ Σ_i w_i K_i Y K_i`. It is written
 * over the stacked matrix (`mc × k` factors or `mk × k` blocks) so its cost is two GEMMs:
 * factor form `A_iᵀ (A_i Y A_iᵀ) A_i` costs `O(m c k²)` instead of `O(m k³)`.
 *
 * The momentum estimators (docs/momentum.md §6) need one more matrix beside the `K_i`:
 * `K₂ = Vᵀ H² V = (HV)ᵀ(HV)`, which is not a function of the `K_i` (it equals `K²` only when
 * `V` is `H`-invariant). {@linkcode Curvature.withK2} carries it beside the same per-sample
 * curvature, with per-sample weights (bootstrap multiplicities), as a
 * {@linkcode MomentumCurvature}. For Adam the client applies `P^{−1/2}` inside its products, so
 * `K_i` and `K₂` are those of `P^{−1/2} H_i P^{−1/2}`; nothing here changes.
 *
 * @module
 */
import { gemm, matmul, symmetrise } from "./_linalg.ts";

/**
 * What the momentum estimators read (row-major `k × k` matrices): the weighted mean `K`, `K₂`
 * and the map `S ↦ mean_i w_i K_i S K_i`, over one {@linkcode Curvature}.
 */
export interface MomentumCurvature {
  /** Basis size. */
  readonly k: number;
  /** `K = Σ_i w_i K_i` (weights normalised to sum 1). */
  readonly K: Float64Array;
  /** `K₂ = Vᵀ H² V` (symmetrised). */
  readonly K2: Float64Array;
  /** The per-sample curvature underneath (dense blocks or factors). */
  readonly curvature: Curvature;
  /** Per-sample weights, normalised to sum 1. */
  readonly weights: Float64Array;
  /** `Σ_i w_i K_i S K_i` for symmetric `S` (`k × k`); the hot path. */
  meanCongruence(S: Float64Array): Float64Array;
}

/** Which route the curvature came from. */
export type CurvatureKind = "dense" | "factor";

/** Largest per-sample Gram stack (`m k²` entries, 32 MB) a weighted mean caches on factors. */
const GRAM_STACK_MAX = 4_000_000;

/**
 * Immutable per-sample curvature `K_i` in a basis of size `k`.
 * @example
 * ```ts
 * import { Curvature } from "./curvature.ts";
 * // one sample, c = 1, A = [1, 2]: K = [[1, 2], [2, 4]]
 * const cv = Curvature.factor(new Float64Array([1, 2]), 1, 1, 2);
 * const K = cv.mean();
 * if (K[1] !== 2 || K[3] !== 4) throw new Error(String(K));
 * ```
 */
export class Curvature {
  /** `dense` (blocks) or `factor` (`A_i`). */
  readonly kind: CurvatureKind;
  /** Probe samples. */
  readonly m: number;
  /** Basis size. */
  readonly k: number;
  /** Rows per sample: `c` for factors, `k` for blocks. */
  readonly rows: number;
  /** `m × rows × k`, row-major: the blocks or the factors. */
  readonly data: Float64Array;
  #z?: Float64Array;
  #n?: Float64Array;
  /** Per-sample views of the factors and of `#z`, `#n` (made once: the operator runs hundreds of times). */
  #sampleViews?: { ai: Float64Array[]; zi: Float64Array[]; ni: Float64Array[] };
  #grams?: Float64Array;

  private constructor(kind: CurvatureKind, data: Float64Array, m: number, rows: number, k: number) {
    if (!Number.isInteger(m) || m < 1 || !Number.isInteger(k) || k < 0 || !Number.isInteger(rows) || rows < 0) {
      throw new RangeError(`Expected m ≥ 1, rows ≥ 0 and k ≥ 0 integers, got m ${m}, rows ${rows} and k ${k}`);
    }
    if (data.length !== m * rows * k) {
      throw new RangeError(`Expected ${kind === "dense" ? "blocks" : "factors"} of ${m}×${rows}×${k}, got ${data.length} entries`);
    }
    this.kind = kind;
    this.data = data;
    this.m = m;
    this.rows = rows;
    this.k = k;
  }

  /**
   * From per-sample blocks `K_i`, `m × k × k` (symmetric).
   * @throws {RangeError} on a shape mismatch
   */
  static dense(blocks: Float64Array, m: number, k: number): Curvature {
    return new Curvature("dense", blocks, m, k, k);
  }

  /**
   * From per-sample factors `A_i`, `m × c × k` (`K_i = A_iᵀ A_i`).
   * @throws {RangeError} on a shape mismatch
   */
  static factor(factors: Float64Array, m: number, c: number, k: number): Curvature {
    return new Curvature("factor", factors, m, c, k);
  }

  /** An empty basis of the same kind. */
  static empty(kind: CurvatureKind, m: number, c: number): Curvature {
    return kind === "dense" ? Curvature.dense(new Float64Array(0), m, 0) : Curvature.factor(new Float64Array(0), m, c, 0);
  }

  /**
   * `K = Σ_i w_i K_i / Σ_i w_i` (plain mean without weights).
   * @returns `k × k`
   */
  mean(weights?: ArrayLike<number>): Float64Array {
    const { m, k, rows } = this;
    const out = new Float64Array(k * k);
    let total = 0;
    for (let i = 0; i < m; i++) total += weights ? weights[i] : 1;
    if (!(total > 0) || k === 0) return out;
    if (this.kind === "factor" && !(weights && m * k * k <= GRAM_STACK_MAX)) {
      const wa = weights ? this.#scaledRows(weights) : this.data;
      gemm(true, false, k, k, m * rows, this.data, wa, out, 1 / total);
      symmetrise(out, k);
      return out;
    }
    // a weighted sum of the per-sample blocks (for factors, their Grams, computed once: a
    // bootstrap takes a weighted mean of the same curvature per resample)
    const w = new Float64Array(m);
    for (let i = 0; i < m; i++) w[i] = (weights ? weights[i] : 1) / total;
    return gemm(false, false, 1, k * k, m, w, this.blocks(), out);
  }

  /** Rows of sample `i` scaled by `w_i` (a fresh `m × rows × k` copy). */
  #scaledRows(weights: ArrayLike<number>): Float64Array {
    const s = this.rows * this.k, out = new Float64Array(this.data.length);
    for (let i = 0; i < this.m; i++) {
      const w = weights[i];
      if (w === 0) continue;
      for (let t = 0; t < s; t++) out[i * s + t] = w * this.data[i * s + t];
    }
    return out;
  }

  /**
   * `Σ_i coef_i K_i Y K_i` for symmetric `Y` (`k × k`): the reduced operator's per-sample term.
   * Two GEMMs over the stacked matrix plus `O(m c² k)` per-sample work (factor form).
   * @param y symmetric `k × k`
   * @param coef per-sample coefficients, length `m` (zeros are skipped)
   * @param out optional `k × k` output
   * @returns symmetric `k × k`
   */
  sandwich(y: Float64Array, coef: ArrayLike<number>, out = new Float64Array(this.k * this.k)): Float64Array {
    const { m, k, rows: c } = this;
    if (y.length !== k * k || coef.length !== m) {
      throw new RangeError(`Expected Y of ${k}×${k} and ${m} coefficients, got ${y.length} and ${coef.length}`);
    }
    if (k === 0) return out;
    const mc = m * c;
    const z = this.#z ??= new Float64Array(mc * k);
    const nn = this.#n ??= new Float64Array(mc * k);
    const a = this.data;
    gemm(false, false, mc, k, k, a, y, z); // Z = A Y (or K_i Y stacked)
    if (this.kind === "factor") {
      // N_i = coef_i (Z_i A_iᵀ) A_i with Z_i A_iᵀ = A_i Y A_iᵀ (c × c): two small GEMMs per sample
      const M = new Float64Array(c * c);
      const { ai, zi, ni } = this.#sampleViews ??= this.#views(z, nn);
      for (let i = 0; i < m; i++) {
        const w = coef[i];
        if (w === 0) {
          ni[i].fill(0);
          continue;
        }
        gemm(false, true, c, c, k, zi[i], ai[i], M);
        gemm(false, false, c, k, c, M, ai[i], ni[i], w);
      }
    } else {
      // N_i = coef_i (K_i Y)ᵀ = coef_i Y K_i, so Σ K_iᵀ N_i = Σ coef_i K_i Y K_i
      for (let i = 0; i < m; i++) {
        const base = i * k * k, w = coef[i];
        for (let r = 0; r < k; r++) {
          for (let s = 0; s < k; s++) nn[base + r * k + s] = w * z[base + s * k + r];
        }
      }
    }
    gemm(true, false, k, k, mc, a, nn, out);
    symmetrise(out, k);
    return out;
  }

  #views(z: Float64Array, nn: Float64Array): { ai: Float64Array[]; zi: Float64Array[]; ni: Float64Array[] } {
    const s = this.rows * this.k;
    const of = (x: Float64Array) => Array.from({ length: this.m }, (_, i) => x.subarray(i * s, (i + 1) * s));
    return { ai: of(this.data), zi: of(z), ni: of(nn) };
  }

  /**
   * Per-sample quadratic forms `uᵀ K_i u`.
   * @param u length `k`
   * @returns length `m`
   */
  quad(u: Float64Array): Float64Array {
    const { m, k, rows } = this;
    if (u.length !== k) throw new RangeError(`Expected a vector of length ${k}, got ${u.length}`);
    const au = gemm(false, false, m * rows, 1, k, this.data, u, new Float64Array(m * rows));
    const out = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      let s = 0;
      for (let r = 0; r < rows; r++) {
        const x = au[i * rows + r];
        s += this.kind === "factor" ? x * x : u[r] * x;
      }
      out[i] = s;
    }
    return out;
  }

  /**
   * `Σ_i coef_i K_i u` for a vector `u` (length `k`).
   * @returns length `k`
   */
  weightedApply(u: Float64Array, coef: ArrayLike<number>): Float64Array {
    const { m, k, rows } = this;
    if (u.length !== k || coef.length !== m) {
      throw new RangeError(`Expected a vector of length ${k} and ${m} coefficients, got ${u.length} and ${coef.length}`);
    }
    const au = gemm(false, false, m * rows, 1, k, this.data, u, new Float64Array(m * rows));
    if (this.kind === "factor") {
      for (let i = 0; i < m; i++) {
        for (let r = 0; r < rows; r++) au[i * rows + r] *= coef[i];
      }
      return gemm(true, false, k, 1, m * rows, this.data, au, new Float64Array(k));
    }
    const out = new Float64Array(k);
    for (let i = 0; i < m; i++) {
      for (let a = 0; a < k; a++) out[a] += coef[i] * au[i * k + a];
    }
    return out;
  }

  /**
   * The same curvature in the basis `V U` (`U` is `k × kNew`): `A_i U` or `Uᵀ K_i U`.
   * @returns a new curvature with basis size `kNew`
   */
  rotate(u: Float64Array, kNew: number): Curvature {
    const { m, k, rows } = this;
    if (u.length !== k * kNew) throw new RangeError(`Expected U of ${k}×${kNew}, got ${u.length} entries`);
    const au = gemm(false, false, m * rows, kNew, k, this.data, u, new Float64Array(m * rows * kNew));
    if (this.kind === "factor") return Curvature.factor(au, m, rows, kNew);
    const out = new Float64Array(m * kNew * kNew);
    for (let i = 0; i < m; i++) {
      const blk = out.subarray(i * kNew * kNew, (i + 1) * kNew * kNew);
      gemm(true, false, kNew, kNew, k, u, au.subarray(i * k * kNew, (i + 1) * k * kNew), blk);
      symmetrise(blk, kNew);
    }
    return Curvature.dense(out, m, kNew);
  }

  /**
   * Append `kept` new basis columns from the oracle's answer for them: factors `m × c × kept`,
   * or blocks `m × (k + kept) × kept` (the new columns against the whole enlarged basis).
   * @returns a new curvature with basis size `k + kept`
   */
  extend(add: Float64Array, kept: number): Curvature {
    const { m, k, rows } = this;
    const kn = k + kept;
    if (this.kind === "factor") {
      if (add.length !== m * rows * kept) {
        throw new RangeError(`Expected new factors of ${m}×${rows}×${kept}, got ${add.length} entries`);
      }
      const out = new Float64Array(m * rows * kn);
      for (let i = 0; i < m; i++) {
        for (let r = 0; r < rows; r++) {
          const o = (i * rows + r) * kn;
          out.set(this.data.subarray((i * rows + r) * k, (i * rows + r + 1) * k), o);
          out.set(add.subarray((i * rows + r) * kept, (i * rows + r + 1) * kept), o + k);
        }
      }
      return Curvature.factor(out, m, rows, kn);
    }
    if (add.length !== m * kn * kept) {
      throw new RangeError(`Expected new blocks of ${m}×${kn}×${kept}, got ${add.length} entries`);
    }
    const out = new Float64Array(m * kn * kn);
    for (let i = 0; i < m; i++) {
      for (let a = 0; a < kn; a++) {
        for (let b = 0; b < kn; b++) {
          let v: number;
          if (a < k && b < k) v = this.data[(i * k + a) * k + b];
          else if (a >= k && b >= k) v = 0.5 * (add[(i * kn + a) * kept + (b - k)] + add[(i * kn + b) * kept + (a - k)]);
          else if (b >= k) v = add[(i * kn + a) * kept + (b - k)];
          else v = add[(i * kn + b) * kept + (a - k)];
          out[(i * kn + a) * kn + b] = v;
        }
      }
    }
    return Curvature.dense(out, m, kn);
  }

  /**
   * The curvature of the samples `idx` only (e.g. a bootstrap resample's samples of positive
   * weight): the same basis, `idx.length` samples.
   * @throws {RangeError} on an index outside `0..m-1`
   */
  samples(idx: ArrayLike<number>): Curvature {
    const s = this.rows * this.k, out = new Float64Array(idx.length * s);
    for (let j = 0; j < idx.length; j++) out.set(this.sampleData(idx[j]), j * s);
    return new Curvature(this.kind, out, idx.length, this.rows, this.k);
  }

  /**
   * Sample `i`'s block or factor (`rows × k`), a view of the data.
   * @throws {RangeError} on an index outside `0..m-1`
   */
  sampleData(i: number): Float64Array {
    if (!(Number.isInteger(i) && i >= 0 && i < this.m)) throw new RangeError(`Expected a sample index in 0..${this.m - 1}, got ${i}`);
    const s = this.rows * this.k;
    return this.data.subarray(i * s, (i + 1) * s);
  }

  /** The leading `kNew` basis columns (the rest of the client's basis is ignored). */
  leading(kNew: number): Curvature {
    if (kNew === this.k) return this;
    const u = new Float64Array(this.k * kNew);
    for (let a = 0; a < kNew; a++) u[a * kNew + a] = 1;
    return this.rotate(u, kNew);
  }

  /**
   * Expansion coefficients in the form the oracle takes (SPEC §4 `expand`) for
   * `W = Σ_i H_i V (G + β Y K_i F)`: per-sample `k × r` coefficients (dense) or
   * `out_coeffs` `U_i = A_i G + β (A_i Y A_iᵀ)(A_i F)`, `c × r` (factor).
   * @param g shared part, `k × r`
   * @param beta weight of the per-sample part (0: none)
   * @param y symmetric `k × k` (ignored when `beta` is 0)
   * @param f `k × r` (ignored when `beta` is 0)
   * @returns `m × rows × r`
   */
  expansionCoeffs(g: Float64Array, r: number, beta = 0, y?: Float64Array, f?: Float64Array): Float64Array {
    const { m, k, rows } = this;
    if (g.length !== k * r) throw new RangeError(`Expected G of ${k}×${r}, got ${g.length} entries`);
    const out = new Float64Array(m * rows * r);
    if (this.kind === "dense") {
      for (let i = 0; i < m; i++) out.set(g, i * k * r);
      if (beta !== 0 && y && f) {
        const kf = gemm(false, false, m * k, r, k, this.data, f, new Float64Array(m * k * r)); // K_i F
        for (let i = 0; i < m; i++) {
          gemm(false, false, k, r, k, y, kf.subarray(i * k * r, (i + 1) * k * r), out.subarray(i * k * r, (i + 1) * k * r), beta, 1);
        }
      }
      return out;
    }
    const c = rows;
    gemm(false, false, m * c, r, k, this.data, g, out); // A_i G
    if (beta !== 0 && y && f) {
      const af = gemm(false, false, m * c, r, k, this.data, f, new Float64Array(m * c * r));
      const ay = gemm(false, false, m * c, k, k, this.data, y, new Float64Array(m * c * k));
      const M = new Float64Array(c * c);
      for (let i = 0; i < m; i++) {
        const base = i * c * k;
        for (let s = 0; s < c; s++) {
          for (let t = 0; t < c; t++) {
            let acc = 0;
            for (let l = 0; l < k; l++) acc += ay[base + s * k + l] * this.data[base + t * k + l];
            M[s * c + t] = acc;
          }
        }
        gemm(false, false, c, r, c, M, af.subarray(i * c * r, (i + 1) * c * r), out.subarray(i * c * r, (i + 1) * c * r), beta, 1);
      }
    }
    return out;
  }

  /**
   * This curvature with `K₂ = Vᵀ H² V` beside it, for the momentum estimators.
   * @param K2 `k × k` (symmetrised on the way in)
   * @param weights per-sample weights (bootstrap multiplicities); all 1 when absent
   * @throws {RangeError} on a `K₂` of the wrong size, or weights of the wrong length, negative
   *   or without positive sum
   * @example
   * ```ts
   * import { Curvature } from "./curvature.ts";
   * // A_1 = (1, 1): K_1 = [[1, 1], [1, 1]]; A_2 = (2, 0): K_2 = diag(4, 0)
   * const c = Curvature.factor(new Float64Array([1, 1, 2, 0]), 2, 1, 2).withK2(new Float64Array(4));
   * const n = c.meanCongruence(new Float64Array([1, 0, 0, 0])); // mean_i K_i e₁e₁ᵀ K_i
   * if (c.K[0] !== 2.5 || n[0] !== 8.5 || n[1] !== 0.5) throw new Error(n.join());
   * ```
   */
  withK2(K2: Float64Array, weights?: ArrayLike<number>): MomentumCurvature {
    const { k, m } = this;
    if (K2.length !== k * k) throw new RangeError(`Expected K2 of ${k}×${k}, got ${K2.length} entries`);
    const w = normalisedWeights(m, weights);
    const K = this.mean(w);
    const K2s = Float64Array.from(K2);
    symmetrise(K2s, k);
    return {
      k,
      K,
      K2: K2s,
      curvature: this,
      weights: w,
      meanCongruence: (S: Float64Array) => {
        if (S.length !== k * k) throw new RangeError(`Expected S of ${k}×${k}, got ${S.length} entries`);
        return this.sandwich(S, w);
      },
    };
  }

  /**
   * Per-sample blocks `K_i` (`m × k × k`), materialised once (tests, small problems, and the
   * weighted means of a bootstrap).
   */
  blocks(): Float64Array {
    if (this.kind === "dense") return this.data;
    if (this.#grams) return this.#grams;
    const { m, k, rows } = this;
    const out = new Float64Array(m * k * k);
    for (let i = 0; i < m; i++) {
      const a = this.data.subarray(i * rows * k, (i + 1) * rows * k);
      gemm(true, false, k, k, rows, a, a, out.subarray(i * k * k, (i + 1) * k * k));
    }
    return this.#grams = out;
  }
}

/**
 * The exact curvature of explicit per-sample `d × d` Hessians (`V = I`, so `K₂ = H²`), for tests,
 * examples and small problems.
 * @param hessians symmetric `d × d` matrices, row-major, at least one
 * @throws {RangeError} when none is given or sizes differ
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * const c = fullCurvature([new Float64Array([2, 0, 0, 0]), new Float64Array([0, 0, 0, 1])]);
 * if (c.K2[0] !== 1 || c.K2[3] !== 0.25) throw new Error(c.K2.join()); // H² = diag(1, 1/4)
 * ```
 */
export function fullCurvature(hessians: Float64Array[]): MomentumCurvature {
  if (hessians.length === 0) throw new RangeError("Expected at least one per-sample Hessian, got 0");
  const d = Math.round(Math.sqrt(hessians[0].length));
  if (hessians.some((h) => h.length !== d * d)) throw new RangeError(`Expected per-sample Hessians of ${d}×${d}`);
  const blocks = new Float64Array(hessians.length * d * d);
  hessians.forEach((h, i) => blocks.set(h, i * d * d));
  const H = new Float64Array(d * d);
  for (const h of hessians) {
    for (let t = 0; t < d * d; t++) H[t] += h[t] / hessians.length;
  }
  return Curvature.dense(blocks, hessians.length, d).withK2(matmul(H, H, d, d, d));
}

/** Weights normalised to sum 1 (all equal when absent). */
function normalisedWeights(m: number, weights?: ArrayLike<number>): Float64Array {
  if (weights && weights.length !== m) throw new RangeError(`Expected ${m} weights, got ${weights.length}`);
  const w = Float64Array.from({ length: m }, (_, i) => (weights ? weights[i] : 1));
  const total = w.reduce((s, x) => s + x, 0);
  if (!(total > 0) || w.some((x) => !(x >= 0))) throw new RangeError(`Expected non-negative weights with a positive sum`);
  return w.map((x) => x / total);
}
