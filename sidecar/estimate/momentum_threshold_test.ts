import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertThrows,
} from "./_assert.ts";
import { matmul, orthonormalColumns, symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import { mean, randomPsd, rel, stack, THREE_SAMPLES } from "./_testing.ts";
import { adamDynamics, denseThreshold } from "./_momentum_reference.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { Curvature, fullCurvature } from "./curvature.ts";
import { momentumThreshold } from "./momentum_threshold.ts";
import { reducedSolve } from "./reduced_solve.ts";

/** `P^{-1/2} H_i P^{-1/2}` for diagonal `P` (what the client will send for Adam). */
function precondition(
  hs: Float64Array[],
  P: ArrayLike<number>,
): Float64Array[] {
  const d = P.length;
  return hs.map((h) =>
    h.map((x, t) => x / Math.sqrt(P[Math.floor(t / d)] * P[t % d]))
  );
}

Deno.test("momentumThreshold() reproduces momentum.md §8 Adam (P = diag(2, 0.5), β₁ = 0.9) to 1e-9", () => {
  const c = fullCurvature(precondition(THREE_SAMPLES, [2, 0.5]));
  const rows: [number, number, number, number][] = [
    // p, λ_gen(0.9; H̃), η*_Adam, η*/(38/λ_max)
    [1, 8.832557591076, 2.264349798320, 0.086418],
    [0.25, 2.708309734160, 7.384679731323, 0.281834],
    [0, 0.763294922694, 26.202191846633, 1],
  ];
  for (const [p, lam, eta, ratio] of rows) {
    const t = momentumThreshold(c, { kind: "adam", beta1: 0.9 }, p);
    assertEquals(t.method, "pencil");
    assertAlmostEquals(t.lambdaGen!, lam, 1e-9);
    assertAlmostEquals(t.etaStar, eta, 1e-9);
    assertAlmostEquals(t.fullBatch, 26.202191846633, 1e-9);
    assertAlmostEquals(t.etaStar / t.fullBatch, ratio, 1e-6);
    assertAlmostEquals(t.sharpness * t.etaStar, 2, 1e-12);
  }
  // λ_max(P⁻¹H) of §8
  assertAlmostEquals(symEig(c.K, 2).values[0], 1.450260353119, 1e-11);
});

Deno.test("momentumThreshold() for Adam with a random diagonal P matches the dense map of (x, m) to 1e-8", async (t) => {
  for (const [d, m, rank, seed] of [[3, 5, 1, 81], [4, 6, 1, 82]]) {
    const hs = randomPsd(m, d, rank, seed);
    const rng = new Rng(seed + 1000);
    const P = Float64Array.from(
      { length: d },
      () => Math.exp(3 * rng.uniform() - 1.5),
    );
    const c = fullCurvature(precondition(hs, P));
    for (const beta1 of [0.5, 0.9, 0.99]) {
      await t.step(`d=${d} β₁=${beta1}`, () => {
        for (const B of [1, 2, m]) {
          const p = batchNoiseWeight(B, m);
          const got = momentumThreshold(c, { kind: "adam", beta1 }, p).etaStar;
          const ref = denseThreshold(
            hs,
            d,
            p,
            adamDynamics(beta1, P),
            1e-3 * got,
          );
          assert(rel(got, ref) < 1e-8, `B=${B}: ${got} vs dense ${ref}`);
        }
      });
    }
  }
});

Deno.test("momentumThreshold() dispatches by optimizer and agrees with reducedSolve for plain SGD", () => {
  const m = 6, d = 4, hs = randomPsd(m, d, 1, 91);
  const c = fullCurvature(hs);
  for (const B of [1, 3, 6]) {
    const p = batchNoiseWeight(B, m);
    const sgd = momentumThreshold(c, { kind: "sgd" }, p);
    assert(
      rel(sgd.etaStar, 2 / reducedSolve(Curvature.dense(stack(hs), m, d), p).lambdaGen) < 1e-10,
    );
    assertEquals(sgd.optimizer, "plain SGD");
    const lmax = symEig(mean(hs), d).values[0];
    assert(rel(sgd.fullBatch, 2 / lmax) < 1e-12);
    const nag = momentumThreshold(c, { kind: "nesterov", momentum: 0.9 }, p);
    assertEquals(nag.method, "compressed");
    assert(nag.upperBound! >= nag.etaStar * (1 - 1e-12));
    assert(rel(nag.fullBatch, 3.8 / (2.8 * lmax)) < 1e-12);
    const damp = momentumThreshold(c, {
      kind: "heavy_ball",
      momentum: 0.9,
      dampening: 0.9,
    }, p);
    const hb = momentumThreshold(c, { kind: "heavy_ball", momentum: 0.9 }, p);
    assert(
      rel(damp.etaStar, 10 * hb.etaStar) < 1e-10,
      "dampening τ: lr scaled by 1 − τ",
    );
    const adamw = momentumThreshold(c, {
      kind: "adam",
      beta1: 0.9,
      decoupledDecay: 0.05,
    }, p);
    assertEquals(adamw.method, "compressed");
  }
  assertThrows(
    () => momentumThreshold(c, { kind: "heavy_ball", momentum: 1.2 }, 1),
    RangeError,
    "Expected momentum in [0, 1)",
  );
});

Deno.test("momentumThreshold() in a poor subspace at β = 0.99 reports no finite threshold", () => {
  const d = 5, m = 6, hs = randomPsd(m, d, 2, 95);
  const { q: V } = orthonormalColumns(new Rng(96).normals(d), d, 1);
  const Vt = V; // d × 1, its transpose has the same entries
  const pr = (A: Float64Array) => matmul(matmul(Vt, A, 1, d, d), V, 1, d, 1);
  const H = mean(hs);
  const c = Curvature.dense(stack(hs.map(pr)), m, 1).withK2(pr(matmul(H, H, d, d, d)));
  const t = momentumThreshold(c, { kind: "heavy_ball", momentum: 0.99 }, 1);
  assert(t.lambdaGen! < 0, String(t.lambdaGen));
  assertEquals(t.etaStar, Infinity);
});
