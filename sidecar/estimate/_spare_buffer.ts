/**
 * One buffer a thread keeps for its next use: a bootstrap solves hundreds of small problems in a
 * row, and allocating their large arrays each time (zeroed, and above glibc's mmap threshold
 * mapped and unmapped) was a tenth to a fifth of a resample's solve (benchmarks/RESULTS.md,
 * fourteenth session). Whoever takes it owns it until it gives it back; a taker that finds none
 * that fits gets a new one, so nested or concurrent users never share.
 *
 * @module
 */

/** A spare typed array, lent whole to one user at a time. */
export class SpareBuffer<T extends Float32Array | Float64Array> {
  #spare?: T;

  /** @param make a new buffer of `n` entries */
  constructor(readonly make: (n: number) => T) {}

  /** A buffer of at least `n` entries: the spare when it fits (it is then no longer spare), else a new one. */
  take(n: number): T {
    const spare = this.#spare;
    if (spare && spare.length >= n) {
      this.#spare = undefined;
      return spare;
    }
    return this.make(n);
  }

  /** Keeps `buf` for the next {@linkcode take} when it is larger than the current spare. */
  give(buf: T): void {
    if (!this.#spare || buf.length > this.#spare.length) this.#spare = buf;
  }
}
