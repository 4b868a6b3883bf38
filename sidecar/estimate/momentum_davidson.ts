/**
 * Davidson expansion of the client's basis for the heavy-ball pencil (docs/momentum.md §6),
 * driven through the oracle. Each iteration sends at most two `expand` ops:
 *
 * 1. (`β > 0` only) the extra mean-Hessian product: `x = HV C_H` (per-sample coefficients
 *    `C_H / m`), appended, its curvature fetched by `blocks`; in the enlarged basis `V' = [V Z]`, `x = V' a` with
 *    `a = K'[:, 0:k] C_H` (`Vᵀx = K C_H`, `Zᵀx = (VᵀHZ)ᵀC_H`, both blocks of the new mean `K'`);
 * 2. the full-space residual `R = Σ_i H_i V' ([C_i; 0] + a/m) + V' [C_V; 0]` of
 *    `momentum_expansion.ts`, whose part orthogonal to `V'` is appended (curvature by `blocks`).
 *
 * Then the new rows of `K₂` are fetched (`hessian_gram`) and the pencil re-solved, warm-started.
 * At the basis budget the basis is restarted on the leading eigenvectors of `S*` and the top of
 * `K` (a `rotate`; `K₂ → UᵀK₂U` exactly, no op), as davidson.ts does.
 * Ritz values rise monotonically (nested subspaces, exact Rayleigh–Ritz) and stay below the
 * exact `λ_gen(β)`; the error left is estimated from the gains as in davidson.ts. On the factor
 * route the coefficients go out as `U_i = A_i C_i`.
 *
 * @module
 */
import type { Curvature, MomentumCurvature } from "./curvature.ts";
import { extrapolatedError } from "./davidson.ts";
import { congruence, gemm, orthonormalColumns, symEig } from "./_linalg.ts";
import { leadingDirections, momentumExpansion } from "./momentum_expansion.ts";
import { momentumPencilSolve, type MomentumPencilSolution } from "./momentum_pencil.ts";
import { type CurvatureOracle, fetchK2 } from "./oracle.ts";

/** Options of {@linkcode growMomentumBasis}. */
export interface MomentumGrowOptions {
  /** Momentum `β` of the heavy-ball normal form. */
  beta: number;
  /** Batch-noise weight `p`. */
  p: number;
  /** Relative error of `λ_gen(β)` to stop at. */
  tol: number;
  /** Directions kept per expansion (default 4). */
  block?: number;
  /** Basis budget: stop (`max_basis`) before exceeding it. */
  maxBasis: number;
  /** Stop when this many HVP-equivalents have been spent by this call. */
  maxHvps: number;
  /** Stop at this `performance.now()` time (ms). */
  deadline?: number;
  /** Expansions at most (default 100). */
  maxIterations?: number;
  /** Warm start of the first solve (`k × k`). */
  start?: Float64Array;
}

/** Result of {@linkcode growMomentumBasis}. */
export interface MomentumGrowResult {
  /** Curvature of the final basis (the client's whole basis). */
  curv: Curvature;
  /** `K₂` of the final basis. */
  K2: Float64Array;
  /** The pencil solution in the final basis. */
  sol: MomentumPencilSolution;
  converged: boolean;
  /** Estimated relative error of `λ_gen(β)` (0 when the basis became invariant). */
  errorEstimate: number;
  stopped: "converged" | "budget_hvps" | "budget_seconds" | "max_basis";
  /** Expansion iterations performed. */
  iterations: number;
  /** Restarts at the basis budget. */
  restarts: number;
  /** Ritz value after each solve. */
  history: number[];
}

/**
 * Grow the basis until the Ritz value of the heavy-ball pencil is within `tol` of its limit.
 * @param oracle the client; its basis must be the one `curv` describes
 * @param curv per-sample curvature of the client's basis (`k ≥ 1`)
 * @param K2 `Vᵀ H² V` of that basis
 * @param o momentum, noise weight, tolerance and budgets
 * @throws {RangeError} when `curv` or `K2` do not match the oracle's basis
 */
