import { assert, assertEquals } from "./_assert.ts";
import { symEig } from "./_linalg.ts";
import { mean, randomPsd, rel, THREE_SAMPLES } from "./_testing.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { fullCurvature } from "./curvature.ts";
import { momentumBatchCurve, momentumBetaCurve } from "./momentum_curves.ts";
import { momentumThreshold } from "./momentum_threshold.ts";
import type { OptimizerModel } from "./optimizer_model.ts";

Deno.test("momentumBatchCurve() is each B's threshold, non-decreasing, with the smallest stable batch", () => {
  const m = 8, hs = randomPsd(m, 4, 1, 3);
  const c = fullCurvature(hs);
  const models: OptimizerModel[] = [
    { kind: "heavy_ball", momentum: 0.9 },
    { kind: "nesterov", momentum: 0.9 },
    { kind: "adam", beta1: 0.9 },
  ];
  for (const model of models) {
    const grid = [8, 1, 2, 2, 4, 0, 9, 3.5];
    const lr = momentumThreshold(c, model, batchNoiseWeight(3, m)).etaStar;
    const { points, minStableBatch } = momentumBatchCurve(
      c,
      model,
      m,
      grid,
      lr,
    );
    assertEquals(points.map((pt) => pt.B), [1, 2, 4, 8]);
    for (const pt of points) {
      const ref =
        momentumThreshold(c, model, batchNoiseWeight(pt.B, m)).etaStar;
      assert(rel(pt.eta_star, ref) < 1e-12);
    }
    for (let j = 1; j < points.length; j++) {
      assert(
        points[j].eta_star >= points[j - 1].eta_star * (1 - 1e-10),
        model.kind,
      );
    }
    assertEquals(minStableBatch, 4); // stable at B = 3 exactly, so first grid point above is 4
  }
  assertEquals(
    momentumBatchCurve(c, models[0], m, [1, 2], 1e6).minStableBatch,
    undefined,
  );
});

Deno.test("momentumBetaCurve() shows the non-monotone η*(β) and finds the best β", () => {
  const c = fullCurvature(THREE_SAMPLES);
  // with noise: rises, then falls towards 0 as β → 1 (momentum.md §3)
  for (const p of [1, 0.25]) {
    const { points, best } = momentumBetaCurve(c, { kind: "sgd" }, p);
    const j = points.findIndex((pt) => pt.beta === 0.99);
    assert(
      points[0].eta_star < best.eta_star &&
        points[j].eta_star < points[0].eta_star / 5,
    );
    // best β: check against a fine grid around it (independent of the golden search)
    for (const db of [-2e-3, -5e-4, 5e-4, 2e-3]) {
      const b = best.beta + db;
      const eta = 2 /
        momentumThreshold(c, { kind: "heavy_ball", momentum: b }, p).lambdaGen!;
      assert(
        eta <= best.eta_star * (1 + 1e-12),
        `β=${b}: ${eta} > best ${best.eta_star}`,
      );
    }
    // momentum.md §3 quotes β_opt = 0.075 (B = 1) and 0.436 (B = 2), to about 1e-3
    assert(
      Math.abs(best.beta - (p === 1 ? 0.075 : 0.436)) < 2e-3,
      String(best.beta),
    );
  }
  // without noise: η* = 2(1+β)/λ_max, increasing, best at the largest β of the grid
  const { points, best } = momentumBetaCurve(c, {
    kind: "heavy_ball",
    momentum: 0.5,
  }, 0);
  for (const pt of points) {
    assert(rel(pt.eta_star, (2 * (1 + pt.beta)) / 1.206011329583) < 1e-9);
  }
  assert(best.beta > 0.989);
});

Deno.test("momentumBetaCurve() works for Nesterov and Adam families", () => {
  const hs = randomPsd(6, 3, 1, 7);
  const c = fullCurvature(hs);
  const lmax = symEig(mean(hs), 3).values[0];
  const nag = momentumBetaCurve(c, { kind: "nesterov", momentum: 0.9 }, 0, [
    0,
    0.5,
    0.9,
  ]);
  nag.points.forEach((pt) =>
    assert(
      rel(pt.eta_star, (2 * (1 + pt.beta)) / ((1 + 2 * pt.beta) * lmax)) < 1e-9,
    )
  );
  const adam = momentumBetaCurve(c, { kind: "adam", beta1: 0.9 }, 0, [
    0.5,
    0.9,
  ]);
  adam.points.forEach((pt) =>
    assert(
      rel(pt.eta_star, (2 * (1 + pt.beta)) / ((1 - pt.beta) * lmax)) < 1e-9,
    )
  );
});
