/**
 * Synthetic but realistic reports for tests, benchmarks and demos, until the estimators land.
 *
 * Sharpness rises towards the edge `2/lr` (progressive sharpening, then `λ_gen` hovers at the edge),
 * `λ_gen > λ_max` with the gap growing as the batch shrinks, and the CI brackets `λ_gen`.
 *
 * @module
 */
import type { Report } from "./history_store.ts";

/** Parameters of a synthetic run. */
export interface SyntheticRunOptions {
  lr?: number;
  batchSize?: number;
  n?: number;
  stepsPerRound?: number;
  /** Rounds after which sharpness has reached the edge. */
  rampRounds?: number;
}

/**
 * Returns report `round` of a synthetic run `run`; deterministic in its arguments.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * const r = syntheticReport("demo", 5);
 * ok((r.lambda_gen as number) > (r.lambda_max as number));
 * ```
 */
export function syntheticReport(
  run: string,
  round: number,
  options: SyntheticRunOptions = {},
): Report {
  const lr = options.lr ?? 0.05;
  const B = options.batchSize ?? 64;
  const n = options.n ?? 50_000;
  const stepsPerRound = options.stepsPerRound ?? 100;
  const ramp = options.rampRounds ?? 60;
  const step = round * stepsPerRound;
  const edge = 2 / lr;
  const t = Math.min(1, round / ramp);
  const wobble = 1 + 0.03 * Math.sin(round * 0.7 + run.length);
  const gap = (B0: number) => 1 + 6 / Math.sqrt(B0); // λ_gen/λ_max at batch B0
  // SGD self-stabilises at its own edge: λ_gen hovers around 2/lr, λ_max below it.
  const lambdaGen = edge * (0.15 + 0.83 * t * t) * wobble;
  const lambdaMax = lambdaGen / gap(B);
  const etaStar = 2 / lambdaGen;
  const half = 0.04 * lambdaGen * (1 + 1 / (1 + round));
  const grid = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
  const byBatch = grid.map((b) => ({
    B: b,
    eta_star: 2 / (lambdaMax * gap(b)),
    lambda_gen: lambdaMax * gap(b),
  }));
  const stable = byBatch.find((e) => e.eta_star >= lr);
  const report: Report = {
    run,
    round,
    step,
    epoch: Math.floor((step * B) / n),
    lr,
    batch_size: B,
    n,
    p: 11_274,
    m: 256,
    lambda_max: lambdaMax,
    lambda_gen: lambdaGen,
    eta_star: etaStar,
    eta_gd: 2 / lambdaMax,
    margin: lr / etaStar,
    suggested_lr: 0.9 * etaStar,
    converged: true,
    residual: 4e-4,
    basis_size: 24,
    hvps: 31.5,
    wall_ms: 180 + (round % 7) * 11,
    time: 1_790_000_000 + round * 12,
    ci: {
      lambda_gen_lo: lambdaGen - half,
      lambda_gen_hi: lambdaGen + half,
      eta_star_lo: 2 / (lambdaGen + half),
      eta_star_hi: 2 / (lambdaGen - half),
      level: 0.95,
    },
    eta_star_by_batch: byBatch,
    bounds: {
      top_eigvec: lambdaMax * 1.02,
      identity: lambdaGen * 0.93,
      identity_se: 0.4,
      rank_one: lambdaGen * 0.97, // a lower bound: never above λ_gen
    },
    stopped: "converged",
  };
  if (stable) report.min_stable_batch = stable.B;
  return report;
}
