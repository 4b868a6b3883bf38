/**
 * Cost benchmark on a SyntheticOracle, printed as tables (HVP-equivalents are deterministic, so
 * a plain script rather than `Deno.bench`). Run: `tools/deno run -A sidecar/estimate/lanczos_bench.ts`
 * (about a minute). Prints:
 * 1. HVP-equivalents to λ_max at 1e-3: Lanczos (residual rule) vs power iteration (PyHessian's
 *    rule: stop at 1e-3 relative change, at most 100 iterations), with the error each reaches;
 * 2. the cost of a cold λ_gen round relative to λ_max alone;
 * 3. warm vs cold rounds after a small perturbation of the H_i.
 *
 * @module
 */
import { estimateRound, type RoundParams } from "./round.ts";
import { lanczos } from "./lanczos.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { symEig } from "./_linalg.ts";
import { mean, randomPsd } from "./_testing.ts";
import { dot } from "./_linalg.ts";

/** Power iteration through the oracle (one HVP-equivalent per step), PyHessian's stopping rule. */
async function powerIteration(
  o: SyntheticOracle,
  seed: number,
): Promise<{ value: number; hvpEq: number }> {
  const m = o.probeSize;
  await o.random(1, seed);
  let q = new Float64Array(o.basisSize);
  q[q.length - 1] = 1;
  let prev = NaN, value = 0;
  for (let it = 0; it < 100; it++) {
    const k = o.basisSize;
    const c = new Float64Array(m * k);
    for (let i = 0; i < m; i++) c.set(q.map((x) => x / m), i * k);
    const r = await o.expand(c, new Float64Array(k), 1, false);
    const w = new Float64Array(o.basisSize);
    w.set(r.proj);
    if (o.basisSize > k) w[k] = r.norms[0];
    value = dot(q, r.proj);
    if (it > 0 && Math.abs(value - prev) / Math.abs(prev) < 1e-3) break;
    prev = value;
    const nrm = Math.sqrt(dot(w, w));
    q = w.map((x) => x / nrm);
  }
  return { value, hvpEq: o.hvps / m };
}

/** Per-sample Hessians with a decaying shared spectrum plus per-sample parts (network-like). */
function coherent(m: number, d: number, seed: number): Float64Array[] {
  const shared = randomPsd(1, d, 4, seed)[0];
  return randomPsd(m, d, 2, seed + 1).map((h) =>
    h.map((x, t) => 0.3 * x + 3 * shared[t])
  );
}

const problems: [string, Float64Array[], number][] = [
  ["incoherent d=60 m=20 rank-3", randomPsd(20, 60, 3, 5), 60],
  ["coherent d=80 m=16", coherent(16, 80, 51), 80],
  ["wide d=200 m=10 rank-2", randomPsd(10, 200, 2, 7), 200],
];

console.log(
  "\n1. λ_max to 1e-3 relative: HVP-equivalents (relative error reached)",
);
console.log("| problem | Lanczos | power iteration |\n|---|---|---|");
for (const [name, hs, d] of problems) {
  const ref = symEig(mean(hs), d).values[0];
  const lo = new SyntheticOracle(hs);
  const lz = await lanczos(lo, { tol: 1e-3, seed: 3 });
  const pw = await powerIteration(new SyntheticOracle(hs), 3);
  const err = (x: number) => (Math.abs(x - ref) / ref).toExponential(1);
  console.log(
    `| ${name} | ${lo.hvps / hs.length} (${err(lz.lambdaMax)}) | ${pw.hvpEq} (${
      err(pw.value)
    }) |`,
  );
}

const base: RoundParams = {
  run: "bench",
  round: 0,
  step: 0,
  epoch: 0,
  lr: 0.1,
  batch_size: 1,
  n: 1000,
  tol: 1e-3,
  bootstrap: 0,
  hutchinson: 0,
  grads: false,
  budget: { hvps: 400, seconds: 20 },
};

console.log(
  "\n2. Cold round (λ_max + λ_gen, tol 1e-3) relative to λ_max alone, HVP-equivalents",
);
console.log(
  "| problem | B | λ_max only | round | ratio | λ_gen/λ_max |\n|---|---|---|---|---|---|",
);
for (const [name, hs] of problems) {
  const lo = new SyntheticOracle(hs);
  await lanczos(lo, { tol: 1e-3, seed: 1 });
  const only = lo.hvps / hs.length;
  for (const B of [1, 4, 16]) {
    const { report } = await estimateRound(new SyntheticOracle(hs), {
      ...base,
      batch_size: B,
    });
    console.log(
      `| ${name} | ${B} | ${only} | ${report.hvps} | ${
        (report.hvps / only).toFixed(1)
      } | ${(report.lambda_gen / report.lambda_max).toFixed(3)} |`,
    );
  }
}

console.log(
  "\n3. Warm vs cold round after perturbing each H_i by ~1% (B = 4), HVP-equivalents",
);
console.log(
  "| problem | tol | cold | warm | warm/cold | warm λ_gen rel. diff to cold |\n|---|---|---|---|---|---|",
);
for (const [name, hs, d] of problems) {
  for (const tol of [1e-3, 1e-6]) {
    const params = { ...base, batch_size: 4, tol };
    const o = new SyntheticOracle(hs);
    const first = await estimateRound(o, params);
    const h1 = hs.map((h, i) =>
      h.map((x, t) =>
        x * (1 + 0.01 * Math.sin(i + Math.floor(t / d) + (t % d)))
      )
    );
    o.setHessians(h1);
    const warm = await estimateRound(o, { ...params, round: 1 }, {
      state: first.state,
    });
    const cold = await estimateRound(new SyntheticOracle(h1), params);
    const diff = Math.abs(warm.report.lambda_gen - cold.report.lambda_gen) /
      cold.report.lambda_gen;
    console.log(
      `| ${name} | ${tol} | ${cold.report.hvps} | ${warm.report.hvps} | ${
        (warm.report.hvps / cold.report.hvps).toFixed(3)
      } | ${diff.toExponential(1)} |`,
    );
  }
}
