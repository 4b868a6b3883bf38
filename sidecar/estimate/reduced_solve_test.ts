import { assert, assertAlmostEquals, assertThrows } from "./_assert.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { symEig } from "./_linalg.ts";
import {
  denseLambdaGen,
  denseQRadius,
  denseSymmetricSpectrum,
  randomPsd,
  bothRoutes,
  rel,
  stack,
  THREE_SAMPLES,
} from "./_testing.ts";
import { Curvature } from "./curvature.ts";

const dense = (hs: Float64Array[], d: number) => Curvature.dense(stack(hs), hs.length, d);

// Reference values: theory.md §7 (checked there by dense Kronecker computations).
Deno.test("reducedSolve() reproduces the three-sample worked example", () => {
  const expected: [number, number][] = [[1, 1.862790641860], [
    0.25,
    1.327173104349,
  ], [0, 1.206011329583]];
  for (const [route, b] of bothRoutes(THREE_SAMPLES, 2)) {
    for (const [p, lam] of expected) {
      const s = reducedSolve(b, p);
      assert(rel(s.lambdaGen, lam) < 1e-9, `${route} p=${p}: ${s.lambdaGen} vs ${lam}`);
      assert(s.converged);
    }
  }
});

Deno.test("reducedSolve() matches the dense Kronecker λ_gen on random PSD problems", async (t) => {
  for (
    const [d, m, rank, seed] of [[3, 5, 1, 1], [5, 6, 2, 2], [8, 7, 2, 3], [
      12,
      6,
      3,
      4,
    ], [6, 4, 1, 5]]
  ) {
    await t.step(`d=${d} m=${m} rank=${rank}`, () => {
      const hs = randomPsd(m, d, rank, seed);
      for (const [route, b] of bothRoutes(hs, d)) {
        for (const B of [1, 2, 4, m]) {
          const p = batchNoiseWeight(B, m);
          const ref = denseLambdaGen(hs, d, p);
          const s = reducedSolve(b, p);
          assert(
            rel(s.lambdaGen, ref) < 1e-8,
            `${route} B=${B}: ${s.lambdaGen} vs dense ${ref}`,
          );
        }
      }
    });
  }
});

Deno.test("reducedSolve() with the top pairs deflated returns the next ones of the dense spectrum", () => {
  for (const [d, m, rank, seed] of [[4, 6, 2, 11], [6, 5, 2, 12]]) {
    const hs = randomPsd(m, d, rank, seed);
    for (const [route, b] of bothRoutes(hs, d)) {
      for (const B of [1, 3]) {
        const p = batchNoiseWeight(B, m);
        const ref = denseSymmetricSpectrum(hs, d, p);
        const deflate: { S: Float64Array; lambdaGen: number }[] = [];
        for (let j = 0; j < 3; j++) {
          const s = reducedSolve(b, p, { deflate, tol: 1e-12 });
          assert(rel(s.lambdaGen, ref[j]) < 1e-7, `${route} B=${B} pair ${j}: ${s.lambdaGen} vs dense ${ref[j]}`);
          deflate.push({ S: s.S, lambdaGen: s.lambdaGen });
        }
      }
    }
  }
});

Deno.test("reducedSolve() has the GD limit, monotonicity in B and a PSD maximiser", () => {
  const d = 6, m = 8;
  const hs = randomPsd(m, d, 2, 11);
  const b = dense(hs, d);
  const H = new Float64Array(d * d);
  hs.forEach((h) => h.forEach((x, t) => (H[t] += x / m)));
  const lmax = symEig(H, d).values[0];
  assert(rel(reducedSolve(b, 0).lambdaGen, lmax) < 1e-10);
  let prev = Infinity;
  for (let B = 1; B <= m; B++) {
    const s = reducedSolve(b, batchNoiseWeight(B, m));
    assert(
      s.lambdaGen <= prev * (1 + 1e-10),
      `B=${B} increased: ${s.lambdaGen} > ${prev}`,
    );
    prev = s.lambdaGen;
    const ev = symEig(s.S, d).values;
    // Lanczos stops on the eigenvalue error (1e-12), so S itself is accurate to ~1e-6
    assert(ev[d - 1] >= -1e-6 * ev[0], `S not PSD at B=${B}: ${ev[d - 1]}`);
    // S attains the quotient (matrix form of theory §2, computed directly)
    assert(
      rel(quotient(hs, s.S, d, batchNoiseWeight(B, m)), s.lambdaGen) < 1e-9,
    );
  }
});

