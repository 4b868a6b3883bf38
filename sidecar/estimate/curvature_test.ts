import { assert, assertThrows } from "./_assert.ts";
import { Curvature } from "./curvature.ts";
import { Rng } from "./_rng.ts";
import { matmul } from "./_linalg.ts";
import { rel } from "./_testing.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";

/** Dense reference: K_i = A_iᵀ A_i with plain loops, independent of curvature.ts. */
function denseBlocks(a: Float64Array, m: number, c: number, k: number): Float64Array {
  const out = new Float64Array(m * k * k);
  for (let i = 0; i < m; i++) {
    for (let x = 0; x < k; x++) {
      for (let y = 0; y < k; y++) {
        let s = 0;
        for (let r = 0; r < c; r++) s += a[(i * c + r) * k + x] * a[(i * c + r) * k + y];
        out[(i * k + x) * k + y] = s;
      }
    }
  }
  return out;
}

function mul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const o = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      for (let l = 0; l < n; l++) o[i * n + j] += a[i * n + l] * b[l * n + j];
    }
  }
  return o;
}

const maxDiff = (x: Float64Array, y: Float64Array) => x.reduce((s, v, t) => Math.max(s, Math.abs(v - y[t])), 0);

Deno.test("Curvature factor-form operator equals the dense one on random factors", async (t) => {
  for (const [m, c, k, seed] of [[5, 3, 7, 1], [9, 1, 4, 2], [4, 6, 3, 3], [30, 10, 70, 4]]) {
    await t.step(`m=${m} c=${c} k=${k}`, () => {
      const rng = new Rng(seed);
      const a = rng.normals(m * c * k);
      const blocks = denseBlocks(a, m, c, k);
      const f = Curvature.factor(a, m, c, k), d = Curvature.dense(blocks, m, k);
      const y0 = rng.normals(k * k), y = new Float64Array(k * k);
      for (let x = 0; x < k; x++) for (let z = 0; z < k; z++) y[x * k + z] = y0[x * k + z] + y0[z * k + x];
      const coef = rng.normals(m);
      // reference Σ coef_i K_i Y K_i with plain loops
      const ref = new Float64Array(k * k);
      for (let i = 0; i < m; i++) {
        const ki = blocks.subarray(i * k * k, (i + 1) * k * k);
        mul(mul(ki, y, k), ki, k).forEach((v, s) => (ref[s] += coef[i] * v));
      }
      const scale = ref.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
      assert(maxDiff(f.sandwich(y, coef), ref) < 1e-12 * scale, "factor sandwich");
      assert(maxDiff(d.sandwich(y, coef), ref) < 1e-12 * scale, "dense sandwich");
      assert(maxDiff(f.blocks(), blocks) < 1e-12 * m * c, "factor blocks");
      const w = coef.map(Math.abs), wm = new Float64Array(k * k);
      const wsum = w.reduce((acc, v) => acc + v, 0);
      for (let i = 0; i < m; i++) for (let t = 0; t < k * k; t++) wm[t] += (w[i] / wsum) * blocks[i * k * k + t];
      const mscale = wm.reduce((acc, v) => Math.max(acc, Math.abs(v)), 0);
      assert(maxDiff(f.mean(w), wm) < 1e-12 * mscale, "factor weighted mean");
      assert(maxDiff(d.mean(w), wm) < 1e-12 * mscale, "dense weighted mean");
      const u = rng.normals(k);
      assert(maxDiff(f.quad(u), d.quad(u)) < 1e-10, "quad");
      assert(maxDiff(f.weightedApply(u, coef), d.weightedApply(u, coef)) < 1e-10, "weightedApply");
      const U = rng.normals(k * 2);
      assert(maxDiff(f.rotate(U, 2).blocks(), d.rotate(U, 2).blocks()) < 1e-10, "rotate");
      const g = rng.normals(k * 2), e = rng.normals(k * 2);
      // expansion coefficients: U_i = A_i C_i with C_i = G + β Y K_i E (dense C_i vs factor U_i)
      const cd = d.expansionCoeffs(g, 2, 0.7, y, e), cf = f.expansionCoeffs(g, 2, 0.7, y, e);
      const viaDense = new Float64Array(m * c * 2);
      for (let i = 0; i < m; i++) {
        for (let r = 0; r < c; r++) {
          for (let j = 0; j < 2; j++) {
            let s = 0;
            for (let x = 0; x < k; x++) s += a[(i * c + r) * k + x] * cd[(i * k + x) * 2 + j];
            viaDense[(i * c + r) * 2 + j] = s;
          }
        }
      }
      assert(maxDiff(cf, viaDense) < 1e-9 * Math.max(1, scale), "expansion coefficients");
    });
  }
  assertThrows(() => Curvature.factor(new Float64Array(5), 2, 1, 3), RangeError, "Expected factors of 2×1×3");
});

/** Entrywise closeness relative to the largest entry of `b`. */
const closeRel = (a: Float64Array, b: Float64Array, tol: number) => {
  const scale = Math.max(...b.map(Math.abs));
  return a.every((x, t) => Math.abs(x - b[t]) <= tol * scale);
};

Deno.test("withK2(): factor and dense curvature give the same K, K₂ and mean congruence for K_i = A_iᵀA_i, with weights", () => {
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
    const d = Curvature.dense(blocks, m, k).withK2(K2, w),
      f = Curvature.factor(factors, m, c, k).withK2(K2, w);
    assert(closeRel(d.K, f.K, 1e-13) && closeRel(d.K2, f.K2, 0));
    assert(closeRel(d.meanCongruence(S), f.meanCongruence(S), 1e-13));
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
    assert(closeRel(d.meanCongruence(S), naive, 1e-13));
    for (const beta of [0, 0.9]) {
      const a = momentumPencilSolve(d, beta, 0.5).lambdaGen,
        b = momentumPencilSolve(f, beta, 0.5).lambdaGen;
      assert(rel(a, b) < 1e-11, `${a} vs ${b}`);
    }
  }
  assertThrows(
    () => Curvature.factor(factors, m, c, k + 1).withK2(K2),
    RangeError,
    "Expected factors of 7×3×6",
  );
  assertThrows(
    () => Curvature.dense(blocks, m, k).withK2(K2, [1]),
    RangeError,
    "Expected 7 weights",
  );
  assertThrows(
    () => Curvature.dense(blocks, m, k).withK2(K2, new Array(m).fill(0)),
    RangeError,
    "positive sum",
  );
  assertThrows(
    () => Curvature.dense(blocks, m, k).withK2(K2).meanCongruence(new Float64Array(3)),
    RangeError,
    "Expected S of 5×5",
  );
});
