/**
 * Sample probes: a basis that reaches the branches of `λ_gen` carried by a few samples.
 *
 * The maximiser of `λ_gen` can concentrate on a group of high-curvature samples (on MNIST, one
 * class's hardest digits). Davidson's expansions are sums over all samples weighted by what the
 * basis already holds, so when such a group is barely in the basis (a warm basis carries the
 * previous round's branch) the Ritz pair converges on the second eigenpair of the operator with
 * small gains and claims convergence. Measured on the main example's network along training,
 * against the exact solve in the whole factor span: rounds converged 16.5 %, 9.6 % and 7.9 % low;
 * in the last one the round's value was the operator's second eigenvalue (0.4427 against 0.4435,
 * the top one 0.4805, carried by samples 81, 76, 72, 73 … of the probe).
 *
 * The remedy is one power step of `H_j` for each of a few samples `j`, on the factor route:
 * the column `J_jᵀ Λ_j^{1/2} w_j` (one `expand` with output coefficients `U_j = w_j`, other
 * samples zero), `w_j` the top eigenvector of sample `j`'s in-basis output Gram `A_j A_jᵀ`. One
 * step brings that sample's top curvature into the basis almost exactly (measured: `p γ` 1.0930
 * in the basis against 1.0930 exact). The samples are those of largest in-basis top curvature,
 * chosen in stages: samples that share directions with one probed in an earlier stage gain
 * curvature from its column and are ranked again. The first stage also ranks by the previous
 * round's values: a warm basis carries only the previous maximiser's directions, and a group
 * that was large there but is not in it now can carry this round's maximiser (measured: 14×14
 * inputs at lr 2.0 after epoch 9, 7.9 % low without, found with).
 *
 * @module
 */
import type { CurvatureOracle } from "./oracle.ts";
import type { Curvature } from "./curvature.ts";
import { gemm, symEig } from "./_linalg.ts";

/** Samples probed per stage (two stages of 8: one stage of 16 missed the 7.9 % case). */
export const SAMPLE_PROBE_STAGES: readonly number[] = [8, 8];

/** Each sample's largest in-basis curvature `λ_max(A_j A_jᵀ)` (a lower bound of `γ_j`) and its output direction. */
export interface SampleTops {
  /** Length `m`. */
  values: Float64Array;
  /** Unit top eigenvectors of `A_j A_jᵀ`, `m × c`. */
  directions: Float64Array;
}

/**
 * The top eigenpair of every sample's in-basis output Gram `A_j A_jᵀ` (`c × c`).
 * @param curv factor-route curvature
 * @throws {RangeError} on dense (Hessian-route) curvature
 */
export function sampleTops(curv: Curvature): SampleTops {
  if (curv.kind !== "factor") throw new RangeError("Expected factor-route curvature");
  const { m, rows: c, k, data } = curv;
  const values = new Float64Array(m), directions = new Float64Array(m * c);
  const g = new Float64Array(c * c);
  for (let i = 0; i < m; i++) {
    const a = data.subarray(i * c * k, (i + 1) * c * k);
    gemm(false, true, c, c, k, a, a, g); // A_j A_jᵀ
    const e = symEig(g, c);
    values[i] = e.values[0];
    for (let r = 0; r < c; r++) directions[i * c + r] = e.vectors[r * c];
  }
  return { values, directions };
}

/**
 * Probe the samples of largest in-basis top curvature, stage by stage: one power step of
 * `H_j` each, appended to the basis (columns the basis already holds are not kept).
 * @param oracle factor-route oracle whose basis `curv` describes
 * @param curv the current curvature (`k ≥ 1`)
 * @param stages samples per stage
 * @param prior per-sample top curvatures of the previous round (length `m`; ignored otherwise):
 *   the first stage ranks by the larger of it and the current value
 * @returns the curvature of the enlarged basis and the samples probed, in order
 * @throws {RangeError} on the Hessian route
 */
export async function probeSampleBranches(
  oracle: CurvatureOracle,
  curv: Curvature,
  stages: readonly number[] = SAMPLE_PROBE_STAGES,
  prior?: Float64Array,
): Promise<{ curv: Curvature; probed: number[] }> {
  const c = oracle.outputs;
  if (c === undefined) throw new RangeError("Expected a factor-route oracle");
  const m = oracle.probeSize, probed: number[] = [];
  for (const [stage, count] of stages.entries()) {
    const tops = sampleTops(curv);
    const usePrior = stage === 0 && prior?.length === m;
    const score = (j: number) => (usePrior ? Math.max(tops.values[j], prior![j]) : tops.values[j]);
    const done = new Set(probed);
    const pick = Array.from(tops.values.keys()).filter((j) => !done.has(j) && tops.values[j] > 0)
      .sort((a, b) => score(b) - score(a)).slice(0, count);
    if (pick.length === 0) break;
    const r = pick.length, coeffs = new Float64Array(m * c * r);
    pick.forEach((j, s) => {
      for (let a = 0; a < c; a++) coeffs[(j * c + a) * r + s] = tops.directions[j * c + a];
    });
    const res = await oracle.expand(coeffs, new Float64Array(oracle.basisSize * r), r, true);
    curv = curv.extend(res.blocks ?? new Float64Array(0), res.keptIndex.length);
    probed.push(...pick);
  }
  return { curv, probed };
}
