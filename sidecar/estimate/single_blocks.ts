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
import { scaledToFloat32, symmetrise } from "./_linalg.ts";
import { SpareBuffer } from "./_spare_buffer.ts";
import type { Curvature } from "./curvature.ts";

/** Per-sample blocks `K_i` (`m × k × k`, symmetric) in float32; the work buffers are shared (workspace). */
export class SingleBlocks {
  readonly m: number;
  readonly k: number;
  /** The blocks are `scale · #b`. */
  readonly #scale: number;
  readonly #b: Float32Array;
  /** The buffer `#b` views (undefined once released). */
  #storage?: Float32Array;

  private constructor(b: Float32Array, storage: Float32Array, scale: number, m: number, k: number) {
    this.m = m;
    this.k = k;
    this.#scale = scale;
    this.#b = b;
    this.#storage = storage;
  }

  /**
   * Blocks `Qᵀ K_i Q` (`Q` is `k × r`) in float32, rotated by sgemm in float32.
   * @param kept the samples to keep, in order (default all): a bootstrap resample's samples of
   *   positive weight, rotated straight from the source's float32 blocks
   * @returns undefined when no native sgemm is loaded or `curv` holds factors, not blocks
   */
  static rotated(curv: Curvature, q: Float64Array, r: number, kept?: ArrayLike<number>): SingleBlocks | undefined {
    const sgemm = nativeSgemm();
    if (!sgemm || curv.kind !== "dense") return undefined;
    const k = curv.k, s = k * k, m = kept ? kept.length : curv.m;
    if (q.length !== k * r) throw new RangeError(`Expected Q of ${k}×${r}, got ${q.length} entries`);
    const { unit, scale } = unitBlocks(curv);
    const q32 = new Float32Array(q), kq = workspace.rotation(k * r);
    const storage = blockStorage.take(m * r * r), b = storage.subarray(0, m * r * r);
    for (let j = 0; j < m; j++) {
      const i = kept ? kept[j] : j;
      sgemm(false, false, k, r, k, 1, unit.subarray(i * s, (i + 1) * s), q32, 0, kq); // K_i Q
      sgemm(true, false, r, r, k, 1, q32, kq, 0, b.subarray(j * r * r)); // Qᵀ K_i Q
    }
    return new SingleBlocks(b, storage, scale, m, r);
  }

  /** `Σ_i coef_i K_i Y K_i` for symmetric `Y` (`k × k`), in float64 (symmetrised). */
  sandwich(y: Float64Array, coef: ArrayLike<number>, out = new Float64Array(this.k * this.k)): Float64Array {
    const sgemm = nativeSgemm();
    if (!sgemm) throw new Error("Expected the native sgemm these float32 blocks were made with");
    if (!this.#storage) throw new Error("Expected float32 blocks not yet released");
    const { m, k } = this, s = k * k;
    if (y.length !== s || coef.length !== m) {
      throw new RangeError(`Expected Y of ${k}×${k} and ${m} coefficients, got ${y.length} and ${coef.length}`);
    }
    const { y: y32, z, n, o } = workspace.operator(m, k);
    y32.set(y);
    sgemm(false, false, m * k, k, k, 1, this.#b, y32, 0, z); // K_i Y, stacked
    // N_i = coef_i (K_i Y)ᵀ = coef_i Y K_i, so Σ K_i N_i = Σ coef_i K_i Y K_i. The same loop as
    // Curvature.sandwich's, kept apart: one function for both array types (polymorphic element
    // access) made this operator 5–15 % slower at k = 64–204 (scratch A/B, 2026-11-29).
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
    out.set(o.subarray(0, s));
    symmetrise(out, k);
    const back = this.#scale ** 2;
    if (back !== 1) for (let t = 0; t < s; t++) out[t] *= back;
    return out;
  }

  /**
   * Hands this one's storage to the next blocks made in this thread (a bootstrap resample's are
   * used for one solve). Unusable afterwards.
   */
  release(): void {
    if (this.#storage) blockStorage.give(this.#storage);
    this.#storage = undefined;
  }
}

/**
 * Every sample's block of `curv` in float32, scaled to a largest entry of 1, made once per
 * curvature and thread: a bootstrap rotates the same blocks for each of its resamples, and
 * converting them each time was half of a rotation (34 of 69 ms at k = 204, m = 128).
 */
const unitCache = new WeakMap<Curvature, { unit: Float32Array; scale: number }>();

function unitBlocks(curv: Curvature): { unit: Float32Array; scale: number } {
  let cached = unitCache.get(curv);
  if (cached) return cached;
  const blocks = Array.from({ length: curv.m }, (_, i) => curv.sampleData(i));
  const unit = new Float32Array(curv.m * curv.k * curv.k);
  cached = { unit, scale: scaledToFloat32(blocks, unit) };
  unitCache.set(curv, cached);
  return cached;
}

/**
 * Work buffers shared by every {@linkcode SingleBlocks} of this thread, grown as needed (a
 * bootstrap makes one per resample; see single_factors.ts). Sharing is safe: a product uses
 * them only within one synchronous call.
 */
const workspace = new class {
  #kq = new Float32Array(0);
  #op = { y: new Float32Array(0), z: new Float32Array(0), n: new Float32Array(0), o: new Float32Array(0) };

  /** At least `n` entries for one block times `Q`. */
  rotation(n: number): Float32Array {
    if (this.#kq.length < n) this.#kq = new Float32Array(n);
    return this.#kq;
  }

  operator(m: number, k: number): { y: Float32Array; z: Float32Array; n: Float32Array; o: Float32Array } {
    const s = k * k, op = this.#op;
    if (op.z.length < m * s) {
      op.z = new Float32Array(m * s);
      op.n = new Float32Array(m * s);
    }
    if (op.o.length < s) op.o = new Float32Array(s);
    if (op.y.length !== s) op.y = new Float32Array(s);
    return op;
  }
}();

/** Storage of released blocks, lent to the next blocks of this thread that fit in it. */
const blockStorage = new SpareBuffer<Float32Array>((n) => new Float32Array(n));
