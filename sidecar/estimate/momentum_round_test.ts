import { assert, assertAlmostEquals, assertEquals } from "./_assert.ts";
import { estimateRound, type RoundParams } from "./round.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { factorsOf, randomPsd, rel, THREE_SAMPLES } from "./_testing.ts";
import { adamDynamics, denseThreshold, heavyBallDynamics, nesterovDynamics } from "./_momentum_reference.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { Rng } from "./_rng.ts";
import type { OptimizerOption } from "./momentum_round.ts";
import { symEig } from "./_linalg.ts";

/**
 * The problem restricted to `range(H)` (`QᵀH_iQ`, `Q` the eigenvectors of `H` with positive
 * eigenvalues): the dense map of a rank-deficient problem has eigenvalue 1 on `null(H)`
 * (momentum.md §2), so the dense reference is taken there.
 */
function onRange(hs: Float64Array[], d: number): { hs: Float64Array[]; r: number } {
  const H = new Float64Array(d * d);
  for (const h of hs) h.forEach((x, t) => (H[t] += x / hs.length));
  const { values, vectors } = symEig(H, d);
  let r = 0;
  while (r < d && values[r] > 1e-10 * values[0]) r++;
  const out = hs.map((h) => {
    const o = new Float64Array(r * r);
    for (let a = 0; a < r; a++) {
      for (let b = 0; b < r; b++) {
        let s = 0;
        for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) s += vectors[i * d + a] * h[i * d + j] * vectors[j * d + b];
        o[a * r + b] = s;
      }
    }
    return o;
  });
  return { hs: out, r };
}

const base: RoundParams = {
  run: "t", round: 0, step: 10, epoch: 1, lr: 0.5, batch_size: 1, n: 3, bootstrap: 0, exact: true, params: 2,
};

/** `P^{-1/2} H_i P^{-1/2}` for diagonal `P` (what the client sends for Adam). */
function precondition(hs: Float64Array[], P: ArrayLike<number>): Float64Array[] {
  const d = P.length;
  return hs.map((h) => h.map((x, t) => x / Math.sqrt(P[Math.floor(t / d)] * P[t % d])));
}

/** Both routes of the same problem: Hessian blocks and explicit factors (`c = d`). */
function oracles(hs: Float64Array[], d: number): [string, () => SyntheticOracle][] {
  const f = factorsOf(hs, d);
  return [
    ["hessian", () => new SyntheticOracle(hs)],
    ["factor", () => SyntheticOracle.fromFactors(hs.map((_, i) => f.slice(i * d * d, (i + 1) * d * d)), d)],
  ];
}

// momentum.md §8 (the pencil and Brent on the dense spectral radius agree to 2e-13 there)
const LAMBDA_GEN0_B1 = 1.862790641860; // β = 0, B = 1
const LMAX = 1.206011329583;
const HB_NAG: [number, number, number, number][] = [
  // β, B, η*_HB, η*_NAG
  [0.5, 1, 0.859809722958, 0.713383575615],
  [0.5, 2, 1.813339896452, 1.101726494469],
  [0.9, 1, 0.228988352238, 0.469589217777],
  [0.9, 2, 0.787061846527, 0.952746661153],
  [0.9, 3, 3.150882505650, 1.125315180589],
  [0.99, 1, 0.024332469085, 0.368916902768],
  [0.99, 2, 0.095799770776, 0.922827513365],
];

