import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { bootstrapInterval } from "./bootstrap.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { bothRoutes, randomPsd, stack } from "./_testing.ts";
import { Curvature } from "./curvature.ts";
import { Rng } from "./_rng.ts";

Deno.test("bootstrapInterval() contains the point estimate, is seeded, and inverts for η*", () => {
  const d = 6, m = 30;
  const hs = randomPsd(m, d, 2, 101);
  const [[, b], [, f]] = bothRoutes(hs, d);
  for (const p of [1, 0.2]) {
    const sol = reducedSolve(b, p);
    const ci = bootstrapInterval(b, p, sol.S, { count: 200, seed: 4 })!;
    const cf = bootstrapInterval(f, p, sol.S, { count: 200, seed: 4 })!;
    assert(Math.abs(cf.lambda_gen_lo - ci.lambda_gen_lo) < 1e-6 * ci.lambda_gen_lo, "factor route");
    assert(
      ci.lambda_gen_lo <= sol.lambdaGen && sol.lambdaGen <= ci.lambda_gen_hi,
      `${ci.lambda_gen_lo} ${sol.lambdaGen} ${ci.lambda_gen_hi}`,
    );
    assert(ci.lambda_gen_lo < ci.lambda_gen_hi);
    assertEquals(ci.eta_star_lo, 2 / ci.lambda_gen_hi);
    assertEquals(ci.level, 0.9);
    assertEquals(ci.count, 200);
    assertEquals(
      bootstrapInterval(b, p, sol.S, { count: 200, seed: 4 }),
      ci,
    );
  }
  // no sampling error when all samples are equal
  const same = Curvature.dense(stack(Array.from({ length: 5 }, () => hs[0])), 5, d);
  const s = reducedSolve(same, 1);
  const ci = bootstrapInterval(same, 1, s.S, { count: 20 })!;
  assert(Math.abs(ci.lambda_gen_hi - ci.lambda_gen_lo) < 1e-9 * s.lambdaGen);
  assertThrows(
    () => bootstrapInterval(b, 1, s.S, { level: 1.5 }),
    RangeError,
    "Expected a level in (0, 1)",
  );
  assertEquals(bootstrapInterval(b, 1, s.S, { count: 0 }), undefined);
});

Deno.test("bootstrapInterval() has the accuracy of the point value on a full-rank maximiser (vs full-basis resample solves)", () => {
  // incoherent samples: S* has full rank, so a few leading directions would bias every resample low
  const d = 12, m = 24;
  const hs = randomPsd(m, d, 2, 131);
  const [[, b]] = bothRoutes(hs, d);
  for (const [p, tol] of [[1, 1e-3], [0.3, 1e-2]]) {
    const sol = reducedSolve(b, p);
    const ci = bootstrapInterval(b, p, sol.S, { count: 60, seed: 9, tol })!;
    // the same resamples (same generator and seed), each solved in the full basis to 1e-12
    const rng = new Rng(9), values: number[] = [];
    for (let r = 0; r < 60; r++) {
      const w = new Float64Array(m);
      for (let t = 0; t < m; t++) w[rng.int(m)] += 1;
      values.push(reducedSolve(b, p, { weights: w }).lambdaGen);
    }
    values.sort((x, y) => x - y);
    const q = (f: number) => {
      const pos = f * (values.length - 1), i = Math.floor(pos);
      return values[i] * (1 - (pos - i)) + values[Math.min(i + 1, values.length - 1)] * (pos - i);
    };
    assert(Math.abs(ci.lambda_gen_lo - q(0.05)) <= tol * q(0.05), `p=${p} lo ${ci.lambda_gen_lo} vs ${q(0.05)}`);
    assert(Math.abs(ci.lambda_gen_hi - q(0.95)) <= tol * q(0.95), `p=${p} hi ${ci.lambda_gen_hi} vs ${q(0.95)}`);
  }
});
