import { assert, assertRejects } from "./_assert.ts";
import { lanczos } from "./lanczos.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { emptyCurvature, fetchCurvature } from "./oracle.ts";
import { Rng } from "./_rng.ts";
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
  // it stops on the eigenvalue error (≈ residual²/gap ≤ 1e-10), so the vector residual is ~1e-5
  assert(Math.sqrt(res) < 1e-4 * ref, `residual ${Math.sqrt(res) / ref}`);
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
  const curv = await fetchCurvature(o, undefined, 0, k);
  const warm = await lanczos(o, { tol: 1e-8, curv, warm: true });
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

Deno.test("lanczos() on the factor route keeps the basis curvature complete at one HVP-eq per step", async () => {
  const d = 12, m = 6, c = 2;
  const rng = new Rng(63);
  const fs = Array.from({ length: m }, () => rng.normals(c * d));
  const o = SyntheticOracle.fromFactors(fs, c);
  const ref = symEig(mean(o.hessians()), d).values[0];
  const r = await lanczos(o, { tol: 1e-10, curv: emptyCurvature(o) });
  assert(rel(r.lambdaMax, ref) < 1e-9, `${r.lambdaMax} vs ${ref}`);
  assert(r.curv!.k === o.basisSize);
  // the carried factors equal freshly fetched ones
  const fresh = await o.blocks(0, o.basisSize);
  assert(fresh.every((x, t) => Math.abs(x - r.curv!.data[t]) < 1e-12));
  // random(1) costs ½ (its JVP), each step a VJP + a JVP
  assert(Math.abs(o.hvps / m - (r.steps + 0.5 + o.basisSize / 2)) < 1e-12 || o.hvps / m <= r.steps + 1);
});
