/**
 * Benchmark: one live round's bootstrap (40 resamples, tol 0.02, each at least
 * RESAMPLE_MIN_STEPS Lanczos steps) on the shape of the main example's rounds (m = 128 probe
 * samples, c = 10 outputs, basis k = 45), solved in this thread against a ResamplePool of 1–3
 * helpers (the live default is one per core beyond two, at most 3). The intervals are
 * identical (resample_pool_test.ts); only the wall time differs, by the cores the machine has.
 * A second group solves the same 40 resamples at today's live basis size (k = 64) with the
 * operator in float64 against float32 (what a solve at this tolerance uses with a native sgemm).
 *
 * Run (numpy's OpenBLAS, as the sidecar started by Python uses):
 * ```
 * EDGEWISE_BLAS_LIB=$(ls .venv/lib/python*\/site-packages/numpy.libs/libscipy_openblas*.so) \
 *   OPENBLAS_NUM_THREADS=1 tools/deno bench -A sidecar/estimate/bootstrap_bench.ts
 * ```
 *
 * @module
 */
import { loadBlas } from "./_blas.ts";
import { bootstrapInterval, RESAMPLE_MIN_STEPS, resampleWeights } from "./bootstrap.ts";
import { Curvature } from "./curvature.ts";
import { reducedSolve } from "./reduced_solve.ts";
import { ResamplePool } from "./resample_pool.ts";
import { Rng } from "./_rng.ts";

loadBlas(Deno.env.get("EDGEWISE_BLAS_LIB"));
const m = 128, c = 10, k = 45, p = 0.0624;
const rng = new Rng(1), a = rng.normals(m * c * k);
for (let t = 0; t < a.length; t++) a[t] *= 0.85 ** (t % k);
const curv = Curvature.factor(a, m, c, k);
const point = reducedSolve(curv, p, { tol: 1e-10 });
const options = { count: 40, seed: 2, tol: 0.02 };

Deno.bench({ name: "in this thread", group: "bootstrap 40 resamples", baseline: true, fn: async () => {
  await bootstrapInterval(curv, p, point, options);
} });
for (const size of [1, 2, 3]) {
  const pool = new ResamplePool(size);
  await pool.ready();
  Deno.bench({ name: `pool of ${size}`, group: "bootstrap 40 resamples", fn: async () => {
    await bootstrapInterval(curv, p, point, { ...options, pool });
  } });
}

{
  const k = 64, a = rng.normals(m * c * k);
  for (let t = 0; t < a.length; t++) a[t] *= 0.85 ** (t % k);
  const curv = Curvature.factor(a, m, c, k);
  const S = reducedSolve(curv, p, { tol: 1e-10 }).S;
  const draws = new Rng(3), weights = Array.from({ length: 40 }, () => resampleWeights(draws, m));
  const group = "40 resample solves, k = 64";
  for (const precision of ["double", "single"] as const) {
    Deno.bench({ name: `operator in ${precision}`, group, baseline: precision === "double", fn: () => {
      for (const w of weights) reducedSolve(curv, p, { weights: w, start: S, tol: 0.01, minIter: RESAMPLE_MIN_STEPS, precision });
    } });
  }
}