export async function growMomentumBasis(
  oracle: CurvatureOracle,
  curv: Curvature,
  K2: Float64Array,
  o: MomentumGrowOptions,
): Promise<MomentumGrowResult> {
  const m = oracle.probeSize;
  let k = curv.k;
  if (k !== oracle.basisSize || k < 1 || K2.length !== k * k) {
    throw new RangeError(`Expected curvature and K2 of the client's ${oracle.basisSize} columns, got ${k} and ${K2.length} entries`);
  }
  const hvp0 = oracle.hvps;
  // inner solves two orders below the outer tolerance (as davidson.ts)
  const inner = { tol: Math.min(1e-6, o.tol / 100) };
  const solve = (c: MomentumCurvature, start?: Float64Array) => momentumPencilSolve(c, o.beta, o.p, { ...inner, start });
  let sol = solve(curv.withK2(K2), o.start);
  const history = [sol.lambdaGen], gains: number[] = [];
  let errorEstimate = Infinity, iterations = 0, restarts = 0;
  let stopped: MomentumGrowResult["stopped"] = "budget_hvps";
  const q0 = Math.max(1, o.block ?? 4);
  while (iterations < (o.maxIterations ?? 100)) {
    if (sol.lambdaGen > 0) errorEstimate = extrapolatedError(gains) / sol.lambdaGen;
    if (errorEstimate <= o.tol) {
      stopped = "converged";
      break;
    }
    if ((oracle.hvps - hvp0) / m >= o.maxHvps) break;
    if (o.deadline !== undefined && performance.now() >= o.deadline) {
      stopped = "budget_seconds";
      break;
    }
    let q = Math.min(q0, k, Math.floor((o.maxBasis - k) / 2));
    if (q < 1) {
      // restart on what S* needs; stop when that frees no room or restarts stop paying
      const r = restart(curv, K2, sol.S, o.maxBasis - 2 * Math.min(q0, Math.max(1, Math.floor(o.maxBasis / 4))));
      if (r === undefined || restarts >= 8) {
        stopped = "max_basis";
        break;
      }
      await oracle.rotate(r.U, r.k);
      const before = sol.lambdaGen;
      ({ curv, K2 } = r);
      k = curv.k;
      sol = solve(curv.withK2(K2), r.S);
      restarts++;
      // the gains go on when the restart kept the Ritz value (S*'s range was kept), else afresh
      if (!(sol.lambdaGen >= before * (1 - o.tol / 10))) gains.length = 0;
      q = Math.min(q0, k, Math.floor((o.maxBasis - k) / 2));
      if (q < 1) {
        stopped = "max_basis";
        break;
      }
    }
    const lambda = sol.lambdaGen;
    const k0 = k;
    const step = await expandOnce(oracle, curv, K2, o.beta, o.p, sol.S, lambda, q);
    iterations++;
    curv = step.curv;
    k = curv.k;
    if (k === k0) {
      // the residual has no component outside V: the basis is invariant for S*, the value exact
      errorEstimate = 0;
      stopped = "converged";
      break;
    }
    K2 = await fetchK2(oracle, K2, k0);
    const start = new Float64Array(k * k);
    for (let a = 0; a < k0; a++) start.set(sol.S.subarray(a * k0, (a + 1) * k0), a * k);
    sol = solve(curv.withK2(K2), start);
    history.push(sol.lambdaGen);
    gains.push(Math.max(0, sol.lambdaGen - lambda));
  }
  if (!(errorEstimate <= o.tol) && sol.lambdaGen > 0 && gains.length >= 2) {
    errorEstimate = extrapolatedError(gains) / sol.lambdaGen;
  }
  return { curv, K2, sol, converged: stopped === "converged", errorEstimate, stopped, iterations, restarts, history };
}

/**
 * The basis `V U` spanned by the leading eigenvectors of `S*` (by `|eigenvalue|`, down to 1e-10
 * of the largest) and, when there is room, the top eigenvector of `K`, at most `keep` columns;
 * undefined when that is no smaller than the basis.
 */
