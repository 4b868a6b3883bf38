/**
 * The reduced generalized-sharpness problem (theory §4): given per-sample blocks
 * `K_i = Vᵀ H_i V`, the maximum over symmetric `S` of
 * `[(1 − p) tr(KSKS) + p mean_i tr(K_i S K_i S)] / tr(K S²)`, as the top eigenvalue of the
 * PSD operator `T` applied in matrix form (O(m k³) per application) inside Lanczos.
 *
 * @module
 */
import {
  congruence,
  dot,
  leadingColumns,
  matmul,
  symEig,
  transpose,
} from "./_linalg.ts";
import { Rng } from "./_rng.ts";

/** Options of {@linkcode reducedSolve}. */
export interface ReducedSolveOptions {
  /** Directions with `κ_a ≤ dropTol · κ_max` are treated as null space (default 1e-10). */
  dropTol?: number;
  /** Stop when `|β_j · y_j| ≤ tol · θ` (default 1e-12). */
  tol?: number;
  /** Lanczos steps at most (default: the dimension of the symmetric matrices, capped at 400). */
  maxIter?: number;
  /** Per-sample weights (bootstrap multiplicities); default all 1. */
  weights?: Float64Array | number[];
  /** Starting `S` (`k × k`, basis coordinates), e.g. a previous maximiser; random when absent. */
  start?: Float64Array;
  /** Seed of the random start (default 1). */
  seed?: number;
}

/** Result of {@linkcode reducedSolve}. */
export interface ReducedSolution {
  /** Top eigenvalue of `T`: the reduced `λ_gen` (0 when `K` has no positive curvature). */
  lambdaGen: number;
  /** The maximiser, `k × k` in basis coordinates, `‖S‖_F = 1`, sign chosen so `tr S ≥ 0`. */
  S: Float64Array;
  /** Whether the residual test passed (or the Krylov space became invariant). */
  converged: boolean;
  /** `|β_j y_j| / θ`, the relative Lanczos residual. */
  residual: number;
  /** Smallest eigenvalue of `K` (negative: not at a minimum). */
  minCurvature: number;
  /** Largest eigenvalue of `K` (the Ritz value of `λ_max(H)` in this basis). */
  maxCurvature: number;
  /** How many eigen-directions of `K` were dropped as null space. */
  droppedDirections: number;
  /** Applications of `T`. */
  iterations: number;
}

/**
 * Mean of the per-sample blocks, optionally weighted.
 * @param blocks `m × k × k`
 * @returns `K`, `k × k`
 */
export function meanBlock(
  blocks: Float64Array,
  m: number,
  k: number,
  weights?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(k * k);
  let total = 0;
  for (let i = 0; i < m; i++) {
    const w = weights ? weights[i] : 1;
    if (w === 0) continue;
    total += w;
    const o = i * k * k;
    for (let t = 0; t < k * k; t++) out[t] += w * blocks[o + t];
  }
  if (total > 0) { for (let t = 0; t < k * k; t++) out[t] /= total; }
  return out;
}

/**
 * Check the shape of a block tensor.
 * @throws {RangeError} when `blocks.length ≠ m k²`
 */
export function checkBlocks(blocks: Float64Array, m: number, k: number): void {
  if (!Number.isInteger(m) || !Number.isInteger(k) || m < 1 || k < 0) {
    throw new RangeError(
      `Expected m ≥ 1 and k ≥ 0 integers, got m ${m} and k ${k}`,
    );
  }
  if (blocks.length !== m * k * k) {
    throw new RangeError(
      `Expected blocks of ${m}×${k}×${k}, got ${blocks.length} entries`,
    );
  }
}

/**
 * Solve the reduced problem: top eigenpair of `T` (theory §4).
 * @param blocks per-sample `K_i`, `m × k × k`
 * @param m probe samples
 * @param k basis size
 * @param p batch-noise weight in [0, 1]
 * @returns the reduced `λ_gen`, its PSD maximiser and diagnostics
 * @throws {RangeError} on bad shapes or `p` outside [0, 1]
 * @example
 * ```ts
 * import { reducedSolve } from "./reduced_solve.ts";
 * // theory §7, three samples in d = 2, B = 1
 * const b = new Float64Array([2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
 * const { lambdaGen } = reducedSolve(b, 3, 2, 1);
 * if (Math.abs(lambdaGen - 1.862790641860) > 1e-9) throw new Error(String(lambdaGen));
 * ```
 */
