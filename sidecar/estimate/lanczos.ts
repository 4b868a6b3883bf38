/**
 * `λ_max(H)` through the oracle, one HVP-equivalent per step. The Lanczos vectors are kept as
 * coefficient vectors in the client's basis: each step sends one `expand` of `H q_j`, whose
 * `proj` and `norms` give `H q_j` exactly in the enlarged basis, so the three-term recurrence
 * (with full reorthogonalisation in coefficient space) runs without ever seeing `d`-vectors.
 * This also makes warm starts exact: `q_1` may be any combination of an existing basis.
 * On the factor route each step also asks for the new column's factor (its JVP), so the basis
 * curvature stays complete at one HVP-equivalent per step. Stops on the estimated eigenvalue
 * error `ρ²/gap` (`ρ` the residual norm), so a warm start from the previous round's top
 * vector takes a few steps.
 *
 * @module
 */
import { type CurvatureOracle, fetchCurvature } from "./oracle.ts";
import type { Curvature } from "./curvature.ts";
import { dot, symEig } from "./_linalg.ts";

/** Options of {@linkcode lanczos}. */
export interface LanczosOptions {
  /** Stop when the estimated relative eigenvalue error `ρ²/(gap θ)` is at most this (default 1e-3). */
  tol?: number;
  /** Steps at most (default 100). */
  maxSteps?: number;
  /** Steps at least, unless the Krylov space is invariant (default 1). */
  minSteps?: number;
  /** Seed of the random start (default 1). */
  seed?: number;
  /**
   * Curvature of the client's current basis (required on the factor route, where it is kept
   * complete). With `warm`, Lanczos starts from the top eigenvector of its `K`.
   */
  curv?: Curvature;
  /** Warm start from the top eigenvector of `curv`'s `K` instead of a random direction. */
  warm?: boolean;
  /** Stop when this many HVP-equivalents have been spent by this call. */
  maxHvps?: number;
  /** Stop at this `performance.now()` time (ms). */
  deadline?: number;
}

/** Result of {@linkcode lanczos}. */
export interface LanczosResult {
  /** Largest Ritz value. */
  lambdaMax: number;
  /** Its Ritz vector as coefficients in the client's basis after the call (length = basis size). */
  vector: Float64Array;
  /** Whether the residual test passed (or the Krylov space became invariant). */
  converged: boolean;
  /** `|β_j y_j| / |θ|`. */
  residual: number;
  /** Expand operations sent. */
  steps: number;
  /** Why it stopped: `converged`, `max_steps`, `budget_hvps` or `budget_seconds`. */
  stopped: "converged" | "max_steps" | "budget_hvps" | "budget_seconds";
  /** The basis curvature after the call (factor route: complete; Hessian route: as passed). */
  curv?: Curvature;
}

/**
 * Largest eigenvalue of `H = mean_i H_i` by Lanczos on the oracle.
 * @param oracle the curvature oracle (its basis grows by at most one column per step)
 * @param options tolerance, budget, warm start
 * @returns Ritz value, Ritz vector (basis coordinates), convergence diagnostics
 * @example
 * ```ts
 * import { lanczos } from "./lanczos.ts";
 * import { SyntheticOracle } from "./synthetic_oracle.ts";
 * const o = new SyntheticOracle([new Float64Array([3, 0, 0, 1])]);
 * const r = await lanczos(o, { tol: 1e-10 });
 * if (Math.abs(r.lambdaMax - 3) > 1e-9) throw new Error(String(r.lambdaMax));
 * ```
 */
