import { assert } from "./_assert.ts";
import { gramSchmidt, matmul, symEig } from "./_linalg.ts";
import { mean, randomPsd, rel, stack } from "./_testing.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { Curvature, fullCurvature } from "./curvature.ts";
import { leadingDirections, momentumExpansion } from "./momentum_expansion.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";
import { pencilCoefficients } from "./optimizer_model.ts";

const t = (A: Float64Array, r: number, c: number) =>
  Float64Array.from(
    { length: r * c },
    (_, s) => A[(s % r) * c + Math.floor(s / r)],
  );

/** Columns (length-d vectors) to a `d × k` row-major matrix. */
function toMatrix(cols: Float64Array[], d: number): Float64Array {
  const k = cols.length, V = new Float64Array(d * k);
  cols.forEach((v, j) => v.forEach((x, i) => (V[i * k + j] = x)));
  return V;
}

/** `K_i`, `K₂` of the basis `V` from the full matrices. */
function project(hs: Float64Array[], d: number, V: Float64Array, k: number) {
  const pr = (A: Float64Array) =>
    matmul(matmul(t(V, d, k), A, k, d, d), V, k, d, k);
  const H = mean(hs);
  return { blocks: stack(hs.map(pr)), K2: pr(matmul(H, H, d, d, d)) };
}

/** Dense residual `[B(Σ) − (λ/2)(HΣ + ΣH)] V Y` with `Σ = V S Vᵀ`, straight from momentum.md §3. */
function denseResidual(
  hs: Float64Array[],
  d: number,
  V: Float64Array,
  k: number,
  S: Float64Array,
  lam: number,
  beta: number,
  p: number,
  Y: Float64Array,
  q: number,
): Float64Array {
  const { c1, c2, c3 } = pencilCoefficients(beta, p);
  const mm = (A: Float64Array, B: Float64Array) => matmul(A, B, d, d, d);
  const H = mean(hs), Sig = matmul(matmul(V, S, d, k, k), t(V, d, k), d, k, d);
  const per = new Float64Array(d * d);
  for (const h of hs) {
    mm(mm(h, Sig), h).forEach((x, s) => (per[s] += x / hs.length));
  }
  const hsh = mm(mm(H, Sig), H), H2 = mm(H, H);
  const R = hsh.map((x, s) =>
    c1 * x + c2 * per[s] - c3 * (mm(H2, Sig)[s] + mm(Sig, H2)[s] - 2 * x) -
    (lam / 2) * (mm(H, Sig)[s] + mm(Sig, H)[s])
  );
  return matmul(matmul(R, V, d, d, k), Y, d, k, q);
}

/** Execute the recipe with explicit `H_i V` (what the client would do). */
function execute(
  hs: Float64Array[],
  d: number,
  V: Float64Array,
  k: number,
  e: ReturnType<typeof momentumExpansion>,
) {
  const q = e.q, H = mean(hs), out = new Float64Array(d * q);
  hs.forEach((h, i) => {
    const c = e.perSample.subarray(i * k * q, (i + 1) * k * q);
    matmul(matmul(h, V, d, d, k), c, d, k, q).forEach((x, s) => (out[s] += x));
  });
  matmul(V, e.basis, d, k, q).forEach((x, s) => (out[s] += x));
  const HV = matmul(H, V, d, d, k);
  matmul(H, matmul(HV, e.second, d, k, q), d, d, q).forEach((
    x,
    s,
  ) => (out[s] += x));
  return out;
}

Deno.test("momentumExpansion() recipe equals the dense pencil residual applied to V Y", () => {
  const d = 7, m = 6, hs = randomPsd(m, d, 2, 3);
  const k = 3,
    V = toMatrix(
      gramSchmidt(hs.slice(0, k).map((h) => h.slice(0, d)), []).kept,
      d,
    );
  const { blocks, K2 } = project(hs, d, V, k);
  for (const beta of [0, 0.5, 0.9]) {
    const p = batchNoiseWeight(2, m);
    const sol = momentumPencilSolve(Curvature.dense(blocks, m, k).withK2(K2), beta, p);
    const Y = leadingDirections(sol.S, k, 2);
    const e = momentumExpansion(
      blocks,
      m,
      k,
      K2,
      beta,
      p,
      sol.S,
      sol.lambdaGen,
      Y,
      2,
    );
    const got = execute(hs, d, V, k, e);
    const ref = denseResidual(hs, d, V, k, sol.S, sol.lambdaGen, beta, p, Y, 2);
    const scale = Math.max(...ref.map(Math.abs));
    got.forEach((x, s) =>
      assert(
        Math.abs(x - ref[s]) <= 1e-12 * scale + 1e-14,
        `β=${beta}: ${x} vs ${ref[s]}`,
      )
    );
    // Galerkin: the residual is orthogonal to the basis (the reduced problem is solved)
    const VtR = matmul(t(V, d, k), got, k, d, 2);
    assert(
      Math.max(...VtR.map(Math.abs)) <= 1e-9 * scale,
      "residual not orthogonal to V",
    );
  }
});

Deno.test("Davidson with momentumExpansion() climbs monotonically, never above the exact λ_gen(β), exact once V spans the space", async (tt) => {
  const d = 10, m = 12, hs = randomPsd(m, d, 1, 17);
  const H = mean(hs);
  const eh = symEig(H, d);
  for (const [beta, B] of [[0, 1], [0.9, 1], [0.9, 4]]) {
    await tt.step(`β=${beta} B=${B}`, () => {
      const p = batchNoiseWeight(B, m);
      const exact = momentumPencilSolve(fullCurvature(hs), beta, p).lambdaGen;
      let cols: Float64Array[] = [0, 1].map((j) =>
        Float64Array.from({ length: d }, (_, a) => eh.vectors[a * d + j])
      );
      let prev = -Infinity, last = 0;
      for (let it = 0; it < 12 && cols.length <= d; it++) {
        const k = cols.length, V = toMatrix(cols, d);
        const { blocks, K2 } = project(hs, d, V, k);
        const sol = momentumPencilSolve(
          Curvature.dense(blocks, m, k).withK2(K2),
          beta,
          p,
        );
        assert(
          sol.lambdaGen >= prev - 1e-10 * Math.abs(exact),
          `not monotone: ${sol.lambdaGen} < ${prev}`,
        );
        assert(
          sol.lambdaGen <= exact * (1 + 1e-10),
          `above exact: ${sol.lambdaGen} > ${exact}`,
        );
        prev = last = sol.lambdaGen;
        if (k === d) break;
        const q = Math.min(2, d - k), Y = leadingDirections(sol.S, k, q);
        const e = momentumExpansion(
          blocks,
          m,
          k,
          K2,
          beta,
          p,
          sol.S,
          sol.lambdaGen,
          Y,
          q,
        );
        const R = execute(hs, d, V, k, e);
        const cand = Array.from(
          { length: q },
          (_, j) => Float64Array.from({ length: d }, (_, a) => R[a * q + j]),
        );
        const added = gramSchmidt(cand, cols, 1e-8).kept;
        if (added.length === 0) break;
        cols = [...cols, ...added];
      }
      assert(rel(last, exact) < 1e-8, `final Ritz ${last} vs exact ${exact}`);
    });
  }
});
