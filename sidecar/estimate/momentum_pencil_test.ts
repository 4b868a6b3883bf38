import { assert, assertAlmostEquals, assertThrows } from "./_assert.ts";
import { matmul, orthonormalColumns, symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import { mean, randomPsd, rel, stack, THREE_SAMPLES } from "./_testing.ts";
import { denseThreshold, heavyBallDynamics } from "./_momentum_reference.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { Curvature, fullCurvature } from "./curvature.ts";
import { momentumPencilSolve, momentumQuotient } from "./momentum_pencil.ts";
import { reducedSolve } from "./reduced_solve.ts";

// Reference values: docs/momentum.md §8 (pencil and dense spectral radius agree there to 2e-13).
const WORKED: [number, number, number, number][] = [
  // β, p, λ_gen(β), η*_HB
  [0, 1, 1.862790641860, 1.073657959761],
  [0.5, 1, 2.326096049623, 0.859809722958],
  [0.5, 0.25, 1.102937184536, 1.813339896452],
  [0.9, 1, 8.734068700236, 0.228988352238],
  [0.9, 0.25, 2.541096368505, 0.787061846527],
  [0.9, 0, 0.634742805044, 3.150882505650],
  [0.99, 1, 82.194700135896, 0.024332469085],
  [0.99, 0.25, 20.876876675098, 0.095799770776],
];

/** A random `d × k` matrix with orthonormal columns. */
function randomBasis(d: number, k: number, seed: number): Float64Array {
  const { q, k: got } = orthonormalColumns(new Rng(seed).normals(d * k), d, k);
  if (got !== k) throw new Error("rank-deficient random basis");
  return q;
}

/** `K_i = VᵀH_iV` and `K₂ = VᵀH²V`, computed directly from the full matrices. */
function project(hs: Float64Array[], d: number, V: Float64Array, k: number) {
  const Vt = Float64Array.from(
    { length: k * d },
    (_, t) => V[(t % d) * k + Math.floor(t / d)],
  );
  const pr = (A: Float64Array) => matmul(matmul(Vt, A, k, d, d), V, k, d, k);
  const H = mean(hs);
  return {
    blocks: stack(hs.map(pr)),
    K2: pr(matmul(H, H, d, d, d)),
  };
}

/**
 * Rayleigh–Ritz value of the matrix-form quotient on symmetric `S` (`k × k`), by a dense
 * symmetric-definite eigenproblem in a basis of symmetric matrices, each form evaluated from the
 * full `d × d` matrices with `Σ = V S Vᵀ` (no `K_i`, no `K₂`).
 */
function denseRitz(
  hs: Float64Array[],
  d: number,
  V: Float64Array,
  k: number,
  beta: number,
  p: number,
): number {
  const H = mean(hs);
  const basis: Float64Array[] = [];
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      const S = new Float64Array(k * k);
      S[a * k + b] = S[b * k + a] = a === b ? 1 : Math.SQRT1_2;
      const Vt = Float64Array.from(
        { length: k * d },
        (_, t) => V[(t % d) * k + Math.floor(t / d)],
      );
      basis.push(matmul(matmul(V, S, d, k, k), Vt, d, k, d));
    }
  }
  const tr = (A: Float64Array) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += A[i * d + i];
    return s;
  };
  const mm = (A: Float64Array, B: Float64Array) => matmul(A, B, d, d, d);
  // bilinear forms of §3's matrix form
  const num = (X: Float64Array, Y: Float64Array) => {
    const hxhy = tr(mm(mm(H, X), mm(H, Y)));
    const per = hs.reduce((s, h) => s + tr(mm(mm(h, X), mm(h, Y))), 0) /
      hs.length;
    const cx = mm(H, X).map((v, t) => v - mm(X, H)[t]),
      cy = mm(H, Y).map((v, t) => v - mm(Y, H)[t]);
    const comm = cx.reduce((s, v, t) => s + v * cy[t], 0);
    return hxhy / (1 + beta) + (p / (1 - beta)) * (per - hxhy) -
      (beta / ((1 - beta) ** 2 * (1 + beta))) * comm;
  };
  const den = (X: Float64Array, Y: Float64Array) =>
    0.5 * (tr(mm(mm(H, X), Y)) + tr(mm(mm(H, Y), X)));
  const n = basis.length;
  const A = new Float64Array(n * n), B = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      A[i * n + j] = num(basis[i], basis[j]);
      B[i * n + j] = den(basis[i], basis[j]);
    }
  }
  const eb = symEig(B, n);
  const keep = [...eb.values].map((v, j) => [v, j]).filter(([v]) =>
    v > 1e-10 * eb.values[0]
  );
  const r = keep.length;
  // Z = B^{-1/2} on its range; top eigenvalue of Zᵀ A Z
  const Z = new Float64Array(n * r);
  keep.forEach(([v, j], c) => {
    for (let i = 0; i < n; i++) {
      Z[i * r + c] = eb.vectors[i * n + j] / Math.sqrt(v);
    }
  });
  const Zt = Float64Array.from(
    { length: r * n },
    (_, t) => Z[(t % n) * r + Math.floor(t / n)],
  );
  return symEig(matmul(matmul(Zt, A, r, n, n), Z, r, n, r), r).values[0];
}