export async function lanczos(
  oracle: CurvatureOracle,
  options: LanczosOptions = {},
): Promise<LanczosResult> {
  const tol = options.tol ?? 1e-3;
  const maxSteps = options.maxSteps ?? 100;
  if (!(tol > 0)) throw new RangeError(`Expected tol > 0, got ${tol}`);
  if (!Number.isInteger(maxSteps) || maxSteps < 1) {
    throw new RangeError(`Expected maxSteps ≥ 1, got ${maxSteps}`);
  }
  const m = oracle.probeSize;
  const hvp0 = oracle.hvps;
  const factor = oracle.outputs !== undefined;
  let curv = options.curv;
  if (factor && (!curv || curv.k !== oracle.basisSize)) {
    throw new RangeError(
      `Expected the curvature of all ${oracle.basisSize} basis columns on the factor route, got ${curv?.k}`,
    );
  }
  let q: Float64Array;
  let warmGap = 0;
  if (options.warm && curv && curv.k > 0 && curv.k === oracle.basisSize) {
    const k = curv.k;
    const e = symEig(curv.mean(), k);
    q = new Float64Array(k);
    for (let a = 0; a < k; a++) q[a] = e.vectors[a * k];
    warmGap = k > 1 ? e.values[0] - e.values[1] : 0;
  } else {
    const k0 = oracle.basisSize;
    const kept = await oracle.random(1, options.seed ?? 1);
    const k = oracle.basisSize;
    if (kept === 0) {
      throw new RangeError(
        `Expected room for a random direction, got a full basis of ${k}`,
      );
    }
    if (factor) curv = await fetchCurvature(oracle, curv, k0, kept);
    q = new Float64Array(k);
    q[k - 1] = 1;
  }
  const qs: Float64Array[] = [];
  const alpha: number[] = [];
  const beta: number[] = [];
  let theta = 0, y = new Float64Array([1]), residual = Infinity;
  let stopped: LanczosResult["stopped"] = "max_steps";
  let steps = 0, scale = 0;
  for (let j = 0; j < maxSteps; j++) {
    const k = oracle.basisSize;
    qs.push(q);
    const g = q.map((x) => x / m);
    const coeffs = curv && curv.k === k
      ? curv.expansionCoeffs(g, 1)
      : replicate(g, m);
    const res = await oracle.expand(coeffs, new Float64Array(k), 1, factor);
    steps++;
    const k2 = oracle.basisSize;
    if (factor && curv) curv = curv.extend(res.blocks ?? new Float64Array(0), k2 - k);
    // H q_j in the enlarged basis: V proj + ν v_new
    const w = new Float64Array(k2);
    w.set(res.proj);
    if (k2 > k) w[k] = res.norms[0];
    for (let s = 0; s < qs.length; s++) qs[s] = pad(qs[s], k2);
    const a = dot(qs[j], w);
    alpha.push(a);
    for (let pass = 0; pass < 2; pass++) {
      for (const u of qs) {
        const c = dot(u, w);
        for (let t = 0; t < k2; t++) w[t] -= c * u[t];
      }
    }
    const b = Math.sqrt(dot(w, w));
    scale = Math.max(scale, Math.abs(a), b);
    const n = qs.length;
    const tmat = new Float64Array(n * n);
    for (let s = 0; s < n; s++) {
      tmat[s * n + s] = alpha[s];
      if (s + 1 < n) tmat[s * n + s + 1] = tmat[(s + 1) * n + s] = beta[s];
    }
    const e = symEig(tmat, n);
    theta = e.values[0];
    y = new Float64Array(n);
    for (let s = 0; s < n; s++) y[s] = e.vectors[s * n];
    const invariant = b <= 1e-12 * scale;
    const rho = Math.abs(b * y[n - 1]);
    const th = Math.max(Math.abs(theta), 1e-300);
    residual = invariant ? 0 : rho / th;
    // eigenvalue error ≈ ρ²/gap; the gap from the Ritz values (or the warm basis at step 1)
    const gap = n > 1 ? theta - e.values[1] : warmGap;
    const err = gap > rho ? (rho * rho) / gap : rho;
    if (invariant || (err <= tol * th && steps >= (options.minSteps ?? 1))) {
      stopped = "converged";
      break;
    }
    if (
      options.maxHvps !== undefined &&
      (oracle.hvps - hvp0) / m >= options.maxHvps
    ) {
      stopped = "budget_hvps";
      break;
    }
    if (
      options.deadline !== undefined && performance.now() >= options.deadline
    ) {
      stopped = "budget_seconds";
      break;
    }
    beta.push(b);
    q = new Float64Array(k2);
    for (let t = 0; t < k2; t++) q[t] = w[t] / b;
  }
  const kf = oracle.basisSize;
  const vector = new Float64Array(kf);
  y.forEach((c, s) => {
    const u = pad(qs[s], kf);
    for (let t = 0; t < kf; t++) vector[t] += c * u[t];
  });
  return {
    lambdaMax: theta,
    vector,
    converged: stopped === "converged",
    residual,
    steps,
    stopped,
    curv,
  };
}

function replicate(g: Float64Array, m: number): Float64Array {
  const out = new Float64Array(m * g.length);
  for (let i = 0; i < m; i++) out.set(g, i * g.length);
  return out;
}

function pad(x: Float64Array, n: number): Float64Array {
  if (x.length === n) return x;
  const out = new Float64Array(n);
  out.set(x);
  return out;
}
