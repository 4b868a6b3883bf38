import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { randomPsd } from "./_testing.ts";
import { Rng } from "./_rng.ts";
import { fetchCurvature, fetchK2 } from "./oracle.ts";

const d = 6, m = 3;
const hs = randomPsd(m, d, 2, 71);
const hv = (h: Float64Array, x: Float64Array) =>
  Float64Array.from(
    { length: d },
    (_, i) => x.reduce((s, xj, j) => s + h[i * d + j] * xj, 0),
  );
const dotv = (x: Float64Array, y: Float64Array) =>
  x.reduce((s, v, i) => s + v * y[i], 0);

Deno.test("SyntheticOracle.expand() computes W = Σ H_i V C_i + V C_V, projects, orthonormalises, counts", async () => {
  const o = new SyntheticOracle(hs);
  assertEquals(await o.random(3, 5), 3);
  const V = o.basis();
  const k = 3, r = 2, rng = new Rng(9);
  const C = rng.normals(m * k * r), CV = rng.normals(k * r);
  // dense W, column by column
  const W = Array.from({ length: r }, (_, j) => {
    const w = new Float64Array(d);
    V.forEach((v, a) => v.forEach((x, t) => (w[t] += CV[a * r + j] * x)));
    for (let i = 0; i < m; i++) {
      const x = new Float64Array(d);
      V.forEach((v, a) =>
        v.forEach((y, t) => (x[t] += C[(i * k + a) * r + j] * y))
      );
      hv(hs[i], x).forEach((y, t) => (w[t] += y));
    }
    return w;
  });
  const res = await o.expand(C, CV, r, true);
  for (let a = 0; a < k; a++) {
    for (let j = 0; j < r; j++) {
      assert(Math.abs(res.proj[a * r + j] - dotv(V[a], W[j])) < 1e-12);
    }
  }
  assertEquals(res.keptIndex, [0, 1]);
  assertEquals(o.basisSize, 5);
  assertEquals(o.hvps, m * r + m * 2);
  const V2 = o.basis();
  for (let a = 0; a < 5; a++) {
    for (let b = 0; b < 5; b++) {
      assert(Math.abs(dotv(V2[a], V2[b]) - (a === b ? 1 : 0)) < 1e-12);
    }
  }
  // the first norm is that of W_0 minus its projection on V
  const outside = W[0].map((x, t) =>
    x - V.reduce((s, v, a) => s + res.proj[a * r] * v[t], 0)
  );
  assert(Math.abs(res.norms[0] - Math.sqrt(dotv(outside, outside))) < 1e-10);
  // blocks: V_newᵀ H_i V[:, 3:5] with the enlarged basis
  for (let i = 0; i < m; i++) {
    for (let a = 0; a < 5; a++) {
      for (let b = 0; b < 2; b++) {
        assert(
          Math.abs(
            res.blocks![(i * 5 + a) * 2 + b] -
              dotv(V2[a], hv(hs[i], V2[3 + b])),
          ) < 1e-12,
        );
      }
    }
  }
});

Deno.test("SyntheticOracle drops dependent columns, rotates, and reports grads and Hutchinson", async () => {
  const o = new SyntheticOracle(hs, {
    grads: hs.map((_, i) => Float64Array.from({ length: d }, (_, t) => i + t)),
  });
  await o.random(d, 1);
  const res = await o.expand(
    new Float64Array(m * d),
    new Float64Array(d).fill(1),
    1,
    false,
  );
  assertEquals(res.keptIndex, []); // W lies in span(V) = everything
  const u = new Float64Array(d * 2);
  u[0] = 1;
  u[1 * 2 + 1] = 1;
  await o.rotate(u, 2);
  assertEquals(o.basisSize, 2);
  const g = await o.grads();
  assertEquals(g.sqNorms.length, m);
  assert(
    Math.abs(g.sqNorms[1] - [1, 2, 3, 4, 5, 6].reduce((s, x) => s + x * x, 0)) <
      1e-12,
  );
  const h = await o.hutchinson(4, 3);
  assertEquals(h.quad.length, m * 4);
  const again = await new SyntheticOracle(hs).hutchinson(4, 3);
  assertEquals(Array.from(again.quad), Array.from(h.quad)); // seeded
  assertThrows(() => o.blocks(1, 5), RangeError, "Expected columns within");
  assertThrows(
    () => new SyntheticOracle([]),
    RangeError,
    "Expected at least one",
  );
});