Deno.test("momentumPencilSolve() reproduces momentum.md §8 to 1e-9", () => {
  const c = fullCurvature(THREE_SAMPLES);
  for (const [beta, p, lam, eta] of WORKED) {
    const s = momentumPencilSolve(c, beta, p);
    assertAlmostEquals(
      s.lambdaGen,
      lam,
      1e-9,
      `β=${beta} p=${p}: ${s.lambdaGen}`,
    );
    assertAlmostEquals(2 / s.lambdaGen, eta, 1e-9);
    assert(s.converged);
  }
  // β = 0.9, B = 1: Σ*/tr of §8
  const S = momentumPencilSolve(c, 0.9, 1).S;
  const tr = S[0] + S[3];
  assertAlmostEquals(S[0] / tr, 0.4956363799, 1e-9);
  assertAlmostEquals(S[1] / tr, -0.0600502230, 1e-9);
  assertAlmostEquals(S[3] / tr, 0.5043636201, 1e-9);
});

Deno.test("momentumPencilSolve() scalar check: λ_gen(β) = 2/(1+β) + 1/(2(1−β)) for h = (1, 3)", () => {
  const c = Curvature.dense(new Float64Array([1, 3]), 2, 1).withK2(new Float64Array([4]));
  for (const [beta, ref] of [[0.5, 2.333333333333], [0.9, 6.052631578947]]) {
    assertAlmostEquals(momentumPencilSolve(c, beta, 1).lambdaGen, ref, 1e-9);
  }
  for (const beta of [0, 0.3, 0.99]) {
    assertAlmostEquals(
      momentumPencilSolve(c, beta, 1).lambdaGen,
      2 / (1 + beta) + 1 / (2 * (1 - beta)),
      1e-10 / (1 - beta),
    );
  }
});

Deno.test("momentumPencilSolve() at β = 0 is the existing reducedSolve; at p = 0 it is λ_max/(1+β)", () => {
  for (const [d, m, rank, seed] of [[4, 6, 1, 1], [6, 5, 2, 2], [8, 9, 1, 3]]) {
    const hs = randomPsd(m, d, rank, seed);
    const c = fullCurvature(hs);
    for (const B of [1, 2, m - 1]) {
      const p = batchNoiseWeight(B, m);
      const ref = reducedSolve(Curvature.dense(stack(hs), m, d), p).lambdaGen;
      assert(rel(momentumPencilSolve(c, 0, p).lambdaGen, ref) < 1e-10);
    }
    const lmax = symEig(mean(hs), d).values[0];
    for (const beta of [0, 0.5, 0.9, 0.99]) {
      const lam = momentumPencilSolve(c, beta, 0).lambdaGen;
      assert(
        rel(2 / lam, (2 * (1 + beta)) / lmax) < 1e-10,
        `β=${beta}: ${lam}`,
      );
    }
  }
});