function restart(
  curv: Curvature,
  K2: Float64Array,
  S: Float64Array,
  keep: number,
): { U: Float64Array; k: number; curv: Curvature; K2: Float64Array; S: Float64Array } | undefined {
  const k = curv.k;
  const es = symEig(S, k);
  const order = [...es.values.keys()].sort((a, b) => Math.abs(es.values[b]) - Math.abs(es.values[a]));
  const top = Math.abs(es.values[order[0]]);
  const nS = Math.max(0, Math.min(keep, order.filter((j) => Math.abs(es.values[j]) > 1e-10 * top).length));
  const ek = symEig(curv.mean(), k);
  const c = nS < keep ? nS + 1 : nS;
  const cand = new Float64Array(k * c);
  for (let a = 0; a < k; a++) {
    for (let j = 0; j < nS; j++) cand[a * c + j] = es.vectors[a * k + order[j]];
    if (c > nS) cand[a * c + nS] = ek.vectors[a * k];
  }
  const { q: U, k: kNew } = orthonormalColumns(cand, k, c, 1e-8);
  if (kNew >= k || kNew < 1) return undefined;
  return { U, k: kNew, curv: curv.rotate(U, kNew), K2: congruence(K2, U, k, kNew), S: congruence(S, U, k, kNew) };
}

/** One expansion (stage 1 for `β > 0`, then the residual); returns the enlarged curvature. */
async function expandOnce(
  oracle: CurvatureOracle,
  curv: Curvature,
  K2: Float64Array,
  beta: number,
  p: number,
  S: Float64Array,
  lambda: number,
  q: number,
): Promise<{ curv: Curvature }> {
  const m = curv.m, k = curv.k;
  const Y = leadingDirections(S, k, q);
  const e = momentumExpansion(curv.blocks(), m, k, K2, beta, p, S, lambda, Y, q);
  let a = new Float64Array(0), kk = k;
  if (e.second.some((x) => x !== 0)) {
    const per = new Float64Array(m * k * q);
    for (let i = 0; i < m; i++) per.set(e.second.map((x) => x / m), i * k * q);
    const r1 = await oracle.expand(outCoeffs(curv, per, q), new Float64Array(k * q), q, false);
    curv = await appended(oracle, curv, r1.keptIndex.length);
    kk = curv.k;
    // x = HV C_H in V' = [V Z]: a = K'[:, 0:k] C_H
    const Kn = curv.mean();
    a = new Float64Array(kk * q);
    for (let r = 0; r < kk; r++) {
      for (let j = 0; j < q; j++) {
        let s = 0;
        for (let b = 0; b < k; b++) s += Kn[r * kk + b] * e.second[b * q + j];
        a[r * q + j] = s;
      }
    }
  }
  const per = new Float64Array(m * kk * q), basis = new Float64Array(kk * q);
  for (let i = 0; i < m; i++) {
    for (let r = 0; r < kk; r++) {
      for (let j = 0; j < q; j++) {
        per[(i * kk + r) * q + j] = (r < k ? e.perSample[(i * k + r) * q + j] : 0) + (a.length ? a[r * q + j] / m : 0);
      }
    }
  }
  basis.set(e.basis); // rows 0..k of C_V; the appended rows are 0
  const r2 = await oracle.expand(outCoeffs(curv, per, q), basis, q, false);
  return { curv: await appended(oracle, curv, r2.keptIndex.length) };
}

/** The curvature with the `kept` columns the client just appended, by `blocks` (as davidson.ts). */
async function appended(oracle: CurvatureOracle, curv: Curvature, kept: number): Promise<Curvature> {
  return kept > 0 ? curv.extend(await oracle.blocks(curv.k, kept), kept) : curv;
}

/**
 * Per-sample coefficients `C_i` (`m × k × q`) in the oracle's form: as they are on the Hessian
 * route, `U_i = A_i C_i` (`m × c × q`) on the factor route.
 */
function outCoeffs(curv: Curvature, per: Float64Array, q: number): Float64Array {
  if (curv.kind === "dense") return per;
  const { m, k, rows: c } = curv;
  const out = new Float64Array(m * c * q);
  for (let i = 0; i < m; i++) {
    gemm(false, false, c, q, k, curv.data.subarray(i * c * k, (i + 1) * c * k), per.subarray(i * k * q, (i + 1) * k * q), out.subarray(i * c * q, (i + 1) * c * q));
  }
  return out;
}
