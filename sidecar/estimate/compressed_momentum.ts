/**
 * Thresholds without a linear pencil (Nesterov, AdamW's decoupled decay; docs/momentum.md §3, §6):
 * the compressed model (the optimizer on the blocks `K_i`, `K₂ → K²`) is mean-square stable at
 * `η` below its full-batch limit iff `(1/G(η)) ∘ X − 𝒩_V(X) ≻ 0` on symmetric `X`, in `K`'s
 * eigenbasis, with `G_ab = Σ_t h_t(κ_a) h_t(κ_b)` the Gram matrix of the per-mode impulse
 * responses (a `2 × 2` Stein equation per pair) and `𝒩_V(X) = p (mean_i K_iXK_i − KXK)`, i.e.
 * iff `ρ(G ∘ 𝒩_V) < 1`. Brent on `η` over `1 − ρ`, the top eigenvalue of a symmetric operator,
 * 8–16 reduced solves.
 *
 * Not one-sided in a subspace (momentum.md §6: it can exceed the exact value when `V` is not
 * `H`-invariant); exact for `V = I`.
 *
 * @module
 */
import { type KEigenbasis, kEigenbasis } from "./_k_eigenbasis.ts";
import { largestSymmetric } from "./_sym_lanczos.ts";
import { brentRoot } from "./_brent.ts";
import type { MomentumCurvature } from "./curvature.ts";
import {
  checkOptimizerModel,
  meanStableLimit,
  modeDynamics,
  type OptimizerModel,
} from "./optimizer_model.ts";

/** Options of {@linkcode compressedThreshold}. */
export interface CompressedOptions {
  /** Null-space threshold relative to `κ_max` (default 1e-10). */
  dropTol?: number;
  /** Relative tolerance on `η*` (default 1e-13). */
  xtol?: number;
  /** Lanczos tolerance per solve (default 1e-13). */
  tol?: number;
}

/** Result of {@linkcode compressedThreshold}. */
export interface CompressedThreshold {
  /** `η*` in the user's learning rate (0 when `K` has no positive part). */
  etaStar: number;
  /** Full-batch limit of the compressed model (mean dynamics of the top mode). */
  meanLimit: number;
  /** `η* = meanLimit`: the noise does not reach the top mode (e.g. `p = 0`). */
  meanLimited: boolean;
  /** Reduced solves spent. */
  solves: number;
  /** Brent and every Lanczos solve converged. */
  converged: boolean;
  /** Every `G_ab` seen was positive (observed for Nesterov, not proved: §3). */
  positiveGram: boolean;
}

/**
 * `G_ab = e₁ᵀ X e₁` where `X = m_a X m_bᵀ + f fᵀ` (the impulse-response Gram entry of §3).
 * @param model the optimizer
 * @param la curvature of mode a
 * @param lb curvature of mode b
 * @param eta the user's learning rate (below both modes' mean limits)
 * @example
 * ```ts
 * import { steinGram } from "./compressed_momentum.ts";
 * // plain SGD: G = η / (λa + λb − η λa λb)
 * const g = steinGram({ kind: "sgd" }, 1, 2, 0.1);
 * if (Math.abs(g - 0.1 / (3 - 0.2)) > 1e-15) throw new Error(String(g));
 * ```
 */
export function steinGram(
  model: OptimizerModel,
  la: number,
  lb: number,
  eta: number,
): number {
  const A = modeDynamics(model, la, eta), B = modeDynamics(model, lb, eta);
  const { f } = A;
  // (I − m_a ⊗ m_b) vec X = vec(f fᵀ), row-major vec
  const M = new Float64Array(16), rhs = new Float64Array(4);
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      const row = 2 * i + j;
      rhs[row] = f[i] * f[j];
      for (let k = 0; k < 2; k++) {
        for (let l = 0; l < 2; l++) {
          M[row * 4 + 2 * k + l] = (row === 2 * k + l ? 1 : 0) -
            A.m[2 * i + k] * B.m[2 * j + l];
        }
      }
    }
  }
  return solve4(M, rhs)[0];
}

/**
 * `1 − ρ(G(η) ∘ 𝒩_V)`, positive iff the compressed model is stable at `η` (below the mean limit).
 * `G ∘ 𝒩` is similar to the symmetric `√G ∘ 𝒩(√G ∘ ·)` when `G > 0`, and as a positive map its
 * spectral radius is its largest eigenvalue; this congruence of `(1/G) ∘ − 𝒩` (same inertia)
 * is well scaled, so Lanczos needs as few steps as for the pencil.
 * @returns the margin, the Perron vector (rotated coordinates), and whether `G > 0`
 */
