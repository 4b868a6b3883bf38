/**
 * Heavy-ball generalized sharpness `λ_gen(β)` in a subspace (docs/momentum.md §3, §6): the
 * maximum over symmetric `S` of
 * `R_β(S) = [c₁ tr(KSKS) + c₂ mean_i tr(K_iSK_iS) − 2c₃ (tr(K₂S²) − tr(KSKS))] / tr(KS²)`,
 * a Rayleigh–Ritz lower bound on the exact `λ_gen(β)` (exact when `V` contains `range(Σ*)`).
 * Solved as the algebraically largest eigenvalue of the symmetric, indefinite
 * `T(X) = W ∘ B_V(W ∘ X)` in `K`'s eigenbasis, on symmetric `X` only. One solve per `(β, p)`;
 * covers SGD (`β = 0`), heavy ball with dampening and Adam without decoupled decay.
 *
 * @module
 */
import { kEigenbasis } from "./_k_eigenbasis.ts";
import { largestSymmetric } from "./_sym_lanczos.ts";
import { dot, matmul } from "./_linalg.ts";
import type { MomentumCurvature } from "./curvature.ts";
import { pencilCoefficients } from "./optimizer_model.ts";

/** Options of {@linkcode momentumPencilSolve}. */
export interface MomentumPencilOptions {
  /** Directions with `κ_a ≤ dropTol · κ_max` are null space (default 1e-10). */
  dropTol?: number;
  /** Lanczos residual tolerance, relative (default 1e-12). */
  tol?: number;
  /** Lanczos steps at most (default: `dim`, capped at 400). */
  maxIter?: number;
  /** Starting `S` (`k × k`, basis coordinates), e.g. a previous maximiser. */
  start?: Float64Array;
  /** Seed of the random start (default 1). */
  seed?: number;
}

/** Result of {@linkcode momentumPencilSolve}. */
export interface MomentumPencilSolution {
  /**
   * The reduced `λ_gen(β)`: `η*_normal = 2/λ_gen`. Can be ≤ 0 in a poor subspace at large `β`
   * (the commutator penalty); then the subspace says nothing about `η*`.
   */
  lambdaGen: number;
  /** Maximiser, `k × k` basis coordinates, `‖S‖_F = 1`, `tr S ≥ 0`. */
  S: Float64Array;
  converged: boolean;
  residual: number;
  iterations: number;
  maxCurvature: number;
  minCurvature: number;
  droppedDirections: number;
}

/**
 * Reduced heavy-ball `λ_gen(β)` by the symmetric pencil (momentum.md §6).
 * @param curv `K`, `K₂` and `S ↦ mean_i K_iSK_i`
 * @param beta momentum in [0, 1)
 * @param p batch-noise weight in [0, 1]
 * @returns `λ_gen(β)`, the maximiser and diagnostics (`lambdaGen` 0 when `K` has no positive part)
 * @throws {RangeError} when `β` or `p` is out of range
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * import { momentumPencilSolve } from "./momentum_pencil.ts";
 * // momentum.md §8: β = 0.9, B = 1 (p = 1)
 * const c = fullCurvature([[2, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]].map((h) => new Float64Array(h)));
 * const { lambdaGen } = momentumPencilSolve(c, 0.9, 1);
 * if (Math.abs(lambdaGen - 8.734068700236) > 1e-9) throw new Error(String(lambdaGen));
 * ```
 */
