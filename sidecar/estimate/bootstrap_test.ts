import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { bootstrapInterval } from "./bootstrap.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { bothRoutes, randomPsd, stack } from "./_testing.ts";
import { Curvature } from "./curvature.ts";

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
