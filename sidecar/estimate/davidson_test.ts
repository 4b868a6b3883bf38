import { assert, assertRejects } from "./_assert.ts";
import { compactBasis, davidson } from "./davidson.ts";
import { lanczos } from "./lanczos.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { denseLambdaGen, factorsOf, randomPsd, rel, stack } from "./_testing.ts";
import { Curvature } from "./curvature.ts";
import { symEig } from "./_linalg.ts";
import { fetchCurvature } from "./oracle.ts";

const dense = (hs: Float64Array[], d: number) => Curvature.dense(stack(hs), hs.length, d);
const split = (all: Float64Array, m: number, size: number) =>
  Array.from({ length: m }, (_, i) => all.slice(i * size, (i + 1) * size));
/** The same problem on both routes: a Hessian-route oracle and a factor-route one. */
const oracles = (hs: Float64Array[], d: number): [string, SyntheticOracle][] => [
  ["dense", new SyntheticOracle(hs)],
  ["factor", SyntheticOracle.fromFactors(split(factorsOf(hs, d), hs.length, d * d), d)],
];

// d = 60, m = 20 rank-3 samples: incoherent, the maximiser has full rank. The reference is the
// reduced solve over the identity basis (V = I, K_i = H_i: the full problem), itself checked
// against dense Kronecker λ_gen in reduced_solve_test.ts and on a smaller copy below.
Deno.test("davidson() reaches the dense λ_gen on incoherent samples (d = 60)", async () => {
  const d = 60, m = 20;
  const hs = randomPsd(m, d, 3, 5);
  const ref = reducedSolve(dense(hs, d), 1).lambdaGen;
  for (const [route, o] of oracles(hs, d)) {
    await lanczos(o, { tol: 1e-3, curv: await fetchCurvature(o, undefined, 0, 0) });
    const b = await fetchCurvature(o, undefined, 0, o.basisSize);
    // the budget: d = 60 for S*, and four more for the followed pairs' columns
    const res = await davidson(o, b, { p: 1, tol: 1e-9, maxBasis: 68 });
    console.log(
      `${route} Ritz/exact: ${
        res.history.map((x) => (x / ref).toFixed(6)).join(" ")
      }; HVP-eq ${o.hvps / m}, k ${res.k}`,
    );
    assert(rel(res.lambdaGen, ref) < 1e-6, `${route}: ${res.lambdaGen} vs ${ref}`);
    assert(res.converged, res.stopped);
    assert(
      res.lambdaGen <= ref * (1 + 1e-10),
      "a Ritz value cannot exceed the exact value",
    );
  }
});

Deno.test("davidson() agrees with the dense Kronecker value on a small incoherent problem", async () => {
  const d = 9, m = 6;
  const hs = randomPsd(m, d, 2, 6);
  for (const [p, [route, o]] of [1, 0.3].flatMap((p) => oracles(hs, d).map((x) => [p, x] as const))) {
    await o.random(1, 3);
    const res = await davidson(o, await fetchCurvature(o, undefined, 0, 1), {
      p,
      tol: 1e-12,
      block: 3,
      maxBasis: 40,
    });
    assert(rel(res.lambdaGen, denseLambdaGen(hs, d, p)) < 1e-8, `${route} p=${p}`);
  }
});

Deno.test("davidson() restarts under a small basis budget, gets within 1e-4 and reports max_basis", async () => {
  const d = 30, m = 10;
  const hs = randomPsd(m, d, 1, 7).map((h, i) => h.map((x) => x * (1 + i)));
  const ref = reducedSolve(dense(hs, d), 0.5).lambdaGen;
  const o = new SyntheticOracle(hs);
  await o.random(2, 1);
  const res = await davidson(o, await fetchCurvature(o, undefined, 0, 2), {
    p: 0.5,
    tol: 1e-8,
    block: 4,
    maxBasis: 10,
  });
  assert(o.basisSize <= 10 && res.k <= 10);
  assert(res.restarts > 0);
  // the budget, not the tolerance, ended it, and the result says so
  assert(!res.converged && res.stopped === "max_basis", res.stopped);
  assert(rel(res.lambdaGen, ref) < 1e-4, `${res.lambdaGen} vs ${ref}`);
});

Deno.test("davidson() stops on the HVP budget and says so", async () => {
  const hs = randomPsd(10, 40, 3, 8);
  const o = new SyntheticOracle(hs);
  await o.random(1, 1);
  const res = await davidson(o, await fetchCurvature(o, undefined, 0, 1), {
    p: 1,
    tol: 1e-12,
    maxHvps: 10,
  });
  assert(!res.converged && res.stopped === "budget_hvps", res.stopped);
  await assertRejects(
    () => davidson(o, dense(hs.slice(0, 1), 40), { p: 1 }),
    RangeError,
    "Expected curvature",
  );
});

