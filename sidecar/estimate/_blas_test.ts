import { assert } from "./_assert.ts";
import { blasInfo, loadBlas } from "./_blas.ts";
import { gemm, symEig, symmetrise } from "./_linalg.ts";
import { RESAMPLE_MIN_STEPS, resampleWeights } from "./bootstrap.ts";
import { Curvature } from "./curvature.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { SingleBlocks } from "./single_blocks.ts";
import { SingleFactors } from "./single_factors.ts";
import { Rng } from "./_rng.ts";

/**
 * The library under test, found explicitly: EDGEWISE_BLAS_LIB, else numpy's bundled OpenBLAS in
 * this checkout's .venv (what the Python client passes to the sidecars it spawns).
 */
function blasPath(): string | undefined {
  const env = Deno.env.get("EDGEWISE_BLAS_LIB");
  if (env) return env;
  try {
    const root = new URL("../../.venv/lib/", import.meta.url).pathname;
    for (const py of Deno.readDirSync(root)) {
      const dir = `${root}${py.name}/site-packages/numpy.libs/`;
      try {
        for (const f of Deno.readDirSync(dir)) {
          if (/^libscipy_openblas.*\.so/.test(f.name)) return dir + f.name;
        }
      } catch { /* no numpy here */ }
    }
  } catch { /* no .venv */ }
  return undefined;
}

const path = blasPath();

/**
 * Resamples solved as at a live tolerance (0.005, float32 by default with a native sgemm):
 * within 1e-6 of the same solves in float64, and within the tolerance of solves to 1e-12.
 */
function assertLooseResamples(curv: Curvature, p: number): void {
  const rng = new Rng(3);
  const S = reducedSolve(curv, p, { tol: 1e-12 }).S;
  for (let b = 0; b < 8; b++) {
    const weights = resampleWeights(rng, curv.m);
    const ref = reducedSolve(curv, p, { weights, tol: 1e-12 }).lambdaGen;
    const opts = { weights, start: S, tol: 0.005, minIter: RESAMPLE_MIN_STEPS };
    const lamS = reducedSolve(curv, p, opts).lambdaGen; // single: tol ≥ SINGLE_PRECISION_MIN_TOL
    const lamD = reducedSolve(curv, p, { ...opts, precision: "double" }).lambdaGen;
    assert(lamS !== lamD, `resample ${b}: expected float32 by default at tol 0.005`);
    assert(Math.abs(lamS - lamD) < 1e-6 * lamD, `resample ${b}: single ${lamS} against double ${lamD}`);
    assert(Math.abs(lamS - ref) < 0.005 * ref, `resample ${b}: single ${lamS} against exact ${ref}`);
  }
}

Deno.test({
  name: "native BLAS (numpy's OpenBLAS through FFI) gives the TypeScript kernels' numbers",
  ignore: path === undefined,
  fn: () => {
    const rng = new Rng(5);
    const shapes: [boolean, boolean, number, number, number][] = [
      [false, false, 37, 23, 51], [true, false, 64, 64, 300], [false, true, 40, 70, 33], [true, true, 17, 29, 41],
    ];
    const ts = shapes.map(([ta, tb, M, N, K]) => {
      const a = rng.normals(M * K), b = rng.normals(K * N), c0 = rng.normals(M * N);
      return { ta, tb, M, N, K, a, b, c0, out: gemm(ta, tb, M, N, K, a, b, Float64Array.from(c0), 0.5, 2) };
    });
    const sym = rng.normals(60 * 60);
    const eTs = symEig(sym, 60);
    const small = rng.normals(5 * 5), eSmallTs = symEig(small, 5); // a Lanczos tridiagonal's size
    const curv = Curvature.factor(rng.normals(30 * 4 * 40), 30, 4, 40);
    const lamTs = reducedSolve(curv, 0.7, { tol: 1e-13 }).lambdaGen;
    try {
      const info = loadBlas(path);
      assert(info.dgemm !== undefined && blasInfo().lib === path, JSON.stringify(info));
      for (const t of ts) {
        const out = gemm(t.ta, t.tb, t.M, t.N, t.K, t.a, t.b, Float64Array.from(t.c0), 0.5, 2);
        const err = out.reduce((s, v, i) => Math.max(s, Math.abs(v - t.out[i])), 0);
        assert(err < 1e-11, `gemm ${t.ta} ${t.tb} ${t.M}×${t.N}×${t.K}: ${err}`);
      }
      const eN = symEig(sym, 60);
      const verr = eN.values.reduce((s, v, i) => Math.max(s, Math.abs(v - eTs.values[i])), 0);
      assert(verr < 1e-10, `eigenvalues ${verr}`);
      const eSmall = symEig(small, 5);
      assert(eSmall.values.every((v, i) => Math.abs(v - eSmallTs.values[i]) < 1e-12), `5×5 eigenvalues ${eSmall.values}`);
      if (info.dsyevd) {
        // eigenvectors up to sign: |⟨u, v⟩| = 1
        for (let j = 0; j < 60; j++) {
          let s = 0;
          for (let i = 0; i < 60; i++) s += eN.vectors[i * 60 + j] * eTs.vectors[i * 60 + j];
          assert(Math.abs(Math.abs(s) - 1) < 1e-8, `eigenvector ${j}: ${s}`);
        }
      }
      const lamN = reducedSolve(curv, 0.7, { tol: 1e-13 }).lambdaGen;
      assert(Math.abs(lamN - lamTs) < 1e-11 * lamTs, `${lamN} vs ${lamTs}`);
    } finally {
      loadBlas(undefined);
    }
  },
});

