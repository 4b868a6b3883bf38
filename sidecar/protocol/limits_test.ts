import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parseClientMessage } from "./messages.ts";
import { ProtocolError } from "./errors.ts";
import { CAPS } from "./limits.ts";
import { clip, describe } from "./describe.ts";

const run = { id: "r1", name: "t", params: 4, probe: 2, n: 10, batch_size: 2, curvature: "hessian", dtype: "f64" };
const hello = { type: "hello", id: 1, protocol: 2, client: "test", run, capabilities: ["random"] };
const round = {
  type: "round", id: 2, session: "s", step: 1, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0,
  budget: {},
};

function errorOf(v: unknown): ProtocolError {
  try {
    parseClientMessage(v);
  } catch (e) {
    assert(e instanceof ProtocolError, String(e));
    return e;
  }
  throw new Error("expected a ProtocolError");
}

Deno.test("client mistakes that were answered internal get bad_request (or malformed for a type)", async (t) => {
  const big = 2 ** 53; // not a safe integer
  const cases: [string, unknown, string][] = [
    ["run id over 1024 characters", { ...hello, run: { ...run, id: "x".repeat(1025) } }, "bad_request"],
    ["empty run id", { ...hello, run: { ...run, id: "" } }, "bad_request"],
    ["hello n = 0", { ...hello, run: { ...run, n: 0 } }, "bad_request"],
    ["hello batch_size > n", { ...hello, run: { ...run, batch_size: 11 } }, "bad_request"],
    ["probe over the cap", { ...hello, run: { ...run, probe: CAPS.probe + 1 } }, "bad_request"],
    ["round n = 0", { ...round, n: 0, batch_size: 1 }, "bad_request"],
    ["round batch_size > n", { ...round, batch_size: 11 }, "bad_request"],
    ["lr < 0", { ...round, lr: -0.1 }, "bad_request"],
    ["tol = 0", { ...round, options: { tol: 0 } }, "bad_request"],
    ["tol = 1", { ...round, options: { tol: 1 } }, "bad_request"],
    ["tol > 1", { ...round, options: { tol: 3 } }, "bad_request"],
    ["bootstrap over the cap", { ...round, options: { bootstrap: 100000 } }, "bad_request"],
    ["negative bootstrap", { ...round, options: { bootstrap: -1 } }, "bad_request"],
    ["max_basis over the cap", { ...round, options: { max_basis: CAPS.maxBasis + 1 } }, "bad_request"],
    ["max_basis 0", { ...round, options: { max_basis: 0 } }, "bad_request"],
    ["batch grid over the cap", { ...round, options: { batch_grid: Array(CAPS.batchGrid + 1).fill(1) } }, "bad_request"],
    ["batch grid entry 0", { ...round, options: { batch_grid: [1, 0] } }, "bad_request"],
    ["budget hvps over the cap", { ...round, budget: { hvps: CAPS.budgetHvps + 1 } }, "bad_request"],
    ["budget seconds 0", { ...round, budget: { seconds: 0 } }, "bad_request"],
    ["unknown target", { ...round, options: { target: "x" } }, "bad_request"],
    ["bootstrap not an integer", { ...round, options: { bootstrap: 1.5 } }, "malformed"],
    ["id beyond 2^53", { type: "heartbeat", id: big, session: "s" }, "malformed"],
    ["basis beyond 2^53", { ...round, basis: big }, "malformed"],
    ["hello n beyond 2^53", { ...hello, run: { ...run, n: big } }, "malformed"],
    ["secret over the cap", { ...hello, secret: "s".repeat(CAPS.secret + 1) }, "bad_request"],
    ["too many capabilities", { ...hello, capabilities: Array(CAPS.capabilities + 1).fill("x") }, "bad_request"],
  ];
  for (const [name, v, code] of cases) {
    await t.step(name, () => {
      const e = errorOf(v);
      assertEquals(e.code, code, e.message);
      assert(e.message.length <= 512, `message of ${e.message.length} characters`);
    });
  }
});

Deno.test("values at the caps are accepted", () => {
  parseClientMessage({ ...hello, run: { ...run, id: "x".repeat(CAPS.runId), probe: CAPS.probe } });
  parseClientMessage({
    ...round,
    budget: { hvps: CAPS.budgetHvps, seconds: CAPS.budgetSeconds },
    options: { tol: 0.5, bootstrap: CAPS.bootstrap, max_basis: CAPS.maxBasis, batch_grid: Array(CAPS.batchGrid).fill(64), seed: 3 },
  });
});

