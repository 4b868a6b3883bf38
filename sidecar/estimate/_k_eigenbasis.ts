/**
 * The eigenbasis of `K` restricted to its positive part (the subspace's range of `H`), where
 * the momentum operators are diagonal up to the noise and commutator terms. Null directions
 * (`κ ≤ dropTol · κ_max`) see no curvature and are dropped (momentum.md §2).
 *
 * @module
 */
import { leadingColumns, matmul, symEig, transpose } from "./_linalg.ts";
import type { MomentumCurvature } from "./curvature.ts";

/** `K = Q diag(κ) Qᵀ` on its range, and the rotated curvature maps. */
export interface KEigenbasis {
  /** Kept directions. */
  r: number;
  /** Kept eigenvalues of `K`, descending. */
  kappa: Float64Array;
  /** Largest and smallest eigenvalue of `K` (negative: not at a minimum). */
  maxCurvature: number;
  minCurvature: number;
  /** Directions dropped as null space. */
  dropped: number;
  /** `Qᵀ K₂ Q`, `r × r`. */
  K2: Float64Array;
  /** `Qᵀ A Q` (`k × k` basis coordinates → `r × r`). */
  down(A: Float64Array): Float64Array;
  /** `Q Y Qᵀ` (`r × r` → `k × k`, basis coordinates). */
  lift(Y: Float64Array): Float64Array;
  /** `Qᵀ mean_i K_i (Q Y Qᵀ) K_i Q`. */
  meanCongruence(Y: Float64Array): Float64Array;
}

/**
 * Diagonalise `K` and drop its null space.
 * @param curv the curvature
 * @param dropTol relative threshold for null directions
 */
export function kEigenbasis(
  curv: MomentumCurvature,
  dropTol: number,
): KEigenbasis {
  const k = curv.k;
  const { values, vectors } = symEig(curv.K, k);
  const kmax = k > 0 ? values[0] : 0, kmin = k > 0 ? values[k - 1] : 0;
  let r = 0;
  while (r < k && kmax > 0 && values[r] > dropTol * kmax) r++;
  const Q = leadingColumns(vectors, k, k, r), Qt = transpose(Q, k, r);
  const down = (A: Float64Array) => matmul(matmul(Qt, A, r, k, k), Q, r, k, r);
  const lift = (Y: Float64Array) => matmul(matmul(Q, Y, k, r, r), Qt, k, r, k);
  return {
    r,
    kappa: values.slice(0, r),
    maxCurvature: kmax,
    minCurvature: kmin,
    dropped: k - r,
    K2: down(curv.K2),
    down,
    lift,
    meanCongruence: (Y) => down(curv.meanCongruence(lift(Y))),
  };
}
