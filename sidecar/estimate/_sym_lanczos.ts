/**
 * The algebraically largest eigenpair of a symmetric, possibly indefinite, linear operator on
 * symmetric `r × r` matrices, by Lanczos with full reorthogonalisation in orthonormal `vech`
 * coordinates (`X_aa`, `√2 X_ab` for `a < b`). Working on symmetric matrices only matters for
 * the momentum pencil (docs/momentum.md §6): on all `r × r` matrices the antisymmetric
 * complement adds eigenvalues 0, which would win whenever the true answer is negative.
 *
 * @module
 */
import { dot, symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";

/** Result of {@linkcode largestSymmetric}. */
export interface LargestEig {
  /** Largest eigenvalue (algebraically). */
  theta: number;
  /** Its eigenvector as a symmetric `r × r` matrix, unit Frobenius norm. */
  X: Float64Array;
  /** `|β_j y_j| / max(|θ|, 1e-8 · ‖T‖)`. */
  residual: number;
  /** Residual below `tol`, invariant Krylov space, or the whole space spanned. */
  converged: boolean;
  /** Operator applications. */
  iterations: number;
}

/** Length of `vech` for `r × r`. */
export function vechLength(r: number): number {
  return (r * (r + 1)) / 2;
}

/** Symmetric matrix to orthonormal `vech` coordinates. */
export function toVech(X: Float64Array, r: number): Float64Array {
  const out = new Float64Array(vechLength(r));
  let t = 0;
  for (let a = 0; a < r; a++) {
    out[t++] = X[a * r + a];
    for (let b = a + 1; b < r; b++) {
      out[t++] = Math.SQRT1_2 * (X[a * r + b] + X[b * r + a]);
    }
  }
  return out;
}

/** Orthonormal `vech` coordinates back to a symmetric matrix. */
export function fromVech(v: Float64Array, r: number): Float64Array {
  const X = new Float64Array(r * r);
  let t = 0;
  for (let a = 0; a < r; a++) {
    X[a * r + a] = v[t++];
    for (let b = a + 1; b < r; b++) {
      X[a * r + b] = X[b * r + a] = Math.SQRT1_2 * v[t++];
    }
  }
  return X;
}

/**
 * Largest eigenpair of a symmetric operator on symmetric `r × r` matrices.
 * @param apply the operator (its input is symmetric; only its symmetric part of the output is used)
 * @param r matrix order
 * @param options start (symmetric `r × r`; seeded random when absent or zero), tolerance, cap
 */
export function largestSymmetric(
  apply: (X: Float64Array) => Float64Array,
  r: number,
  options: {
    start?: Float64Array;
    tol?: number;
    maxIter?: number;
    seed?: number;
  } = {},
): LargestEig {
  const n = vechLength(r);
  const tol = options.tol ?? 1e-12;
  const maxIter = Math.max(1, Math.min(options.maxIter ?? Math.min(n, 400), n));
  let q = options.start ? toVech(options.start, r) : new Float64Array(n);
  if (!(dot(q, q) > 0)) {
    const rng = new Rng(options.seed ?? 1);
    q = rng.normals(n);
  }
  q = scale(q, 1 / Math.sqrt(dot(q, q)));
  const qs: Float64Array[] = [], alpha: number[] = [], beta: number[] = [];
  let theta = 0, y: Float64Array = new Float64Array([1]), residual = Infinity;
  let converged = false, iterations = 0, norm = 0;
  for (let j = 0; j < maxIter; j++) {
    qs.push(q);
    const w = toVech(apply(fromVech(q, r)), r);
    iterations++;
    const a = dot(q, w);
    alpha.push(a);
    for (let pass = 0; pass < 2; pass++) {
      for (const u of qs) {
        const c = dot(u, w);
        for (let t = 0; t < n; t++) w[t] -= c * u[t];
      }
    }
    const b = Math.sqrt(dot(w, w));
    norm = Math.max(norm, Math.abs(a) + b);
    const jj = qs.length;
    const invariant = b <= 1e-14 * norm || jj === n;
    if (invariant || jj < 40 || jj % 8 === 0 || j === maxIter - 1) {
      ({ theta, y } = ritz(alpha, beta, jj));
      residual = invariant ? 0 : Math.abs(b * y[jj - 1]) /
        Math.max(Math.abs(theta), 1e-8 * norm, 1e-300);
      if (invariant || residual <= tol) {
        converged = true;
        break;
      }
    }
    beta.push(b);
    q = scale(w, 1 / b);
  }
  const v = new Float64Array(n);
  y.forEach((c, s) => {
    for (let t = 0; t < n; t++) v[t] += c * qs[s][t];
  });
  const X = fromVech(scale(v, 1 / Math.sqrt(dot(v, v))), r);
  return { theta, X, residual, converged, iterations };
}

/** Top Ritz pair of the tridiagonal `(alpha, beta)` of order `j`. */
function ritz(
  alpha: number[],
  beta: number[],
  j: number,
): { theta: number; y: Float64Array } {
  const t = new Float64Array(j * j);
  for (let s = 0; s < j; s++) {
    t[s * j + s] = alpha[s];
    if (s + 1 < j) t[s * j + s + 1] = t[(s + 1) * j + s] = beta[s];
  }
  const e = symEig(t, j);
  const y = new Float64Array(j);
  for (let s = 0; s < j; s++) y[s] = e.vectors[s * j];
  return { theta: e.values[0], y };
}

function scale(x: Float64Array, s: number): Float64Array {
  return x.map((v) => v * s);
}
