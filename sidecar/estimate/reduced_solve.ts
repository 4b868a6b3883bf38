/**
 * The reduced generalized-sharpness problem (theory §4): given per-sample curvature
 * `K_i = Vᵀ H_i V` (blocks or factors, see curvature.ts), the maximum over symmetric `S` of
 * `[(1 − p) tr(KSKS) + p mean_i tr(K_i S K_i S)] / tr(K S²)`, as the top eigenvalue of the
 * PSD operator `T` applied in matrix form inside Lanczos (two GEMMs per application on the
 * factor route, `O(m c k²)`).
 *
 * @module
 */
import {
  congruence,
  dot,
  gemm,
  leadingColumns,
  matmul,
  symEig,
  transpose,
} from "./_linalg.ts";
import type { Curvature } from "./curvature.ts";
import { SingleBlocks } from "./single_blocks.ts";
import { SingleFactors } from "./single_factors.ts";
import { SpareBuffer } from "./_spare_buffer.ts";
import { Rng } from "./_rng.ts";

/**
 * Arithmetic of the operator's GEMMs: `single` runs them in float32 (single_factors.ts,
 * single_blocks.ts: about twice as fast) when a native sgemm is loaded; float64 otherwise.
 */
export type Precision = "double" | "single";

/**
 * Solves asked for at least this relative tolerance run in `single` by default: float32 moves a
 * value by about 1e-7 relative (measured: _blas_test.ts), a thousandth of this. Live rounds ask
 * for 1e-4 … 1e-2 (their inner solves and curve points); bootstrap resamples ask for `single`
 * themselves (bootstrap.ts), a checkpoint's too; `estimate()`'s point values and every exact
 * reference ask for less and stay in float64.
 */
export const SINGLE_PRECISION_MIN_TOL = 1e-4;

/** The reduced operator's per-sample term `Y ↦ Σ_i coef_i K_i Y K_i` (either precision). */
interface Sandwich {
  sandwich(y: Float64Array, coef: ArrayLike<number>, out?: Float64Array): Float64Array;
}

/** Options of {@linkcode reducedSolve}. */
export interface ReducedSolveOptions {
  /** Directions with `κ_a ≤ dropTol · κ_max` are treated as null space (default 1e-10). */
  dropTol?: number;
  /** Relative eigenvalue error to stop at, estimated from the Lanczos residual (default 1e-12). */
  tol?: number;
  /** Operator applications at most (default: the dimension of the symmetric matrices, capped at 2000). */
  maxIter?: number;
  /** Per-sample weights (bootstrap multiplicities); default all 1. */
  weights?: Float64Array | number[];
  /** Starting `S` (`k × k`, basis coordinates), e.g. a previous maximiser; random when absent. */
  start?: Float64Array;
  /** Seed of the random start (default 1). */
  seed?: number;
  /** Adds the operator applications of this solve. */
  counter?: ApplicationCounter;
  /**
   * Also require the Ritz value to have moved by at most `tol` in the last step (default true:
   * guards the gap estimate early on; a warm start close to the answer can skip it).
   */
  settle?: boolean;
  /**
   * Arithmetic of the operator's GEMMs (default: `single` when `tol` is at least
   * {@linkcode SINGLE_PRECISION_MIN_TOL}, else `double`).
   */
  precision?: Precision;
  /** Applications before any stop (default 1). */
  minIter?: number;
  /**
   * Eigenpairs of `T` in this basis to project out (maximisers `S` of earlier solves with their
   * values): the solve then returns the next pair, e.g. the second branch a block Davidson tracks.
   */
  deflate?: { S: Float64Array; lambdaGen: number }[];
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

/** Counts applications of the reduced operator across the solves of a round. */
export interface ApplicationCounter {
  applications: number;
}

/**
 * The part of the reduced problem that does not depend on `p`: the eigenbasis of `K` past its
 * null space and the curvature rotated into it. Built once, it serves every `p` (the `η*(B)`
 * curve) and the floors' linear system.
 */
export class ReducedBasis {
  /** Weights of {@linkcode curv}'s samples (undefined: all 1). */
  readonly weights?: ArrayLike<number>;
  /** Kept directions: eigenvalues of `K` above `dropTol · κ_max`. */
  readonly r: number;
  /** `k × r`, the kept unit eigenvectors of `K` as columns. */
  readonly Qr: Float64Array;
  /** The kept eigenvalues of `K`, descending. */
  readonly kappa: Float64Array;
  /** Smallest and largest eigenvalue of `K`. */
  readonly minCurvature: number;
  readonly maxCurvature: number;
  /** The curvature it was built from, with the samples of weight 0. */
  readonly #source: Curvature;
  /** Indices in `#source` of the samples of positive weight (undefined: all of them). */
  readonly #kept?: number[];
  #curv?: Curvature;
  #rotated?: Curvature;
  #single?: SingleFactors | SingleBlocks | null;