export function reducedSolve(
  blocks: Float64Array,
  m: number,
  k: number,
  p: number,
  options: ReducedSolveOptions = {},
): ReducedSolution {
  checkBlocks(blocks, m, k);
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`Expected p in [0, 1], got ${p}`);
  }
  const weights = options.weights;
  if (weights && weights.length !== m) {
    throw new RangeError(`Expected ${m} weights, got ${weights.length}`);
  }
  const dropTol = options.dropTol ?? 1e-10;
  const tol = options.tol ?? 1e-12;
  const K = meanBlock(blocks, m, k, weights);
  const { values: kappaAll, vectors: Q } = symEig(K, k);
  const kmax = k > 0 ? kappaAll[0] : 0;
  const kmin = k > 0 ? kappaAll[k - 1] : 0;
  let r = 0;
  while (r < k && kmax > 0 && kappaAll[r] > dropTol * kmax) r++;
  const empty: ReducedSolution = {
    lambdaGen: 0,
    S: new Float64Array(k * k),
    converged: false,
    residual: Infinity,
    minCurvature: kmin,
    maxCurvature: kmax,
    droppedDirections: k - r,
    iterations: 0,
  };
  if (r === 0) return empty;
  const Qr = leadingColumns(Q, k, k, r);
  const kappa = kappaAll.subarray(0, r);
  // rotated per-sample blocks and normalised weights (zero-weight samples skipped)
  const rot: Float64Array[] = [];
  const omega: number[] = [];
  let wsum = 0;
  for (let i = 0; i < m; i++) wsum += weights ? weights[i] : 1;
  if (p > 0) {
    for (let i = 0; i < m; i++) {
      const w = weights ? weights[i] : 1;
      if (w === 0) continue;
      rot.push(
        congruence(blocks.subarray(i * k * k, (i + 1) * k * k), Qr, k, r),
      );
      omega.push(w / wsum);
    }
  }
  const W = new Float64Array(r * r);
  for (let a = 0; a < r; a++) {
    for (let b = 0; b < r; b++) {
      W[a * r + b] = 1 / Math.sqrt((kappa[a] + kappa[b]) / 2);
    }
  }

  const scratch = new Float64Array(r * r);
  const acc = new Float64Array(r * r);
  // x (and so y) stay symmetric, so K_i y K_i is symmetric: accumulate its upper triangle only
  const apply = (x: Float64Array): Float64Array => {
    const y = new Float64Array(r * r);
    for (let t = 0; t < r * r; t++) y[t] = W[t] * x[t];
    acc.fill(0);
    // hot path (O(m r³) per application): fused K_i y K_i, no allocation per sample
    for (let idx = 0; idx < rot.length; idx++) {
      accumulateCongruence(acc, rot[idx], y, scratch, r, p * omega[idx]);
    }
    const out = new Float64Array(r * r);
    for (let a = 0; a < r; a++) {
      for (let b = a; b < r; b++) {
        const t = a * r + b;
        const v = W[t] * ((1 - p) * kappa[a] * y[t] * kappa[b] + acc[t]);
        out[t] = v;
        out[b * r + a] = v;
      }
    }
    return out;
  };

  // starting vector in the rotated, W-scaled coordinates
  let x0 = new Float64Array(r * r);
  if (options.start) {
    if (options.start.length !== k * k) {
      throw new RangeError(
        `Expected start of ${k}×${k}, got ${options.start.length} entries`,
      );
    }
    const sr = congruence(options.start, Qr, k, r);
    for (let t = 0; t < r * r; t++) x0[t] = sr[t] / W[t];
  }
  if (!(dot(x0, x0) > 0)) {
    const rng = new Rng(options.seed ?? 1);
    x0 = new Float64Array(r * r);
    for (let a = 0; a < r; a++) {
      for (let b = a; b < r; b++) {
        x0[a * r + b] = x0[b * r + a] = rng.normal();
      }
    }
  }
  const dim = (r * (r + 1)) / 2;
  const maxIter = Math.max(
    1,
    Math.min(options.maxIter ?? Math.min(dim, 400), dim),
  );
  const { theta, x, residual, converged, iterations } = lanczosTop(
    apply,
    x0,
    maxIter,
    tol,
  );
  // back to basis coordinates: S = Qr (W ∘ X) Qrᵀ
  const sr = new Float64Array(r * r);
  for (let t = 0; t < r * r; t++) sr[t] = W[t] * x[t];
  const S = matmul(matmul(Qr, sr, k, r, r), transpose(Qr, k, r), k, r, k);
  let tr = 0;
  for (let a = 0; a < k; a++) tr += S[a * k + a];
  const nrm = Math.sqrt(dot(S, S)) * (tr < 0 ? -1 : 1);
  for (let t = 0; t < k * k; t++) S[t] /= nrm;
  return {
    lambdaGen: theta,
    S,
    converged,
    residual,
    minCurvature: kmin,
    maxCurvature: kmax,
    droppedDirections: k - r,
    iterations,
  };
}

