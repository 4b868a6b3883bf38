import { assert, assertEquals } from "./_assert.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { factorsOf, randomPsd, rel } from "./_testing.ts";
import { denseThreshold, heavyBallDynamics } from "./_momentum_reference.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { fetchCurvature, fetchK2 } from "./oracle.ts";
import { growMomentumBasis } from "./momentum_davidson.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";

Deno.test("growMomentumBasis(): from 2 random columns, Ritz values rise, stay below the dense λ_gen(β), reach it; K₂ = VᵀH²V", async (t) => {
  const d = 6, m = 7;
  const hs = randomPsd(m, d, 2, 91);
  const f = factorsOf(hs, d);
  for (const route of ["hessian", "factor"]) {
    for (const [beta, B] of [[0.5, 1], [0.9, 2], [0.99, 1]]) {
      await t.step(`${route} β=${beta} B=${B}`, async () => {
        const p = batchNoiseWeight(B, m);
        const exact = 2 / denseThreshold(hs, d, p, heavyBallDynamics(beta), 1e-4);
        const o = route === "hessian"
          ? new SyntheticOracle(hs)
          : SyntheticOracle.fromFactors(hs.map((_, i) => f.slice(i * d * d, (i + 1) * d * d)), d);
        await o.random(2, 5);
        const curv = await fetchCurvature(o, undefined, 0, 2);
        const K2 = await fetchK2(o, undefined, 0);
        const g = await growMomentumBasis(o, curv, K2, { beta, p, tol: 1e-10, maxBasis: d + 4, maxHvps: 1e6, block: 2 });
        g.history.forEach((v, i) => {
          assert(v <= exact * (1 + 1e-9), `Ritz ${v} above exact ${exact}`);
          if (i > 0) assert(v >= g.history[i - 1] - 1e-9 * exact, `not monotone: ${g.history}`);
        });
        assert(rel(g.sol.lambdaGen, exact) < 1e-8, `${g.sol.lambdaGen} vs dense ${exact} (${g.stopped}, k ${g.curv.k})`);
        assert(g.converged, `${g.stopped} ${g.errorEstimate}`);
        // K₂ of the final basis against a dense VᵀH²V
        const V = o.basis(), k = V.length, H = new Float64Array(d * d);
        assertEquals(k, g.curv.k);
        for (const h of hs) h.forEach((x, s) => (H[s] += x / m));
        const HV = V.map((v) => Float64Array.from({ length: d }, (_, a) => v.reduce((s, x, b) => s + H[a * d + b] * x, 0)));
        for (let a = 0; a < k; a++) {
          for (let b = 0; b < k; b++) {
            const ref = HV[a].reduce((s, x, i) => s + x * HV[b][i], 0);
            assert(Math.abs(g.K2[a * k + b] - ref) <= 1e-10 * (1 + Math.abs(ref)), `K2[${a},${b}]`);
          }
        }
      });
    }
  }
});

Deno.test("growMomentumBasis() at the basis budget restarts, and says max_basis when it cannot converge", async () => {
  const d = 8, m = 9;
  const hs = randomPsd(m, d, 3, 92);
  const o = new SyntheticOracle(hs);
  await o.random(2, 1);
  const g = await growMomentumBasis(o, await fetchCurvature(o, undefined, 0, 2), await fetchK2(o, undefined, 0), {
    beta: 0.9, p: 1, tol: 1e-12, maxBasis: 5, maxHvps: 1e6, block: 2,
  });
  assert(!g.converged && g.stopped === "max_basis" && g.restarts > 0, `${g.stopped} ${g.restarts}`);
  assert(g.curv.k <= 5 && o.basisSize === g.curv.k);
  const exact = 2 / denseThreshold(hs, d, 1, heavyBallDynamics(0.9), 1e-4);
  assert(g.sol.lambdaGen <= exact * (1 + 1e-9));
  const none = await growMomentumBasis(o, g.curv, g.K2, { beta: 0.9, p: 1, tol: 1e-3, maxBasis: 64, maxHvps: 0 });
  assert(!none.converged && none.stopped === "budget_hvps" && none.iterations === 0);
});

Deno.test("subspace bound through the oracle: in 240 random subspaces (K_i, K₂ by blocks and hessian_gram) λ_gen(β) never exceeds the dense value", async () => {
  const d = 6, m = 8;
  const hs = randomPsd(m, d, 2, 93);
  let seed = 1;
  for (const [beta, B] of [[0.5, 1], [0.9, 3], [0.99, 2]]) {
    const p = batchNoiseWeight(B, m);
    const exact = 2 / denseThreshold(hs, d, p, heavyBallDynamics(beta), 1e-4);
    for (let trial = 0; trial < 80; trial++) {
      const o = new SyntheticOracle(hs);
      const k = 1 + (trial % (d - 1));
      await o.random(k, seed++);
      const mc = (await fetchCurvature(o, undefined, 0, k)).withK2(await fetchK2(o, undefined, 0));
      const v = momentumPencilSolve(mc, beta, p).lambdaGen;
      assert(v <= exact * (1 + 1e-10), `β=${beta} B=${B} k=${k}: ${v} > exact ${exact}`);
    }
  }
});
