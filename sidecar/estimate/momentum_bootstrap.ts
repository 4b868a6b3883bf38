/**
 * Bootstrap interval of the run's optimizer's threshold (SPEC §5 `ci` in momentum rounds):
 * probe samples resampled with replacement (multinomial weights), the threshold re-solved in the
 * round's basis for each resample, basic interval of `2/η*` (the report's `lambda_gen`) about the
 * point value, as the plain-SGD interval ({@linkcode basicInterval}, which says why).
 *
 * `K₂` of a resample, `Vᵀ H*² V`, would need per-sample products `H_iV` the sidecar never sees.
 * It is approximated by keeping the out-of-basis part measured on the whole probe:
 * `K₂* = K*² + (K₂ − K²)` (`K₂ − K² = VᵀH(I − VVᵀ)HV ⪰ 0`); exact when `V` holds `range(H)`
 * (whole-span rounds, where `K₂ = K²`).
 *
 * @module
 */
import { basicInterval, type BootstrapInterval, resampleWeights } from "./bootstrap.ts";
import type { Curvature } from "./curvature.ts";
import { matmul } from "./_linalg.ts";
import { momentumThreshold } from "./momentum_threshold.ts";
import type { OptimizerModel } from "./optimizer_model.ts";
import { Rng } from "./_rng.ts";

/** Options of {@linkcode momentumBootstrap}. */
export interface MomentumBootstrapOptions {
  /** The point value of `2/η*` the interval is about (the report's `lambda_gen`). */
  center: number;
  /** Resamples. */
  count: number;
  seed: number;
  /** Two-sided level (default 0.9, as the plain-SGD interval). */
  level?: number;
  /** Warm start (`k × k`). */
  start?: Float64Array;
  /** Stop resampling at this `performance.now()` time (ms). */
  deadline?: number;
  /** Solver tolerances of each resample (pencil `tol`, Brent `xtol`; default: tight). */
  tol?: number;
  xtol?: number;
}

/** The interval, in the report's units (`lambda_gen = 2/eta_star`); `count`: resamples solved. */
export type MomentumInterval = Pick<
  BootstrapInterval,
  "lambda_gen_lo" | "lambda_gen_hi" | "eta_star_lo" | "eta_star_hi" | "level" | "count"
>;

/**
 * Basic bootstrap interval of `2/η*` for `model`.
 * @param curv the round's per-sample curvature
 * @param K2 `Vᵀ H² V` of its basis
 * @param model the optimizer
 * @param p batch-noise weight
 * @returns undefined with fewer than 2 samples or 2 finite resamples
 * @example
 * ```ts
 * import { Curvature } from "./curvature.ts";
 * import { momentumBootstrap } from "./momentum_bootstrap.ts";
 * import { momentumThreshold } from "./momentum_threshold.ts";
 * const cv = Curvature.dense(new Float64Array([1, 3, 2, 5]), 4, 1);
 * const K2 = new Float64Array([2.75 ** 2]), model = { kind: "heavy_ball", momentum: 0.5 } as const;
 * const center = momentumThreshold(cv.withK2(K2), model, 1).sharpness;
 * const ci = momentumBootstrap(cv, K2, model, 1, { center, count: 50, seed: 1 });
 * if (!ci || !(ci.lambda_gen_lo <= ci.lambda_gen_hi)) throw new Error(JSON.stringify(ci));
 * ```
 */
export function momentumBootstrap(
  curv: Curvature,
  K2: Float64Array,
  model: OptimizerModel,
  p: number,
  o: MomentumBootstrapOptions,
): MomentumInterval | undefined {
  const { m, k } = curv;
  const level = o.level ?? 0.9;
  if (m < 2 || o.count < 2 || k === 0) return undefined;
  const K = curv.mean(), KK0 = matmul(K, K, k, k, k);
  const outside = K2.map((x, t) => x - KK0[t]);
  const rng = new Rng(o.seed);
  const values: number[] = [];
  for (let b = 0; b < o.count; b++) {
    if (o.deadline !== undefined && performance.now() >= o.deadline) break;
    const w = resampleWeights(rng, m);
    const Ks = curv.mean(w);
    const KK = matmul(Ks, Ks, k, k, k);
    const mc = curv.withK2(KK.map((x, t) => x + outside[t]), w);
    const s = momentumThreshold(mc, model, p, { start: o.start, tol: o.tol, xtol: o.xtol, upperBound: false }).sharpness;
    if (s > 0 && Number.isFinite(s)) values.push(s);
  }
  if (values.length < 2) return undefined;
  values.sort((a, b) => a - b);
  return { ...basicInterval(values, o.center, level), count: values.length };
}
