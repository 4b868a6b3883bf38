import { assert, assertRejects } from "./_assert.ts";
import { probeSampleBranches, sampleTops } from "./sample_branches.ts";
import { davidson } from "./davidson.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { fetchCurvature } from "./oracle.ts";
import { symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import { denseLambdaGen, rel } from "./_testing.ts";

const d = 16, c = 2, m = 10, P = 0.5;

/**
 * Ten samples with factors in coordinates 0..9, except that samples 0 and 1 also share a large
 * direction `u` in coordinates 10..15 (a "group" branch). Sample 0 is visible in the start basis
 * (its part in 0..9 is large), sample 1 is not (small part in 0..9).
 */
function groupProblem(): { factors: Float64Array[]; hs: Float64Array[] } {
  const rng = new Rng(11);
  const u = Float64Array.from({ length: 6 }, () => rng.normal());
  const un = Math.hypot(...u);
  const factors = Array.from({ length: m }, (_, i) => {
    const f = new Float64Array(c * d);
    const scale = i === 0 ? 1.5 : i === 1 ? 0.2 : 1;
    for (let r = 0; r < c; r++) for (let a = 0; a < 10; a++) f[r * d + a] = scale * rng.normal();
    if (i < 2) for (let a = 0; a < 6; a++) f[10 + a] = (4 * u[a]) / un + 0.3 * rng.normal();
    return f;
  });
  const hs = factors.map((f) => {
    const h = new Float64Array(d * d);
    for (let r = 0; r < c; r++) {
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) h[a * d + b] += f[r * d + a] * f[r * d + b];
    }
    return h;
  });
  return { factors, hs };
}

/** Largest eigenvalue of `F_j F_jᵀ` (`c × c`), from the factors themselves. */
function exactTop(f: Float64Array): number {
  const g = new Float64Array(c * c);
  for (let r = 0; r < c; r++) {
    for (let s = 0; s < c; s++) for (let a = 0; a < d; a++) g[r * c + s] += f[r * d + a] * f[s * d + a];
  }
  return symEig(g, c).values[0];
}

/** A start basis spanning coordinates 0..9 only: the rows of samples 2..9 (output coefficients). */
async function startBasis(o: SyntheticOracle) {
  const r = (m - 2) * c, coeffs = new Float64Array(m * c * r);
  for (let j = 0; j < r; j++) coeffs[(2 * c + j) * r + j] = 1;
  await o.expand(coeffs, new Float64Array(0), r, false);
  return await fetchCurvature(o, undefined, 0, o.basisSize);
}

Deno.test("probeSampleBranches() finds a group branch stage by stage; the basis then reaches the dense λ_gen", async () => {
  const { factors, hs } = groupProblem();
  const o = SyntheticOracle.fromFactors(factors, c);
  const start = await startBasis(o);
  const exact = denseLambdaGen(hs, d, P);
  const before = reducedSolve(start, P).lambdaGen;
  // the test can fail: without the group's direction the basis is far below the exact value
  assert(before < 0.8 * exact, `start basis ${before} vs exact ${exact}`);
  const tops0 = sampleTops(start);
  assert(tops0.values[1] < 0.05 * exactTop(factors[1]), `sample 1 starts hidden: ${tops0.values[1]}`);
  const { curv, probed } = await probeSampleBranches(o, start, [1, 1]);
  // stage 1 probes sample 0 (largest in the basis); its column shows sample 1, probed in stage 2
  assert(probed[0] === 0 && probed[1] === 1, `probed ${probed}`);
  assert(curv.k === start.k + 2, `two columns appended, k ${curv.k}`);
  const tops = sampleTops(curv);
  for (const j of [0, 1]) {
    const g = exactTop(factors[j]);
    assert(rel(tops.values[j], g) < 0.02, `sample ${j}: in basis ${tops.values[j]} vs exact ${g}`);
  }
  const dv = await davidson(o, curv, { p: P, tol: 1e-6 });
  assert(rel(dv.lambdaGen, exact) < 1e-5, `Davidson after the probes ${dv.lambdaGen} vs dense ${exact}`);
});

Deno.test("probeSampleBranches() with one stage of two probes the two largest in the basis instead", async () => {
  const { factors } = groupProblem();
  const o = SyntheticOracle.fromFactors(factors, c);
  const { probed } = await probeSampleBranches(o, await startBasis(o), [2]);
  assert(probed[0] === 0 && !probed.includes(1), `one stage cannot see sample 1: probed ${probed}`);
});

Deno.test("probeSampleBranches() refuses the Hessian route; sampleTops() refuses dense curvature", async () => {
  const { hs } = groupProblem();
  const o = new SyntheticOracle(hs);
  await o.random(4, 1);
  const b = await fetchCurvature(o, undefined, 0, 4);
  await assertRejects(() => probeSampleBranches(o, b), RangeError, "factor-route");
  let threw = false;
  try {
    sampleTops(b);
  } catch (e) {
    threw = e instanceof RangeError;
  }
  assert(threw, "sampleTops on dense curvature");
});

Deno.test("probeSampleBranches() ranks its first stage by the previous round's values too", async () => {
  const { factors } = groupProblem();
  const o = SyntheticOracle.fromFactors(factors, c);
  const prior = new Float64Array(m);
  prior[1] = 100; // sample 1 was the largest last round; it is hidden in this basis
  const { probed } = await probeSampleBranches(o, await startBasis(o), [1, 1], prior);
  assert(probed[0] === 1, `prior first: probed ${probed}`);
  const o2 = SyntheticOracle.fromFactors(factors, c);
  const wrongSize = await probeSampleBranches(o2, await startBasis(o2), [1], new Float64Array(m + 1).fill(100));
  assert(wrongSize.probed[0] === 0, `a prior of another probe size is ignored: ${wrongSize.probed}`);
});