Deno.test("a round with optimizer reproduces momentum.md §8 heavy ball and Nesterov to 1e-9 (exact, both routes)", async (t) => {
  for (const [route, make] of oracles(THREE_SAMPLES, 2)) {
    for (const [beta, B, hb, nag] of HB_NAG) {
      await t.step(`${route} β=${beta} B=${B}`, async () => {
        const hbr = (await estimateRound(make(), { ...base, batch_size: B, optimizer: { kind: "heavy_ball", momentum: beta } })).report;
        assertEquals(hbr.method, "pencil");
        assertAlmostEquals(hbr.eta_star, hb, 1e-9);
        assertAlmostEquals(hbr.lambda_gen * hbr.eta_star, 2, 1e-12);
        assertAlmostEquals(hbr.margin, 0.5 / hb, 1e-8);
        assertAlmostEquals(hbr.eta_star_full_batch!, (2 * (1 + beta)) / LMAX, 1e-9);
        assert(hbr.converged && hbr.optimizer!.description === `heavy ball (β = ${beta})`);
        const ng = (await estimateRound(make(), { ...base, batch_size: B, optimizer: { kind: "nesterov", momentum: beta } })).report;
        assertEquals(ng.method, "brent");
        assertAlmostEquals(ng.eta_star, nag, 1e-9);
        assertAlmostEquals(ng.eta_star_full_batch!, (2 * (1 + beta)) / ((1 + 2 * beta) * LMAX), 1e-9);
        if (B === 1) {
          // plain SGD beside it, and the naive rescalings of momentum.md §4
          const eta0 = 2 / LAMBDA_GEN0_B1;
          assertAlmostEquals(hbr.eta_star_sgd!, eta0, 1e-9);
          assertAlmostEquals(hbr.naive!.rescaled, (1 + beta) * eta0, 1e-9);
          assertAlmostEquals(hbr.naive!.effective_lr, (1 - beta) * eta0, 1e-9);
          assertAlmostEquals(ng.eta_star_upper!, ((1 + beta) / (1 + 2 * beta)) * eta0, 1e-9);
          assert(ng.eta_star <= ng.eta_star_upper!, "Nesterov's certified upper bound");
        }
      });
    }
  }
});

Deno.test("a round with Adam (preconditioned curvature) reproduces momentum.md §8 to 1e-9, full batch 38/λ_max beside it", async () => {
  const hs = precondition(THREE_SAMPLES, [2, 0.5]);
  for (const [B, eta] of [[1, 2.264349798320], [2, 7.384679731323], [3, 26.202191846633]]) {
    const { report } = await estimateRound(new SyntheticOracle(hs), { ...base, batch_size: B, optimizer: { kind: "adam", beta1: 0.9, name: "Adam" } });
    assertEquals(report.method, "pencil");
    assertAlmostEquals(report.eta_star, eta, 1e-9);
    assertAlmostEquals(report.eta_star_full_batch!, 26.202191846633, 1e-9);
    assertAlmostEquals(report.lambda_max, 1.450260353119, 1e-10);
    assertEquals(report.optimizer!.name, "Adam");
    // the curve over B has the same values
    const pts = new Map(report.eta_star_by_batch!.map((pt) => [pt.B, pt.eta_star]));
    assertAlmostEquals(pts.get(1)!, 2.264349798320, 1e-9);
    assertAlmostEquals(pts.get(3)!, 26.202191846633, 1e-9);
  }
});

/** The dense reference's dynamics for an optimizer option. */
function denseEta(hs: Float64Array[], d: number, p: number, o: OptimizerOption, P?: Float64Array): number {
  switch (o.kind) {
    case "heavy_ball":
      return denseThreshold(hs, d, p, heavyBallDynamics(o.momentum!, o.dampening ?? 0), 1e-4);
    case "nesterov":
      return denseThreshold(hs, d, p, nesterovDynamics(o.momentum!), 1e-4);
    default:
      return denseThreshold(hs, d, p, adamDynamics(o.beta1!, P!, o.decoupled_decay ?? 0), 1e-4);
  }
}

