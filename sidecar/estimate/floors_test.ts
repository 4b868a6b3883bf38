import { assert, assertAlmostEquals, assertEquals } from "./_assert.ts";
import { lossFloors } from "./floors.ts";
import { SyntheticOracle } from "./synthetic_oracle.ts";
import { symEig } from "./_linalg.ts";
import {
  denseLambdaGen,
  factorsOf,
  kroneckerOperators,
  mean,
  randomPsd,
  rel,
} from "./_testing.ts";
import { Rng } from "./_rng.ts";
import { fetchCurvature } from "./oracle.ts";

// Dense reference (theory §5): vec(S_∞) = η p (H ⊕ H − η D)^† vec(Σ_g), floor ½ tr(H S_∞).
Deno.test("lossFloors() matches the dense finite-η formulas and the leading form on both routes", async () => {
  const d = 4, m = 7;
  const hs = randomPsd(m, d, 2, 111);
  const rng = new Rng(112);
  const grads = hs.map(() => rng.normals(d));
  const fs = splitFactors(factorsOf(hs, d), m, d * d);
  for (const o of [new SyntheticOracle(hs, { grads }), SyntheticOracle.fromFactors(fs, d, { grads })]) {
    await checkFloors(o, hs, grads, d, m);
  }
});

// The preconditioned conjugate gradients on an ill-conditioned K (condition ~1e6) and close to
// η*, where the unpreconditioned ones needed hundreds of steps: still the dense value.
Deno.test("lossFloors() stays exact on an ill-conditioned K close to eta*", async () => {
  const d = 16, m = 12;
  const hs = randomPsd(m, d, 3, 121).map((h) => h.map((x, t) => x * 0.65 ** (Math.floor(t / d) + (t % d))));
  const rng = new Rng(122);
  const grads = hs.map(() => rng.normals(d));
  const cases: [number, number][] = [[1, 0.5], [1, 0.99], [0.05, 0.99], [0.3, 0.95]];
  await checkFloors(new SyntheticOracle(hs, { grads }), hs, grads, d, m, cases);
});

function splitFactors(all: Float64Array, m: number, size: number): Float64Array[] {
  return Array.from({ length: m }, (_, i) => all.slice(i * size, (i + 1) * size));
}

async function checkFloors(
  o: SyntheticOracle,
  hs: Float64Array[],
  grads: Float64Array[],
  d: number,
  m: number,
  cases: [number, number][] = [[1, 0.1], [1, 0.9], [0.3, 0.5]],
) {
  await o.random(d, 1);
  const b = await fetchCurvature(o, undefined, 0, d);
  const g = await o.grads();
  const H = mean(hs);
  const gbar = mean(grads);
  const sig = new Float64Array(d * d);
  for (const gi of grads) {
    for (let a = 0; a < d; a++) {
      for (let c = 0; c < d; c++) {
        sig[a * d + c] += ((gi[a] - gbar[a]) * (gi[c] - gbar[c])) / m;
      }
    }
  }
  const trSig = Array.from({ length: d }, (_, a) => sig[a * d + a]).reduce(
    (s, x) => s + x,
    0,
  );
  for (const [p, frac] of cases) {
    const etaStar = 2 / denseLambdaGen(hs, d, p);
    const eta = frac * etaStar;
    const { sum, D } = kroneckerOperators(hs, d, p);
    const n = d * d, A = sum.map((x, t) => x - eta * D[t]);
    const e = symEig(A, n);
    const s = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      if (Math.abs(e.values[j]) <= 1e-12 * e.values[0]) continue;
      let c = 0;
      for (let t = 0; t < n; t++) c += e.vectors[t * n + j] * sig[t];
      for (let t = 0; t < n; t++) {
        s[t] += (eta * p * c * e.vectors[t * n + j]) / e.values[j];
      }
    }
    let trHS = 0, trH2S = 0;
    const H2 = new Float64Array(d * d);
    for (let a = 0; a < d; a++) {
      for (let c = 0; c < d; c++) {
        for (let l = 0; l < d; l++) {
          H2[a * d + c] += H[a * d + l] * H[l * d + c];
        }
      }
    }
    for (let a = 0; a < d; a++) {
      for (let c = 0; c < d; c++) {
        trHS += H[a * d + c] * s[c * d + a];
        trH2S += H2[a * d + c] * s[c * d + a];
      }
    }
    const f = lossFloors(b, p, eta, etaStar, g);
    assert(
      rel(f.loss_floor!, 0.5 * trHS) < 1e-8,
      `p=${p} η/η*=${frac}: ${f.loss_floor} vs ${0.5 * trHS}`,
    );
    assert(rel(f.grad_norm_floor!, Math.sqrt(trH2S)) < 1e-8);
    assertAlmostEquals(f.loss_floor_leading!, (eta * p / 4) * trSig, 1e-12);
    assertAlmostEquals(
      f.grad_norm!,
      Math.sqrt(gbar.reduce((acc, x) => acc + x * x, 0)),
      1e-12,
    );
    if (frac === 0.1) assert(rel(f.loss_floor_leading!, f.loss_floor!) < 0.2); // leading form accurate at small η
  }

  const above = lossFloors(b, 1, 1, 0.5, g);
  assertEquals(above.loss_floor, undefined);
  assert(above.loss_floor_leading !== undefined);
}
