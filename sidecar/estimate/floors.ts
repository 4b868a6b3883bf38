/**
 * Where the iterates settle (theory §5): the leading-order loss floor `(η p / 4) tr(Σ_g)` from
 * per-sample gradient norms, and the finite-`η` floor solved exactly in the subspace from
 * `Vᵀ g_i` and `K_i`: `(K ⊕ K − η D_V) vec S = η p vec Σ_g,V` (by conjugate gradients in matrix
 * form, the operator being positive definite on range(K) for `η < η*`), loss floor `½ tr(K S)`.
 *
 * The conjugate gradients are preconditioned by the operator's diagonal in `K`'s eigenbasis,
 * `κ_a + κ_b − η (1 − p) κ_a κ_b`: without it their count grows with `K`'s condition number
 * (about 100 steps at k = 50 on the main example's network, 4 with it).
 *
 * @module
 */
import type { GradStats } from "./oracle.ts";
import { congruence, dot } from "./_linalg.ts";
import type { Curvature } from "./curvature.ts";
import { ReducedBasis } from "./reduced_solve.ts";

/** Floors of {@linkcode lossFloors}; absent when not computable. */
export interface Floors {
  /** `½ tr(K S_∞)`, exact in the subspace (absent when `η ≥ η*`). */
  loss_floor?: number;
  /** `(η p / 4) tr(Σ_g)`. */
  loss_floor_leading?: number;
  /** `‖mean_i g_i‖`. */
  grad_norm?: number;
  /** `sqrt(tr(K² S_∞))`: the predicted gradient norm at the floor (absent when `η ≥ η*`). */
  grad_norm_floor?: number;
}

/**
 * Loss and gradient-norm floors at learning rate `eta`.
 * @param curv per-sample curvature in the basis
 * @param grads the oracle's gradient statistics for the same basis
 * @param etaStar the threshold for this `p` (the exact floor is omitted at or above it)
 */
export function lossFloors(
  curv: Curvature,
  p: number,
  eta: number,
  etaStar: number,
  grads: GradStats,
): Floors {
  const { m, k } = curv;
  if (grads.proj.length !== m * k) {
    throw new RangeError(
      `Expected gradient projections of ${m}×${k}, got ${grads.proj.length}`,
    );
  }
  if (!(eta >= 0)) {
    throw new RangeError(`Expected a non-negative learning rate, got ${eta}`);
  }
  const out: Floors = {};
  const meanSq = grads.sqNorms.reduce((s, x) => s + x, 0) / m;
  const trSigma = Math.max(0, meanSq - grads.meanSqNorm);
  out.loss_floor_leading = (eta * p / 4) * trSigma;
  out.grad_norm = Math.sqrt(Math.max(0, grads.meanSqNorm));
  if (!(eta < etaStar) || k === 0) return out;
  // Σ_g in the subspace, rotated onto range(K)
  const basis = new ReducedBasis(curv);
  const { r, Qr: Q, kappa } = basis;
  if (r === 0) return out;
  const gbar = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    for (let a = 0; a < k; a++) gbar[a] += grads.proj[i * k + a] / m;
  }
  const sig = new Float64Array(k * k);
  for (let i = 0; i < m; i++) {
    for (let a = 0; a < k; a++) {
      const da = grads.proj[i * k + a] - gbar[a];
      for (let b = 0; b < k; b++) {
        sig[a * k + b] += (da * (grads.proj[i * k + b] - gbar[b])) / m;
      }
    }
  }
  const rhs = congruence(sig, Q, k, r).map((x) => eta * p * x);
  const rot = basis.rotated;
  const coef = basis.coefficients(eta * p);
  // the operator's diagonal in K's eigenbasis, κ_a + κ_b − η (1 − p) κ_a κ_b, positive below η*
  const diag = new Float64Array(r * r);
  for (let a = 0; a < r; a++) {
    for (let b = 0; b < r; b++) diag[a * r + b] = kappa[a] + kappa[b] - eta * (1 - p) * kappa[a] * kappa[b];
  }
  const z = new Float64Array(r * r);
  const op = (s: Float64Array): Float64Array => {
    const y = new Float64Array(r * r);
    if (p > 0) rot.sandwich(s, coef, z);
    for (let t = 0; t < r * r; t++) y[t] = diag[t] * s[t] - (p > 0 ? z[t] : 0);
    return y;
  };
  // near η* the system is ill-conditioned: a 1e-8 relative residual is plenty for a floor,
  // and the iteration cap keeps a round's wall time bounded (each step costs O(m c r²))
  const s = diag.every((v) => v > 0) ? conjugateGradient(op, rhs, diag, 1e-8, Math.min(10 * r * r + 50, 400)) : undefined;
  if (!s) return out;
  let trKS = 0, trK2S = 0;
  for (let a = 0; a < r; a++) {
    trKS += kappa[a] * s[a * r + a];
    trK2S += kappa[a] * kappa[a] * s[a * r + a];
  }
  out.loss_floor = 0.5 * trKS;
  out.grad_norm_floor = Math.sqrt(Math.max(0, trK2S));
  return out;
}

/**
 * Conjugate gradients for a symmetric positive definite operator, preconditioned by a positive
 * diagonal; undefined if it breaks down.
 */
function conjugateGradient(
  op: (x: Float64Array) => Float64Array,
  b: Float64Array,
  diag: Float64Array,
  tol: number,
  maxIter: number,
): Float64Array | undefined {
  const x = new Float64Array(b.length);
  const res = Float64Array.from(b);
  const z = res.map((v, t) => v / diag[t]);
  const dir = Float64Array.from(z);
  let rz = dot(res, z);
  const bb = dot(b, b);
  if (bb === 0) return x;
  for (let it = 0; it < maxIter && dot(res, res) > tol * tol * bb; it++) {
    const ad = op(dir);
    const dAd = dot(dir, ad);
    if (!(dAd > 0 && rz > 0)) return undefined;
    const alpha = rz / dAd;
    for (let t = 0; t < x.length; t++) {
      x[t] += alpha * dir[t];
      res[t] -= alpha * ad[t];
      z[t] = res[t] / diag[t];
    }
    const rz2 = dot(res, z);
    const beta = rz2 / rz;
    rz = rz2;
    for (let t = 0; t < x.length; t++) dir[t] = z[t] + beta * dir[t];
  }
  return x;
}
