/**
 * `λ_gen` by Davidson-type subspace expansion (theory §4, "Growing the subspace"). Each
 * iteration sends ONE `expand` whose columns are the generalized-eigen residual `G V E` for the
 * leading eigenvectors `E` of the current maximiser `S*`, with `blocks` so that the enlarged
 * `K_i` arrive in the same operation; the reduced problem is then re-solved. Restarts rotate the
 * basis onto `S*`'s leading eigenvectors plus the top of `K`, at no HVP cost.
 *
 * @module
 */
import type { CurvatureOracle } from "./oracle.ts";
import { congruence, matmul, orthonormalColumns, symEig } from "./_linalg.ts";
import { checkBlocks, meanBlock, reducedSolve } from "./reduced_solve.ts";
import { extendBlocks } from "./_blocks.ts";
import { Rng } from "./_rng.ts";

/** Options of {@linkcode davidson}. */
export interface DavidsonOptions {
  /** Batch-noise weight `p` in [0, 1]. */
  p: number;
  /** Converged when `μ` changes by less than `tol` relative… (default 1e-3) */
  tol?: number;
  /** …and the relative residual is below this (default `tol`: measured, the λ error tracks the residual). */
  residualTol?: number;
  /** Columns per expansion (default 8). */
  block?: number;
  /** Basis budget: restart before exceeding it (default 64). */
  maxBasis?: number;
  /** Expansions at most (default 200). */
  maxIterations?: number;
  /** Stop when this many HVP-equivalents have been spent by this call. */
  maxHvps?: number;
  /** Seed of the random combination used to measure the residual (default 1). */
  seed?: number;
  /** The basis comes from a previous round: the first residual check alone may end the call. */
  warmStart?: boolean;
  /** Columns of that first check on a warm start (default 2: cheap when it already passes). */
  warmBlock?: number;
  /** Stop at this `performance.now()` time (ms). */
  deadline?: number;
}

/** Result of {@linkcode davidson}. */
export interface DavidsonResult {
  /** Reduced `λ_gen` in the final basis (a lower bound, exact once the basis holds `Σ*`). */
  lambdaGen: number;
  /** Maximiser in final basis coordinates, `k × k`. */
  S: Float64Array;
  /** Per-sample blocks for the final basis, `m × k × k`. */
  blocks: Float64Array;
  /** Final basis size. */
  k: number;
  converged: boolean;
  /** Relative residual of the last expansion, `‖(I − VVᵀ) G V E‖ / (μ κ_max ‖S E‖)`. */
  residual: number;
  /** Ritz value after each solve (the first is the starting basis). */
  history: number[];
  /** Expansions sent. */
  iterations: number;
  /** Restarts performed. */
  restarts: number;
  stopped:
    | "converged"
    | "budget_hvps"
    | "budget_seconds"
    | "max_basis"
    | "max_iterations";
  minCurvature: number;
  maxCurvature: number;
  droppedDirections: number;
}

/**
 * Grow the client's basis until the reduced `λ_gen` is converged.
 * @param oracle curvature oracle; its basis must be the one `blocks` describe
 * @param blocks per-sample `Vᵀ H_i V` for the current basis, `m × k × k` (k ≥ 1)
 * @param options `p`, tolerances, budgets
 * @returns the Ritz value, maximiser, final blocks and why it stopped
 * @throws {RangeError} when `blocks` does not match the oracle's basis
 */
