import { assert, assertAlmostEquals } from "./_assert.ts";
import { symEig } from "./_linalg.ts";
import { Rng } from "./_rng.ts";
import { mean, randomPsd, rel, THREE_SAMPLES } from "./_testing.ts";
import {
  adamDynamics,
  denseThreshold,
  nesterovDynamics,
} from "./_momentum_reference.ts";
import { batchNoiseWeight } from "./batch_curve.ts";
import { compressedThreshold, steinGram } from "./compressed_momentum.ts";
import { fullCurvature } from "./curvature.ts";
import { momentumPencilSolve } from "./momentum_pencil.ts";

// Closed forms of momentum.md §3 (from a sympy Stein solve there), written out independently.
function gHeavyBall(la: number, lb: number, eta: number, beta: number): number {
  const den = (1 - beta) ** 2 * ((1 + beta) * (la + lb) - eta * la * lb) +
    beta * eta * (la - lb) ** 2;
  return (eta * (1 - beta * beta)) / den;
}

function gNesterov(la: number, lb: number, eta: number, b: number): number {
  const N = 1 - b * b + eta * (b + b * b - b ** 3) * (la + lb) +
    eta * eta * b * b * (1 + 2 * b) * la * lb;
  const den = (1 - b) ** 2 * (1 + b) * (la + lb) +
    eta *
      ((b + b * b - b ** 3) * (la * la + lb * lb) +
        (2 * b + b * b - 4 * b ** 3 - 1) * la * lb) +
    eta * eta * b * (3 * b * b - 1) * la * lb * (la + lb) -
    eta ** 3 * b * b * (1 + 2 * b) * la * la * lb * lb;
  return (eta * N) / den;
}

Deno.test("steinGram() matches the closed forms of momentum.md §3 (heavy ball, Nesterov)", () => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 200; trial++) {
    const beta = [0, 0.5, 0.9, 0.99][trial % 4];
    const la = 0.01 + 3 * rng.uniform(), lb = 0.01 + 3 * rng.uniform();
    const lmax = Math.max(la, lb);
    const etaHb = rng.uniform() * (2 * (1 + beta)) / lmax;
    const etaNag = rng.uniform() * (2 * (1 + beta)) / ((1 + 2 * beta) * lmax);
    const hb = steinGram({ kind: "heavy_ball", momentum: beta }, la, lb, etaHb);
    const nag = steinGram({ kind: "nesterov", momentum: beta }, la, lb, etaNag);
    assert(rel(hb, gHeavyBall(la, lb, etaHb, beta)) < 1e-9, `HB ${hb}`);
    assert(rel(nag, gNesterov(la, lb, etaNag, beta)) < 1e-9, `NAG ${nag}`);
    assert(hb > 0 && nag > 0);
  }
});

Deno.test("compressedThreshold() reproduces momentum.md §8 (Nesterov) to 1e-9", () => {
  const c = fullCurvature(THREE_SAMPLES);
  const rows: [number, number, number][] = [
    [0, 1, 1.073657959761],
    [0.5, 1, 0.713383575615],
    [0.5, 0.25, 1.101726494469],
    [0.9, 1, 0.469589217777],
    [0.9, 0.25, 0.952746661153],
    [0.9, 0, 1.125315180589],
    [0.99, 1, 0.368916902768],
    [0.99, 0.25, 0.922827513365],
  ];
  for (const [beta, p, eta] of rows) {
    const r = compressedThreshold(c, { kind: "nesterov", momentum: beta }, p);
    assertAlmostEquals(r.etaStar, eta, 1e-9, `β=${beta} p=${p}: ${r.etaStar}`);
    assert(r.converged && r.positiveGram);
    assert(r.solves <= 40, `${r.solves} solves`);
  }
  // full batch: 2(1+β)/((1+2β) λ_max) and flagged as mean-limited
  const r = compressedThreshold(c, { kind: "nesterov", momentum: 0.9 }, 0);
  assert(r.meanLimited);
  assertAlmostEquals(r.etaStar, (2 * 1.9) / (2.8 * 1.206011329583), 1e-11);
});

