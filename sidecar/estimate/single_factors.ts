/**
 * The factor-form operator `Y ↦ Σ_i coef_i A_iᵀ (A_i Y A_iᵀ) A_i` (curvature.ts) in float32,
 * through the native sgemm: the same four products as the float64 route at twice a core's
 * arithmetic rate (curvature_bench.ts, m = 128, c = 10, k = 64: 452 µs against 851 µs per
 * application; benchmarks/RESULTS.md, thirteenth session). Its
 * rounding moves a solve's value by about 1e-7 relative, so it serves solves whose tolerance is
 * far looser: a bootstrap resample, solved to half the live tolerance (1e-3 … 1e-2). Point values
 * and exact checkpoints stay in float64. The factors are stored scaled to a largest entry of 1
 * (`scale⁴` multiplies the float64 result): the operator is quartic in `A`, so factors of 1e-12
 * would give terms of 1e-48, below float32's 1e-38. `Y` needs no scaling: in a solve it is
 * `W ∘ X` with `X` of unit norm and `W ~ 1/|A|`, so every product is then of the order of `Y`.
 * There is no TypeScript float32 kernel: it would be slower than the float64 route through the
 * native dgemm.
 *
 * @module
 */
import { nativeSgemm, type Sgemm } from "./_blas.ts";
import { symmetrise } from "./_linalg.ts";
import type { Curvature } from "./curvature.ts";

/** Per-sample factors `A_i` (`m × c × k`) in float32, with their own work buffers. */
export class SingleFactors {
  readonly m: number;
  readonly c: number;
  readonly k: number;
  /** The factors are `scale · #a`. */
  readonly #scale: number;
  readonly #a: Float32Array;
  readonly #y: Float32Array;
  readonly #z: Float32Array;
  readonly #n: Float32Array;
  readonly #out: Float32Array;
  readonly #pair: Float32Array;
  /** Per-sample views of `A`, `Z`, `N` (made once: a solve applies the operator many times). */
  readonly #views: { ai: Float32Array[]; zi: Float32Array[]; ni: Float32Array[] };

  private constructor(a: Float32Array, scale: number, m: number, c: number, k: number) {
    this.m = m;
    this.c = c;
    this.k = k;
    this.#scale = scale;
    this.#a = a;
    this.#y = new Float32Array(k * k);
    this.#z = new Float32Array(m * c * k);
    this.#n = new Float32Array(m * c * k);
    this.#out = new Float32Array(k * k);
    this.#pair = new Float32Array(c * c);
    const of = (x: Float32Array) => Array.from({ length: m }, (_, i) => x.subarray(i * c * k, (i + 1) * c * k));
    this.#views = { ai: of(this.#a), zi: of(this.#z), ni: of(this.#n) };
  }

  /**
   * Factors `A_i Q` (`Q` is `k × r`) in float32, rotated by sgemm in float32.
   * @returns undefined when no native sgemm is loaded or `curv` holds blocks, not factors
   */
  static rotated(curv: Curvature, q: Float64Array, r: number): SingleFactors | undefined {
    const sgemm = nativeSgemm();
    if (!sgemm || curv.kind !== "factor") return undefined;
    const { m, rows: c, k } = curv;
    if (q.length !== k * r) throw new RangeError(`Expected Q of ${k}×${r}, got ${q.length} entries`);
    const scale = largest(curv.data) || 1;
    const unit = new Float32Array(curv.data.length);
    for (let t = 0; t < unit.length; t++) unit[t] = curv.data[t] / scale;
    const a = new Float32Array(m * c * r);
    sgemm(false, false, m * c, r, k, 1, unit, new Float32Array(q), 0, a);
    return new SingleFactors(a, scale, m, c, r);
  }

  /**
   * `Σ_i coef_i A_iᵀ (A_i Y A_iᵀ) A_i` for symmetric `Y` (`k × k`), in float64 (symmetrised).
   * @throws {Error} when the native sgemm was unloaded since this was made
   */
  sandwich(y: Float64Array, coef: ArrayLike<number>, out = new Float64Array(this.k * this.k)): Float64Array {
    const sgemm = nativeSgemm();
    if (!sgemm) throw new Error("Expected the native sgemm these float32 factors were made with");
    const { m, c, k } = this;
    if (y.length !== k * k || coef.length !== m) {
      throw new RangeError(`Expected Y of ${k}×${k} and ${m} coefficients, got ${y.length} and ${coef.length}`);
    }
    const o32 = this.#out, back = this.#scale ** 4;
    this.#y.set(y);
    sgemm(false, false, m * c, k, k, 1, this.#a, this.#y, 0, this.#z); // Z = A Y
    this.#perSample(sgemm, coef);
    sgemm(true, false, k, k, m * c, 1, this.#a, this.#n, 0, o32); // Σ_i A_iᵀ N_i
    out.set(o32);
    symmetrise(out, k);
    if (back !== 1) scaleInPlace(out, k * k, back);
    return out;
  }

  /** `N_i = coef_i (Z_i A_iᵀ) A_i`, two small products per sample. */
  #perSample(sgemm: Sgemm, coef: ArrayLike<number>): void {
    const { m, c, k } = this, pair = this.#pair, { ai, zi, ni } = this.#views;
    for (let i = 0; i < m; i++) {
      if (coef[i] === 0) {
        ni[i].fill(0);
        continue;
      }
      sgemm(false, true, c, c, k, 1, zi[i], ai[i], 0, pair); // A_i Y A_iᵀ
      sgemm(false, false, c, k, c, coef[i], pair, ai[i], 0, ni[i]);
    }
  }
}

/** `x[0..n) *= s`. */
function scaleInPlace(x: Float64Array, n: number, s: number): void {
  for (let t = 0; t < n; t++) x[t] *= s;
}

/** Largest absolute entry (0 for none; NaN when any entry is NaN, so it reaches the result). */
function largest(x: Float64Array): number {
  let s = 0;
  for (let t = 0; t < x.length; t++) {
    const v = Math.abs(x[t]);
    if (v > s) s = v;
    else if (v !== v) return NaN;
  }
  return s;
}
