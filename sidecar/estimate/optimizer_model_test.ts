import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertThrows,
} from "./_assert.ts";
import {
  checkOptimizerModel,
  describeOptimizer,
  hasLinearPencil,
  lrScale,
  meanStableLimit,
  modeDynamics,
  momentumOf,
  type OptimizerModel,
  pencilCoefficients,
  withMomentum,
} from "./optimizer_model.ts";

/** Spectral radius of a real 2 × 2 matrix, from its characteristic polynomial. */
function radius2([a, b, c, d]: [number, number, number, number]): number {
  const tr = a + d, det = a * d - b * c, disc = tr * tr - 4 * det;
  if (disc >= 0) {
    return Math.max(
      Math.abs((tr + Math.sqrt(disc)) / 2),
      Math.abs((tr - Math.sqrt(disc)) / 2),
    );
  }
  return Math.sqrt(det);
}

const MODELS: OptimizerModel[] = [
  { kind: "sgd" },
  { kind: "heavy_ball", momentum: 0.9 },
  { kind: "heavy_ball", momentum: 0.5, dampening: 0.3 },
  { kind: "nesterov", momentum: 0.9 },
  { kind: "nesterov", momentum: 0.99 },
  { kind: "adam", beta1: 0.9 },
  { kind: "adam", beta1: 0.9, decoupledDecay: 0.1 },
];

Deno.test("meanStableLimit() is where the mode's 2 × 2 mean dynamics lose stability", () => {
  for (const model of MODELS) {
    for (const lambda of [0.3, 1, 7]) {
      const eta = meanStableLimit(model, lambda);
      assert(
        radius2(modeDynamics(model, lambda, 0.999 * eta).m) < 1,
        describeOptimizer(model),
      );
      assert(
        radius2(modeDynamics(model, lambda, 1.001 * eta).m) > 1,
        describeOptimizer(model),
      );
      assert(radius2(modeDynamics(model, lambda, 0.5 * eta).m) < 1);
    }
  }
  assertAlmostEquals(
    meanStableLimit({ kind: "adam", beta1: 0.9 }, 1.450260353119),
    26.202191846633,
    1e-9,
  );
  assertEquals(
    meanStableLimit({ kind: "nesterov", momentum: 0.9 }, 0),
    Infinity,
  );
});

Deno.test("modeDynamics() are the PyTorch updates of momentum.md §1 on one mode", () => {
  // heavy ball: buf ← β buf + g; θ ← θ − η buf, with g = λ x (+ noise through f)
  const beta = 0.7, lambda = 2, eta = 0.3, x = 0.4, buf = -0.2;
  const hb = modeDynamics({ kind: "heavy_ball", momentum: beta }, lambda, eta);
  const buf1 = beta * buf + lambda * x;
  assertAlmostEquals(hb.m[0] * x + hb.m[1] * buf, x - eta * buf1, 1e-15);
  assertAlmostEquals(hb.m[2] * x + hb.m[3] * buf, buf1, 1e-15);
  // Nesterov: θ ← θ − η (g + β buf_new)
  const nag = modeDynamics({ kind: "nesterov", momentum: beta }, lambda, eta);
  assertAlmostEquals(
    nag.m[0] * x + nag.m[1] * buf,
    x - eta * (lambda * x + beta * buf1),
    1e-15,
  );
  assertEquals(nag.f, [-eta * (1 + beta), 1]);
});

Deno.test("optimizer model helpers", () => {
  assertEquals(pencilCoefficients(0.5, 1), {
    c1: 2 / 3 - 2,
    c2: 2,
    c3: 0.5 / (0.25 * 1.5),
  });
  assertEquals(
    lrScale({ kind: "heavy_ball", momentum: 0.9, dampening: 0.25 }),
    0.75,
  );
  assertEquals(momentumOf({ kind: "sgd" }), 0);
  assert(hasLinearPencil({ kind: "adam", beta1: 0.9, decoupledDecay: 0 }));
  assert(!hasLinearPencil({ kind: "adam", beta1: 0.9, decoupledDecay: 0.1 }));
  assert(!hasLinearPencil({ kind: "nesterov", momentum: 0.9 }));
  assertEquals(withMomentum({ kind: "sgd" }, 0.5), {
    kind: "heavy_ball",
    momentum: 0.5,
  });
  assertEquals(withMomentum({ kind: "adam", beta1: 0.9 }, 0.5), {
    kind: "adam",
    beta1: 0.5,
  });
  assertEquals(
    describeOptimizer({ kind: "nesterov", momentum: 0.9 }),
    "Nesterov (β = 0.9)",
  );
  assertThrows(
    () => withMomentum({ kind: "sgd" }, 1),
    RangeError,
    "Expected momentum in [0, 1)",
  );
  assertThrows(
    () =>
      checkOptimizerModel({ kind: "heavy_ball", momentum: 0.5, dampening: -1 }),
    RangeError,
    "Expected dampening in [0, 1)",
  );
  assertThrows(
    () =>
      checkOptimizerModel({ kind: "adam", beta1: 0.9, decoupledDecay: -0.1 }),
    RangeError,
    "Expected a decoupled decay ≥ 0",
  );
  assertThrows(
    () => checkOptimizerModel({ kind: "lion" } as unknown as OptimizerModel),
    TypeError,
    "Expected an optimizer kind",
  );
  assertThrows(
    () => pencilCoefficients(0.5, -0.1),
    RangeError,
    "Expected p in [0, 1]",
  );
});
