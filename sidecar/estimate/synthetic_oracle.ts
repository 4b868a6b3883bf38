/**
 * An in-process {@linkcode CurvatureOracle} built from explicit per-sample Hessians, executing
 * every operation of protocol/SPEC.md §4 exactly as the Python client does. Used by tests and
 * benchmarks; `setHessians` replaces the `H_i` between rounds while keeping the basis.
 *
 * @module
 */
import type {
  CurvatureOracle,
  ExpandResult,
  GradStats,
  HutchinsonResult,
} from "./oracle.ts";
import { dot, gramSchmidt } from "./_linalg.ts";
import { Rng } from "./_rng.ts";

/** Options of {@linkcode SyntheticOracle}. */
export interface SyntheticOracleOptions {
  /** Per-sample gradients `g_i` (length `d` each); zeros when absent. */
  grads?: Float64Array[];
  /** Per-sample losses; zeros when absent. */
  losses?: Float64Array | number[];
}

/**
 * Curvature oracle over explicit symmetric `d × d` matrices `H_i` (row-major).
 * @example
 * ```ts
 * import { SyntheticOracle } from "./synthetic_oracle.ts";
 * const o = new SyntheticOracle([new Float64Array([2, 0, 0, 1])]);
 * await o.random(2, 1);
 * const b = await o.blocks(0, 2); // V = some rotation; trace is invariant
 * if (Math.abs(b[0] + b[3] - 3) > 1e-12) throw new Error("trace");
 * ```
 */
export class SyntheticOracle implements CurvatureOracle {
  readonly d: number;
  #hs: Float64Array[];
  #grads: Float64Array[];
  #losses: Float64Array;
  #v: Float64Array[] = [];
  #hvps = 0;

  /**
   * @param hessians per-sample symmetric `d × d` matrices, all the same size
   * @param options gradients and losses
   * @throws {RangeError} when sizes disagree or no sample is given
   */
  constructor(hessians: Float64Array[], options: SyntheticOracleOptions = {}) {
    if (hessians.length === 0) {
      throw new RangeError("Expected at least one per-sample Hessian, got 0");
    }
    const d = Math.round(Math.sqrt(hessians[0].length));
    this.d = d;
    this.#hs = [];
    this.setHessians(hessians);
    const m = hessians.length;
    this.#grads = options.grads ?? hessians.map(() => new Float64Array(d));
    if (this.#grads.length !== m || this.#grads.some((g) => g.length !== d)) {
      throw new RangeError(
        `Expected ${m} gradients of length ${d}, got ${this.#grads.length}`,
      );
    }
    this.#losses = Float64Array.from(options.losses ?? new Float64Array(m));
    if (this.#losses.length !== m) {
      throw new RangeError(`Expected ${m} losses, got ${this.#losses.length}`);
    }
  }

  /**
   * Replace the per-sample Hessians (same `m` and `d`), keeping the basis: the next round sees
   * a perturbed problem, as in live training.
   * @throws {RangeError} on a size mismatch
   */
  setHessians(hessians: Float64Array[]): void {
    const d = this.d;
    if (this.#hs.length > 0 && hessians.length !== this.#hs.length) {
      throw new RangeError(
        `Expected ${this.#hs.length} per-sample Hessians, got ${hessians.length}`,
      );
    }
    for (const h of hessians) {
      if (h.length !== d * d) {
        throw new RangeError(
          `Expected ${d * d} entries per Hessian, got ${h.length}`,
        );
      }
    }
    this.#hs = hessians.map((h) => Float64Array.from(h));
  }

  get probeSize(): number {
    return this.#hs.length;
  }
  get basisSize(): number {
    return this.#v.length;
  }
  get hvps(): number {
    return this.#hvps;
  }
  /** Copy of the basis vectors (for tests). */
  basis(): Float64Array[] {
    return this.#v.map((v) => Float64Array.from(v));
  }