/**
 * Top eigenpair of a symmetric PSD operator by Lanczos with full reorthogonalisation.
 * @returns Ritz value, unit Ritz vector, relative residual `|β y_last|/θ`
 */
export function lanczosTop(
  apply: (x: Float64Array) => Float64Array,
  start: Float64Array,
  maxIter: number,
  tol: number,
): {
  theta: number;
  x: Float64Array;
  residual: number;
  converged: boolean;
  iterations: number;
} {
  const n = start.length;
  const qs: Float64Array[] = [];
  const alpha: number[] = [];
  const beta: number[] = [];
  let q = scaled(start, 1 / Math.sqrt(dot(start, start)));
  let theta = 0,
    y = new Float64Array([1]),
    residual = Infinity,
    converged = false,
    iter = 0;
  let scale = 0;
  for (let j = 0; j < maxIter; j++) {
    qs.push(q);
    const w = apply(q);
    iter++;
    const a = dot(q, w);
    alpha.push(a);
    for (let pass = 0; pass < 2; pass++) {
      for (const u of qs) {
        const c = dot(u, w);
        for (let t = 0; t < n; t++) w[t] -= c * u[t];
      }
    }
    const b = Math.sqrt(dot(w, w));
    scale = Math.max(scale, Math.abs(a), b);
    const jj = qs.length;
    const check = jj < 40 || jj % 4 === 0 || j === maxIter - 1 ||
      b <= 1e-13 * scale;
    if (check) {
      const tmat = new Float64Array(jj * jj);
      for (let s = 0; s < jj; s++) {
        tmat[s * jj + s] = alpha[s];
        if (s + 1 < jj) tmat[s * jj + s + 1] = tmat[(s + 1) * jj + s] = beta[s];
      }
      const e = symEig(tmat, jj);
      theta = e.values[0];
      y = new Float64Array(jj);
      for (let s = 0; s < jj; s++) y[s] = e.vectors[s * jj];
      residual = Math.abs(b * y[jj - 1]) / Math.max(Math.abs(theta), 1e-300);
      if (b <= 1e-13 * scale || jj === n) {
        residual = b <= 1e-13 * scale ? 0 : residual;
        converged = true;
        break;
      }
      if (residual <= tol) {
        converged = true;
        break;
      }
    }
    beta.push(b);
    q = scaled(w, 1 / b);
  }
  const x = new Float64Array(n);
  y.forEach((c, s) => {
    for (let t = 0; t < n; t++) x[t] += c * qs[s][t];
  });
  return { theta, x, residual, converged, iterations: iter };
}

function scaled(x: Float64Array, s: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let t = 0; t < x.length; t++) out[t] = x[t] * s;
  return out;
}

/** `acc += c · K y K` for symmetric `K`, `y` (`r × r`), using `scratch` for `K y`. */
function accumulateCongruence(
  acc: Float64Array,
  K: Float64Array,
  y: Float64Array,
  scratch: Float64Array,
  r: number,
  c: number,
): void {
  scratch.fill(0);
  for (let i = 0; i < r; i++) {
    const io = i * r;
    for (let l = 0; l < r; l++) {
      const x = K[io + l];
      if (x === 0) continue;
      const lo = l * r;
      for (let j = 0; j < r; j++) scratch[io + j] += x * y[lo + j];
    }
  }
  // (K y K)[i][j] = Σ_l (K y)[i][l] K[l][j]; only the upper triangle is needed (symmetric)
  for (let i = 0; i < r; i++) {
    const io = i * r;
    for (let l = 0; l < r; l++) {
      const x = c * scratch[io + l];
      if (x === 0) continue;
      const lo = l * r;
      for (let j = i; j < r; j++) acc[io + j] += x * K[lo + j];
    }
  }
}
