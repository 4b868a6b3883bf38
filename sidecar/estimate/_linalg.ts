/**
 * Small dense linear algebra on row-major `Float64Array`s. The only file that imports
 * ml-matrix, so its types never leak into the estimators.
 *
 * @module
 */
import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import { nativeDgemm, nativeDsyevd } from "./_blas.ts";

/** Eigen-decomposition of a symmetric matrix, eigenvalues in descending order. */
export interface SymEig {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** `n × n`, column `j` is the unit eigenvector of `values[j]`. */
  vectors: Float64Array;
}

/**
 * Symmetric eigendecomposition (LAPACK's dsyevd when a native library is loaded, else
 * ml-matrix's tred2/tql2), sorted descending.
 * @param a `n × n` symmetric (only its symmetric part is used)
 * @param n order
 * @returns eigenvalues (descending) and eigenvectors as columns
 * @example
 * ```ts
 * import { symEig } from "./_linalg.ts";
 * const { values } = symEig(new Float64Array([2, 0, 0, 1]), 2);
 * if (values[0] !== 2) throw new Error("expected 2");
 * ```
 */
export function symEig(a: Float64Array, n: number): SymEig {
  if (a.length !== n * n) {
    throw new RangeError(
      `Expected ${n * n} entries for a ${n}×${n} matrix, got ${a.length}`,
    );
  }
  if (n === 0) {
    return { values: new Float64Array(0), vectors: new Float64Array(0) };
  }
  // LAPACK's dsyevd through FFI beats ml-matrix from the smallest orders on (a scratch timing on
  // the 2-core CPU, 2026-11-28: order 4, 5 µs against 16–47 µs; order 10, 14 against 34–53);
  // Lanczos solves its 10–80-wide tridiagonal every step
  const native = nativeDsyevd();
  if (native && n >= 2) {
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) s[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
    }
    const w = new Float64Array(n);
    if (native(s, n, w) === 0) {
      // ascending → descending: reverse the order of values and columns
      const values = new Float64Array(n), vectors = new Float64Array(n * n);
      for (let j = 0; j < n; j++) {
        values[j] = w[n - 1 - j];
        for (let i = 0; i < n; i++) vectors[i * n + j] = s[i * n + (n - 1 - j)];
      }
      return { values, vectors };
    }
  }
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) {
    const row = new Array<number>(n);
    for (let j = 0; j < n; j++) row[j] = 0.5 * (a[i * n + j] + a[j * n + i]);
    rows.push(row);
  }
  const e = new EigenvalueDecomposition(new Matrix(rows), {
    assumeSymmetric: true,
  });
  const vals = e.realEigenvalues;
  const vecs = e.eigenvectorMatrix;
  const order = vals.map((_, i) => i).sort((x, y) => vals[y] - vals[x]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, j) => {
    values[j] = vals[src];
    for (let i = 0; i < n; i++) vectors[i * n + j] = vecs.get(i, src);
  });
  return { values, vectors };
}

/**
 * `C ← α op(A) op(B) + β C` (row-major, contiguous): `op(A)` is `M × K`, `op(B)` is `K × N`,
 * `op(X) = Xᵀ` when its flag is set. The one GEMM every estimator goes through: the native
 * BLAS when one is loaded and the product is large enough to amortise the call, else
 * allocation-free TypeScript loops ordered for unit-stride inner loops.
 * @example
 * ```ts
 * import { gemm } from "./_linalg.ts";
 * const c = new Float64Array(1);
 * gemm(false, true, 1, 1, 2, new Float64Array([1, 2]), new Float64Array([3, 4]), c);
 * if (c[0] !== 11) throw new Error(String(c[0]));
 * ```
 */