export function momentumPencilSolve(
  curv: MomentumCurvature,
  beta: number,
  p: number,
  options: MomentumPencilOptions = {},
): MomentumPencilSolution {
  const { c1, c2, c3 } = pencilCoefficients(beta, p);
  const k = curv.k;
  const eb = kEigenbasis(curv, options.dropTol ?? 1e-10);
  const { r, kappa, K2 } = eb;
  const base = {
    maxCurvature: eb.maxCurvature,
    minCurvature: eb.minCurvature,
    droppedDirections: eb.dropped,
  };
  if (r === 0) {
    return {
      lambdaGen: 0,
      S: new Float64Array(k * k),
      converged: false,
      residual: Infinity,
      iterations: 0,
      ...base,
    };
  }
  const W = new Float64Array(r * r);
  for (let a = 0; a < r; a++) {
    for (let b = 0; b < r; b++) {
      W[a * r + b] = 1 / Math.sqrt((kappa[a] + kappa[b]) / 2);
    }
  }
  // T(X) = W ∘ [c₁ κYκ + c₂ N(Y) − c₃ (K₂Y + YK₂ − 2κYκ)], Y = W ∘ X
  const apply = (X: Float64Array): Float64Array => {
    const Y = X.map((x, t) => W[t] * x);
    const N = c2 !== 0 ? eb.meanCongruence(Y) : new Float64Array(r * r);
    const K2Y = c3 !== 0 ? matmul(K2, Y, r, r, r) : new Float64Array(r * r);
    const out = new Float64Array(r * r);
    for (let a = 0; a < r; a++) {
      for (let b = 0; b < r; b++) {
        const t = a * r + b;
        const kyk = kappa[a] * Y[t] * kappa[b];
        const comm = K2Y[t] + K2Y[b * r + a] - 2 * kyk;
        out[t] = W[t] * (c1 * kyk + c2 * N[t] - c3 * comm);
      }
    }
    return out;
  };
  let start: Float64Array | undefined;
  if (options.start) {
    if (options.start.length !== k * k) {
      throw new RangeError(
        `Expected start of ${k}×${k}, got ${options.start.length} entries`,
      );
    }
    start = eb.down(options.start).map((s, t) => s / W[t]);
  }
  const sol = largestSymmetric(apply, r, {
    start,
    tol: options.tol,
    maxIter: options.maxIter,
    seed: options.seed,
  });
  const S = eb.lift(sol.X.map((x, t) => W[t] * x));
  let tr = 0;
  for (let a = 0; a < k; a++) tr += S[a * k + a];
  const nrm = Math.sqrt(dot(S, S)) * (tr < 0 ? -1 : 1);
  return {
    lambdaGen: sol.theta,
    S: S.map((x) => x / nrm),
    converged: sol.converged,
    residual: sol.residual,
    iterations: sol.iterations,
    ...base,
  };
}

/**
 * `R_β(S)` for one `S` (basis coordinates): the quotient whose maximum is `λ_gen(β)`; any `S` gives a
 * lower bound on the exact `λ_gen(β)` (the momentum bounds of §4 are such values).
 * @returns the quotient, or 0 when `tr(KS²) ≤ 0`
 * @throws {RangeError} on a bad shape, `β` or `p`
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * import { momentumQuotient } from "./momentum_pencil.ts";
 * // d = 1, h = (1, 3), β = 0.5, B = 1: 2/(1+β) + 1/(2(1−β)) = 7/3
 * const c = fullCurvature([new Float64Array([1]), new Float64Array([3])]);
 * if (Math.abs(momentumQuotient(c, 0.5, 1, new Float64Array([1])) - 7 / 3) > 1e-12) throw new Error("R");
 * ```
 */
export function momentumQuotient(
  curv: MomentumCurvature,
  beta: number,
  p: number,
  S: Float64Array,
): number {
  const k = curv.k;
  if (S.length !== k * k) {
    throw new RangeError(`Expected S of ${k}×${k}, got ${S.length} entries`);
  }
  const { c1, c2, c3 } = pencilCoefficients(beta, p);
  const Ss = S.map((_, t) => 0.5 * (S[t] + S[(t % k) * k + Math.floor(t / k)]));
  const KS = matmul(curv.K, Ss, k, k, k);
  const den = traceProduct(matmul(KS, Ss, k, k, k), null, k);
  if (!(den > 0)) return 0;
  const ksks = traceProduct(KS, KS, k);
  const noise = c2 !== 0 ? dot(curv.meanCongruence(Ss), Ss) : 0;
  const k2ss = traceProduct(matmul(curv.K2, Ss, k, k, k), Ss, k);
  return (c1 * ksks + c2 * noise - 2 * c3 * (k2ss - ksks)) / den;
}

/** `tr(A B)` (or `tr A` when `b` is null) for `k × k` matrices. */
function traceProduct(
  a: Float64Array,
  b: Float64Array | null,
  k: number,
): number {
  let s = 0;
  for (let i = 0; i < k; i++) {
    if (!b) s += a[i * k + i];
    else for (let j = 0; j < k; j++) s += a[i * k + j] * b[j * k + i];
  }
  return s;
}