Deno.test("loadBlas() refuses a library without dgemm and keeps the TypeScript kernels", () => {
  let threw = false;
  try {
    loadBlas("/nonexistent/libnothing.so");
  } catch (e) {
    threw = e instanceof TypeError;
  }
  assert(threw && blasInfo().lib === "typescript");
});

Deno.test({
  name: "float32 dense blocks (native sgemm) give the float64 operator to float32 rounding, and loose solves to 1e-6",
  ignore: path === undefined,
  fn: () => {
    const rng = new Rng(12);
    const m = 30, k = 20, p = 0.3;
    // per-sample Hessians of rank 6 less a direction of negative curvature, all in the first 14
    // coordinates (the basis holds a null space, as an identity basis on the Hessian route does)
    const blocks = new Float64Array(m * k * k);
    const span = (x: Float64Array) => x.map((v, t) => (t % k < 14 ? v : 0));
    for (let i = 0; i < m; i++) {
      const g = span(rng.normals(6 * k));
      const blk = gemm(true, false, k, k, 6, g, g, new Float64Array(k * k));
      const u = span(rng.normals(k));
      for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) blocks[i * k * k + a * k + b] = blk[a * k + b] - 0.1 * u[a] * u[b];
    }
    const curv = Curvature.dense(blocks, m, k);
    const coef = Float64Array.from({ length: m }, (_, i) => (i % 3 === 0 ? 0 : 1 + (i % 4)));
    const eig = symEig(curv.mean(), k);
    let r = 0;
    while (r < k && eig.values[r] > 1e-10 * eig.values[0]) r++; // the kept directions, as ReducedBasis keeps
    assert(r > 1 && r < k, `expected the null space dropped, kept ${r} of ${k}`);
    const q = new Float64Array(k * r);
    for (let a = 0; a < k; a++) for (let b = 0; b < r; b++) q[a * r + b] = eig.vectors[a * k + b];
    const y = rng.normals(r * r);
    symmetrise(y, r);
    try {
      loadBlas(path);
      // the operator is quadratic in K: blocks of 1e±20 alone would leave float32's range
      for (const f of [1, 1e-20, 1e20]) {
        const scaled = Curvature.dense(blocks.map((v) => f * v), m, k);
        const single = SingleBlocks.rotated(scaled, q, r)!.sandwich(y, coef);
        const ref = curv.rotate(q, r).sandwich(y, coef);
        const scale = ref.reduce((s, v) => Math.max(s, Math.abs(v)), 0) * f ** 2;
        const err = single.reduce((s, v, i) => Math.max(s, Math.abs(v - f ** 2 * ref[i])), 0) / scale;
        assert(err > 0 && err < 1e-5, `blocks × ${f}: float32 operator off by ${err} of its largest entry`);
      }
      // a resample's samples gathered from the source's float32 blocks give the operator of
      // curv.samples(kept) (scaled by another largest entry: equal to float32 rounding), also
      // when made again in storage a released resample handed on
      const kept = [1, 2, 4, 5, 7, 8];
      const ck = coef.subarray(0, kept.length);
      const copied = SingleBlocks.rotated(curv.samples(kept), q, r)!.sandwich(y, ck);
      const exact = curv.samples(kept).rotate(q, r).sandwich(y, ck);
      const other = SingleBlocks.rotated(curv, q, r, [0, 3, 9]);
      other!.release();
      const gathered = SingleBlocks.rotated(curv, q, r, kept)!.sandwich(y, ck);
      const top = exact.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
      for (const [name, x] of [["gathered", gathered], ["copied", copied]] as const) {
        const err = x.reduce((s, v, i) => Math.max(s, Math.abs(v - exact[i])), 0) / top;
        assert(err < 1e-5, `${name} blocks off by ${err} of the largest entry`);
      }
      let refused = false;
      try {
        other!.sandwich(y, coef.subarray(0, 3));
      } catch {
        refused = true;
      }
      assert(refused, "expected released blocks to refuse a product");
      assertLooseResamples(curv, p);
    } finally {
      loadBlas(undefined);
    }
    assert(SingleBlocks.rotated(curv, q, r) === undefined, "no float32 blocks without a native sgemm");
    assert(SingleBlocks.rotated(Curvature.factor(new Float64Array(m * 2 * k), m, 2, k), q, r) === undefined);
  },
});

