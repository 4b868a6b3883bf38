import { assert, assertAlmostEquals } from "./_assert.ts";
import { identityBound, rankOneBound, topEigvecBound } from "./bounds.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { symEig } from "./_linalg.ts";
import type { Curvature } from "./curvature.ts";
import {
  bothRoutes,
  denseLambdaGen,
  mean,
  randomPsd,
  THREE_SAMPLES,
} from "./_testing.ts";

const quadForm = (h: Float64Array, v: ArrayLike<number>, d: number) => {
  let s = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) s += v[i] * h[i * d + j] * v[j];
  }
  return s;
};

Deno.test("bounds are below λ_gen and match their dense formulas on both routes (theory §3)", async () => {
  const d = 5, m = 6;
  const hs = randomPsd(m, d, 2, 81);
  for (const [, b] of bothRoutes(hs, d)) await checkBounds(hs, b, d, m);
});

async function checkBounds(hs: Float64Array[], b: Curvature, d: number, m: number) {
  const H = mean(hs);
  const e = symEig(H, d);
  const v = Float64Array.from({ length: d }, (_, a) => e.vectors[a * d]);
  for (const p of [1, 0.4, 0]) {
    const lam = denseLambdaGen(hs, d, p);
    const top = topEigvecBound(b, p, v);
    const q = hs.map((h) => quadForm(h, v, d));
    const qm = q.reduce((s, x) => s + x, 0) / m;
    const variance = q.reduce((s, x) => s + (x - qm) ** 2, 0) / m;
    assertAlmostEquals(top, e.values[0] + (p * variance) / e.values[0], 1e-12);
    const r1 = rankOneBound(b, p);
    assert(
      top <= r1 * (1 + 1e-12) && r1 <= lam * (1 + 1e-10),
      `p=${p}: ${top} ≤ ${r1} ≤ ${lam}`,
    );
    // identity bound: exact value from dense Frobenius norms, estimate within 4 standard errors
    const fro = (x: Float64Array) => x.reduce((s, y) => s + y * y, 0);
    const tr = Array.from({ length: d }, (_, i) => H[i * d + i]).reduce(
      (s, x) => s + x,
      0,
    );
    const exact = ((1 - p) * fro(H) + (p * hs.reduce((s, h) =>
          s + fro(h), 0)) / m) / tr;
    const r = 400;
    const hutch = await new SyntheticOracle(hs).hutchinson(r, 3);
    const idb = identityBound(hutch, m, r, p, fro(H))!;
    assert(
      Math.abs(idb.value - exact) < 4 * idb.se + 1e-12,
      `${idb.value} vs ${exact} ± ${idb.se}`,
    );
    assert(exact <= lam * (1 + 1e-10));
  }
}

Deno.test("rankOneBound() finds the best rank-one Σ (grid search in d = 2)", () => {
  for (const p of [1, 0.25]) {
    let best = 0;
    for (let t = 0; t < 200000; t++) {
      const th = (Math.PI * t) / 200000, u = [Math.cos(th), Math.sin(th)];
      const q = THREE_SAMPLES.map((h) => quadForm(h, u, 2));
      const dq = q.reduce((s, x) => s + x, 0) / 3;
      best = Math.max(
        best,
        ((1 - p) * dq * dq + (p * q.reduce((s, x) => s + x * x, 0)) / 3) / dq,
      );
    }
    for (const [, b] of bothRoutes(THREE_SAMPLES, 2)) {
      assertAlmostEquals(rankOneBound(b, p), best, 1e-9);
    }
  }
});
