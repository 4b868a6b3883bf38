/**
 * Optional native BLAS/LAPACK through Deno FFI, loaded only when asked for explicitly
 * (`--blas-lib PATH` or `EDGEWISE_BLAS_LIB`): the dense kernels of `_linalg.ts` call it for
 * products large enough to amortise the FFI call, and fall back to their TypeScript loops
 * otherwise (or when nothing is loaded). Both CBLAS flavours seen in practice are accepted:
 * numpy's bundled OpenBLAS (`scipy_cblas_dgemm64_`, 64-bit integers) and a system
 * libopenblas/libcblas (`cblas_dgemm`, 32-bit integers). LAPACKE's `dsyevd` is used for
 * symmetric eigendecompositions when the same library exports it.
 *
 * Why a native BLAS: the hot products are GEMMs of a few hundred to a thousand rows; a
 * TypeScript loop reaches about 1 GFlop/s, OpenBLAS 10–50× more on the same core.
 *
 * @module
 */

/** What {@linkcode loadBlas} found. */
export interface BlasInfo {
  /** Library path, or `"typescript"` for the fallback. */
  lib: string;
  /** The dgemm symbol in use. */
  dgemm?: string;
  /** The dsyevd symbol in use, when the library has LAPACKE. */
  dsyevd?: string;
  /** The sgemm symbol in use (float32 operator applications, curvature.ts). */
  sgemm?: string;
  /** Integer width of the library's interface. */
  intBits?: 32 | 64;
  /** OpenBLAS threads set (absent when the library has no such call). */
  threads?: number;
}

/** Row-major GEMM on dense operands, `C = α op(A) op(B) + β C` (`T`: the precision). */
type Gemm<T extends Float64Array | Float32Array> = (
  ta: boolean,
  tb: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: T,
  b: T,
  beta: number,
  c: T,
) => void;
type Dgemm = Gemm<Float64Array>;
export type Sgemm = Gemm<Float32Array>;
type Dsyevd = (a: Float64Array, n: number, w: Float64Array) => number;

/** Libraries opened so far (a library is opened once per process; switching back is free). */
const opened = new Map<string, { dgemm: Dgemm; dsyevd?: Dsyevd; sgemm?: Sgemm; info: BlasInfo }>();

let dgemmImpl: Dgemm | undefined;
let dsyevdImpl: Dsyevd | undefined;
let sgemmImpl: Sgemm | undefined;
let info: BlasInfo = { lib: "typescript" };

const FLAVOURS = [
  {
    dgemm: "scipy_cblas_dgemm64_",
    sgemm: "scipy_cblas_sgemm64_",
    dsyevd: "scipy_LAPACKE_dsyevd64_",
    threads: "scipy_openblas_set_num_threads64_",
    int: "i64",
  },
  { dgemm: "cblas_dgemm64_", sgemm: "cblas_sgemm64_", dsyevd: "LAPACKE_dsyevd64_", threads: "openblas_set_num_threads64_", int: "i64" },
  { dgemm: "cblas_dgemm", sgemm: "cblas_sgemm", dsyevd: "LAPACKE_dsyevd", threads: "openblas_set_num_threads", int: "i32" },
] as const;

/**
 * OpenBLAS threads (default 1: the sidecar shares the machine with the training it watches, and
 * its products are small; `EDGEWISE_BLAS_THREADS` overrides).
 */
function threadCount(): number {
  const v = Number(Deno.env.get("EDGEWISE_BLAS_THREADS") ?? 1);
  return Number.isInteger(v) && v >= 1 ? v : 1;
}

function setThreads(path: string, sym: string, I: "i32" | "i64"): number | undefined {
  try {
    const lib = Deno.dlopen(path, { [sym]: { parameters: [I === "i64" ? "i64" : "i32"], result: "void" } } as const);
    const n = threadCount();
    (lib.symbols[sym] as unknown as (x: number | bigint) => void)(I === "i64" ? BigInt(n) : n);
    return n;
  } catch {
    return undefined;
  }
}