  #hvp(i: number, x: Float64Array): Float64Array {
    const d = this.d, h = this.#hs[i], out = new Float64Array(d);
    for (let a = 0; a < d; a++) {
      let s = 0;
      const o = a * d;
      for (let b = 0; b < d; b++) s += h[o + b] * x[b];
      out[a] = s;
    }
    return out;
  }

  /** `V c` for a coefficient vector of length `k`. */
  #combine(c: (a: number) => number): Float64Array {
    const out = new Float64Array(this.d);
    this.#v.forEach((v, a) => {
      const s = c(a);
      if (s !== 0) { for (let t = 0; t < out.length; t++) out[t] += s * v[t]; }
    });
    return out;
  }

  reset(): Promise<void> {
    this.#v = [];
    return Promise.resolve();
  }

  random(r: number, seed: number): Promise<number> {
    checkCount(r, "r");
    const rng = new Rng(seed);
    const cols = Array.from({ length: r }, () => rng.normals(this.d));
    const { kept } = gramSchmidt(cols, this.#v);
    this.#v.push(...kept);
    return Promise.resolve(kept.length);
  }

  expand(
    coeffs: Float64Array,
    basisCoeffs: Float64Array,
    r: number,
    withBlocks: boolean,
  ): Promise<ExpandResult> {
    checkCount(r, "r");
    const m = this.probeSize, k = this.basisSize, d = this.d;
    if (coeffs.length !== m * k * r) {
      throw new RangeError(
        `Expected coeffs of ${m}×${k}×${r}, got ${coeffs.length} entries`,
      );
    }
    if (basisCoeffs.length !== k * r) {
      throw new RangeError(
        `Expected basis_coeffs of ${k}×${r}, got ${basisCoeffs.length} entries`,
      );
    }
    const w: Float64Array[] = [];
    for (let j = 0; j < r; j++) {
      const col = this.#combine((a) => basisCoeffs[a * r + j]);
      for (let i = 0; i < m; i++) {
        const x = this.#combine((a) => coeffs[(i * k + a) * r + j]);
        const hx = this.#hvp(i, x);
        for (let t = 0; t < d; t++) col[t] += hx[t];
      }
      w.push(col);
    }
    this.#hvps += m * r;
    const proj = new Float64Array(k * r);
    for (let a = 0; a < k; a++) {
      for (let j = 0; j < r; j++) proj[a * r + j] = dot(this.#v[a], w[j]);
    }
    const { kept, keptIndex, norms } = gramSchmidt(w, this.#v);
    this.#v.push(...kept);
    const result: ExpandResult = { proj, norms, keptIndex };
    if (withBlocks) result.blocks = this.#blocksOf(k, kept.length);
    return Promise.resolve(result);
  }

  #blocksOf(start: number, count: number): Float64Array {
    const m = this.probeSize, k = this.basisSize;
    const out = new Float64Array(m * k * count);
    for (let i = 0; i < m; i++) {
      for (let b = 0; b < count; b++) {
        const hv = this.#hvp(i, this.#v[start + b]);
        for (let a = 0; a < k; a++) {
          out[(i * k + a) * count + b] = dot(this.#v[a], hv);
        }
      }
    }
    this.#hvps += m * count;
    return out;
  }

  blocks(start: number, count: number): Promise<Float64Array> {
    if (
      !Number.isInteger(start) || !Number.isInteger(count) || start < 0 ||
      count < 0 || start + count > this.basisSize
    ) {
      throw new RangeError(
        `Expected columns within 0..${this.basisSize}, got start ${start} and count ${count}`,
      );
    }
    return Promise.resolve(this.#blocksOf(start, count));
  }

  rotate(u: Float64Array, kNew: number): Promise<void> {
    const k = this.basisSize;
    if (u.length !== k * kNew) {
      throw new RangeError(
        `Expected u of ${k}×${kNew}, got ${u.length} entries`,
      );
    }
    const cols = Array.from(
      { length: kNew },
      (_, j) => this.#combine((a) => u[a * kNew + j]),
    );
    this.#v = gramSchmidt(cols, []).kept;
    return Promise.resolve();
  }

  grads(): Promise<GradStats> {
    const m = this.probeSize, k = this.basisSize, d = this.d;
    const sqNorms = new Float64Array(m);
    const proj = new Float64Array(m * k);
    const mean = new Float64Array(d);
    this.#grads.forEach((g, i) => {
      sqNorms[i] = dot(g, g);
      for (let a = 0; a < k; a++) proj[i * k + a] = dot(this.#v[a], g);
      for (let t = 0; t < d; t++) mean[t] += g[t] / m;
    });
    this.#hvps += m;
    return Promise.resolve({
      losses: Float64Array.from(this.#losses),
      sqNorms,
      proj,
      meanSqNorm: dot(mean, mean),
    });
  }

  hutchinson(r: number, seed: number): Promise<HutchinsonResult> {
    checkCount(r, "r");
    const m = this.probeSize, rng = new Rng(seed);
    const quad = new Float64Array(m * r), sqNorms = new Float64Array(m * r);
    for (let j = 0; j < r; j++) {
      const z = new Float64Array(this.d);
      for (let t = 0; t < z.length; t++) z[t] = rng.uniform() < 0.5 ? -1 : 1;
      for (let i = 0; i < m; i++) {
        const hz = this.#hvp(i, z);
        quad[i * r + j] = dot(z, hz);
        sqNorms[i * r + j] = dot(hz, hz);
      }
    }
    this.#hvps += m * r;
    return Promise.resolve({ quad, sqNorms });
  }
}

function checkCount(r: number, name: string): void {
  if (!Number.isInteger(r) || r < 0) {
    throw new RangeError(
      `Expected ${name} to be a non-negative integer, got ${r}`,
    );
  }
}
