import { assert, assertAlmostEquals } from "./_assert.ts";
import { matmul, symEig } from "./_linalg.ts";
import { mean, randomPsd, rel, THREE_SAMPLES } from "./_testing.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { momentumBounds, naiveThresholds } from "./momentum_bounds.ts";
import { fullCurvature } from "./curvature.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";

Deno.test("momentumBounds() top-eigenvector bound reproduces momentum.md §8 to 1e-9", () => {
  const c = fullCurvature(THREE_SAMPLES);
  const rows: [number, number, number][] = [
    [0, 1, 1.591934955050],
    [0.5, 1, 1.575854803989],
    [0.5, 0.25, 0.996969365789],
    [0.9, 1, 4.493979059710],
    [0.9, 0.25, 1.599551868710],
    [0.9, 0, 0.634742805044],
    [0.99, 1, 39.198398390677],
    [0.99, 0.25, 10.254126480678],
  ];
  for (const [beta, p, ref] of rows) {
    assertAlmostEquals(momentumBounds(c, beta, p).topEigvec, ref, 1e-9);
  }
});

Deno.test("momentumBounds() are lower bounds on λ_gen(β); identity bound is §4's formula for V = I", () => {
  for (const seed of [1, 2, 3]) {
    const d = 5, m = 7, hs = randomPsd(m, d, 1, seed);
    const c = fullCurvature(hs);
    const H = mean(hs);
    const fro = (A: Float64Array) => A.reduce((s, x) => s + x * x, 0);
    const trH = [0, 1, 2, 3, 4].reduce((s, a) => s + H[a * d + a], 0);
    for (const beta of [0, 0.5, 0.9, 0.99]) {
      for (const B of [1, 3, 7]) {
        const p = batchNoiseWeight(B, m);
        const lam = momentumPencilSolve(c, beta, p).lambdaGen;
        const b = momentumBounds(c, beta, p);
        assert(
          b.topEigvec <= b.rankOne * (1 + 1e-12),
          `${b.topEigvec} > ${b.rankOne}`,
        );
        assert(b.rankOne <= lam * (1 + 1e-9), `rank one ${b.rankOne} > ${lam}`);
        assert(
          b.identity <= lam * (1 + 1e-9),
          `identity ${b.identity} > ${lam}`,
        );
        // §4: [‖H‖²/(1+β) + (p/(1−β))(mean ‖H_i‖² − ‖H‖²)] / tr H
        const ident = (fro(H) / (1 + beta) +
          (p / (1 - beta)) *
            (hs.reduce((s, h) => s + fro(h), 0) / m - fro(H))) / trH;
        assert(rel(b.identity, ident) < 1e-10, `${b.identity} vs ${ident}`);
        // §4: top eigenvector λ_max/(1+β) + p Var_i(vᵀH_iv)/((1−β)λ_max)
        const e = symEig(H, d);
        const v = Float64Array.from({ length: d }, (_, a) => e.vectors[a * d]);
        const q = hs.map((h) =>
          v.reduce((s, x, a) => s + x * matmul(h, v, d, d, 1)[a], 0)
        );
        const qm = q.reduce((s, x) => s + x, 0) / m;
        const varq = q.reduce((s, x) => s + (x - qm) ** 2, 0) / m;
        const top = e.values[0] / (1 + beta) +
          (p * varq) / ((1 - beta) * e.values[0]);
        assert(rel(b.topEigvec, top) < 1e-10, `${b.topEigvec} vs ${top}`);
      }
    }
  }
});

Deno.test("naiveThresholds() bracket the exact heavy-ball η* (momentum.md §4, V = I)", () => {
  for (const seed of [11, 12, 13, 14]) {
    const m = 6, hs = randomPsd(m, 4, seed % 2 + 1, seed);
    const c = fullCurvature(hs);
    for (const beta of [0.5, 0.9, 0.99]) {
      for (const B of [1, 2, 5]) {
        const p = batchNoiseWeight(B, m);
        const eta = 2 / momentumPencilSolve(c, beta, p).lambdaGen;
        const n = naiveThresholds(
          momentumPencilSolve(c, 0, p).lambdaGen,
          beta,
          1,
        );
        assert(
          eta <= n.gdRescaled * (1 + 1e-10),
          `GD rescaling ${n.gdRescaled} < ${eta}`,
        );
        assert(
          eta >= n.effectiveLr * (1 - 1e-10),
          `effective lr ${n.effectiveLr} > ${eta}`,
        );
      }
    }
  }
});