Deno.test("momentumPencilSolve() matches the dense second-moment map to 1e-8 (heavy ball, dampening)", async (t) => {
  for (
    const [d, m, rank, seed] of [[3, 5, 1, 11], [4, 6, 2, 12], [4, 5, 1, 13]]
  ) {
    const hs = randomPsd(m, d, rank, seed);
    const c = fullCurvature(hs);
    for (const beta of [0.5, 0.9, 0.99]) {
      await t.step(`d=${d} m=${m} β=${beta}`, () => {
        for (const B of [1, 2, m - 1]) {
          const p = batchNoiseWeight(B, m);
          const got = 2 / momentumPencilSolve(c, beta, p).lambdaGen;
          const ref = denseThreshold(
            hs,
            d,
            p,
            heavyBallDynamics(beta),
            1e-3 * got,
          );
          assert(rel(got, ref) < 1e-8, `B=${B}: pencil ${got} vs dense ${ref}`);
        }
      });
    }
  }
  // dampening τ: heavy ball with learning rate η(1 − τ)
  const hs = randomPsd(5, 3, 1, 14);
  const got = 2 /
    (0.3 * momentumPencilSolve(fullCurvature(hs), 0.8, 1).lambdaGen);
  const ref = denseThreshold(hs, 3, 1, heavyBallDynamics(0.8, 0.7), 1e-3 * got);
  assert(rel(got, ref) < 1e-8, `dampening: ${got} vs ${ref}`);
});

Deno.test("momentumPencilSolve() maximiser attains the quotient and is PSD (V = I)", () => {
  const d = 5, m = 7, hs = randomPsd(m, d, 1, 21);
  const c = fullCurvature(hs);
  for (const beta of [0, 0.5, 0.9, 0.99]) {
    for (const p of [1, 0.3]) {
      const s = momentumPencilSolve(c, beta, p);
      assert(rel(momentumQuotient(c, beta, p, s.S), s.lambdaGen) < 1e-9);
      const ev = symEig(s.S, d).values;
      assert(
        ev[d - 1] >= -1e-7 * ev[0],
        `β=${beta} p=${p}: S not PSD, ${ev[d - 1]}`,
      );
    }
  }
});

Deno.test("momentumPencilSolve() in random subspaces: the Rayleigh–Ritz value never exceeds the exact one", async (t) => {
  const d = 6, m = 8;
  const hs = randomPsd(m, d, 2, 31);
  const exact = fullCurvature(hs);
  let cases = 0, negative = 0;
  for (const beta of [0, 0.5, 0.9, 0.99]) {
    for (const p of [1, batchNoiseWeight(3, m)]) {
      const lam = momentumPencilSolve(exact, beta, p).lambdaGen;
      await t.step(`β=${beta} p=${p.toFixed(3)}`, () => {
        for (let k = 1; k <= d; k++) {
          for (let seed = 0; seed < 3; seed++) {
            const V = randomBasis(d, k, 100 * k + seed);
            const { blocks, K2 } = project(hs, d, V, k);
            const got =
              momentumPencilSolve(Curvature.dense(blocks, m, k).withK2(K2), beta, p)
                .lambdaGen;
            assert(got <= lam * (1 + 1e-10), `k=${k}: ${got} > exact ${lam}`);
            // and it is the dense Rayleigh–Ritz value of the matrix form in span V
            const ritz = denseRitz(hs, d, V, k, beta, p);
            assert(
              Math.abs(got - ritz) <= 1e-9 * Math.max(Math.abs(ritz), lam),
              `k=${k}: ${got} vs dense RR ${ritz}`,
            );
            if (k === d) assert(rel(got, lam) < 1e-9, `k=d: ${got} vs ${lam}`);
            if (got < 0) negative++;
            cases++;
          }
        }
      });
    }
  }
  assert(cases === 8 * 18);
  assert(negative > 0, "expected some negative RR values at β = 0.99 (§6)");
});

Deno.test("momentumPencilSolve() rejects bad input and handles no curvature", () => {
  const c = fullCurvature(THREE_SAMPLES);
  assertThrows(
    () => momentumPencilSolve(c, 1, 1),
    RangeError,
    "Expected a momentum in [0, 1)",
  );
  assertThrows(
    () => momentumPencilSolve(c, 0.5, 1.5),
    RangeError,
    "Expected p in [0, 1]",
  );
  assertThrows(
    () => momentumPencilSolve(c, 0.5, 1, { start: new Float64Array(3) }),
    RangeError,
    "Expected start of 2×2",
  );
  const zero = Curvature.dense(new Float64Array(4), 1, 2).withK2(new Float64Array(4));
  const s = momentumPencilSolve(zero, 0.9, 1);
  assert(s.lambdaGen === 0 && !s.converged && s.droppedDirections === 2);
  assertThrows(
    () => Curvature.dense(new Float64Array(3), 1, 2).withK2(new Float64Array(4)),
    RangeError,
    "Expected blocks of 1×2×2",
  );
});
