import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { batchCurve, batchNoiseWeight } from "./batch_curve.ts";
import { bothRoutes, denseLambdaGen, randomPsd, rel } from "./_testing.ts";

Deno.test("batchNoiseWeight() is (n − B)/(B(n − 1)) with its limits", () => {
  assertEquals(batchNoiseWeight(1, 10), 1);
  assertEquals(batchNoiseWeight(10, 10), 0);
  assertEquals(batchNoiseWeight(2, 3), 0.25);
  assertEquals(batchNoiseWeight(1, 1), 0);
  assertThrows(
    () => batchNoiseWeight(0, 3),
    RangeError,
    "Expected a batch size in 1..3",
  );
  assertThrows(
    () => batchNoiseWeight(2, 2.5),
    RangeError,
    "Expected n to be a positive integer",
  );
});

Deno.test("batchCurve() gives dense η*(B) and the smallest stable batch size on both routes", () => {
  const d = 4, m = 6;
  const hs = randomPsd(m, d, 1, 91);
  const n = m;
  const grid = [6, 1, 3, 2, 2, 99];
  const ref = [1, 2, 3, 6].map((B) =>
    2 / denseLambdaGen(hs, d, batchNoiseWeight(B, n))
  );
  const lr = (ref[1] + ref[2]) / 2; // unstable at B = 1, 2; stable from B = 3
  for (const [route, curv] of bothRoutes(hs, d)) {
    const { points, minStableBatch } = batchCurve(curv, n, grid, lr);
    assertEquals(points.map((x) => x.B), [1, 2, 3, 6]);
    points.forEach((pt, i) =>
      assert(rel(pt.eta_star, ref[i]) < 1e-9, `${route} B=${pt.B}`)
    );
    assertEquals(minStableBatch, 3);
    assertEquals(batchCurve(curv, n, [1, 2], 1e9).minStableBatch, undefined);
  }
});