/**
 * Load a CBLAS shared library for the dense kernels; without a path, use TypeScript.
 * @param path the library (e.g. numpy's `numpy.libs/libscipy_openblas64_*.so`)
 * @returns what is in use
 * @throws {TypeError} when the library cannot be opened or exports no known dgemm
 * @example
 * ```ts
 * import { loadBlas } from "./_blas.ts";
 * if (loadBlas(undefined).lib !== "typescript") throw new Error("expected the fallback");
 * ```
 */
export function loadBlas(path: string | undefined): BlasInfo {
  dgemmImpl = undefined;
  dsyevdImpl = undefined;
  sgemmImpl = undefined;
  info = { lib: "typescript" };
  if (!path) return info;
  const known = opened.get(path);
  if (known) {
    ({ dgemm: dgemmImpl, dsyevd: dsyevdImpl, sgemm: sgemmImpl } = known);
    info = { ...known.info };
    return { ...info };
  }
  const errors: string[] = [];
  for (const f of FLAVOURS) {
    const I = f.int;
    try {
      dgemmImpl = loadGemm<Float64Array>(path, f.dgemm, I, "f64");
      info = { lib: path, dgemm: f.dgemm, intBits: I === "i64" ? 64 : 32, threads: setThreads(path, f.threads, I) };
      dsyevdImpl = loadDsyevd(path, f.dsyevd, I);
      if (dsyevdImpl) info.dsyevd = f.dsyevd;
      try {
        sgemmImpl = loadGemm<Float32Array>(path, f.sgemm, I, "f32");
      } catch {
        sgemmImpl = undefined; // float32 solves then run in float64
      }
      if (sgemmImpl) info.sgemm = f.sgemm;
      opened.set(path, { dgemm: dgemmImpl, dsyevd: dsyevdImpl, sgemm: sgemmImpl, info: { ...info } });
      return { ...info };
    } catch (e) {
      errors.push(`${f.dgemm}: ${(e as Error).message}`);
    }
  }
  throw new TypeError(`Cannot use ${path} as BLAS: ${errors.join("; ")}`);
}

/**
 * A CBLAS `?gemm` symbol as a row-major {@linkcode Gemm} on dense operands.
 * @throws when the library has no such symbol
 */
function loadGemm<T extends Float64Array | Float32Array>(path: string, sym: string, I: "i32" | "i64", F: "f64" | "f32"): Gemm<T> {
  const lib = Deno.dlopen(path, {
    [sym]: { parameters: ["i32", "i32", "i32", I, I, I, F, "buffer", I, "buffer", I, F, "buffer", I], result: "void" },
  } as const);
  const fn = lib.symbols[sym] as unknown as (...a: unknown[]) => void;
  // Deno passes a JS number to an i64 parameter as is (no BigInt per call on the hot path)
  return (ta, tb, m, nn, k, alpha, a, b, beta, c) =>
    fn(101, ta ? 112 : 111, tb ? 112 : 111, m, nn, k, alpha, a, ta ? m : k, b, tb ? k : nn, beta, c, nn);
}

function loadDsyevd(path: string, sym: string, I: "i32" | "i64"): Dsyevd | undefined {
  try {
    const lib = Deno.dlopen(path, {
      [sym]: { parameters: ["i32", "u8", "u8", I, "buffer", I, "buffer"], result: I },
    } as const);
    const fn = lib.symbols[sym] as unknown as (...a: unknown[]) => number | bigint;
    const n = I === "i64" ? (x: number) => BigInt(x) : (x: number) => x;
    // LAPACK_ROW_MAJOR = 101, jobz 'V', uplo 'U'
    return (a, nn, w) => Number(fn(101, 86, 85, n(nn), a, n(nn), w));
  } catch {
    return undefined;
  }
}

/** What the kernels use now. */
export function blasInfo(): BlasInfo {
  return { ...info };
}

/** The native dgemm, when loaded. */
export function nativeDgemm(): Dgemm | undefined {
  return dgemmImpl;
}

/** The native sgemm, when loaded (there is no TypeScript float32 fallback: it would be slower). */
export function nativeSgemm(): Sgemm | undefined {
  return sgemmImpl;
}

/** The native dsyevd (row-major, upper; eigenvalues ascending, vectors in columns), when loaded. */
export function nativeDsyevd(): Dsyevd | undefined {
  return dsyevdImpl;
}