export async function davidson(
  oracle: CurvatureOracle,
  blocks: Float64Array,
  options: DavidsonOptions,
): Promise<DavidsonResult> {
  const m = oracle.probeSize;
  let k = oracle.basisSize;
  checkBlocks(blocks, m, k);
  if (k < 1) throw new RangeError("Expected a non-empty basis, got k = 0");
  const p = options.p;
  const tol = options.tol ?? 1e-3;
  const resTol = options.residualTol ?? tol;
  const block = options.block ?? 8;
  const maxBasis = Math.max(options.maxBasis ?? 64, 2 * block);
  const maxIterations = options.maxIterations ?? 200;
  const hvp0 = oracle.hvps;
  const rng = new Rng(options.seed ?? 1);
  // inner solves need far less than the outer tol; 1e-9 saves a third of the Lanczos steps
  const inner = { tol: 1e-9 };
  let sol = reducedSolve(blocks, m, k, p, inner);
  const history = [sol.lambdaGen];
  let residual = Infinity, iterations = 0, restarts = 0;
  // relative change of μ at the last re-solve; a warm start (first check) may converge on the residual alone
  let lastChange = options.warmStart ? 0 : Infinity;
  let stopped: DavidsonResult["stopped"] = "max_iterations";
  const fullBasisValues: number[] = [];
  while (iterations < maxIterations) {
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
    if (sol.lambdaGen <= 0) {
      stopped = "converged";
      break;
    }
    // leading eigenvectors of S*
    let es = symEig(sol.S, k);
    let r = 0;
    const width = options.warmStart && iterations === 0
      ? Math.min(block, options.warmBlock ?? 2)
      : block;
    while (r < Math.min(width, k) && es.values[r] > 1e-8 * es.values[0]) r++;
    if (k + r > maxBasis && maxBasis - k >= Math.max(1, block / 2)) {
      r = maxBasis - k;
    }
    if (k + r > maxBasis) {
      // the basis budget is the limit when restarts stop paying: the Ritz value reached in a
      // full basis has not grown by tol over the last three restarts
      fullBasisValues.push(sol.lambdaGen);
      const f = fullBasisValues.length;
      if (f > 3 && fullBasisValues[f - 1] - fullBasisValues[f - 4] <= tol * fullBasisValues[f - 1]) {
        stopped = "max_basis";
        break;
      }
      const keepS = Math.max(1, Math.min(r, maxBasis - 2 * block - 2));
      const nK = Math.min(2, k);
      const ek = symEig(meanBlock(blocks, m, k), k);
      const nKeep = Math.min(maxBasis - block, k);
      // keep as many of S*'s leading eigenvectors as the budget allows, then the top of K
      const nS = Math.max(keepS, nKeep - nK);
      const cand2 = new Float64Array(k * (nS + nK));
      for (let a = 0; a < k; a++) {
        for (let j = 0; j < nS; j++) {
          cand2[a * (nS + nK) + j] = es.vectors[a * k + j];
        }
        for (let j = 0; j < nK; j++) {
          cand2[a * (nS + nK) + nS + j] = ek.vectors[a * k + j];
        }
      }
      const { q: U, k: kNew } = orthonormalColumns(cand2, k, nS + nK, 1e-8);
      await oracle.rotate(U, kNew);
      const nb = new Float64Array(m * kNew * kNew);
      for (let i = 0; i < m; i++) {
        nb.set(
          congruence(blocks.subarray(i * k * k, (i + 1) * k * k), U, k, kNew),
          i * kNew * kNew,
        );
      }
      const startS = congruence(sol.S, U, k, kNew);
      blocks = nb;
      k = kNew;
      restarts++;
      sol = reducedSolve(blocks, m, k, p, { ...inner, start: startS });
      es = symEig(sol.S, k);
      r = 0;
      while (
        r < Math.min(block, k, maxBasis - k) &&
        es.values[r] > 1e-8 * es.values[0]
      ) r++;
      if (r === 0) {
        stopped = "max_basis";
        break;
      }
    }
    // E: first a random-sign combination of all of S*'s eigenvectors weighted by their
    // eigenvalues (its residual estimates the residual of the whole S*, which the leading
    // eigenvectors alone would miss for a high-rank maximiser), then the leading eigenvectors
    let rank = 0;
    while (rank < k && es.values[rank] > 1e-8 * es.values[0]) rank++;
    const mixed = rank > r - 1 && r >= 2;
    const E = new Float64Array(k * r);
    for (let a = 0; a < k; a++) {
      for (let j = 0; j < r; j++) {
        E[a * r + j] = es.vectors[a * k + (mixed ? j - 1 : j)];
      }
    }
    if (mixed) {
      const signs = Array.from(
        { length: rank },
        () => (rng.uniform() < 0.5 ? -1 : 1),
      );
      for (let a = 0; a < k; a++) {
        let x = 0;
        for (let j = 0; j < rank; j++) {
          x += signs[j] * es.values[j] * es.vectors[a * k + j];
        }
        E[a * r] = x;
      }
    }
    const mu = sol.lambdaGen;
    const K = meanBlock(blocks, m, k);
    const S = sol.S;
    const SK = matmul(S, K, k, k, k);
    const common = new Float64Array(k * k);
    for (let t = 0; t < k * k; t++) {
      common[t] = ((1 - p) * SK[t] - (mu / 2) * S[t]) / m;
    }
    const coeffs = new Float64Array(m * k * r);
    for (let i = 0; i < m; i++) {
      const ki = blocks.subarray(i * k * k, (i + 1) * k * k);
      const ci = matmul(S, ki, k, k, k);
      for (let t = 0; t < k * k; t++) ci[t] = common[t] + (p / m) * ci[t];
      coeffs.set(matmul(ci, E, k, k, r), i * k * r);
    }
    const skE = matmul(SK, E, k, k, r);
    const basisCoeffs = new Float64Array(k * r);
    for (let t = 0; t < k * r; t++) basisCoeffs[t] = -(mu / 2) * skE[t];
    // expand without blocks: if the residual already meets the test, the blocks are not needed
    const res = await oracle.expand(coeffs, basisCoeffs, r, false);
    iterations++;
    // relative residual: the largest ‖(I − VVᵀ) G V E_j‖ / (μ κ_max ‖S E_j‖)
    const SE = matmul(S, E, k, k, r);
    residual = 0;
    for (let j = 0; j < r; j++) {
      let se = 0;
      for (let a = 0; a < k; a++) se += SE[a * r + j] ** 2;
      residual = Math.max(
        residual,
        res.norms[j] / Math.max(Math.sqrt(se), 1e-300),
      );
    }
    residual /= mu * Math.max(sol.maxCurvature, 1e-300);
    const kept = res.keptIndex.length;
    if (kept === 0 || (residual <= resTol && lastChange <= tol)) {
      history.push(sol.lambdaGen);
      stopped = "converged";
      break;
    }
    {
      const add = await oracle.blocks(k, kept);
      const kNew = k + kept;
      const nb = extendBlocks(blocks, add, m, k, kept);
      const start = new Float64Array(kNew * kNew);
      for (let a = 0; a < k; a++) {
        for (let b = 0; b < k; b++) start[a * kNew + b] = S[a * k + b];
      }
      blocks = nb;
      k = kNew;
      sol = reducedSolve(blocks, m, k, p, { ...inner, start });
    }
    history.push(sol.lambdaGen);
    lastChange = Math.abs(sol.lambdaGen - mu) / Math.max(sol.lambdaGen, 1e-300);
  }
  return {
    lambdaGen: sol.lambdaGen,
    S: sol.S,
    blocks,
    k,
    converged: stopped === "converged",
    residual,
    history,
    iterations,
    restarts,
    stopped,
    minCurvature: sol.minCurvature,
    maxCurvature: sol.maxCurvature,
    droppedDirections: sol.droppedDirections,
  };
}