  /**
   * @param curv per-sample curvature in the basis
   * @param weights per-sample weights (bootstrap multiplicities); default all 1
   * @param dropTol directions with `κ_a ≤ dropTol · κ_max` are treated as null space
   * @throws {RangeError} on weights of the wrong length
   */
  constructor(curv: Curvature, weights?: ArrayLike<number>, dropTol = 1e-10) {
    const m = curv.m;
    if (weights && weights.length !== m) throw new RangeError(`Expected ${m} weights, got ${weights.length}`);
    // the mean before dropping samples: the full curvature caches what a weighted mean needs
    const K = curv.mean(weights);
    if (weights && Array.prototype.some.call(weights, (w: number) => w === 0)) {
      // samples of weight 0 (a bootstrap resample leaves out about a third) add nothing: drop
      // them, so the operator's GEMMs run over the rows that count
      const idx: number[] = [];
      for (let i = 0; i < m; i++) if (weights[i] !== 0) idx.push(i);
      if (idx.length > 0) {
        this.#kept = idx;
        weights = idx.map((i) => weights![i]);
      }
    }
    this.#source = curv;
    this.weights = weights;
    const k = curv.k;
    const { values, vectors } = symEig(K, k);
    this.maxCurvature = k > 0 ? values[0] : 0;
    this.minCurvature = k > 0 ? values[k - 1] : 0;
    let r = 0;
    while (r < k && this.maxCurvature > 0 && values[r] > dropTol * this.maxCurvature) r++;
    this.r = r;
    this.Qr = leadingColumns(vectors, k, k, r);
    this.kappa = values.slice(0, r);
  }

  /**
   * The curvature it was built from, samples of weight 0 dropped (copied on first use: a
   * float32 operator gathers its rows straight from the source).
   */
  get curv(): Curvature {
    return this.#curv ??= this.#kept ? this.#source.samples(this.#kept) : this.#source;
  }

  /** Samples of positive weight. */
  get m(): number {
    return this.#kept?.length ?? this.#source.m;
  }

  /** Basis columns. */
  get k(): number {
    return this.#source.k;
  }

  /** The curvature in the kept eigenbasis (`A_i Q_r` or `Q_rᵀ K_i Q_r`), computed once. */
  get rotated(): Curvature {
    return this.#rotated ??= this.curv.rotate(this.Qr, this.r);
  }