export function gemm(
  ta: boolean,
  tb: boolean,
  M: number,
  N: number,
  K: number,
  a: Float64Array,
  b: Float64Array,
  c: Float64Array,
  alpha = 1,
  beta = 0,
): Float64Array {
  if (a.length < M * K || b.length < K * N || c.length < M * N) {
    throw new RangeError(
      `Expected operands of ${M}×${K}, ${K}×${N} and ${M}×${N}, got ${a.length}, ${b.length} and ${c.length} entries`,
    );
  }
  if (M === 0 || N === 0) return c;
  const native = nativeDgemm();
  if (native && M * N * K >= NATIVE_MIN_FLOPS) {
    native(ta, tb, M, N, K, alpha, a, b, beta, c);
    return c;
  }
  if (beta === 0) c.fill(0, 0, M * N);
  else if (beta !== 1) { for (let t = 0; t < M * N; t++) c[t] *= beta; }
  if (!ta && !tb) gemmNN(M, N, K, a, b, c, alpha);
  else if (ta && !tb) gemmTN(M, N, K, a, b, c, alpha);
  else if (!ta && tb) gemmNT(M, N, K, a, b, c, alpha);
  else gemmNT(M, N, K, transpose(a, K, M), b, c, alpha);
  return c;
}

/** Below this many multiply-adds the FFI call costs more than the loop. */
const NATIVE_MIN_FLOPS = 512;

function gemmNN(M: number, N: number, K: number, a: Float64Array, b: Float64Array, c: Float64Array, alpha: number): void {
  // l in panels so the panel of B rows stays in cache across the rows of A
  const P = 64;
  for (let l0 = 0; l0 < K; l0 += P) {
    const l1 = Math.min(K, l0 + P);
    for (let i = 0; i < M; i++) {
      const co = i * N, ao = i * K;
      for (let l = l0; l < l1; l++) {
        const x = alpha * a[ao + l];
        if (x === 0) continue;
        const bo = l * N;
        for (let j = 0; j < N; j++) c[co + j] += x * b[bo + j];
      }
    }
  }
}

function gemmTN(M: number, N: number, K: number, a: Float64Array, b: Float64Array, c: Float64Array, alpha: number): void {
  for (let l = 0; l < K; l++) {
    const ao = l * M, bo = l * N;
    for (let i = 0; i < M; i++) {
      const x = alpha * a[ao + i];
      if (x === 0) continue;
      const co = i * N;
      for (let j = 0; j < N; j++) c[co + j] += x * b[bo + j];
    }
  }
}

function gemmNT(M: number, N: number, K: number, a: Float64Array, b: Float64Array, c: Float64Array, alpha: number): void {
  for (let i = 0; i < M; i++) {
    const ao = i * K;
    for (let j = 0; j < N; j++) {
      const bo = j * K;
      let s0 = 0, s1 = 0, l = 0;
      for (; l + 1 < K; l += 2) {
        s0 += a[ao + l] * b[bo + l];
        s1 += a[ao + l + 1] * b[bo + l + 1];
      }
      if (l < K) s0 += a[ao + l] * b[bo + l];
      c[i * N + j] += alpha * (s0 + s1);
    }
  }
}

/** `C = A B` with `A` `r × s`, `B` `s × c`. */
export function matmul(
  a: Float64Array,
  b: Float64Array,
  r: number,
  s: number,
  c: number,
): Float64Array {
  return gemm(false, false, r, c, s, a, b, new Float64Array(r * c));
}

/** `Aᵀ` for `A` `r × c`. */
export function transpose(a: Float64Array, r: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  }
  return out;
}

/** `Uᵀ A U` for symmetric `A` `n × n` and `U` `n × k` (symmetrised). */
export function congruence(
  a: Float64Array,
  u: Float64Array,
  n: number,
  k: number,
): Float64Array {
  const au = gemm(false, false, n, k, n, a, u, new Float64Array(n * k));
  const out = gemm(true, false, k, k, n, u, au, new Float64Array(k * k));
  symmetrise(out, k);
  return out;
}

/** `X ← (X + Xᵀ) / 2` in place for `X` `n × n`. */
export function symmetrise(x: Float64Array, n: number): void {
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      const v = 0.5 * (x[a * n + b] + x[b * n + a]);
      x[a * n + b] = v;
      x[b * n + a] = v;
    }
  }
}

/** Dot product of two equal-length vectors. */
export function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