Deno.test("rounds equal the dense (2d)²×(2d)² second-moment map to 1e-8: heavy ball, dampening, Nesterov, Adam, AdamW", async (t) => {
  const d = 3, m = 5;
  const hs = randomPsd(m, d, 1, 31);
  const rng = new Rng(32);
  const P = Float64Array.from({ length: d }, () => Math.exp(3 * rng.uniform() - 1.5));
  const pre = precondition(hs, P);
  for (const beta of [0.5, 0.9, 0.99]) {
    const cases: [OptimizerOption, Float64Array[]][] = [
      [{ kind: "heavy_ball", momentum: beta }, hs],
      [{ kind: "heavy_ball", momentum: beta, dampening: 0.3 }, hs],
      [{ kind: "nesterov", momentum: beta }, hs],
      [{ kind: "adam", beta1: beta }, pre],
      [{ kind: "adam", beta1: beta, decoupled_decay: 0.05 }, pre],
    ];
    for (const [o, sent] of cases) {
      for (const B of [1, 2, 4]) {
        await t.step(`${JSON.stringify(o)} B=${B}`, async () => {
          const p = batchNoiseWeight(B, m);
          const ref = denseEta(hs, d, p, o, P);
          const { report } = await estimateRound(new SyntheticOracle(sent), {
            ...base, n: m, batch_size: B, params: d, optimizer: o, lr: 0.01,
          });
          assert(rel(report.eta_star, ref) < 1e-8, `${report.eta_star} vs dense ${ref}`);
          assertEquals(report.method, o.kind === "nesterov" || o.decoupled_decay ? "brent" : "pencil");
        });
      }
    }
  }
});

Deno.test("a live round (basis smaller than d) fetches K₂ by hessian_gram, grows the basis and converges to the dense value", async (t) => {
  // d = 10, rank-1 samples: range(H) has dimension 4, the basis budget 8 < d (not the identity)
  const d = 10, m = 4;
  const hs = randomPsd(m, d, 1, 41);
  for (const o of [{ kind: "heavy_ball", momentum: 0.9 }, { kind: "nesterov", momentum: 0.9 }] as OptimizerOption[]) {
    await t.step(o.kind, async () => {
      const p = batchNoiseWeight(1, m);
      const sub = onRange(hs, d);
      assertEquals(sub.r, m);
      const ref = denseEta(sub.hs, sub.r, p, o);
      const oracle = new SyntheticOracle(hs);
      let grams = 0;
      const gram = oracle.hessianGram.bind(oracle);
      oracle.hessianGram = (s, c) => (grams++, gram(s, c));
      const { report } = await estimateRound(oracle, {
        ...base, exact: false, n: m, batch_size: 1, params: d, max_basis: 8, tol: 1e-6, hessianGram: true, optimizer: o,
        budget: { hvps: 2000 },
      }, { block: 2 });
      assert(grams > 0, "K₂ was fetched");
      assert(report.converged, JSON.stringify(report.warnings));
      assert(rel(report.eta_star, ref) < 1e-6, `${report.eta_star} vs dense ${ref}`);
      assert(!(report.warnings ?? []).some((w) => w.includes("ignored")), "no 'momentum ignored' warning");
    });
  }
});

Deno.test("a live round grows a poor basis for β = 0.9 (Davidson with hessian_gram): monotone below exact, honest flags", async () => {
  const d = 8, m = 10;
  const hs = randomPsd(m, d, 2, 51);
  const p = batchNoiseWeight(2, m);
  const ref = denseEta(hs, d, p, { kind: "heavy_ball", momentum: 0.9 });
  for (const [maxBasis, tol] of [[6, 1e-2], [7, 1e-4]]) {
    const { report } = await estimateRound(new SyntheticOracle(hs), {
      ...base, exact: false, n: m, batch_size: 2, params: d, max_basis: maxBasis, tol, hessianGram: true, lr: 0.01,
      optimizer: { kind: "heavy_ball", momentum: 0.9 },
    }, { block: 2 });
    // a subspace value is a Rayleigh–Ritz lower bound of λ_gen(β): η* is never understated
    assert(report.eta_star >= ref * (1 - 1e-9), `${report.eta_star} < exact ${ref}`);
    if (report.converged) assert(report.error_estimate! <= tol);
    else assert(report.stopped !== "converged" && (report.warnings ?? []).some((w) => w.includes("not converged")));
  }
});