  /**
   * The operator on {@linkcode rotated} in `precision`: float32 factors or blocks rotated in
   * float32 (the float64 rotation is then never made) when possible, else the float64 curvature.
   */
  operator(precision: Precision = "double"): Sandwich {
    if (precision === "single" && this.#single === undefined) {
      this.#single = SingleFactors.rotated(this.#source, this.Qr, this.r, this.#kept) ??
        SingleBlocks.rotated(this.#source, this.Qr, this.r, this.#kept) ?? null;
    }
    return (precision === "single" && this.#single) || this.rotated;
  }

  /**
   * Gives its float32 factors' storage back for the next basis of this thread (a basis made for
   * one solve, as a bootstrap resample's, then allocates nothing of its size); the float32
   * operator is made again if asked for afterwards.
   */
  release(): void {
    this.#single?.release();
    this.#single = undefined;
  }

  /** `coef_i = scale · w_i / Σ w`, the per-sample coefficients of the mean. */
  coefficients(scale: number): Float64Array {
    const { m } = this, w = this.weights;
    let wsum = 0;
    for (let i = 0; i < m; i++) wsum += w ? w[i] : 1;
    const coef = new Float64Array(m);
    for (let i = 0; i < m; i++) coef[i] = (scale * (w ? w[i] : 1)) / wsum;
    return coef;
  }
}

/**
 * Solve the reduced problem: top eigenpair of `T` (theory §4).
 * @param problem per-sample curvature in the basis (blocks or factors), or its
 *   {@linkcode ReducedBasis} when several `p` share it (then `weights` and `dropTol` are its own)
 * @param p batch-noise weight in [0, 1]
 * @returns the reduced `λ_gen`, its PSD maximiser and diagnostics
 * @throws {RangeError} on bad weights, start or `p` outside [0, 1]
 * @example
 * ```ts
 * import { reducedSolve } from "./reduced_solve.ts";
 * import { Curvature } from "./curvature.ts";
 * // theory §7, three samples in d = 2, B = 1
 * const b = new Float64Array([2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
 * const { lambdaGen } = reducedSolve(Curvature.dense(b, 3, 2), 1);
 * if (Math.abs(lambdaGen - 1.862790641860) > 1e-9) throw new Error(String(lambdaGen));
 * ```
 */
export function reducedSolve(
  problem: Curvature | ReducedBasis,
  p: number,
  options: ReducedSolveOptions = {},
): ReducedSolution {
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`Expected p in [0, 1], got ${p}`);
  }
  if (problem instanceof ReducedBasis && (options.weights || options.dropTol !== undefined)) {
    throw new RangeError("Expected no weights or dropTol beside a ReducedBasis (it has its own)");
  }
  const basis = problem instanceof ReducedBasis ? problem : new ReducedBasis(problem, options.weights, options.dropTol);
  const k = basis.k;
  if (options.start && options.start.length !== k * k) {
    throw new RangeError(
      `Expected start of ${k}×${k}, got ${options.start.length} entries`,
    );
  }
  const tol = options.tol ?? 1e-12;
  const { r, Qr, kappa, minCurvature: kmin, maxCurvature: kmax } = basis;
  if (r === 0) {
    return {
      lambdaGen: 0,
      S: new Float64Array(k * k),
      converged: false,
      residual: Infinity,
      minCurvature: kmin,
      maxCurvature: kmax,
      droppedDirections: k - r,
      iterations: 0,
    };
  }
  const precision = options.precision ?? (tol >= SINGLE_PRECISION_MIN_TOL ? "single" : "double");
  const rot = p > 0 ? basis.operator(precision) : undefined;
  const coef = basis.coefficients(p);
  const W = new Float64Array(r * r);
  for (let a = 0; a < r; a++) {
    for (let b = 0; b < r; b++) {
      W[a * r + b] = 1 / Math.sqrt((kappa[a] + kappa[b]) / 2);
    }
  }
  const y = new Float64Array(r * r);
  const acc = new Float64Array(r * r);
  // T(X) = W ∘ [(1 − p) κ (W ∘ X) κ + p mean_i K_i' (W ∘ X) K_i'], less the deflated pairs
  const deflated = (options.deflate ?? []).map(({ S, lambdaGen }) => ({
    x: toScaledCoordinates(S, Qr, W, k, r),
    lambdaGen,
  }));
  const apply = (x: Float64Array): Float64Array => {
    const out = applyT(x);
    for (const d of deflated) {
      const c = d.lambdaGen * dot(d.x, x);
      for (let t = 0; t < r * r; t++) out[t] -= c * d.x[t];
    }
    return out;
  };
  const projectOut = (x: Float64Array): void => {
    for (const d of deflated) {
      const c = dot(d.x, x);
      for (let t = 0; t < r * r; t++) x[t] -= c * d.x[t];
    }
  };
  // one output buffer for every application: lanczosTop consumes each before the next
  const out = new Float64Array(r * r);
  const applyT = (x: Float64Array): Float64Array => {
    for (let t = 0; t < r * r; t++) y[t] = W[t] * x[t];
    if (rot) rot.sandwich(y, coef, acc);
    for (let a = 0; a < r; a++) {
      for (let b = 0; b < r; b++) {
        const t = a * r + b;
        out[t] = W[t] * ((1 - p) * kappa[a] * y[t] * kappa[b] + (rot ? acc[t] : 0));
      }
    }
    return out;
  };