function stabilityMargin(
  eb: KEigenbasis,
  model: OptimizerModel,
  p: number,
  eta: number,
  options: { tol?: number; start?: Float64Array } = {},
): {
  value: number;
  X: Float64Array;
  converged: boolean;
  positiveGram: boolean;
} {
  const { r, kappa } = eb;
  const rootG = new Float64Array(r * r);
  let positiveGram = true;
  for (let a = 0; a < r; a++) {
    for (let b = a; b < r; b++) {
      const g = steinGram(model, kappa[a], kappa[b], eta);
      if (!(g > 0)) positiveGram = false;
      rootG[a * r + b] = rootG[b * r + a] = Math.sqrt(Math.abs(g));
    }
  }
  const op = (X: Float64Array): Float64Array => {
    const Y = X.map((x, t) => rootG[t] * x);
    const N = p > 0 ? eb.meanCongruence(Y) : new Float64Array(r * r);
    return Y.map((y, t) => {
      const a = Math.floor(t / r), b = t % r;
      return rootG[t] * p * (N[t] - kappa[a] * y * kappa[b]);
    });
  };
  const sol = largestSymmetric(op, r, {
    tol: options.tol ?? 1e-13,
    start: options.start,
  });
  return {
    value: 1 - sol.theta,
    X: sol.X,
    converged: sol.converged,
    positiveGram,
  };
}

/**
 * `η*` of the compressed model by Brent on {@linkcode stabilityMargin} over `(0, meanLimit)`.
 * Works for every {@linkcode OptimizerModel}; for those with a linear pencil it agrees with the
 * pencil when `V` is `H`-invariant (the tests check this), which gives the pencil's faster
 * answer a second derivation.
 * @param curv the curvature (its `K₂` is not used: compressed model)
 * @param model the optimizer
 * @param p batch-noise weight in [0, 1]
 * @returns `η*` in the user's learning rate, and diagnostics
 * @throws {RangeError} on `p` outside [0, 1] or a bad model
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * import { compressedThreshold } from "./compressed_momentum.ts";
 * // momentum.md §8: Nesterov, β = 0.9, B = 2 of n = 3 (p = 0.25)
 * const c = fullCurvature([[2, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]].map((h) => new Float64Array(h)));
 * const { etaStar } = compressedThreshold(c, { kind: "nesterov", momentum: 0.9 }, 0.25);
 * if (Math.abs(etaStar - 0.952746661153) > 1e-9) throw new Error(String(etaStar));
 * ```
 */
export function compressedThreshold(
  curv: MomentumCurvature,
  model: OptimizerModel,
  p: number,
  options: CompressedOptions = {},
): CompressedThreshold {
  checkOptimizerModel(model);
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`Expected p in [0, 1], got ${p}`);
  }
  const eb = kEigenbasis(curv, options.dropTol ?? 1e-10);
  let meanLimit = Infinity;
  for (const l of eb.kappa) {
    meanLimit = Math.min(meanLimit, meanStableLimit(model, l));
  }
  const out = (etaStar: number, extra: Partial<CompressedThreshold>) => ({
    etaStar,
    meanLimit,
    meanLimited: false,
    solves: 0,
    converged: true,
    positiveGram: true,
    ...extra,
  });
  if (eb.r === 0 || !Number.isFinite(meanLimit)) {
    return out(0, { converged: false });
  }
  let solves = 0, converged = true, positiveGram = true;
  let last: Float64Array | undefined;
  const g = (eta: number): number => {
    const m = stabilityMargin(eb, model, p, eta, {
      tol: options.tol,
      start: last,
    });
    solves++;
    converged &&= m.converged;
    positiveGram &&= m.positiveGram;
    last = m.X;
    return m.value;
  };
  const hi = meanLimit * (1 - 1e-10);
  const ghi = g(hi);
  if (ghi >= 0) {
    return out(meanLimit, {
      meanLimited: true,
      solves,
      converged,
      positiveGram,
    });
  }
  let lo = meanLimit * 1e-3, glo = g(lo);
  for (let i = 0; i < 20 && !(glo > 0); i++) {
    lo /= 10;
    glo = g(lo);
  }
  if (!(glo > 0)) return out(0, { solves, converged: false, positiveGram });
  const root = brentRoot(g, lo, hi, {
    xtol: options.xtol ?? 1e-13,
    flo: glo,
    fhi: ghi,
  });
  return out(root.x, {
    solves,
    converged: converged && root.converged,
    positiveGram,
  });
}

/** Solve a 4 × 4 system by Gaussian elimination with partial pivoting. */
function solve4(M: Float64Array, rhs: Float64Array): Float64Array {
  const a = Float64Array.from(M), b = Float64Array.from(rhs);
  for (let c = 0; c < 4; c++) {
    let piv = c;
    for (let r = c + 1; r < 4; r++) {
      if (Math.abs(a[r * 4 + c]) > Math.abs(a[piv * 4 + c])) piv = r;
    }
    if (piv !== c) {
      for (let j = 0; j < 4; j++) {
        [a[c * 4 + j], a[piv * 4 + j]] = [a[piv * 4 + j], a[c * 4 + j]];
      }
      [b[c], b[piv]] = [b[piv], b[c]];
    }
    for (let r = c + 1; r < 4; r++) {
      const f = a[r * 4 + c] / a[c * 4 + c];
      for (let j = c; j < 4; j++) a[r * 4 + j] -= f * a[c * 4 + j];
      b[r] -= f * b[c];
    }
  }
  const x = new Float64Array(4);
  for (let r = 3; r >= 0; r--) {
    let s = b[r];
    for (let j = r + 1; j < 4; j++) s -= a[r * 4 + j] * x[j];
    x[r] = s / a[r * 4 + r];
  }
  return x;
}
