/**
 * The `β → 1` limit of heavy-ball `λ_gen(β)` (docs/momentum.md §3): the commutator penalty forces
 * `Σ*` to commute with `H`, and with distinct eigenvalues `(1 − β) λ_gen(β) → λ_∞`,
 * `λ_∞ = max_s p Σ_ab s_a s_b mean_i (v_aᵀ(H_i − H)v_b)² / Σ_a λ_a s_a²` (a small symmetric
 * eigenproblem in `H`'s eigenbasis, here `K`'s). So `η* ≈ 2(1 − β)/(s λ_∞)` near `β = 1`: a
 * starting guess and a check for large-`β` solves, which converge slowly in a subspace.
 *
 * @module
 */
import { kEigenbasis } from "./_k_eigenbasis.ts";
import { symEig } from "./_linalg.ts";
import type { MomentumCurvature } from "./curvature.ts";

/**
 * `λ_∞` in the subspace, from `r` applications of `S ↦ mean_i K_iSK_i`.
 * @param curv the curvature (in a basis whose `K` has distinct eigenvalues for the limit to hold)
 * @param p batch-noise weight in [0, 1]
 * @param dropTol null-space threshold relative to `κ_max` (default 1e-10)
 * @returns `λ_∞` (0 when `p = 0` or `K` has no positive part)
 * @throws {RangeError} when `p` is outside [0, 1]
 * @example
 * ```ts
 * import { Curvature } from "./curvature.ts";
 * import { momentumLimit } from "./momentum_limit.ts";
 * // d = 1, h = (1, 3): λ_∞ = p Var(h)/λ = 1/2
 * const c = Curvature.dense(new Float64Array([1, 3]), 2, 1).withK2(new Float64Array([4]));
 * if (Math.abs(momentumLimit(c, 1) - 0.5) > 1e-12) throw new Error("λ∞");
 * ```
 */
export function momentumLimit(
  curv: MomentumCurvature,
  p: number,
  dropTol = 1e-10,
): number {
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`Expected p in [0, 1], got ${p}`);
  }
  const eb = kEigenbasis(curv, dropTol);
  const { r, kappa } = eb;
  if (r === 0 || p === 0) return 0;
  // M_ab = p (mean_i (K_i')_ab² − κ_a² δ_ab), with mean_i (K_i')_ab² = [mean_i K_i' E_bb K_i']_aa
  const M = new Float64Array(r * r);
  const E = new Float64Array(r * r);
  for (let b = 0; b < r; b++) {
    E[b * r + b] = 1;
    const N = eb.meanCongruence(E);
    E[b * r + b] = 0;
    for (let a = 0; a < r; a++) {
      M[a * r + b] = p * (N[a * r + a] - (a === b ? kappa[a] * kappa[a] : 0));
    }
  }
  const scaled = M.map((x, t) =>
    x / Math.sqrt(kappa[Math.floor(t / r)] * kappa[t % r])
  );
  return Math.max(symEig(scaled, r).values[0], 0);
}