Deno.test({
  name: "float32 factors (native sgemm) give the float64 operator to float32 rounding, and loose solves to 1e-6",
  ignore: path === undefined,
  fn: () => {
    const rng = new Rng(11);
    const m = 40, c = 5, k = 24, p = 0.3;
    const a = rng.normals(m * c * k);
    for (let t = 0; t < a.length; t++) a[t] *= 0.9 ** (t % k); // decaying columns, like a live basis
    const curv = Curvature.factor(a, m, c, k);
    const y = rng.normals(k * k);
    symmetrise(y, k);
    const coef = Float64Array.from({ length: m }, (_, i) => (i % 3 === 0 ? 0 : 1 + (i % 4))); // some samples left out
    const q = symEig(curv.mean(), k).vectors;
    const exact = curv.rotate(q, k).sandwich(y, coef);
    try {
      const info = loadBlas(path);
      assert(info.sgemm !== undefined, JSON.stringify(info));
      // curvature far from 1 too: the operator is quartic in A, so A ~ 1e±12 alone would leave
      // float32's range (3e38, 1e-38) without the scaling
      for (const f of [1, 1e-12, 1e12]) {
        const scaled = Curvature.factor(a.map((v) => f * v), m, c, k);
        const single = SingleFactors.rotated(scaled, q, k)!.sandwich(y, coef);
        const scale = exact.reduce((s, v) => Math.max(s, Math.abs(v)), 0) * f ** 4;
        const err = single.reduce((s, v, i) => Math.max(s, Math.abs(v - f ** 4 * exact[i])), 0) / scale;
        assert(err > 0 && err < 1e-5, `factors × ${f}: float32 operator off by ${err} of its largest entry`);
      }
      assertLooseResamples(curv, p);
    } finally {
      loadBlas(undefined);
    }
    // without a native sgemm, `single` is the float64 route, to the last digit
    assert(SingleFactors.rotated(curv, q, k) === undefined);
    const w = resampleWeights(new Rng(4), m);
    const d = reducedSolve(curv, p, { weights: w, tol: 1e-3, precision: "double" }).lambdaGen;
    assert(reducedSolve(curv, p, { weights: w, tol: 1e-3 }).lambdaGen === d);
  },
});

Deno.test({
  name: "float32 factors of kept samples gathered in place equal those of the copied samples, across shapes sharing the work buffers and after a release",
  ignore: path === undefined,
  fn: () => {
    const rng = new Rng(12);
    const m = 30, c = 4, k = 12, kept = [0, 3, 4, 9, 17, 29];
    const curv = Curvature.factor(rng.normals(m * c * k), m, c, k);
    const q = symEig(curv.mean(), k).vectors;
    const y = rng.normals(k * k);
    symmetrise(y, k);
    const coef = kept.map((_, j) => 1 + j);
    // another shape (more samples, a larger basis) grows the shared buffers in between
    const k2 = k + 3, other = Curvature.factor(rng.normals(2 * m * c * k2), 2 * m, c, k2);
    const y2 = rng.normals(k2 * k2);
    symmetrise(y2, k2);
    try {
      loadBlas(path);
      const gathered = SingleFactors.rotated(curv, q, k, kept)!;
      const first = gathered.sandwich(y, coef);
      SingleFactors.rotated(other, symEig(other.mean(), k2).vectors, k2)!.sandwich(y2, new Float64Array(2 * m).fill(1));
      const again = gathered.sandwich(y, coef);
      const ref = SingleFactors.rotated(curv.samples(kept), q, k)!.sandwich(y, coef);
      for (let t = 0; t < k * k; t++) {
        assert(first[t] === ref[t] && again[t] === ref[t], `entry ${t}: ${first[t]}, ${again[t]} against ${ref[t]}`);
      }
      // released factors refuse to run; the next ones reuse their storage, rewritten in full
      gathered.release();
      let refused = false;
      try {
        gathered.sandwich(y, coef);
      } catch {
        refused = true;
      }
      assert(refused, "expected released factors to refuse a product");
      const reused = SingleFactors.rotated(curv, q, k, kept)!.sandwich(y, coef);
      for (let t = 0; t < k * k; t++) assert(reused[t] === ref[t], `entry ${t} after reuse: ${reused[t]} against ${ref[t]}`);
      let threw = false;
      try {
        SingleFactors.rotated(curv, q, k, [0, m]);
      } catch (e) {
        threw = e instanceof RangeError;
      }
      assert(threw, "expected a RangeError for a sample index outside the curvature");
    } finally {
      loadBlas(undefined);
    }
  },
});
