/**
 * Cost of the momentum solves beside the existing plain-SGD reduced solve, on the same random
 * dense blocks (`m` samples, basis `k`). Run: `tools/deno bench -A sidecar/estimate/momentum_bench.ts`.
 * Groups: `k = 16` and `k = 32`, `m = 64`, `B = 1`; within a group, ratios are what to read
 * (shared machines make absolute times noisy).
 *
 * @module
 */
import { matmul } from "./_linalg.ts";
import { mean, randomPsd, stack } from "./_testing.ts";
import { compressedThreshold } from "./compressed_momentum.ts";
import { Curvature } from "./curvature.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";
import { reducedSolve } from "./reduced_solve.ts";

for (const k of [16, 32]) {
  const m = 64, hs = randomPsd(m, k, 2, 7), H = mean(hs), blocks = stack(hs);
  const curv = Curvature.dense(blocks, m, k).withK2(matmul(H, H, k, k, k));
  const group = `k=${k}`;
  Deno.bench("reducedSolve (SGD, existing)", { group, baseline: true }, () => {
    reducedSolve(Curvature.dense(blocks, m, k), 1, { tol: 1e-9 });
  });
  Deno.bench("momentumPencilSolve β = 0", { group }, () => {
    momentumPencilSolve(curv, 0, 1, { tol: 1e-9 });
  });
  Deno.bench("momentumPencilSolve β = 0.9", { group }, () => {
    momentumPencilSolve(curv, 0.9, 1, { tol: 1e-9 });
  });
  Deno.bench("compressedThreshold Nesterov β = 0.9 (Brent)", { group }, () => {
    compressedThreshold(curv, { kind: "nesterov", momentum: 0.9 }, 1, {
      tol: 1e-9,
      xtol: 1e-9,
    });
  });
}
