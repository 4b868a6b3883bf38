/**
 * The estimator round as a worker task (transport/worker_pool.ts): `runRound(oracle, input)`
 * with `input = { params, state }` runs {@linkcode estimateRound} and returns its report and
 * the state for the run's next round.
 *
 * @module
 */
import type { CurvatureOracle } from "./estimate/oracle.ts";
import { estimateRound, type Report, type RoundParams, type RoundState } from "./estimate/round.ts";
import { blasInfo, loadBlas } from "./estimate/_blas.ts";

/** What the main thread sends for one round. */
export interface EstimateTaskInput {
  params: RoundParams;
  state?: RoundState;
  /** The CBLAS library the main thread loaded (each worker loads it too, once; see _blas.ts). */
  blasLib?: string;
}

/**
 * Runs one estimator round (in a worker).
 *
 * @param oracle the worker's remote oracle
 * @param input the round's parameters and the run's previous state
 * @returns the report and the next state
 * @example
 * ```ts
 * import { runRound } from "./estimate_task.ts";
 * import { SyntheticOracle } from "./estimate/mod.ts";
 * const o = new SyntheticOracle([new Float64Array([2, 0, 0, 0]), new Float64Array([0, 0, 0, 1])]);
 * const { report } = await runRound(o, { params: { run: "x", round: 0, step: 0, epoch: 0, lr: 0.1, batch_size: 1, n: 2, params: 2 } });
 * if (!(report.lambda_gen > 0)) throw new Error("no estimate");
 * ```
 */
export function runRound(oracle: CurvatureOracle, input: unknown): Promise<{ report: Report; state: RoundState }> {
  const { params, state, blasLib } = input as EstimateTaskInput;
  if (blasLib && blasInfo().lib !== blasLib) {
    try {
      loadBlas(blasLib);
    } catch {
      // the main thread loaded it; should this worker fail to, the TypeScript kernels give the same numbers
    }
  }
  return estimateRound(oracle, params, { state });
}

/** URL of this module, for {@linkcode WorkerPool.run}. */
export const ESTIMATE_TASK = import.meta.url;
