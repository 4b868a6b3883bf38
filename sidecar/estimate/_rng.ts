/**
 * Small deterministic random numbers (mulberry32 + Box–Muller) so that seeded tests and
 * synthetic oracles are reproducible across runs and platforms.
 *
 * @module
 */

/** A seeded generator of uniform and standard normal numbers. */
export class Rng {
  #state: number;
  #spare: number | undefined;
  /** @param seed any integer; equal seeds give equal streams */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new TypeError(`Expected a finite seed, got ${seed}`);
    }
    this.#state = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal. */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare;
      this.#spare = undefined;
      return s;
    }
    const u = 1 - this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  /** Integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
  /** Vector of `n` standard normals. */
  normals(n: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}
