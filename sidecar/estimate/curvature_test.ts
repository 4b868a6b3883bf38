import { assert, assertThrows } from "./_assert.ts";
import { Curvature } from "./curvature.ts";
import { Rng } from "./_rng.ts";

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
      assert(maxDiff(f.mean(coef.map(Math.abs)), d.mean(coef.map(Math.abs))) < 1e-12 * scale, "weighted mean");
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