Deno.test("reducedSolve() threshold: spectral radius of Q is 1 at η*, below at 0.99η*, above at 1.01η*", () => {
  const d = 3, m = 4;
  const hs = randomPsd(m, d, 1, 21);
  for (const B of [1, 2]) {
    const p = batchNoiseWeight(B, m);
    const eta = 2 / reducedSolve(dense(hs, d), p).lambdaGen;
    assertAlmostEquals(denseQRadius(hs, d, p, eta), 1, 1e-9);
    assert(denseQRadius(hs, d, p, 0.99 * eta) < 1);
    assert(denseQRadius(hs, d, p, 1.01 * eta) > 1);
  }
});

Deno.test("reducedSolve() handles null space, weights and bad input", () => {
  // rank-deficient H: d = 5, two rank-1 samples
  const hs = randomPsd(2, 5, 1, 31);
  const s = reducedSolve(dense(hs, 5), 1);
  assert(s.droppedDirections === 3, `dropped ${s.droppedDirections}`);
  assert(rel(s.lambdaGen, denseLambdaGen(hs, 5, 1)) < 1e-8);
  // weight 2 on a sample equals duplicating it
  const h3 = randomPsd(3, 4, 2, 32);
  const w = reducedSolve(dense(h3, 4), 1, { weights: [2, 1, 1] }).lambdaGen;
  const dup =
    reducedSolve(dense([h3[0], h3[0], h3[1], h3[2]], 4), 1).lambdaGen;
  assert(rel(w, dup) < 1e-10);
  // zero weights (a resample's left-out samples) equal leaving the samples out
  const h4 = randomPsd(4, 4, 2, 33);
  for (const [route, b] of bothRoutes(h4, 4)) {
    const z = reducedSolve(b, 0.7, { weights: [0, 2, 1, 0] }).lambdaGen;
    assert(rel(z, denseLambdaGen([h4[1], h4[1], h4[2]], 4, 0.7)) < 1e-9, `${route}: ${z}`);
  }
  assertThrows(
    () => reducedSolve(Curvature.dense(new Float64Array(7), 1, 2), 1),
    RangeError,
    "Expected blocks of 1×2×2",
  );
  assertThrows(
    () => reducedSolve(dense(h3, 4), 1.5),
    RangeError,
    "Expected p in [0, 1]",
  );
});

/** R(S) of theory §2 computed with full matrices. */
function quotient(
  hs: Float64Array[],
  S: Float64Array,
  d: number,
  p: number,
): number {
  const m = hs.length;
  const H = new Float64Array(d * d);
  hs.forEach((h) => h.forEach((x, t) => (H[t] += x / m)));
  const trABAB = (a: Float64Array) => {
    const as = mul(a, S, d);
    return trace(mul(as, as, d), d);
  };
  const num = (1 - p) * trABAB(H) +
    (p / m) * hs.reduce((acc, h) => acc + trABAB(h), 0);
  return num / trace(mul(H, mul(S, S, d), d), d);
}
function mul(a: Float64Array, b: Float64Array, n: number) {
  const o = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      for (let l = 0; l < n; l++) o[i * n + j] += a[i * n + l] * b[l * n + j];
    }
  }
  return o;
}
function trace(a: Float64Array, n: number) {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i * n + i];
  return s;
}