/** Euclidean norm. */
export function norm(x: Float64Array): number {
  return Math.sqrt(dot(x, x));
}

/** Column `j` of `A` (`r × c`). */
export function column(
  a: Float64Array,
  r: number,
  c: number,
  j: number,
): Float64Array {
  const out = new Float64Array(r);
  for (let i = 0; i < r; i++) out[i] = a[i * c + j];
  return out;
}

/** The first `kNew` columns of `A` (`r × c`), `r × kNew`. */
export function leadingColumns(
  a: Float64Array,
  r: number,
  c: number,
  kNew: number,
): Float64Array {
  const out = new Float64Array(r * kNew);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < kNew; j++) out[i * kNew + j] = a[i * c + j];
  }
  return out;
}

/**
 * Orthonormalise columns (given as vectors of length `n`) by classical Gram–Schmidt twice,
 * dropping columns whose norm after orthogonalisation falls below `drop ×` their norm before.
 * @param cols candidate columns
 * @param basis already orthonormal vectors to orthogonalise against (not modified)
 * @param drop relative drop threshold
 * @returns kept unit vectors, indices kept, and the norm of each candidate after orthogonalisation
 */
export function gramSchmidt(
  cols: Float64Array[],
  basis: Float64Array[],
  drop = 1e-10,
): { kept: Float64Array[]; keptIndex: number[]; norms: Float64Array } {
  const all = basis.slice();
  const kept: Float64Array[] = [];
  const keptIndex: number[] = [];
  const norms = new Float64Array(cols.length);
  cols.forEach((c0, j) => {
    const w = Float64Array.from(c0);
    const before = norm(w);
    for (let pass = 0; pass < 2; pass++) {
      const coef = all.map((v) => dot(v, w));
      all.forEach((v, a) => {
        const s = coef[a];
        for (let i = 0; i < w.length; i++) w[i] -= s * v[i];
      });
    }
    const after = norm(w);
    norms[j] = after;
    if (before > 0 && after >= drop * before) {
      for (let i = 0; i < w.length; i++) w[i] /= after;
      all.push(w);
      kept.push(w);
      keptIndex.push(j);
    }
  });
  return { kept, keptIndex, norms };
}

/**
 * Orthonormal basis of the span of the columns of `A` (`n × c`), as an `n × k` matrix.
 * @param a candidate columns, row-major
 * @param n rows
 * @param c columns
 * @returns `{ q, k }` with `q` `n × k`
 */
export function orthonormalColumns(
  a: Float64Array,
  n: number,
  c: number,
  drop = 1e-10,
): { q: Float64Array; k: number } {
  const cols: Float64Array[] = [];
  for (let j = 0; j < c; j++) cols.push(column(a, n, c, j));
  const { kept } = gramSchmidt(cols, [], drop);
  const k = kept.length;
  const q = new Float64Array(n * k);
  kept.forEach((v, j) => {
    for (let i = 0; i < n; i++) q[i * k + j] = v[i];
  });
  return { q, k };
}

/**
 * The arrays of `sources`, one after another, written into `out` in float32 divided by their
 * largest absolute entry: the float32 operators (single_factors.ts, single_blocks.ts) keep
 * their data at a largest entry of 1, so their products cannot leave float32's range.
 * @returns the scale (1 when every entry is 0), by which `out` times the sources
 */
export function scaledToFloat32(sources: Float64Array[], out: Float32Array): number {
  let scale = 0;
  for (const src of sources) scale = largestAbs(src, scale);
  scale ||= 1;
  let at = 0;
  for (const src of sources) {
    for (let t = 0; t < src.length; t++) out[at + t] = src[t] / scale;
    at += src.length;
  }
  return scale;
}

/**
 * Largest absolute entry, at least `s` (0 for none; NaN when any entry is NaN, so it reaches the
 * result).
 */
function largestAbs(x: Float64Array, s = 0): number {
  if (s !== s) return s;
  for (let t = 0; t < x.length; t++) {
    const v = Math.abs(x[t]);
    if (v > s) s = v;
    else if (v !== v) return NaN;
  }
  return s;
}