Deno.test("compressedThreshold() matches the dense second-moment map to 1e-8 (Nesterov)", async (t) => {
  for (
    const [d, m, rank, seed] of [[3, 5, 1, 41], [4, 6, 2, 42], [4, 5, 1, 43]]
  ) {
    const hs = randomPsd(m, d, rank, seed);
    const c = fullCurvature(hs);
    for (const beta of [0.5, 0.9, 0.99]) {
      await t.step(`d=${d} m=${m} β=${beta}`, () => {
        for (const B of [1, 2, m - 1]) {
          const p = batchNoiseWeight(B, m);
          const got =
            compressedThreshold(c, { kind: "nesterov", momentum: beta }, p)
              .etaStar;
          const ref = denseThreshold(
            hs,
            d,
            p,
            nesterovDynamics(beta),
            1e-3 * got,
          );
          assert(rel(got, ref) < 1e-8, `B=${B}: ${got} vs dense ${ref}`);
        }
      });
    }
  }
});

Deno.test("compressedThreshold() for heavy ball agrees with the pencil (V = I)", () => {
  const d = 5, m = 6, hs = randomPsd(m, d, 1, 51);
  const c = fullCurvature(hs);
  for (const beta of [0, 0.5, 0.9, 0.99]) {
    for (const B of [1, 3]) {
      const p = batchNoiseWeight(B, m);
      const brent =
        compressedThreshold(c, { kind: "heavy_ball", momentum: beta }, p)
          .etaStar;
      const pencil = 2 / momentumPencilSolve(c, beta, p).lambdaGen;
      assert(
        rel(brent, pencil) < 1e-10,
        `β=${beta} B=${B}: ${brent} vs ${pencil}`,
      );
    }
  }
});

Deno.test("compressedThreshold() for AdamW (decoupled decay) matches the dense map of Adam's own (x, m)", () => {
  const d = 3, m = 5, hs = randomPsd(m, d, 1, 61);
  const rng = new Rng(62);
  const P = Float64Array.from(
    { length: d },
    () => Math.exp(3 * rng.uniform() - 1.5),
  );
  // the client's blocks: P^{-1/2} H_i P^{-1/2}
  const ht = hs.map((h) =>
    h.map((x, t) => x / Math.sqrt(P[Math.floor(t / d)] * P[t % d]))
  );
  const c = fullCurvature(ht);
  let prev = 0;
  for (const omega of [0, 0.01, 0.1]) {
    const p = batchNoiseWeight(2, m);
    const got = compressedThreshold(c, {
      kind: "adam",
      beta1: 0.9,
      decoupledDecay: omega,
    }, p).etaStar;
    const ref = denseThreshold(
      hs,
      d,
      p,
      adamDynamics(0.9, P, omega),
      1e-3 * got,
    );
    assert(rel(got, ref) < 1e-8, `ω=${omega}: ${got} vs dense ${ref}`);
    assert(got > prev, "decay raises η* (momentum.md §5)");
    prev = got;
  }
});

Deno.test("compressedThreshold() is below Nesterov's certified bound and handles no curvature", () => {
  for (const seed of [71, 72, 73]) {
    const m = 6, hs = randomPsd(m, 4, 1, seed);
    const c = fullCurvature(hs);
    for (const beta of [0.5, 0.9]) {
      for (const B of [1, 2, 5]) {
        const p = batchNoiseWeight(B, m);
        const nag =
          compressedThreshold(c, { kind: "nesterov", momentum: beta }, p)
            .etaStar;
        const bound = ((1 + beta) / (1 + 2 * beta)) *
          (2 / momentumPencilSolve(c, 0, p).lambdaGen);
        assert(nag <= bound * (1 + 1e-10), `${nag} > ${bound}`);
      }
    }
    const lmax = symEig(mean(hs), 4).values[0];
    const full = compressedThreshold(
      c,
      { kind: "heavy_ball", momentum: 0.9 },
      0,
    );
    assert(rel(full.etaStar, 3.8 / lmax) < 1e-12 && full.meanLimited);
  }
  const zero = fullCurvature([new Float64Array(4)]);
  const r = compressedThreshold(zero, { kind: "nesterov", momentum: 0.9 }, 1);
  assert(r.etaStar === 0 && !r.converged);
});