Deno.test("fetchCurvature() splits large fetches into column chunks with the same result, on both routes", async () => {
  const d2 = 9, m2 = 4;
  const hs2 = randomPsd(m2, d2, 2, 72);
  const rng = new Rng(73);
  const fs = Array.from({ length: m2 }, () => rng.normals(2 * d2));
  for (const o of [new SyntheticOracle(hs2), SyntheticOracle.fromFactors(fs, 2)]) {
    await o.random(d2, 1);
    const whole = await fetchCurvature(o, undefined, 0, d2);
    const calls = o.hvps;
    const chunked = await fetchCurvature(o, undefined, 0, d2, 8 * m2 * (o.outputs ?? d2) * 2); // 2 columns per op
    assertEquals(Array.from(chunked.data), Array.from(whole.data));
    assertEquals(o.hvps - calls, calls); // the same columns, so the same cost
    const head = await fetchCurvature(o, undefined, 0, 0);
    assertEquals(head.k, 0);
  }
});

Deno.test("SyntheticOracle.fromFactors(): factors F V, out_coeffs expansion W = Σ F_iᵀ U_i + V C_V, half-product costs", async () => {
  const c = 2, d2 = 5, m2 = 3, rng = new Rng(74);
  const fs = Array.from({ length: m2 }, () => rng.normals(c * d2));
  const o = SyntheticOracle.fromFactors(fs, c);
  assertEquals(o.outputs, c);
  await o.random(2, 3);
  const V = o.basis();
  const A = await o.blocks(0, 2);
  for (let i = 0; i < m2; i++) {
    for (let a = 0; a < c; a++) {
      for (let j = 0; j < 2; j++) {
        const ref = V[j].reduce((s, x, t) => s + x * fs[i][a * d2 + t], 0);
        assert(Math.abs(A[(i * c + a) * 2 + j] - ref) < 1e-12);
      }
    }
  }
  assertEquals(o.hvps, m2); // 2 JVP columns = 2 · m/2
  const U = rng.normals(m2 * c * 1), CV = rng.normals(2);
  const w = new Float64Array(d2);
  V.forEach((v, a) => v.forEach((x, t) => (w[t] += CV[a] * x)));
  fs.forEach((f, i) => {
    for (let a = 0; a < c; a++) for (let t = 0; t < d2; t++) w[t] += U[i * c + a] * f[a * d2 + t];
  });
  const res = await o.expand(U, CV, 1, true);
  for (let a = 0; a < 2; a++) assert(Math.abs(res.proj[a] - dotv(V[a], w)) < 1e-12);
  assertEquals(res.blocks!.length, m2 * c * res.keptIndex.length);
  assertEquals(o.hvps, m2 + m2 / 2 + (m2 / 2) * res.keptIndex.length);
  // H_i = F_iᵀ F_i, seen through the dense hvp of hutchinson: z^T H_i z = ‖F_i z‖²
  const h = await o.hutchinson(1, 5);
  assert(h.quad.every((q) => q >= 0));
});

Deno.test("SyntheticOracle.hessianGram() and fetchK2() give VᵀH²V (dense reference), growing and chunked", async () => {
  for (const factor of [false, true]) {
    const c = 2, rng = new Rng(13);
    const fs = Array.from({ length: m }, () => rng.normals(c * d));
    const o = factor ? SyntheticOracle.fromFactors(fs, c) : new SyntheticOracle(hs);
    const H = new Float64Array(d * d);
    for (const h of o.hessians()) h.forEach((x, t) => (H[t] += x / m));
    await o.random(2, 3);
    const k2a = await fetchK2(o, undefined, 0);
    await o.random(3, 4);
    const h0 = o.hvps;
    // old 2×2 kept, rows 2..4 asked one at a time (chunk of 8·k bytes)
    const k2 = await fetchK2(o, k2a, 2, 8 * 5);
    assertEquals(o.hvps - h0, (factor ? 0.5 : 1) * 3 * m);
    const V = o.basis(), k = V.length;
    const HV = V.map((v) => hv(H, v));
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) {
        const ref = dotv(HV[a], HV[b]);
        assert(Math.abs(k2[a * k + b] - ref) <= 1e-12 * (1 + Math.abs(ref)), `K2[${a},${b}] = ${k2[a * k + b]} vs ${ref}`);
        assert(k2[a * k + b] === k2[b * k + a], "symmetric");
      }
    }
    assertThrows(() => o.hessianGram(4, 2), RangeError, "Expected rows within 0..5");
  }
});
