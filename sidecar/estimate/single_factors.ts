/**
 * The factor-form operator `Y ↦ Σ_i coef_i A_iᵀ (A_i Y A_iᵀ) A_i` (curvature.ts) in float32,
 * through the native sgemm: the same four products as the float64 route at twice a core's
 * arithmetic rate (curvature_bench.ts, m = 128, c = 10, k = 64: 452 µs against 851 µs per
 * application; benchmarks/RESULTS.md, thirteenth session). Its
 * rounding moves a solve's value by about 1e-7 relative, so it serves solves whose tolerance is
 * far looser: a bootstrap resample, solved to half the round's tolerance (5e-5 … 1e-2). Point
 * values stay in float64. The factors are stored scaled to a largest entry of 1
 * (`scale⁴` multiplies the float64 result): the operator is quartic in `A`, so factors of 1e-12
 * would give terms of 1e-48, below float32's 1e-38. `Y` needs no scaling: in a solve it is
 * `W ∘ X` with `X` of unit norm and `W ~ 1/|A|`, so every product is then of the order of `Y`.
 * There is no TypeScript float32 kernel: it would be slower than the float64 route through the
 * native dgemm.
 *
 * @module
 */
import { nativeSgemm, type Sgemm } from "./_blas.ts";
import { scaledToFloat32, symmetrise } from "./_linalg.ts";
import { SpareBuffer } from "./_spare_buffer.ts";
import type { Curvature } from "./curvature.ts";

/** Per-sample factors `A_i` (`m × c × k`) in float32; the work buffers are shared (workspace). */
export class SingleFactors {
  readonly m: number;
  readonly c: number;
  readonly k: number;
  /** The factors are `scale · #a`. */
  readonly #scale: number;
  readonly #a: Float32Array;
  /** Per-sample views of `#a` (made once: a solve applies the operator many times). */
  readonly #ai: Float32Array[];
  /** The buffer `#a` views (undefined once released). */
  #storage?: Float32Array;

  private constructor(a: Float32Array, storage: Float32Array, scale: number, m: number, c: number, k: number) {
    this.m = m;
    this.c = c;
    this.k = k;
    this.#scale = scale;
    this.#a = a;
    this.#storage = storage;
    this.#ai = Array.from({ length: m }, (_, i) => a.subarray(i * c * k, (i + 1) * c * k));
  }

  /**
   * Factors `A_i Q` (`Q` is `k × r`) in float32, rotated by sgemm in float32.
   * @param kept the samples to keep, in order (default all): a bootstrap resample's samples of
   *   positive weight, gathered here without a float64 copy
   * @returns undefined when no native sgemm is loaded or `curv` holds blocks, not factors
   */
  static rotated(curv: Curvature, q: Float64Array, r: number, kept?: ArrayLike<number>): SingleFactors | undefined {
    const sgemm = nativeSgemm();
    if (!sgemm || curv.kind !== "factor") return undefined;
    const { rows: c, k } = curv, s = c * k, m = kept ? kept.length : curv.m;
    if (q.length !== k * r) throw new RangeError(`Expected Q of ${k}×${r}, got ${q.length} entries`);
    const rows = Array.from({ length: m }, (_, j) => curv.sampleData(kept ? kept[j] : j));
    const unit = workspace.unit(m * s), scale = scaledToFloat32(rows, unit);
    const storage = factorStorage.take(m * c * r), a = storage.subarray(0, m * c * r);
    sgemm(false, false, m * c, r, k, 1, unit, new Float32Array(q), 0, a);
    return new SingleFactors(a, storage, scale, m, c, r);
  }

  /**
   * Hands this one's storage to the next factors made in this thread: for factors used once
   * (a bootstrap resample's), which then allocate nothing of their size. Unusable afterwards.
   */
  release(): void {
    if (this.#storage) factorStorage.give(this.#storage);
    this.#storage = undefined;
    this.#ai.length = 0;
  }

  /**
   * `Σ_i coef_i A_iᵀ (A_i Y A_iᵀ) A_i` for symmetric `Y` (`k × k`), in float64 (symmetrised).
   * @throws {Error} when the native sgemm was unloaded since this was made
   */
  sandwich(y: Float64Array, coef: ArrayLike<number>, out = new Float64Array(this.k * this.k)): Float64Array {
    const sgemm = nativeSgemm();
    if (!sgemm) throw new Error("Expected the native sgemm these float32 factors were made with");
    if (!this.#storage) throw new Error("Expected float32 factors not yet released");
    const { m, c, k } = this;
    if (y.length !== k * k || coef.length !== m) {
      throw new RangeError(`Expected Y of ${k}×${k} and ${m} coefficients, got ${y.length} and ${coef.length}`);
    }
    const w = workspace.operator(m, c, k), back = this.#scale ** 4;
    w.y.set(y);
    sgemm(false, false, m * c, k, k, 1, this.#a, w.y, 0, w.z); // Z = A Y
    this.#perSample(sgemm, coef, w);
    sgemm(true, false, k, k, m * c, 1, this.#a, w.n, 0, w.out); // Σ_i A_iᵀ N_i
    out.set(w.out);
    symmetrise(out, k);
    if (back !== 1) scaleInPlace(out, k * k, back);
    return out;
  }

  /** `N_i = coef_i (Z_i A_iᵀ) A_i`, two small products per sample. */
  #perSample(sgemm: Sgemm, coef: ArrayLike<number>, w: OperatorBuffers): void {
    const { m, c, k } = this, ai = this.#ai, { pair, zi, ni } = w;
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

/** Work buffers of {@linkcode SingleFactors.sandwich} for `m` samples of `c × k`. */
interface OperatorBuffers {
  y: Float32Array;
  z: Float32Array;
  n: Float32Array;
  out: Float32Array;
  pair: Float32Array;
  /** Per-sample views of `z` and `n` (at least `m` of each). */
  zi: Float32Array[];
  ni: Float32Array[];
}

/**
 * Work buffers shared by every {@linkcode SingleFactors} of this thread, grown as needed. A
 * bootstrap makes one per resample, and allocating its buffers each time (several hundred kB,
 * zeroed) cost about a tenth of a resample's solve. Sharing is safe: a product uses them only
 * within one synchronous call.
 */
const workspace = new class {
  #unit = new Float32Array(0);
  #op?: OperatorBuffers & { c: number; k: number };

  /** At least `n` entries for the scaled float64 factors before their rotation. */
  unit(n: number): Float32Array {
    if (this.#unit.length < n) this.#unit = new Float32Array(n);
    return this.#unit;
  }

  operator(m: number, c: number, k: number): OperatorBuffers {
    const op = this.#op;
    if (op && op.c === c && op.k === k && op.zi.length >= m) return op;
    const cap = Math.max(m, op && op.c === c && op.k === k ? op.zi.length : 0);
    const z = new Float32Array(cap * c * k), n = new Float32Array(cap * c * k);
    const of = (x: Float32Array) => Array.from({ length: cap }, (_, i) => x.subarray(i * c * k, (i + 1) * c * k));
    this.#op = {
      c, k, z, n, zi: of(z), ni: of(n),
      y: new Float32Array(k * k), out: new Float32Array(k * k), pair: new Float32Array(c * c),
    };
    return this.#op;
  }
}();

/** Storage of released factors, lent to the next factors of this thread that fit in it. */
const factorStorage = new SpareBuffer<Float32Array>((n) => new Float32Array(n));

/** `x[0..n) *= s`. */
function scaleInPlace(x: Float64Array, n: number, s: number): void {
  for (let t = 0; t < n; t++) x[t] *= s;
}
