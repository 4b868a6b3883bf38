/**
 * estimateRound() on the Gauss–Newton factor route (SyntheticOracle.fromFactors): the worked
 * examples, the exact whole-span checkpoint solve against an independent reference, and the
 * honesty of `converged` on a problem whose maximiser has full rank.
 */
import { assert, assertEquals } from "./_assert.ts";
import { estimateRound, type RoundParams } from "./round.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { orthonormalColumns, symEig, transpose } from "./_linalg.ts";
import { denseLambdaGen, factorsOf, REGRESSION, rel, THREE_SAMPLES } from "./_testing.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { Rng } from "./_rng.ts";

const base: RoundParams = { run: "f", round: 0, step: 1, epoch: 0, lr: 0.1, batch_size: 1, n: 3, bootstrap: 0 };
const split = (all: Float64Array, m: number, size: number) =>
  Array.from({ length: m }, (_, i) => all.slice(i * size, (i + 1) * size));

Deno.test("estimateRound() on the factor route reproduces theory §7 (exact span and matrix-free)", async (t) => {
  const cases: [string, Float64Array[], number, [number, number][]][] = [
    ["three samples", THREE_SAMPLES, 2, [[1, 1.862790641860], [2, 1.327173104349], [3, 1.206011329583]]],
    ["regression", REGRESSION, 3, [[1, 1.918584156108], [2, 0.982530638265], [5, 0.639704178285]]],
  ];
  for (const [name, hs, d, table] of cases) {
    const fs = split(factorsOf(hs, d), hs.length, d * d);
    for (const exact of [true, false]) {
      await t.step(`${name}, ${exact ? "exact span" : "Lanczos + Davidson"}`, async () => {
        for (const [B, lam] of table) {
          const o = SyntheticOracle.fromFactors(fs, d);
          const { report } = await estimateRound(o, { ...base, n: hs.length, batch_size: B, exact, tol: 1e-10 });
          assert(rel(report.lambda_gen, lam) < 1e-9, `B=${B}: ${report.lambda_gen} vs ${lam}`);
          assert(report.converged && report.stopped === "converged");
          assertEquals(report.tol, 1e-10);
        }
      });
    }
  }
});

/**
 * Incoherent rank-c factors in d = 40: the maximiser has full rank in the span. Reference: an
 * orthonormal basis Q of the stacked factor rows built here, K_i = Qᵀ H_i Q, and the dense
 * Kronecker λ_gen of those (theory §4: exact, since every H_i lives in that span).
 */
function problem(seed: number, m = 6, c = 2, d = 40) {
  const rng = new Rng(seed);
  const fs = Array.from({ length: m }, () => rng.normals(c * d));
  const rows = new Float64Array(m * c * d);
  fs.forEach((f, i) => rows.set(f, i * c * d));
  const { q, k } = orthonormalColumns(transpose(rows, m * c, d), d, m * c); // d × k
  const ks = fs.map((f) => {
    const a = new Float64Array(c * k); // F Q
    for (let r = 0; r < c; r++) {
      for (let j = 0; j < k; j++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += f[r * d + t] * q[t * k + j];
        a[r * k + j] = s;
      }
    }
    const kk = new Float64Array(k * k);
    for (let x = 0; x < k; x++) {
      for (let y = 0; y < k; y++) {
        let s = 0;
        for (let r = 0; r < c; r++) s += a[r * k + x] * a[r * k + y];
        kk[x * k + y] = s;
      }
    }
    return kk;
  });
  const cache = new Map<string, number>();
  const exact = (B: number, n: number) => {
    const key = `${B}/${n}`;
    if (!cache.has(key)) cache.set(key, denseLambdaGen(ks, k, batchNoiseWeight(B, n)));
    return cache.get(key)!;
  };
  return { fs, c, d, m, exact };
}

Deno.test("estimateRound({ exact }) on the factor route equals the whole-span reference at every B", async () => {
  const pr = problem(301);
  const n = 64;
  const o = SyntheticOracle.fromFactors(pr.fs, pr.c);
  const { report } = await estimateRound(o, { ...base, n, batch_size: 1, exact: true, batch_grid: [1, 2, 4, 8, 16, 32, 64] });
  assertEquals(report.tol, 1e-4);
  assert(report.converged && report.basis_size === pr.m * pr.c);
  for (const pt of report.eta_star_by_batch!) {
    const ref = pr.exact(pt.B, n);
    assert(rel(pt.lambda_gen, ref) < 1e-6, `B=${pt.B}: ${pt.lambda_gen} vs ${ref}`);
  }
  assert(rel(report.lambda_gen, pr.exact(1, n)) < 1e-6);
  // m·c/2 VJP columns + m·c/2 JVP columns = m·c HVP-equivalents for the span, + grads
  assert(report.hvps <= pr.m * pr.c + 1 + 1e-9, `hvps ${report.hvps}`);
});

