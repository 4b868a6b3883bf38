/**
 * `λ_max(H)` through the oracle, one HVP-equivalent per step. The Lanczos vectors are kept as
 * coefficient vectors in the client's basis: each step sends one `expand` of `H q_j`, whose
 * `proj` and `norms` give `H q_j` exactly in the enlarged basis, so the three-term recurrence
 * (with full reorthogonalisation in coefficient space) runs without ever seeing `d`-vectors.
 * This also makes warm starts exact: `q_1` may be any combination of an existing basis.
 *
 * @module
 */
import type { CurvatureOracle } from "./oracle.ts";
import { dot, symEig } from "./_linalg.ts";

/** Options of {@linkcode lanczos}. */
export interface LanczosOptions {
  /** Stop when `|β_j y_j| ≤ tol · |θ|` (default 1e-3). */
  tol?: number;
  /** Steps at most (default 100). */
  maxSteps?: number;
  /** Seed of the random start (default 1). */
  seed?: number;
  /**
   * Warm start: `K = Vᵀ H V` for the client's current basis (`k × k`); Lanczos starts from its
   * top eigenvector instead of a fresh random direction.
   */
  warmK?: Float64Array;
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
  let q: Float64Array;
  if (options.warmK && oracle.basisSize > 0) {
    const k = oracle.basisSize;
    if (options.warmK.length !== k * k) {
      throw new RangeError(
        `Expected warmK of ${k}×${k}, got ${options.warmK.length} entries`,
      );
    }
    const e = symEig(options.warmK, k);
    q = new Float64Array(k);
    for (let a = 0; a < k; a++) q[a] = e.vectors[a * k];
  } else {
    const kept = await oracle.random(1, options.seed ?? 1);
    const k = oracle.basisSize;
    if (kept === 0) {
      throw new RangeError(
        `Expected room for a random direction, got a full basis of ${k}`,
      );
    }
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
    const coeffs = new Float64Array(m * k);
    for (let i = 0; i < m; i++) {
      for (let a = 0; a < k; a++) coeffs[i * k + a] = q[a] / m;
    }
    const res = await oracle.expand(coeffs, new Float64Array(k), 1, false);
    steps++;
    const k2 = oracle.basisSize;
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
    residual = invariant
      ? 0
      : Math.abs(b * y[n - 1]) / Math.max(Math.abs(theta), 1e-300);
    if (invariant || residual <= tol) {
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
  };
}

function pad(x: Float64Array, n: number): Float64Array {
  if (x.length === n) return x;
  const out = new Float64Array(n);
  out.set(x);
  return out;
}
