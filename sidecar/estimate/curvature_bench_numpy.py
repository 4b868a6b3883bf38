"""numpy (OpenBLAS) timings of the operations in curvature_bench.ts, same shapes, same order.

Run right after the Deno bench on the same machine:
`.venv/bin/python sidecar/estimate/curvature_bench_numpy.py`. Prints the mean time per call.
The factor-form operator is written the way the sidecar writes it: Z = A Y (one GEMM),
M_i = Z_i A_iᵀ (batched, c × c), N_i = w_i M_i A_i (batched), out = Aᵀ N (one GEMM).
"""

import time

import numpy as np

rng = np.random.default_rng(1)


def sym(n):
    x = rng.standard_normal((n, n))
    return x + x.T


def timeit(name, fn, min_time=0.5):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time:
        fn()
        n += 1
    dt = (time.perf_counter() - t0) / n
    print(f"{name:40s} {dt * 1e6:12.1f} µs")


def sandwich(a3, y, w):
    m, c, k = a3.shape
    a = a3.reshape(m * c, k)
    z = (a @ y).reshape(m, c, k)
    mm = np.matmul(z, a3.transpose(0, 2, 1)) * w[:, None, None]
    n = np.matmul(mm, a3).reshape(m * c, k)
    return a.T @ n


for m, c, k in [(128, 10, 64), (128, 10, 256), (128, 4, 512)]:
    a3 = rng.standard_normal((m, c, k))
    y, w = sym(k), np.full(m, 1 / m)
    timeit(f"sandwich m={m} c={c} k={k}", lambda: sandwich(a3, y, w))
for n in (64, 256):
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    timeit(f"matmul {n}x{n}x{n}", lambda: a @ b)
a, u = sym(256), rng.standard_normal((256, 128))
timeit("congruence U^T A U n=256 k=128", lambda: u.T @ (a @ u))
for n in (64, 256):
    a = sym(n)
    timeit(f"symEig n={n}", lambda: np.linalg.eigh(a))