  // starting vector in the rotated, W-scaled coordinates
  let x0 = options.start ? toScaledCoordinates(options.start, Qr, W, k, r) : new Float64Array(r * r);
  const startNorm = dot(x0, x0);
  projectOut(x0);
  if (!(dot(x0, x0) > 1e-16 * startNorm)) {
    const rng = new Rng(options.seed ?? 1);
    x0 = new Float64Array(r * r);
    for (let a = 0; a < r; a++) {
      for (let b = a; b < r; b++) {
        x0[a * r + b] = x0[b * r + a] = rng.normal();
      }
    }
    projectOut(x0);
  }
  const dim = (r * (r + 1)) / 2;
  const maxIter = Math.max(
    1,
    Math.min(options.maxIter ?? Math.min(dim, 2000), dim),
  );
  const { theta, x, residual, converged, iterations } = lanczosTop(
    apply,
    x0,
    maxIter,
    tol,
    options.settle ?? true,
    options.minIter ?? 1,
  );
  if (!(problem instanceof ReducedBasis)) basis.release(); // made for this solve only
  if (options.counter) options.counter.applications += iterations;
  // the maximiser on first use (a bootstrap resample needs only the value)
  let S: Float64Array | undefined;
  return {
    lambdaGen: theta,
    get S() {
      return S ??= toBasisCoordinates(x, Qr, W, k, r);
    },
    converged,
    residual,
    minCurvature: kmin,
    maxCurvature: kmax,
    droppedDirections: k - r,
    iterations,
  };
}

/** The solve's unit vector `X` as the maximiser `S = Qr (W ∘ X) Qrᵀ`, `‖S‖_F = 1`, `tr S ≥ 0`. */
function toBasisCoordinates(x: Float64Array, Qr: Float64Array, W: Float64Array, k: number, r: number): Float64Array {
  const sr = new Float64Array(r * r);
  for (let t = 0; t < r * r; t++) sr[t] = W[t] * x[t];
  const S = matmul(matmul(Qr, sr, k, r, r), transpose(Qr, k, r), k, r, k);
  let tr = 0;
  for (let a = 0; a < k; a++) tr += S[a * k + a];
  const nrm = Math.sqrt(dot(S, S)) * (tr < 0 ? -1 : 1);
  for (let t = 0; t < k * k; t++) S[t] /= nrm;
  return S;
}

/**
 * A symmetric `S` (`k × k`, basis coordinates: a start or a deflated maximiser) as a unit vector
 * of the solve's coordinates `(Qrᵀ S Qr) / W` (zero stays zero).
 */
function toScaledCoordinates(S: Float64Array, Qr: Float64Array, W: Float64Array, k: number, r: number): Float64Array {
  if (S.length !== k * k) throw new RangeError(`Expected S of ${k}×${k}, got ${S.length} entries`);
  const x = congruence(S, Qr, k, r);
  for (let t = 0; t < r * r; t++) x[t] /= W[t];
  return scaled(x, 1 / Math.sqrt(Math.max(dot(x, x), 1e-300)));
}

/**
 * Top eigenpair of a symmetric PSD operator by Lanczos with full reorthogonalisation,
 * restarted from the Ritz vector when the Krylov basis reaches its memory cap. Stops when the
 * estimated eigenvalue error `min(ρ, ρ²/gap)` is at most `tol · θ` and the Ritz value moved by
 * at most that in the last step, with `ρ = |β y_last|` the residual norm and `gap` the distance
 * to the second Ritz value, at most `θ` (the error of a Ritz value is quadratic in the residual
 * for an isolated eigenvalue).
 * @param apply the operator; it may return the same buffer every call (each result is used up
 *   before the next call), so a solve's steps allocate no vectors of the problem's size
 * @returns Ritz value, unit Ritz vector, relative residual `ρ/θ`, applications used
 */
export function lanczosTop(
  apply: (x: Float64Array) => Float64Array,
  start: Float64Array,
  maxIter: number,
  tol: number,
  settle = true,
  minIter = 1,
): {
  theta: number;
  x: Float64Array;
  residual: number;
  converged: boolean;
  iterations: number;
} {
  const n = start.length;
  // Krylov vectors kept at most ~160 MB
  const cap = Math.max(8, Math.min(80, Math.floor(2e7 / Math.max(n, 1))));
  const krylov = new KrylovRows(n, cap);
  try {
    return lanczosLoop(apply, start, maxIter, tol, settle, minIter, krylov);
  } finally {
    krylov.release();
  }
}

/** {@linkcode lanczosTop}'s iteration, on the Krylov storage it was given. */
function lanczosLoop(
  apply: (x: Float64Array) => Float64Array,
  start: Float64Array,
  maxIter: number,
  tol: number,
  settle: boolean,
  minIter: number,
  krylov: KrylovRows,
): { theta: number; x: Float64Array; residual: number; converged: boolean; iterations: number } {
  const n = start.length, cap = krylov.cap;
  let x = scaled(start, 1 / Math.sqrt(dot(start, start)));
  let theta = 0, residual = Infinity, converged = false, iter = 0;
  const next = new Float64Array(n); // the next Lanczos vector (krylov.push copies it)
  while (iter < maxIter && !converged) {
    krylov.clear();
    const alpha: number[] = [];
    const beta: number[] = [];
    let q = x, y = new Float64Array([1]), scale = 0, prevTheta = NaN;
    for (let j = 0; j < cap && iter < maxIter; j++) {
      krylov.push(q);
      const w = apply(q);
      iter++;
      const a = dot(q, w);
      alpha.push(a);
      krylov.orthogonalise(w);
      krylov.orthogonalise(w); // twice is enough (classical Gram–Schmidt)
      const b = Math.sqrt(dot(w, w));
      scale = Math.max(scale, Math.abs(a), b);
      const jj = krylov.count;
      const tmat = new Float64Array(jj * jj);
      for (let s = 0; s < jj; s++) {
        tmat[s * jj + s] = alpha[s];
        if (s + 1 < jj) tmat[s * jj + s + 1] = tmat[(s + 1) * jj + s] = beta[s];
      }
      const e = symEig(tmat, jj);
      theta = e.values[0];
      y = new Float64Array(jj);
      for (let s = 0; s < jj; s++) y[s] = e.vectors[s * jj];
      const rho = Math.abs(b * y[jj - 1]);
      const th = Math.max(Math.abs(theta), 1e-300);
      residual = rho / th;
      const invariant = b <= 1e-13 * scale || jj === n;
      // a PSD operator's gap is at most θ; the Ritz value must also have settled
      const gap = jj > 1 ? Math.min(theta - e.values[1], th) : 0;
      const err = gap > rho ? Math.min(rho, (rho * rho) / gap) : rho;
      const settled = !settle || Math.abs(theta - prevTheta) <= tol * th;
      prevTheta = theta;
      if (invariant || (err <= tol * th && settled && iter >= minIter)) {
        if (invariant) residual = b <= 1e-13 * scale ? 0 : residual;
        converged = true;
        break;
      }
      beta.push(b);
      const inv = 1 / b;
      for (let t = 0; t < n; t++) next[t] = w[t] * inv;
      q = next;
    }
    const nx = krylov.combine(y);
    x = scaled(nx, 1 / Math.sqrt(dot(nx, nx)));
  }
  return { theta, x, residual, converged, iterations: iter };
}

/** Krylov storage a thread keeps between solves, up to this many entries (8 MB). */
const SPARE_KRYLOV_MAX = 1 << 20;
const spareKrylov = new SpareBuffer<Float64Array>((n) => new Float64Array(n));

/**
 * Lanczos vectors stored as the rows of one growing matrix, so that reorthogonalisation and
 * the Ritz vector are two GEMMs each (BLAS), not a loop of dot products. Storage of up to
 * {@linkcode SPARE_KRYLOV_MAX} entries is the thread's spare, taken whole at the restart length
 * ({@linkcode release} gives it back); larger storage grows as needed.
 */
class KrylovRows {
  #rows: Float64Array;
  #coef = new Float64Array(0);
  readonly #spare: boolean;
  count = 0;
  /** @param cap rows at most (the restart length): storage never grows past it */
  constructor(readonly n: number, readonly cap: number) {
    this.#spare = cap * n <= SPARE_KRYLOV_MAX;
    this.#rows = this.#spare ? spareKrylov.take(cap * n) : new Float64Array(0);
  }

