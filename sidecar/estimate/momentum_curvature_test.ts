import { assert, assertThrows } from "./_assert.ts";
import { matmul } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import { rel } from "./_testing.ts";
import { denseCurvature, factorCurvature } from "./momentum_curvature.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";

const close = (a: Float64Array, b: Float64Array, tol: number) => {
  const scale = Math.max(...b.map(Math.abs));
  return a.every((x, t) => Math.abs(x - b[t]) <= tol * scale);
};

Deno.test("factorCurvature() and denseCurvature() agree for K_i = A_iᵀA_i, with weights", () => {
  const rng = new Rng(3);
  const m = 7, c = 3, k = 5;
  const factors = rng.normals(m * c * k);
  const blocks = new Float64Array(m * k * k);
  for (let i = 0; i < m; i++) {
    const A = factors.subarray(i * c * k, (i + 1) * c * k);
    const At = Float64Array.from(
      { length: k * c },
      (_, t) => A[(t % c) * k + Math.floor(t / c)],
    );
    blocks.set(matmul(At, A, k, c, k), i * k * k);
  }
  const K2 = rng.normals(k * k);
  const weights = [1, 0, 2, 1, 3, 1, 1];
  const S0 = rng.normals(k * k);
  const S = S0.map((x, t) => x + S0[(t % k) * k + Math.floor(t / k)]);
  for (const w of [undefined, weights]) {
    const d = denseCurvature(blocks, m, k, K2, w),
      f = factorCurvature(factors, m, c, k, K2, w);
    assert(close(d.K, f.K, 1e-13) && close(d.K2, f.K2, 0));
    assert(close(d.meanCongruence(S), f.meanCongruence(S), 1e-13));
    // and the fused dense kernel is the naive mean_i w_i K_i S K_i
    const naive = new Float64Array(k * k);
    const ws = w ?? new Array(m).fill(1), tot = ws.reduce((a, b) => a + b, 0);
    for (let i = 0; i < m; i++) {
      const Ki = blocks.subarray(i * k * k, (i + 1) * k * k);
      matmul(matmul(Ki, S, k, k, k), Ki, k, k, k).forEach((
        x,
        t,
      ) => (naive[t] += (ws[i] / tot) * x));
    }
    assert(close(d.meanCongruence(S), naive, 1e-13));
    for (const beta of [0, 0.9]) {
      const a = momentumPencilSolve(d, beta, 0.5).lambdaGen,
        b = momentumPencilSolve(f, beta, 0.5).lambdaGen;
      assert(rel(a, b) < 1e-11, `${a} vs ${b}`);
    }
  }
  assertThrows(
    () => factorCurvature(factors, m, c, k + 1, K2),
    RangeError,
    "Expected factors of 7×3×6",
  );
  assertThrows(
    () => denseCurvature(blocks, m, k, K2, [1]),
    RangeError,
    "Expected 7 weights",
  );
  assertThrows(
    () => denseCurvature(blocks, m, k, K2, new Array(m).fill(0)),
    RangeError,
    "positive sum",
  );
  assertThrows(
    () => denseCurvature(blocks, m, k, K2).meanCongruence(new Float64Array(3)),
    RangeError,
    "Expected S of 5×5",
  );
});