Deno.test("estimateRound({ exact }) beyond the span limit refines every curve point to its tolerance", async () => {
  const pr = problem(331, 10, 2, 50);
  const n = 256;
  const o = SyntheticOracle.fromFactors(pr.fs, pr.c);
  const { report } = await estimateRound(o, { ...base, n, batch_size: 16, exact: true, batch_grid: [1, 2, 4, 16, 64, 256] }, {
    exactSpanMax: 0,
  });
  assert(report.converged, JSON.stringify(report.warnings));
  for (const pt of report.eta_star_by_batch!) {
    const err = (pr.exact(pt.B, n) - pt.lambda_gen) / pr.exact(pt.B, n);
    assert(pt.converged === true && err >= -1e-9 && err <= report.tol, `B=${pt.B}: ${err} (tol ${report.tol})`);
  }
});

Deno.test("estimateRound() live marks curve points it did not converge", async () => {
  const pr = problem(332, 10, 2, 50);
  const o = SyntheticOracle.fromFactors(pr.fs, pr.c);
  const { report } = await estimateRound(o, { ...base, n: 256, batch_size: 16, batch_grid: [1, 16, 64] });
  for (const pt of report.eta_star_by_batch!) {
    const err = (pr.exact(pt.B, 256) - pt.lambda_gen) / pr.exact(pt.B, 256);
    if (pt.converged) assert(err <= report.tol, `B=${pt.B}: ${err}`);
  }
  assertEquals(report.eta_star_by_batch!.find((pt) => pt.B === 1)!.converged, false);
});

Deno.test("estimateRound() never reports converged outside its tolerance on a full-rank maximiser", async (t) => {
  for (const seed of [311, 312, 313, 314]) {
    const pr = problem(seed, 10, 2, 50);
    const n = 1000;
    for (const B of [1, 4, 32]) {
      for (const tol of [undefined, 1e-3, 1e-2]) {
        await t.step(`seed ${seed} B=${B} tol=${tol ?? "auto"}`, async () => {
          const o = SyntheticOracle.fromFactors(pr.fs, pr.c);
          const { report } = await estimateRound(o, { ...base, n, batch_size: B, tol, bootstrap: 40, max_basis: 64 });
          const ref = pr.exact(B, n);
          const err = (ref - report.lambda_gen) / ref;
          assert(err >= -1e-9, `a Ritz value above the exact one: ${err}`);
          if (report.converged) assert(err <= report.tol, `converged but ${err} > tol ${report.tol}`);
          else assert(report.stopped !== "converged" && report.warnings!.length > 0);
        });
      }
    }
  }
});

Deno.test("estimateRound() warm λ_max takes 1–4 Lanczos steps from the previous round's top vector after a training step", async () => {
  const pr = problem(321, 10, 2, 50);
  const o = SyntheticOracle.fromFactors(pr.fs, pr.c);
  const params = { ...base, n: 1000, batch_size: 8, tol: 1e-3, bootstrap: 0, grads: false };
  let state = (await estimateRound(o, params)).state;
  const rng = new Rng(322);
  let fs = pr.fs;
  const steps: number[] = [];
  for (let r = 1; r <= 4; r++) {
    // a small step of training: every factor moves by 2 % (cosine of consecutive top vectors ~0.99)
    fs = fs.map((f) => f.map((v) => v + 0.02 * rng.normal() * Math.abs(v)));
    o.setFactors(fs);
    const H = new Float64Array(pr.d * pr.d);
    o.hessians().forEach((h) => h.forEach((x, t) => (H[t] += x / pr.m)));
    const lmax = symEig(H, pr.d).values[0];
    const before = o.hvps, carried = state.basis;
    const warm = await estimateRound(o, { ...params, round: r, target: "lambda_max" }, { state });
    // the carried basis's factors cost ½ HVP-eq per column, each Lanczos step 1 (VJP + JVP)
    steps.push((o.hvps - before) / pr.m - carried / 2);
    assert(rel(warm.report.lambda_max, lmax) < 1e-3, `${warm.report.lambda_max} vs ${lmax}`);
    state = (await estimateRound(o, { ...params, round: r }, { state: warm.state })).state;
  }
  console.log(`warm λ_max Lanczos HVP-eq per round: ${steps.join(", ")}`);
  assert(steps.every((s) => s <= 4), `warm λ_max took ${steps}`);
});
