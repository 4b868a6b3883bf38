import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { optimizerCards } from "./format.js";

Deno.test("optimizerCards(): the model, plain SGD and full-batch values beside η* (momentum.md §8 Adam, B = 1), nothing without optimizer", () => {
  // hand-made report with the worked numbers: η*_Adam = 2.2643…, 38/λ_max = 26.202…, plain SGD 1.0737
  const adam = {
    optimizer: { kind: "adam", description: "Adam, frozen preconditioner (β₁ = 0.9)", assumed: false },
    method: "pencil", eta_star: 2.264349798320, eta_star_full_batch: 26.202191846633, eta_star_sgd: 1.073657959761,
  };
  assertEquals(optimizerCards(adam), [
    { k: "optimizer model", v: "Adam, frozen preconditioner (β₁ = 0.9)", cls: "" },
    { k: "η* plain SGD", v: "1.074" },
    { k: "η* full batch (38/λ_max-style)", v: "26.2 (exact η* is 8.642 % of it)" },
  ]);
  const nag = {
    optimizer: { kind: "nesterov", description: "Nesterov (β = 0.9)" }, method: "brent",
    eta_star: 0.469589217777, eta_star_full_batch: 1.125315180589, eta_star_sgd: 1.073657959761, eta_star_upper: 0.7285,
  };
  assertEquals(optimizerCards(nag).map((c) => c.k), ["optimizer model", "η* plain SGD", "η* full batch", "η* upper bound (Nesterov)"]);
  assertEquals(optimizerCards({ optimizer: { kind: "sgd", description: "plain SGD", assumed: true }, method: "sgd" }), [
    { k: "optimizer model", v: "plain SGD (assumed: not modelled)", cls: "warn" },
  ]);
  assertEquals(optimizerCards({ eta_star: 1 }), []);
  assertEquals(optimizerCards(null), []);
});