Deno.test("error messages describe an offending value without echoing it", () => {
  const huge = "A".repeat(1 << 20);
  for (
    const v of [
      { type: huge, id: 1 },
      { type: "heartbeat", id: huge },
      { ...hello, client: 7, run: { ...run, name: { [huge]: 1 } } },
      { ...hello, run: { ...run, curvature: huge } },
      { ...round, lr: huge },
      { ...round, options: { target: huge } },
    ]
  ) {
    const e = errorOf(v);
    assert(e.message.length < 300, `${e.code}: message of ${e.message.length} characters`);
    assert(!e.message.includes("A".repeat(100)));
  }
  assert(describe(huge).length <= 80);
  assertEquals(describe(new Uint8Array(9)), "bin of 9 bytes");
  assert(clip("b".repeat(5000), 512).length <= 512);
});

Deno.test("round.options.optimizer is checked (SPEC §3.1): types malformed, ranges and kinds bad_request", async (t) => {
  const opt = (o: unknown) => ({ ...round, options: { optimizer: o } });
  const cases: [string, unknown, string][] = [
    ["not a map", opt([1]), "malformed"],
    ["kind missing", opt({ momentum: 0.9 }), "malformed"],
    ["kind not a string", opt({ kind: 3 }), "malformed"],
    ["unknown kind", opt({ kind: "rmsprop" }), "bad_request"],
    ["momentum a string", opt({ kind: "heavy_ball", momentum: "0.9" }), "malformed"],
    ["momentum NaN", opt({ kind: "heavy_ball", momentum: NaN }), "malformed"],
    ["momentum = 1", opt({ kind: "heavy_ball", momentum: 1 }), "bad_request"],
    ["negative momentum", opt({ kind: "nesterov", momentum: -0.1 }), "bad_request"],
    ["momentum missing (heavy ball)", opt({ kind: "heavy_ball" }), "bad_request"],
    ["momentum missing (nesterov)", opt({ kind: "nesterov" }), "bad_request"],
    ["beta1 missing", opt({ kind: "adam" }), "bad_request"],
    ["beta1 = 1", opt({ kind: "adam", beta1: 1 }), "bad_request"],
    ["dampening with nesterov", opt({ kind: "nesterov", momentum: 0.9, dampening: 0.1 }), "bad_request"],
    ["momentum with sgd", opt({ kind: "sgd", momentum: 0.9 }), "bad_request"],
    ["decoupled decay with heavy ball", opt({ kind: "heavy_ball", momentum: 0.9, decoupled_decay: 0.1 }), "bad_request"],
    ["negative l2", opt({ kind: "sgd", l2: -1 }), "bad_request"],
    ["decay over the cap", opt({ kind: "adam", beta1: 0.9, decoupled_decay: 2e6 }), "bad_request"],
    ["name over 64 characters", opt({ kind: "sgd", name: "x".repeat(65) }), "bad_request"],
    ["name not a string", opt({ kind: "sgd", name: 5 }), "malformed"],
    ["assumed not a bool", opt({ kind: "sgd", assumed: 1 }), "malformed"],
  ];
  for (const [name, v, code] of cases) {
    await t.step(name, () => {
      const e = errorOf(v);
      assertEquals(e.code, code, e.message);
      assert(e.message.length <= 512, `message of ${e.message.length} characters`);
    });
  }
  await t.step("valid optimizers pass, with keys of other kinds at 0 and unknown keys ignored", () => {
    for (
      const o of [
        { kind: "sgd", name: "x".repeat(64), assumed: true, l2: 1e6 },
        { kind: "heavy_ball", momentum: 0.9, dampening: 0.5, l2: 1e-4, name: "SGD" },
        { kind: "nesterov", momentum: 0, dampening: 0 },
        { kind: "adam", beta1: 0.9, decoupled_decay: 0.01, momentum: 0, future_key: [1] },
      ]
    ) {
      const r = parseClientMessage(opt(o));
      assert(r.type === "round");
      assertEquals(r.round.options.optimizer, o);
    }
  });
});
