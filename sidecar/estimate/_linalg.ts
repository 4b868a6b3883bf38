/**
 * Small dense linear algebra on row-major `Float64Array`s. The only file that imports
 * ml-matrix, so its types never leak into the estimators.
 *
 * @module
 */
import { EigenvalueDecomposition, Matrix } from "ml-matrix";

/** Eigen-decomposition of a symmetric matrix, eigenvalues in descending order. */
export interface SymEig {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** `n × n`, column `j` is the unit eigenvector of `values[j]`. */
  vectors: Float64Array;
}

/**
 * Symmetric eigendecomposition (ml-matrix's tred2/tql2), sorted descending.
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

/** `C = A B` with `A` `r × s`, `B` `s × c`. */
export function matmul(
  a: Float64Array,
  b: Float64Array,
  r: number,
  s: number,
  c: number,
): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) {
    for (let l = 0; l < s; l++) {
      const x = a[i * s + l];
      if (x === 0) continue;
      const bo = l * c, oo = i * c;
      for (let j = 0; j < c; j++) out[oo + j] += x * b[bo + j];
    }
  }
  return out;
}

/** `Aᵀ` for `A` `r × c`. */
export function transpose(a: Float64Array, r: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  }
  return out;
}

/** `Uᵀ A U` for symmetric `A` `n × n` and `U` `n × k`. */
export function congruence(
  a: Float64Array,
  u: Float64Array,
  n: number,
  k: number,
): Float64Array {
  return matmul(transpose(u, n, k), matmul(a, u, n, n, k), k, n, k);
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
