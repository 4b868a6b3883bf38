import { assert, assertEquals } from "./_assert.ts";
import { bootstrapInterval } from "./bootstrap.ts";
import { Curvature } from "./curvature.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { ResamplePool } from "./resample_pool.ts";
import { Rng } from "./_rng.ts";

function problem(m: number, c: number, k: number, seed: number): Curvature {
  const rng = new Rng(seed), a = rng.normals(m * c * k);
  for (let t = 0; t < a.length; t++) a[t] *= 0.85 ** (t % k);
  return Curvature.factor(a, m, c, k);
}

Deno.test("ResamplePool gives the interval of the in-thread bootstrap, to the last digit, and the same cost", async () => {
  const f = problem(40, 3, 10, 1), p = 0.1;
  const point = reducedSolve(f, p, { tol: 1e-12 });
  const pool = new ResamplePool(2);
  try {
    await pool.ready();
    assertEquals(pool.size, 2);
    for (const opts of [{ count: 37, seed: 2, tol: 1e-2 }, { count: 100, seed: 3, tol: 1e-3, mcTarget: 0.2, minCount: 40 }]) {
      const c1 = { applications: 0 }, c2 = { applications: 0 };
      const here = (await bootstrapInterval(f, p, point, { ...opts, counter: c1 }))!;
      const pooled = (await bootstrapInterval(f, p, point, { ...opts, counter: c2, pool }))!;
      assertEquals(pooled.values, here.values);
      assertEquals([pooled.lambda_gen_lo, pooled.lambda_gen_hi], [here.lambda_gen_lo, here.lambda_gen_hi]);
      assertEquals(c2.applications, c1.applications);
    }
    // a second curvature is sent to the helpers in place of the first
    const g = problem(30, 2, 8, 4), gPoint = reducedSolve(g, p, { tol: 1e-12 });
    const a = (await bootstrapInterval(g, p, gPoint, { count: 20, tol: 1e-2 }))!;
    const b = (await bootstrapInterval(g, p, gPoint, { count: 20, tol: 1e-2, pool }))!;
    assertEquals(b.values, a.values);
  } finally {
    pool.close();
  }
});

Deno.test("ResamplePool: a deadline keeps the resamples in draw order; a closed pool's share is solved here", async () => {
  const f = problem(40, 3, 10, 5), p = 0.1;
  const point = reducedSolve(f, p, { tol: 1e-12 });
  const full = (await bootstrapInterval(f, p, point, { count: 30, seed: 6, tol: 1e-2 }))!;
  const pool = new ResamplePool(2);
  const past = (await bootstrapInterval(f, p, point, { count: 30, seed: 6, tol: 1e-2, pool, deadline: performance.now() - 1 }));
  assertEquals(past, undefined); // nothing solved
  pool.close();
  assertEquals(pool.size, 0);
  const after = (await bootstrapInterval(f, p, point, { count: 30, seed: 6, tol: 1e-2, pool }))!;
  assertEquals(after.values, full.values);
  assert(!after.cut);
});
