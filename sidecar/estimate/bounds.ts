/**
 * Cheap lower bounds on `λ_gen` (theory §3): each is the quotient `R(Σ)` at a particular `Σ`,
 * so each is an upper bound on `η*` that users can compare with the exact value.
 *
 * @module
 */
import type { HutchinsonResult } from "./oracle.ts";
import { dot, matmul, symEig } from "./_linalg.ts";
import type { Curvature } from "./curvature.ts";

/** `uᵀ A u` for `A` `k × k`. */
function quad(a: Float64Array, u: Float64Array, k: number): number {
  return dot(u, matmul(a, u, k, k, 1));
}

/**
 * Top-eigenvector bound `λ_max + p Var_i(vᵀ H_i v) / λ_max` (eq. 15), with `v = V y`.
 * @param curv per-sample curvature in the basis
 * @param y unit vector in basis coordinates (e.g. the top eigenvector of `K`)
 * @returns `R(v vᵀ)`; 0 when `vᵀHv ≤ 0`
 */
export function topEigvecBound(
  curv: Curvature,
  p: number,
  y: Float64Array,
): number {
  const m = curv.m;
  const n2 = dot(y, y);
  const qs = Array.from(curv.quad(y), (x) => x / n2);
  const mean = qs.reduce((s, x) => s + x, 0) / m;
  if (!(mean > 0)) return 0;
  const v = qs.reduce((s, x) => s + (x - mean) ** 2, 0) / m;
  return mean + (p * v) / mean;
}

/**
 * Identity bound `[(1 − p)‖H‖_F² + p mean_i ‖H_i‖_F²] / tr(H)` (eq. 16) from Hutchinson probes.
 * The oracle reports per-sample `‖H_i z‖²` but not `‖H z‖²`, so `‖H‖_F²` is taken as `‖K‖_F²`
 * in the subspace (never larger; exact when `V` spans range(H)).
 * @param hutch the oracle's Hutchinson result, `m × r`
 * @param kNormF2 `‖K‖_F²` for the current basis
 * @returns the estimate and its standard error over the `r` probes (delta method)
 */
export function identityBound(
  hutch: HutchinsonResult,
  m: number,
  r: number,
  p: number,
  kNormF2: number,
): { value: number; se: number } | undefined {
  if (hutch.quad.length !== m * r || hutch.sqNorms.length !== m * r) {
    throw new RangeError(
      `Expected Hutchinson results of ${m}×${r}, got ${hutch.quad.length}`,
    );
  }
  if (r < 1) return undefined;
  const a = new Float64Array(r), b = new Float64Array(r);
  for (let j = 0; j < r; j++) {
    let sq = 0, qd = 0;
    for (let i = 0; i < m; i++) {
      sq += hutch.sqNorms[i * r + j] / m;
      qd += hutch.quad[i * r + j] / m;
    }
    a[j] = (1 - p) * kNormF2 + p * sq;
    b[j] = qd;
  }
  const am = a.reduce((s, x) => s + x, 0) / r;
  const bm = b.reduce((s, x) => s + x, 0) / r;
  if (!(bm > 0)) return undefined;
  const value = am / bm;
  let v = 0;
  for (let j = 0; j < r; j++) v += (a[j] - value * b[j]) ** 2;
  const se = r > 1 ? Math.sqrt(v / (r - 1) / r) / bm : 0;
  return { value, se };
}

/** Options of {@linkcode rankOneBound}. */
export interface RankOneOptions {
  /** Ascent steps per start (default 200). */
  maxIter?: number;
  /** Starts: the top `starts` eigenvectors of `K` (default 4). */
  starts?: number;
  /** Extra starting vectors (basis coordinates), e.g. the top eigenvector of `S*`. */
  extra?: Float64Array[];
}

/**
 * Optimised rank-one bound (eq. 25): `max_{‖u‖=1} [(1 − p)(uᵀKu)² + p mean_i (uᵀK_iu)²] / uᵀKu`
 * over `u` in the subspace, by Riemannian gradient ascent with backtracking from several starts.
 * @returns the best value found (a valid lower bound on `λ_gen` whatever the ascent reaches)
 */
export function rankOneBound(
  curv: Curvature,
  p: number,
  options: RankOneOptions = {},
): number {
  const { m, k } = curv;
  const K = curv.mean();
  const f = (u: Float64Array): number => {
    const d = quad(K, u, k);
    if (!(d > 0)) return 0;
    let s = 0;
    for (const q of curv.quad(u)) s += q * q;
    return ((1 - p) * d * d + (p * s) / m) / d;
  };
  const grad = (u: Float64Array): Float64Array => {
    const ku = matmul(K, u, k, k, 1);
    const d = dot(u, ku);
    const qs = curv.quad(u);
    let s = 0;
    for (const q of qs) s += q * q;
    // Σ_i (4p/m) q_i K_i u
    const g = curv.weightedApply(u, qs.map((q) => ((4 * p) / m) * q));
    const num = (1 - p) * d * d + (p * s) / m;
    for (let t = 0; t < k; t++) {
      g[t] = (g[t] + 4 * (1 - p) * d * ku[t]) / d - (num / (d * d)) * 2 * ku[t];
    }
    const gu = dot(g, u);
    for (let t = 0; t < k; t++) g[t] -= gu * u[t];
    return g;
  };
  const e = symEig(K, k);
  const starts: Float64Array[] = [];
  for (let j = 0; j < Math.min(options.starts ?? 4, k); j++) {
    if (e.values[j] > 0) {
      starts.push(
        Float64Array.from({ length: k }, (_, a) => e.vectors[a * k + j]),
      );
    }
  }
  for (const x of options.extra ?? []) {
    if (x.length === k && dot(x, x) > 0) starts.push(x);
  }
  let best = 0;
  for (const s0 of starts) {
    let u = normalised(s0);
    let fu = f(u);
    let step = 1 / Math.max(e.values[0], 1e-300);
    for (let it = 0; it < (options.maxIter ?? 200); it++) {
      const g = grad(u);
      const gn = dot(g, g);
      if (gn <= 1e-24 * fu * fu) break;
      let improved = false;
      for (let ls = 0; ls < 30; ls++) {
        const c = normalised(u.map((x, t) => x + step * g[t]));
        const fc = f(c);
        if (fc >= fu + 1e-4 * step * gn) {
          u = c;
          fu = fc;
          step *= 2;
          improved = true;
          break;
        }
        step /= 2;
      }
      if (!improved) break;
    }
    best = Math.max(best, fu);
  }
  return best;
}

function normalised(x: Float64Array): Float64Array {
  const n = Math.sqrt(dot(x, x));
  return x.map((v) => v / n);
}
