import { assert, assertRejects } from "./_assert.ts";
import { lanczos } from "./lanczos.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { symEig } from "./_linalg.ts";
import { mean, randomPsd, rel } from "./_testing.ts";

Deno.test("lanczos() finds λ_max(H) with one HVP-equivalent per step", async () => {
  const d = 40, m = 7;
  const hs = randomPsd(m, d, 4, 61);
  const ref = symEig(mean(hs), d).values[0];
  const o = new SyntheticOracle(hs);
  const r = await lanczos(o, { tol: 1e-10 });
  assert(rel(r.lambdaMax, ref) < 1e-10, `${r.lambdaMax} vs ${ref}`);
  assert(r.converged && r.stopped === "converged");
  assert(o.hvps === r.steps * m, `hvps ${o.hvps} for ${r.steps} steps`);
  // the Ritz vector, mapped through the basis, is an eigenvector of H
  const V = o.basis();
  const v = new Float64Array(d);
  V.forEach((col, a) => col.forEach((x, t) => (v[t] += r.vector[a] * x)));
  const H = mean(hs), hv = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) hv[i] += H[i * d + j] * v[j];
  }
  let res = 0;
  for (let t = 0; t < d; t++) res += (hv[t] - r.lambdaMax * v[t]) ** 2;
  assert(Math.sqrt(res) < 1e-6 * ref);
});

Deno.test("lanczos() is exact once the Krylov space is invariant (small d)", async () => {
  const hs = [new Float64Array([2, 1, 1, 3]), new Float64Array([1, 0, 0, 0])];
  const r = await lanczos(new SyntheticOracle(hs), { tol: 1e-14 });
  const ref = symEig(mean(hs), 2).values[0];
  assert(rel(r.lambdaMax, ref) < 1e-13 && r.residual === 0 && r.steps === 2);
});

Deno.test("lanczos() warm-starts from an existing basis and reports budgets", async () => {
  const d = 30, m = 5;
  const hs = randomPsd(m, d, 3, 62);
  const ref = symEig(mean(hs), d).values[0];
  const o = new SyntheticOracle(hs);
  const cold = await lanczos(o, { tol: 1e-8 });
  const k = o.basisSize;
  const b = await o.blocks(0, k);
  const K = new Float64Array(k * k);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k * k; t++) K[t] += b[i * k * k + t] / m;
  }
  const warm = await lanczos(o, { tol: 1e-8, warmK: K });
  assert(
    warm.steps <= 2 && rel(warm.lambdaMax, ref) < 1e-8,
    `warm took ${warm.steps} steps`,
  );
  assert(cold.steps > warm.steps);
  const capped = await lanczos(new SyntheticOracle(hs), {
    tol: 1e-14,
    maxHvps: 3,
  });
  assert(capped.stopped === "budget_hvps" && capped.steps === 3);
  await assertRejects(
    () => lanczos(o, { tol: 0 }),
    RangeError,
    "Expected tol > 0",
  );
});
