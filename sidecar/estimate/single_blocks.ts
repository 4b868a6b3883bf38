/**
 * The dense-block operator `Y ↦ Σ_i coef_i K_i Y K_i` (curvature.ts, the Hessian route) in float32
 * through the native sgemm, for loose solves (bootstrap resamples), as single_factors.ts is for
 * factors: the two large products of the float64 route at twice a core's arithmetic rate. The
 * blocks are stored scaled to a largest entry of 1 (`scale²` multiplies the float64 result): the
 * operator is quadratic in `K`, and blocks of 1e-20 would give terms below float32's 1e-38.
 *
 * @module
 */
import { nativeSgemm } from "./_blas.ts";
import { largestAbs, symmetrise } from "./_linalg.ts";
import type { Curvature } from "./curvature.ts";

/** Per-sample blocks `K_i` (`m × k × k`, symmetric) in float32. */
export class SingleBlocks {
  readonly m: number;
  readonly k: number;
  /** The blocks are `scale · #b`. */
  readonly #scale: number;
  readonly #b: Float32Array;
  /** Work buffers, made on the first product and reused by the solve's later ones. */
  #work?: { y: Float32Array; z: Float32Array; n: Float32Array; o: Float32Array };

  private constructor(b: Float32Array, scale: number, m: number, k: number) {
    this.m = m;
    this.k = k;
    this.#scale = scale;
    this.#b = b;
  }

  /**
   * Blocks `Qᵀ K_i Q` (`Q` is `k × r`) in float32, rotated by sgemm in float32.
   * @param kept the samples to keep, in order (default all)
   * @returns undefined when no native sgemm is loaded or `curv` holds factors, not blocks
   */
  static rotated(curv: Curvature, q: Float64Array, r: number, kept?: ArrayLike<number>): SingleBlocks | undefined {
    const sgemm = nativeSgemm();
    if (!sgemm || curv.kind !== "dense") return undefined;
    const k = curv.k, s = k * k, m = kept ? kept.length : curv.m;
    if (q.length !== k * r) throw new RangeError(`Expected Q of ${k}×${r}, got ${q.length} entries`);
    const blocks = Array.from({ length: m }, (_, j) => curv.sampleData(kept ? kept[j] : j));
    let scale = 0;
    for (const blk of blocks) scale = largestAbs(blk, scale);
    scale ||= 1;
    const unit = new Float32Array(m * s);
    blocks.forEach((blk, j) => {
      for (let t = 0; t < s; t++) unit[j * s + t] = blk[t] / scale;
    });
    const q32 = new Float32Array(q), kq = new Float32Array(m * k * r), b = new Float32Array(m * r * r);
    sgemm(false, false, m * k, r, k, 1, unit, q32, 0, kq); // K_i Q, stacked
    for (let j = 0; j < m; j++) {
      sgemm(true, false, r, r, k, 1, q32, kq.subarray(j * k * r), 0, b.subarray(j * r * r)); // Qᵀ K_i Q
    }
    return new SingleBlocks(b, scale, m, r);
  }

  /** `Σ_i coef_i K_i Y K_i` for symmetric `Y` (`k × k`), in float64 (symmetrised). */
  sandwich(y: Float64Array, coef: ArrayLike<number>, out = new Float64Array(this.k * this.k)): Float64Array {
    const sgemm = nativeSgemm();
    if (!sgemm) throw new Error("Expected the native sgemm these float32 blocks were made with");
    const { m, k } = this, s = k * k;
    if (y.length !== s || coef.length !== m) {
      throw new RangeError(`Expected Y of ${k}×${k} and ${m} coefficients, got ${y.length} and ${coef.length}`);
    }
    const { y: y32, z, n, o } = this.#work ??= {
      y: new Float32Array(s), z: new Float32Array(m * s), n: new Float32Array(m * s), o: new Float32Array(s),
    };
    y32.set(y);
    sgemm(false, false, m * k, k, k, 1, this.#b, y32, 0, z); // K_i Y, stacked
    // N_i = coef_i (K_i Y)ᵀ = coef_i Y K_i, so Σ K_i N_i = Σ coef_i K_i Y K_i
    for (let i = 0; i < m; i++) {
      const base = i * s, w = coef[i];
      if (w === 0) {
        n.fill(0, base, base + s);
        continue;
      }
      for (let a = 0; a < k; a++) {
        for (let c = 0; c < k; c++) n[base + a * k + c] = w * z[base + c * k + a];
      }
    }
    sgemm(true, false, k, k, m * k, 1, this.#b, n, 0, o);
    out.set(o);
    symmetrise(out, k);
    const back = this.#scale ** 2;
    if (back !== 1) for (let t = 0; t < s; t++) out[t] *= back;
    return out;
  }

  /** Nothing to hand on (single_factors.ts lends its storage; these blocks are made once per solve). */
  release(): void {
    this.#work = undefined;
  }
}
