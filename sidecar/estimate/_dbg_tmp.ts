import { estimateRound } from "./round.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { Rng } from "./_rng.ts";
const d = 200, m = 64, c = 10, rng = new Rng(3);
const fs = Array.from({ length: m }, () => rng.normals(c * d));
for (const optimizer of [{ kind: "adam", beta1: 0.9, decoupled_decay: 0.01 }, { kind: "adam", beta1: 0.9 }] as const) {
  const o2 = SyntheticOracle.fromFactors(fs, c);
  const t0 = performance.now();
  const { report } = await estimateRound(o2, { run: "t", round: 0, step: 1, epoch: 0, n: 1000, batch_size: 16, params: d, lr: 1e-3, hessianGram: true, optimizer }, {});
  console.log(optimizer, "round ms", (performance.now() - t0).toFixed(0), report.basis_size, report.converged, report.stopped, report.hvps, report.eta_star, report.eta_star_full_batch, report.warnings);
}