  /** Gives spare storage back (its rows are then no longer this one's). */
  release(): void {
    if (this.#spare) spareKrylov.give(this.#rows);
  }

  clear(): void {
    this.count = 0;
  }

  push(q: Float64Array): void {
    const n = this.n;
    if ((this.count + 1) * n > this.#rows.length) {
      const grown = new Float64Array(Math.min(this.cap, Math.max(8, 2 * this.count)) * n);
      grown.set(this.#rows.subarray(0, this.count * n));
      this.#rows = grown;
    }
    this.#rows.set(q, this.count * n);
    this.count++;
  }

  /** `w ← w − Qᵀ(Q w)`: removes the rows' components from `w`. */
  orthogonalise(w: Float64Array): void {
    const { n, count } = this;
    if (this.#coef.length < count) this.#coef = new Float64Array(Math.max(8, 2 * count));
    const Q = this.#rows.subarray(0, count * n), c = this.#coef.subarray(0, count);
    gemm(false, true, 1, count, n, w, Q, c);
    gemm(false, false, 1, n, count, c, Q, w, -1, 1);
  }

  /** `Σ_s y_s q_s`. */
  combine(y: Float64Array): Float64Array {
    const { n, count } = this;
    return gemm(false, false, 1, n, count, y, this.#rows.subarray(0, count * n), new Float64Array(n));
  }
}

function scaled(x: Float64Array, s: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let t = 0; t < x.length; t++) out[t] = x[t] * s;
  return out;
}