Deno.test("compactBasis() keeps S* and the top of K, without HVPs", async () => {
  const d = 20, m = 8;
  const hs = randomPsd(m, d, 1, 9);
  const o = new SyntheticOracle(hs);
  await o.random(d, 1);
  const b = await fetchCurvature(o, undefined, 0, d);
  const sol = reducedSolve(b, 1);
  const before = o.hvps;
  const c = await compactBasis(o, b, sol.S, { p: 1, carryMax: 10 });
  assert(o.hvps === before && c.k <= 11 && o.basisSize === c.k);
  // blocks returned match what the client would now compute
  const fresh = await o.blocks(0, c.k);
  let err = 0;
  for (let t = 0; t < fresh.length; t++) {
    err = Math.max(err, Math.abs(fresh[t] - c.curv.data[t]));
  }
  assert(err < 1e-10, `block mismatch ${err}`);
});

Deno.test("compactBasis() carries the fewest directions of S* that hold λ_gen to carryLoss", async () => {
  // incoherent rank-2 samples: S* has many directions of weight, few of which hold the value
  const d = 20, m = 30, p = 0.3, loss = 2e-2;
  const hs = randomPsd(m, d, 2, 61);
  const o = new SyntheticOracle(hs);
  await o.random(d, 1);
  const b = await fetchCurvature(o, undefined, 0, d);
  const sol = reducedSolve(b, p, { tol: 1e-12 });
  const es = symEig(sol.S, d);
  const weighted = es.values.filter((v) => v > 1e-2 * es.values[0]).length;
  const c = await compactBasis(o, b, sol.S, { p, carryLoss: loss, carryMin: 2 });
  // the value in the client's new basis, by a dense Kronecker solve of the projected Hessians
  const V = o.basis();
  const projected = hs.map((h) => {
    const out = new Float64Array(c.k * c.k);
    for (let a = 0; a < c.k; a++) {
      for (let e = 0; e < c.k; e++) {
        let s = 0;
        for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) s += V[a][i] * h[i * d + j] * V[e][j];
        out[a * c.k + e] = s;
      }
    }
    return out;
  });
  const exact = denseLambdaGen(hs, d, p), kept = denseLambdaGen(projected, c.k, p);
  assert(kept >= (1 - loss) * exact, `${kept} vs ${exact}`);
  assert(c.k >= 2 && c.k < weighted, `${c.k} carried of ${weighted} weighted directions`);
});

/**
 * A client that stops taking columns at `cap` whatever is left of them, as the Python client
 * does once its basis has `d` columns: `kept_index` is empty while `norms` are not small.
 */
class RefusingOracle extends SyntheticOracle {
  constructor(hs: Float64Array[], readonly cap: number) {
    super(hs);
  }
  override async expand(coeffs: Float64Array, basisCoeffs: Float64Array, r: number, withBlocks: boolean) {
    const k = this.basisSize;
    const res = await super.expand(coeffs, basisCoeffs, r, withBlocks);
    if (k < this.cap) return res;
    const keep = new Float64Array(this.basisSize * k);
    for (let a = 0; a < k; a++) keep[a * k + a] = 1;
    await this.rotate(keep, k); // take the appended columns back
    return { proj: res.proj, norms: res.norms, keptIndex: [] };
  }
}

Deno.test("davidson() claims no exactness when the client takes no column but the residual is large", async () => {
  const d = 30, m = 10;
  const hs = randomPsd(m, d, 2, 9);
  const ref = reducedSolve(dense(hs, d), 0.5).lambdaGen;
  const o = new RefusingOracle(hs, 6);
  await o.random(2, 1);
  const res = await davidson(o, await fetchCurvature(o, undefined, 0, 2), { p: 0.5, tol: 1e-9, block: 4 });
  assert(res.k === o.basisSize && res.k <= 10, `k ${res.k}`);
  assert(rel(res.lambdaGen, ref) > 1e-9, "the refused basis is not the whole space here");
  assert(!res.converged && res.stopped === "max_basis", `${res.stopped}`);
  assert(res.errorEstimate > 1e-9, `error estimate ${res.errorEstimate}`);
});

Deno.test("davidson() still calls a basis exact when nothing is left outside it (k = d)", async () => {
  const d = 8, m = 6;
  const hs = randomPsd(m, d, 3, 10);
  const o = new RefusingOracle(hs, d); // refuses only at k = d, where the residual is rounding
  await o.random(1, 2);
  const res = await davidson(o, await fetchCurvature(o, undefined, 0, 1), { p: 0.5, tol: 1e-12, block: 3 });
  assert(res.converged && res.stopped === "converged", res.stopped);
  assert(rel(res.lambdaGen, denseLambdaGen(hs, d, 0.5)) < 1e-10, `${res.lambdaGen}`);
});
