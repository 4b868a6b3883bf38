import { assert, assertThrows } from "./_assert.ts";
import { randomPsd, rel, THREE_SAMPLES } from "./_testing.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { fullCurvature } from "./curvature.ts";
import { momentumLimit } from "./momentum_limit.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";

Deno.test("momentumLimit() is the β → 1 limit of (1 − β) λ_gen(β), with error ∝ 1 − β", () => {
  const problems = [
    THREE_SAMPLES,
    randomPsd(6, 4, 1, 5),
    randomPsd(7, 3, 2, 6),
  ];
  for (const hs of problems) {
    const c = fullCurvature(hs);
    for (const p of [1, batchNoiseWeight(2, hs.length)]) {
      const lim = momentumLimit(c, p);
      const err = [0.999, 0.9999].map((beta) =>
        rel((1 - beta) * momentumPencilSolve(c, beta, p).lambdaGen, lim)
      );
      assert(err[1] < 1e-3, `β = 0.9999: relative error ${err[1]}`);
      assert(err[1] < 0.2 * err[0], `error not shrinking like 1 − β: ${err}`);
    }
  }
  assert(momentumLimit(fullCurvature(THREE_SAMPLES), 0) === 0);
  assertThrows(
    () => momentumLimit(fullCurvature(THREE_SAMPLES), 2),
    RangeError,
    "Expected p in [0, 1]",
  );
});
