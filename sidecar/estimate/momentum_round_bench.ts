/**
 * Wall time of one live round per optimizer on a worst case (SyntheticOracle, random factors,
 * `d = 200`, `m = 64`, `c = 10`, `max_basis` 64, automatic tolerance, 100 resamples): the
 * optimizer step must cost little beside the plain-SGD round. Ratios are what to read (shared
 * machines make absolute times noisy).
 * Run: `tools/deno run -A sidecar/estimate/momentum_round_bench.ts [reps] [case substring]`, with
 * `EDGEWISE_BLAS_LIB` set to time the native-BLAS path the spawned sidecar uses.
 *
 * @module
 */
import { loadBlas } from "./_blas.ts";
import { Rng } from "./_rng.ts";
import { estimateRound, type RoundParams } from "./round.ts";
import type { OptimizerOption } from "./momentum_round.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";

const d = 200, m = 64, c = 10;
const rng = new Rng(7);
const factors = Array.from({ length: m }, () => Float64Array.from({ length: c * d }, () => rng.normal() / Math.sqrt(d)));
const params: RoundParams = {
  run: "bench", round: 0, step: 0, epoch: 0, lr: 0.01, batch_size: 16, n: 50000, params: d, max_basis: 64,
  hessianGram: true,
};
const cases: [string, OptimizerOption | undefined][] = [
  ["SGD (no optimizer)", undefined],
  ["heavy ball β 0.9", { kind: "heavy_ball", momentum: 0.9 }],
  ["Nesterov β 0.9", { kind: "nesterov", momentum: 0.9 }],
  ["Adam β₁ 0.9", { kind: "adam", beta1: 0.9 }],
  ["AdamW β₁ 0.9 ω 0.01", { kind: "adam", beta1: 0.9, decoupled_decay: 0.01 }],
];
console.log(`BLAS: ${loadBlas(Deno.env.get("EDGEWISE_BLAS_LIB")).lib}`);
const reps = Number(Deno.args[0] ?? 1);
for (const [name, optimizer] of cases.filter(([n]) => n.includes(Deno.args[1] ?? ""))) {
  const times: number[] = [];
  let r;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    r = (await estimateRound(SyntheticOracle.fromFactors(factors, c), { ...params, optimizer })).report;
    times.push(performance.now() - t);
  }
  const ms = Math.min(...times);
  console.log(`${name.padEnd(22)} ${(ms / 1000).toFixed(2).padStart(7)} s  eta_star ${r!.eta_star.toPrecision(10)} basis ${r!.basis_size} ${r!.stopped} ci ${r!.ci ? "yes" : "no"} ${JSON.stringify(r!.warnings?.filter((w) => w.includes("cut")))}`);
}
