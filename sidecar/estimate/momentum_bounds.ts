/**
 * Cheap lower bounds on the heavy-ball `λ_gen(β)` (docs/momentum.md §4): each is the quotient
 * `R_β(Σ)` at one particular `Σ` in the subspace (top eigenvector, identity on the range, the best
 * rank one), so each is an upper bound `2/(s·bound)` on `η*`, like theory.md §3's bounds. Beside
 * them the two popular rescalings of the plain-SGD threshold, for users who want to see how far
 * off they are: `(1+β)·2/λ_gen` (an upper bound, exact only at full batch) and the "effective
 * learning rate" `(1−β)·2/λ_gen` (a lower bound in the exact problem).
 *
 * @module
 */
import { dot, matmul, symEig } from "./_linalg.ts";
import type { MomentumCurvature } from "./curvature.ts";
import { momentumQuotient } from "./momentum_pencil.ts";
import { pencilCoefficients } from "./optimizer_model.ts";

/** The three bounds of §4, as values of `λ_gen(β)` (0 when `K` has no positive curvature). */
export interface MomentumBounds {
  /** `Σ = v vᵀ`, `v` the top eigenvector of `K` (§4's first bound when `V` is `H`-invariant). */
  topEigvec: number;
  /** `Σ` = projector on the positive range of `K`. */
  identity: number;
  /** `max_{‖u‖=1} R_β(u uᵀ)` by Riemannian ascent from several starts (a bound wherever it stops). */
  rankOne: number;
}

/** Options of {@linkcode momentumBounds}. */
export interface MomentumBoundsOptions {
  /** Ascent steps per start (default 200). */
  maxIter?: number;
  /** Starts: the top `starts` eigenvectors of `K` (default 4). */
  starts?: number;
  /** Extra starting vectors (basis coordinates), e.g. the top eigenvector of `S*`. */
  extra?: Float64Array[];
  /** Null-space threshold relative to `κ_max` for the identity bound (default 1e-10). */
  dropTol?: number;
}

/**
 * The bounds of §4 in the subspace.
 * @param curv the curvature
 * @param beta momentum in [0, 1)
 * @param p batch-noise weight in [0, 1]
 * @returns three lower bounds on `λ_gen(β)`
 * @throws {RangeError} when `β` or `p` is out of range
 * @example
 * ```ts
 * import { fullCurvature } from "./curvature.ts";
 * import { momentumBounds } from "./momentum_bounds.ts";
 * // momentum.md §8: β = 0.9, B = 1: top-eigenvector bound 4.493979059710 ≤ λ_gen(β) = 8.734…
 * const c = fullCurvature([[2, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]].map((h) => new Float64Array(h)));
 * const b = momentumBounds(c, 0.9, 1);
 * if (Math.abs(b.topEigvec - 4.493979059710) > 1e-9) throw new Error(String(b.topEigvec));
 * if (!(b.topEigvec <= b.rankOne && b.rankOne <= 8.734068700236)) throw new Error(String(b.rankOne));
 * ```
 */
export function momentumBounds(
  curv: MomentumCurvature,
  beta: number,
  p: number,
  options: MomentumBoundsOptions = {},
): MomentumBounds {
  pencilCoefficients(beta, p);
  const k = curv.k;
  if (k === 0) return { topEigvec: 0, identity: 0, rankOne: 0 };
  const e = symEig(curv.K, k);
  if (!(e.values[0] > 0)) return { topEigvec: 0, identity: 0, rankOne: 0 };
  const col = (j: number) =>
    Float64Array.from({ length: k }, (_, a) => e.vectors[a * k + j]);
  const outer = (u: Float64Array) =>
    Float64Array.from(
      { length: k * k },
      (_, t) => u[Math.floor(t / k)] * u[t % k],
    );
  const topEigvec = Math.max(momentumQuotient(curv, beta, p, outer(col(0))), 0);
  const proj = new Float64Array(k * k);
  const cut = (options.dropTol ?? 1e-10) * e.values[0];
  for (let j = 0; j < k && e.values[j] > cut; j++) {
    const u = col(j);
    for (let t = 0; t < k * k; t++) proj[t] += u[Math.floor(t / k)] * u[t % k];
  }
  const identity = Math.max(momentumQuotient(curv, beta, p, proj), 0);
  const starts: Float64Array[] = [];
  for (let j = 0; j < Math.min(options.starts ?? 4, k); j++) {
    if (e.values[j] > 0) starts.push(col(j));
  }
  for (const x of options.extra ?? []) {
    if (x.length === k && dot(x, x) > 0) starts.push(x);
  }
  let rankOne = topEigvec;
  for (const s of starts) {
    rankOne = Math.max(
      rankOne,
      ascend(curv, beta, p, s, options.maxIter ?? 200, e.values[0]),
    );
  }
  return { topEigvec, identity, rankOne };
}

