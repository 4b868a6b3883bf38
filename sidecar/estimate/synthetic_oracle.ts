/**
 * An in-process {@linkcode CurvatureOracle} built from explicit per-sample Hessians (the
 * Hessian route) or explicit per-sample factors `F_i` (`c × d`, `H_i = F_iᵀ F_i`: the
 * Gauss–Newton factor route, {@linkcode SyntheticOracle.fromFactors}), executing every operation
 * of protocol/SPEC.md §4 exactly as the Python client does. Used by tests and benchmarks;
 * `setHessians` replaces the `H_i` between rounds while keeping the basis.
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
  #fs?: Float64Array[];
  #c?: number;

  /**
   * The factor route: per-sample factors `F_i` (`c × d`, row-major), `H_i = F_iᵀ F_i`.
   * @throws {RangeError} when sizes disagree
   * @example
   * ```ts
   * import { SyntheticOracle } from "./synthetic_oracle.ts";
   * const o = SyntheticOracle.fromFactors([new Float64Array([1, 2])], 1);
   * await o.random(2, 1);
   * const a = await o.blocks(0, 2); // A = F V, 1 × 2
   * if (Math.abs(a[0] ** 2 + a[1] ** 2 - 5) > 1e-12) throw new Error("‖F‖²");
   * ```
   */
  static fromFactors(
    factors: Float64Array[],
    c: number,
    options: SyntheticOracleOptions = {},
  ): SyntheticOracle {
    if (factors.length === 0 || !Number.isInteger(c) || c < 1 || factors[0].length % c !== 0) {
      throw new RangeError(`Expected per-sample factors of c × d with c ≥ 1, got ${factors.length} samples and c = ${c}`);
    }
    const d = factors[0].length / c;
    if (factors.some((f) => f.length !== c * d)) {
      throw new RangeError(`Expected every factor to have ${c * d} entries`);
    }
    const hs = factors.map((f) => {
      const h = new Float64Array(d * d);
      for (let r = 0; r < c; r++) {
        for (let a = 0; a < d; a++) {
          const x = f[r * d + a];
          if (x === 0) continue;
          for (let b = 0; b < d; b++) h[a * d + b] += x * f[r * d + b];
        }
      }
      return h;
    });
    const o = new SyntheticOracle(hs, options);
    o.#fs = factors.map((f) => Float64Array.from(f));
    o.#c = c;
    return o;
  }

  /**
   * Replace the per-sample factors (same `m`, `c` and `d`), keeping the basis: the factor
   * route's analogue of {@linkcode SyntheticOracle.setHessians}.
   * @throws {TypeError} on a Hessian-route oracle
   * @throws {RangeError} on a size mismatch
   */
  setFactors(factors: Float64Array[]): void {
    const fs = this.#fs, c = this.#c;
    if (!fs || c === undefined) throw new TypeError("Cannot set factors of a Hessian-route oracle");
    if (factors.length !== fs.length || factors.some((f) => f.length !== c * this.d)) {
      throw new RangeError(`Expected ${fs.length} factors of ${c}×${this.d}`);
    }
    const next = SyntheticOracle.fromFactors(factors, c);
    this.#fs = next.#fs;
    this.#hs = next.#hs;
  }

  /** Rows `c` of each factor on the factor route; undefined on the Hessian route. */
  get outputs(): number | undefined {
    return this.#c;
  }

  /** In-process: no waiting. */
  get waitMs(): number {
    return 0;
  }

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
    if (this.#fs) throw new TypeError("Cannot set Hessians of a factor-route oracle: build a new one");
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
  /** Copy of the per-sample Hessians (for tests). */
  hessians(): Float64Array[] {
    return this.#hs.map((h) => Float64Array.from(h));
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
    const w = this.#c ?? k;
    if (coeffs.length !== m * w * r) {
      throw new RangeError(
        `Expected coeffs of ${m}×${w}×${r}, got ${coeffs.length} entries`,
      );
    }
    if (basisCoeffs.length !== k * r) {
      throw new RangeError(
        `Expected basis_coeffs of ${k}×${r}, got ${basisCoeffs.length} entries`,
      );
    }
    const cols: Float64Array[] = [];
    for (let j = 0; j < r; j++) {
      const col = this.#combine((a) => basisCoeffs[a * r + j]);
      for (let i = 0; i < m; i++) {
        const hx = this.#fs
          ? this.#vjp(i, (a) => coeffs[(i * w + a) * r + j])
          : this.#hvp(i, this.#combine((a) => coeffs[(i * k + a) * r + j]));
        for (let t = 0; t < d; t++) col[t] += hx[t];
      }
      cols.push(col);
    }
    this.#hvps += this.#fs ? (m * r) / 2 : m * r;
    const proj = new Float64Array(k * r);
    for (let a = 0; a < k; a++) {
      for (let j = 0; j < r; j++) proj[a * r + j] = dot(this.#v[a], cols[j]);
    }
    const { kept, keptIndex, norms } = gramSchmidt(cols, this.#v);
    this.#v.push(...kept);
    const result: ExpandResult = { proj, norms, keptIndex };
    if (withBlocks) result.blocks = this.#blocksOf(k, kept.length);
    return Promise.resolve(result);
  }

  /** `F_iᵀ u` for output coefficients `u` (length c). */
  #vjp(i: number, u: (a: number) => number): Float64Array {
    const c = this.#c!, d = this.d, f = this.#fs![i], out = new Float64Array(d);
    for (let a = 0; a < c; a++) {
      const s = u(a);
      if (s === 0) continue;
      for (let t = 0; t < d; t++) out[t] += s * f[a * d + t];
    }
    return out;
  }

  #blocksOf(start: number, count: number): Float64Array {
    const m = this.probeSize, k = this.basisSize, d = this.d;
    if (this.#fs) {
      const c = this.#c!, out = new Float64Array(m * c * count);
      for (let i = 0; i < m; i++) {
        const f = this.#fs[i];
        for (let a = 0; a < c; a++) {
          for (let b = 0; b < count; b++) {
            const v = this.#v[start + b];
            let s = 0;
            for (let t = 0; t < d; t++) s += f[a * d + t] * v[t];
            out[(i * c + a) * count + b] = s;
          }
        }
      }
      this.#hvps += (m * count) / 2;
      return out;
    }
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

  /**
   * Rows `start..start+count` of `(HV)ᵀ(HV)` with `H = mean_i H_i`, exactly; costs `count·m/2`
   * (factor route) or `count·m` (Hessian route), as SPEC §4 counts them.
   */
  hessianGram(start: number, count: number): Promise<Float64Array> {
    const k = this.basisSize, m = this.probeSize;
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > k) {
      throw new RangeError(`Expected rows within 0..${k}, got start ${start} and count ${count}`);
    }
    const hv = this.#v.map((v) => {
      const out = new Float64Array(this.d);
      for (let i = 0; i < m; i++) {
        const h = this.#hvp(i, v);
        for (let t = 0; t < out.length; t++) out[t] += h[t] / m;
      }
      return out;
    });
    const out = new Float64Array(count * k);
    for (let j = 0; j < count; j++) {
      for (let b = 0; b < k; b++) out[j * k + b] = dot(hv[start + j], hv[b]);
    }
    this.#hvps += this.#fs ? (count * m) / 2 : count * m;
    return Promise.resolve(out);
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
