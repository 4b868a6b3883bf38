/**
 * Kernel benchmark: the factor-form operator and the small dense algebra of the hot loops, in
 * TypeScript and through the native BLAS, on the shapes of a round (m = 128 probe samples,
 * c = 10 outputs, basis k = 64 / 256; a whole-span basis of 512), and the operator in float32
 * as live rounds' loose solves run it (`blas float32`). The same operations in numpy
 * (OpenBLAS), same shapes: `sidecar/estimate/curvature_bench_numpy.py`.
 *
 * Run (numpy's OpenBLAS for the native side, the numpy timings right after, same machine):
 * ```
 * EDGEWISE_BLAS_LIB=$(ls .venv/lib/python*\/site-packages/numpy.libs/libscipy_openblas*.so) \
 *   tools/deno bench -A sidecar/estimate/curvature_bench.ts
 * .venv/bin/python sidecar/estimate/curvature_bench_numpy.py
 * ```
 *
 * @module
 */
import { loadBlas } from "./_blas.ts";
import { congruence, gemm, symEig } from "./_linalg.ts";
import { Curvature } from "./curvature.ts";
import { Rng } from "./_rng.ts";
import { SingleFactors } from "./single_factors.ts";

const lib = Deno.env.get("EDGEWISE_BLAS_LIB");
const rng = new Rng(1);
const sym = (n: number) => {
  const x = rng.normals(n * n), y = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) y[i * n + j] = x[i * n + j] + x[j * n + i];
  return y;
};

interface Case {
  group: string;
  run: () => void;
  /** The same operation in float32 (single_factors.ts), native BLAS only. */
  single?: () => void;
}
const cases: Case[] = [];
for (const k of [64, 256]) {
  const m = 128, c = 10;
  const cv = Curvature.factor(rng.normals(m * c * k), m, c, k);
  const y = sym(k), coef = new Float64Array(m).fill(1 / m), out = new Float64Array(k * k);
  const eye = new Float64Array(k * k);
  for (let a = 0; a < k; a++) eye[a * k + a] = 1;
  let single: SingleFactors | undefined;
  cases.push({
    group: `sandwich m=${m} c=${c} k=${k}`,
    run: () => void cv.sandwich(y, coef, out),
    single: () => void (single ??= SingleFactors.rotated(cv, eye, k)!).sandwich(y, coef, out),
  });
}
{
  const m = 128, c = 4, k = 512; // the whole span of m·c = 512 rows (exact checkpoint)
  const cv = Curvature.factor(rng.normals(m * c * k), m, c, k);
  const y = sym(k), coef = new Float64Array(m).fill(1 / m), out = new Float64Array(k * k);
  cases.push({ group: `sandwich m=${m} c=${c} k=${k}`, run: () => void cv.sandwich(y, coef, out) });
}
for (const n of [64, 256]) {
  const a = rng.normals(n * n), b = rng.normals(n * n), out = new Float64Array(n * n);
  cases.push({ group: `matmul ${n}×${n}×${n}`, run: () => void gemm(false, false, n, n, n, a, b, out) });
}
{
  const n = 256, k = 128, a = sym(n), u = rng.normals(n * k);
  cases.push({ group: `congruence Uᵀ A U n=${n} k=${k}`, run: () => void congruence(a, u, n, k) });
}
for (const n of [64, 256]) {
  const a = sym(n);
  cases.push({ group: `symEig n=${n}`, run: () => void symEig(a, n) });
}

for (const { group, run, single } of cases) {
  Deno.bench({ name: "typescript", group, baseline: true, fn: () => {
    loadBlas(undefined);
    run();
  } });
  if (lib) {
    Deno.bench({ name: "blas", group, fn: () => {
      loadBlas(lib);
      run();
    } });
  }
  if (lib && single) {
    Deno.bench({ name: "blas float32", group, fn: () => {
      loadBlas(lib);
      single();
    } });
  }
}