/**
 * Rotate the client's basis onto what the next round needs (the leading eigenvectors of `S*`
 * down to `carryTol` of the largest, at most `carryMax`, plus the top eigenvectors of `K`),
 * so that a warm round fetches few blocks. Costs no HVPs.
 * @returns the blocks and maximiser in the compacted basis
 */
export async function compactBasis(
  oracle: CurvatureOracle,
  blocks: Float64Array,
  S: Float64Array,
  options: { carryTol?: number; carryMax?: number; topK?: number } = {},
): Promise<{ blocks: Float64Array; S: Float64Array; k: number }> {
  const m = oracle.probeSize, kO = oracle.basisSize;
  const k = Math.round(Math.sqrt(S.length));
  checkBlocks(blocks, m, k);
  if (kO < k) {
    throw new RangeError(
      `Expected a client basis of at least ${k} columns, got ${kO}`,
    );
  }
  const carryTol = options.carryTol ?? 1e-2;
  const carryMax = options.carryMax ?? k;
  const topK = Math.min(options.topK ?? 1, k);
  const es = symEig(S, k);
  let nS = 0;
  while (
    nS < Math.min(carryMax, k) && es.values[nS] > carryTol * es.values[0]
  ) nS++;
  let U: Float64Array, kNew: number;
  if (nS + topK >= k) {
    if (kO === k) return { blocks, S, k };
    U = new Float64Array(k * k);
    for (let a = 0; a < k; a++) U[a * k + a] = 1;
    kNew = k;
  } else {
    const ek = symEig(meanBlock(blocks, m, k), k);
    const cand = new Float64Array(k * (nS + topK));
    for (let a = 0; a < k; a++) {
      for (let j = 0; j < nS; j++) {
        cand[a * (nS + topK) + j] = es.vectors[a * k + j];
      }
      for (let j = 0; j < topK; j++) {
        cand[a * (nS + topK) + nS + j] = ek.vectors[a * k + j];
      }
    }
    ({ q: U, k: kNew } = orthonormalColumns(cand, k, nS + topK, 1e-8));
  }
  // columns the client appended without blocks (a converged residual check) are dropped
  const full = new Float64Array(kO * kNew);
  full.set(U);
  await oracle.rotate(full, kNew);
  const nb = new Float64Array(m * kNew * kNew);
  for (let i = 0; i < m; i++) {
    nb.set(
      congruence(blocks.subarray(i * k * k, (i + 1) * k * k), U, k, kNew),
      i * kNew * kNew,
    );
  }
  return { blocks: nb, S: congruence(S, U, k, kNew), k: kNew };
}