Deno.test("an unconverged live round with negative curvature claims no bound, for λ_gen(β) nor the η*(B) curve", async () => {
  const d = 8, m = 10, u = new Rng(7).normals(d);
  // not a minimum: PSD blocks less a shared direction of negative curvature
  const hs = randomPsd(m, d, 2, 51).map((h) => h.map((x, t) => x - 0.3 * u[Math.floor(t / d)] * u[t % d]));
  const { report } = await estimateRound(new SyntheticOracle(hs), {
    ...base, exact: false, n: m, batch_size: 2, params: d, max_basis: 6, tol: 1e-4, hessianGram: true, lr: 0.01,
    optimizer: { kind: "heavy_ball", momentum: 0.9 },
  }, { block: 2 });
  const warnings = report.warnings ?? [];
  assert(!report.converged && report.min_curvature! < 0, `converged ${report.converged}, min curvature ${report.min_curvature}`);
  assert(warnings.some((w) => w.includes("heavy") && w.includes("bounds nothing")), warnings.join("\n"));
  assert(!warnings.some((w) => w.includes("understates") || w.includes("lower bounds")), warnings.join("\n"));
});

Deno.test("optimizer kind sgd and absent optimizer give the same threshold; assumed warns once per run; no hessian_gram falls back", async () => {
  const hs = randomPsd(6, 12, 1, 61);
  const p0 = { ...base, exact: false, n: 6, params: 12, max_basis: 8, tol: 1e-6, momentum: 0.9 };
  const plain = (await estimateRound(new SyntheticOracle(hs), p0, { block: 2 })).report;
  assert(plain.optimizer === undefined && plain.method === undefined);
  assert(plain.warnings!.some((w) => w.includes("momentum 0.9 ignored")));
  const r1 = await estimateRound(new SyntheticOracle(hs), { ...p0, optimizer: { kind: "sgd", name: "RMSprop", assumed: true } }, { block: 2 });
  assertEquals(r1.report.eta_star, plain.eta_star);
  assertEquals(r1.report.method, "sgd");
  assert(r1.report.warnings!.filter((w) => w.includes("assumes plain SGD")).length === 1);
  const r2 = await estimateRound(new SyntheticOracle(hs), { ...p0, round: 1, optimizer: { kind: "sgd", name: "RMSprop", assumed: true } }, {
    block: 2, state: r1.state,
  });
  assert(!(r2.report.warnings ?? []).some((w) => w.includes("assumes plain SGD")), "once per run");
  const nog = await estimateRound(new SyntheticOracle(hs), { ...p0, optimizer: { kind: "heavy_ball", momentum: 0.9 } }, { block: 2 });
  assertEquals(nog.report.method, "sgd");
  assertEquals(nog.report.eta_star, plain.eta_star);
  assert(nog.report.warnings!.some((w) => w.includes("hessian_gram")));
});

// momentum.md §3 prints the best β of this problem as 0.075 (B = 1) and 0.436 (B = 2); they are
// 0.0739 and 0.4373 (golden-section search on the pencil; docs not edited here)
Deno.test("η*(β) curve of a round: non-monotone at B = 2 (momentum.md §3, best β ≈ 0.437), its run's point equal to eta_star", async () => {
  const { report } = await estimateRound(new SyntheticOracle(THREE_SAMPLES), {
    ...base, batch_size: 2, optimizer: { kind: "heavy_ball", momentum: 0.9 },
  });
  const pts = report.eta_star_by_momentum!;
  assertEquals(pts[0].momentum, 0);
  const at = (b: number) => pts.find((pt) => pt.momentum === b)!.eta_star;
  assertAlmostEquals(at(0.5), 1.813339896452, 1e-9);
  assertAlmostEquals(at(0.9), report.eta_star, 1e-12);
  assert(at(0.4) > at(0) && at(0.4) > at(0.9) && pts.every((pt) => pt.converged));
});
