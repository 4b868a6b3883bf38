/**
 * Dense references for the tests, written independently of the estimators: explicit
 * Kronecker products (`d² × d²`), pseudo-inverses through a symmetric eigendecomposition, and
 * seeded random PSD problems. Only for small `d`.
 *
 * @module
 */
import { symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import { Curvature } from "./curvature.ts";

/** `A ⊗ B` for `d × d` matrices, `d² × d²`. */
export function kron(
  a: Float64Array,
  b: Float64Array,
  d: number,
): Float64Array {
  const n = d * d, out = new Float64Array(n * n);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      const x = a[i * d + j];
      for (let k = 0; k < d; k++) {
        for (let l = 0; l < d; l++) {
          out[(i * d + k) * n + (j * d + l)] = x * b[k * d + l];
        }
      }
    }
  }
  return out;
}

/** Mean of matrices. */
export function mean(ms: Float64Array[]): Float64Array {
  const out = new Float64Array(ms[0].length);
  for (const x of ms) {
    for (let t = 0; t < x.length; t++) out[t] += x[t] / ms.length;
  }
  return out;
}

/** `H ⊕ H` and `D` for per-sample `H_i` and weight `p` (theory §1). */
export function kroneckerOperators(
  hs: Float64Array[],
  d: number,
  p: number,
): { sum: Float64Array; D: Float64Array } {
  const H = mean(hs), I = new Float64Array(d * d);
  for (let i = 0; i < d; i++) I[i * d + i] = 1;
  const a = kron(H, I, d), b = kron(I, H, d);
  const sum = a.map((x, t) => x + b[t]);
  const D = kron(H, H, d).map((x) => (1 - p) * x);
  for (const h of hs) {
    const kk = kron(h, h, d);
    for (let t = 0; t < D.length; t++) D[t] += (p / hs.length) * kk[t];
  }
  return { sum, D };
}

/** `λ_max(2 (H ⊕ H)^† D)` densely, as `2 λ_max(P^{1/2} D P^{1/2})` with `P = (H ⊕ H)^†`. */
export function denseLambdaGen(
  hs: Float64Array[],
  d: number,
  p: number,
): number {
  return 2 * symEig(scaledOperator(hs, d, p), d * d).values[0];
}

/**
 * The eigenvalues of `2 P^{1/2} D P^{1/2}` whose eigenvectors are symmetric matrices (the
 * generalized problem over symmetric `S`, which the reduced solves work in), descending.
 */
export function denseSymmetricSpectrum(hs: Float64Array[], d: number, p: number): number[] {
  const n = d * d;
  const e = symEig(scaledOperator(hs, d, p), n);
  const out: number[] = [];
  for (let j = 0; j < n; j++) {
    let asym = 0, norm = 0;
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) {
        const v = e.vectors[(a * d + b) * n + j];
        asym += (v - e.vectors[(b * d + a) * n + j]) ** 2;
        norm += v * v;
      }
    }
    if (asym < 1e-12 * norm) out.push(2 * e.values[j]);
  }
  return out;
}

/** `P^{1/2} D P^{1/2}` with `P = (H ⊕ H)^†`, `d² × d²`. */
function scaledOperator(hs: Float64Array[], d: number, p: number): Float64Array {
  const { sum, D } = kroneckerOperators(hs, d, p);
  const n = d * d;
  const e = symEig(sum, n);
  const cut = 1e-10 * e.values[0];
  // R = P^{1/2} as U diag(1/sqrt(σ)) Uᵀ on range
  const R = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    if (e.values[j] <= cut) continue;
    const s = 1 / Math.sqrt(e.values[j]);
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        R[a * n + b] += s * e.vectors[a * n + j] * e.vectors[b * n + j];
      }
    }
  }
  return mm(mm(R, D, n), R, n);
}

/** Spectral radius of the (symmetric) second-moment map `Q = I − η(H⊕H) + η² D`. */
export function denseQRadius(
  hs: Float64Array[],
  d: number,
  p: number,
  eta: number,
): number {
  const { sum, D } = kroneckerOperators(hs, d, p);
  const n = d * d;
  const Q = new Float64Array(n * n);
  for (let t = 0; t < n * n; t++) Q[t] = -eta * sum[t] + eta * eta * D[t];
  for (let i = 0; i < n; i++) Q[i * n + i] += 1;
  const v = symEig(Q, n).values;
  return Math.max(Math.abs(v[0]), Math.abs(v[n - 1]));
}

/** Dense square matrix product. */
export function mm(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let l = 0; l < n; l++) {
      const x = a[i * n + l];
      if (x !== 0) {
        for (let j = 0; j < n; j++) out[i * n + j] += x * b[l * n + j];
      }
    }
  }
  return out;
}

/** `m` random PSD `d × d` matrices `A Aᵀ / d` with `A` of `rank` Gaussian columns. */
export function randomPsd(
  m: number,
  d: number,
  rank: number,
  seed: number,
): Float64Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: m }, () => {
    const a = rng.normals(d * rank), h = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let t = 0; t < rank; t++) s += a[i * rank + t] * a[j * rank + t];
        h[i * d + j] = s / d;
      }
    }
    return h;
  });
}

/** Concatenate per-sample `d × d` matrices into `m × d × d` blocks (the identity basis). */
export function stack(hs: Float64Array[]): Float64Array {
  const d2 = hs[0].length, out = new Float64Array(hs.length * d2);
  hs.forEach((h, i) => out.set(h, i * d2));
  return out;
}

/** Theory §7: three samples in `d = 2`. */
export const THREE_SAMPLES: Float64Array[] = [
  new Float64Array([2, 0, 0, 0]),
  new Float64Array([0, 0, 0, 1]),
  new Float64Array([1, 1, 1, 1]),
];

/** Theory §7: linear regression rows, `H_i = x_i x_iᵀ`. */
export const REGRESSION: Float64Array[] = [
  [0, 0.3, -0.27],
  [-0.89, -0.45, -0.99],
  [0.06, 1.34, -0.49],
  [-0.62, 0.49, 0.36],
  [0.11, -0.93, -0.03],
].map((x) =>
  Float64Array.from({ length: 9 }, (_, t) => x[Math.floor(t / 3)] * x[t % 3])
);

/** Relative difference. */
export function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

/**
 * Per-sample factors `F_i` (`d × d`, rows `sqrt(λ_j) q_jᵀ`) with `F_iᵀ F_i = H_i`, from a
 * symmetric eigendecomposition: explicit factors for the factor route of PSD problems.
 * @returns `m × d × d` (c = d rows per sample)
 */
export function factorsOf(hs: Float64Array[], d: number): Float64Array {
  const out = new Float64Array(hs.length * d * d);
  hs.forEach((h, i) => {
    const { values, vectors } = symEig(h, d);
    for (let j = 0; j < d; j++) {
      const s = Math.sqrt(Math.max(0, values[j]));
      for (let a = 0; a < d; a++) out[(i * d + j) * d + a] = s * vectors[a * d + j];
    }
  });
  return out;
}

/** Both routes of the same PSD problem in the identity basis: blocks and factors. */
export function bothRoutes(hs: Float64Array[], d: number): [string, Curvature][] {
  return [
    ["dense", Curvature.dense(stack(hs), hs.length, d)],
    ["factor", Curvature.factor(factorsOf(hs, d), hs.length, d, d)],
  ];
}