/**
 * The popular rescalings of the plain-SGD threshold `2/λ_gen(0)`, in the user's learning rate
 * (divided by `s`, see `lrScale`): `gdRescaled = (1+β)·2/λ_gen(0)` overstates `η*` (up to 16×
 * at `β = 0.9`); `effectiveLr = (1−β)·2/λ_gen(0)` understates it (up to 16×).
 * @param lambdaGen0 the plain-SGD `λ_gen` (β = 0) on the same curvature
 * @param beta momentum
 * @param scale the model's `lrScale`
 * @example
 * ```ts
 * import { naiveThresholds } from "./momentum_bounds.ts";
 * const n = naiveThresholds(2, 0.5, 1);
 * if (n.gdRescaled !== 1.5 || n.effectiveLr !== 0.5) throw new Error(JSON.stringify(n));
 * ```
 */
export function naiveThresholds(
  lambdaGen0: number,
  beta: number,
  scale: number,
): { gdRescaled: number; effectiveLr: number } {
  const eta0 = lambdaGen0 > 0 ? 2 / lambdaGen0 : Infinity;
  return {
    gdRescaled: ((1 + beta) * eta0) / scale,
    effectiveLr: ((1 - beta) * eta0) / scale,
  };
}

/** Riemannian gradient ascent of `R_β(u uᵀ)` on the unit sphere, with backtracking. */
function ascend(
  curv: MomentumCurvature,
  beta: number,
  p: number,
  u0: Float64Array,
  maxIter: number,
  kmax: number,
): number {
  const k = curv.k;
  const { c1, c2, c3 } = pencilCoefficients(beta, p);
  // R(u) = [c₁a² + c₂ s − 2c₃(uᵀK₂u − a²)] / a on ‖u‖ = 1, a = uᵀKu, s = mean_i (uᵀK_iu)²
  const evalAt = (u: Float64Array) => {
    const ku = matmul(curv.K, u, k, k, 1), k2u = matmul(curv.K2, u, k, k, 1);
    const a = dot(u, ku), q = dot(u, k2u);
    const nu = c2 !== 0
      ? matmul(curv.meanCongruence(outer(u, k)), u, k, k, 1)
      : new Float64Array(k);
    const s = dot(u, nu);
    const num = c1 * a * a + c2 * s - 2 * c3 * (q - a * a);
    return { f: a > 0 ? num / a : 0, a, num, ku, k2u, nu };
  };
  const grad = (u: Float64Array, v: ReturnType<typeof evalAt>) => {
    const g = new Float64Array(k);
    for (let t = 0; t < k; t++) {
      const dnum = 4 * c1 * v.a * v.ku[t] + 4 * c2 * v.nu[t] -
        2 * c3 * (2 * v.k2u[t] - 4 * v.a * v.ku[t]);
      g[t] = (dnum - v.f * 2 * v.ku[t]) / v.a;
    }
    const gu = dot(g, u);
    for (let t = 0; t < k; t++) g[t] -= gu * u[t];
    return g;
  };
  let u = unit(u0), cur = evalAt(u);
  if (!(cur.a > 0)) return 0;
  let step = 1 / Math.max(kmax, 1e-300);
  for (let it = 0; it < maxIter; it++) {
    const g = grad(u, cur), gn = dot(g, g);
    if (gn <= 1e-24 * cur.f * cur.f) break;
    let improved = false;
    for (let ls = 0; ls < 30; ls++) {
      const c = unit(u.map((x, t) => x + step * g[t]));
      const vc = evalAt(c);
      if (vc.a > 0 && vc.f >= cur.f + 1e-4 * step * gn) {
        u = c;
        cur = vc;
        step *= 2;
        improved = true;
        break;
      }
      step /= 2;
    }
    if (!improved) break;
  }
  return Math.max(cur.f, 0);
}

function outer(u: Float64Array, k: number): Float64Array {
  return Float64Array.from(
    { length: k * k },
    (_, t) => u[Math.floor(t / k)] * u[t % k],
  );
}

function unit(x: Float64Array): Float64Array {
  const n = Math.sqrt(dot(x, x));
  return x.map((v) => v / n);
}
