import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parseClientMessage, peekId } from "./messages.ts";
import { ProtocolError } from "./errors.ts";

const run = { id: "r1", name: "t", params: 4, probe: 2, n: 10, batch_size: 2, curvature: "hessian", dtype: "f64" };
const hello = { type: "hello", id: 1, protocol: 2, client: "test", run, capabilities: ["random"] };
const round = {
  type: "round", id: 2, session: "s", step: 1, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0,
  budget: { hvps: 100 },
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

Deno.test("parseClientMessage() reads hello, round, result, heartbeat, bye and error", () => {
  const h = parseClientMessage(hello);
  assert(h.type === "hello" && h.run.id === "r1" && h.run.model === undefined);
  const r = parseClientMessage(round);
  assert(r.type === "round" && r.round.budget.hvps === 100 && r.round.budget.seconds === undefined);
  const res = parseClientMessage({ type: "result", id: 3, session: "s", seq: 0, op: "random", basis: 2, hvps: 0, wall_ms: 1, kept: 2 });
  assert(res.type === "result" && res.fields.kept === 2);
  assertEquals(parseClientMessage({ type: "heartbeat", id: 4, session: "s" }).type, "heartbeat");
  assertEquals(parseClientMessage({ type: "bye", id: 5, session: "s" }).type, "bye");
  const e = parseClientMessage({ type: "error", id: 6, session: "s", code: "oracle_failed", message: "x", seq: 1 });
  assert(e.type === "error" && e.seq === 1);
});

Deno.test("parseClientMessage() refuses bad messages with the SPEC §6 code", async (t) => {
  const cases: [string, unknown, string][] = [
    ["non-map body", [1, 2], "malformed"],
    ["missing type", { id: 1 }, "malformed"],
    ["unknown type", { type: "gossip", id: 1 }, "unknown_type"],
    ["sidecar-only type", { type: "report", id: 1 }, "unknown_type"],
    ["missing id", { type: "heartbeat" }, "malformed"],
    ["protocol v1 (refused: upgrade the client)", { ...hello, protocol: 1 }, "version_mismatch"],
    ["ggn without outputs", { ...hello, run: { ...run, curvature: "ggn" } }, "malformed"],
    ["ggn with outputs 0", { ...hello, run: { ...run, curvature: "ggn", outputs: 0 } }, "malformed"],
    ["bad curvature", { ...hello, run: { ...run, curvature: "fisher" } }, "malformed"],
    ["lr not a number", { ...round, lr: "0.1" }, "malformed"],
    ["lr NaN", { ...round, lr: NaN }, "malformed"],
    ["negative seq", { type: "result", id: 3, seq: -1, op: "x", basis: 0, hvps: 0, wall_ms: 0 }, "malformed"],
    ["unknown error code", { type: "error", id: 3, code: "oops", message: "" }, "malformed"],
  ];
  for (const [name, v, code] of cases) {
    await t.step(name, () => assertEquals(errorOf(v).code, code));
  }
});

Deno.test("version_mismatch lists the supported versions in details", () => {
  assertEquals(errorOf({ ...hello, protocol: 7 }).details, { supported: [2] });
  assert(/upgrade the edgewise client/.test(errorOf({ ...hello, protocol: 1 }).message));
});

Deno.test("peekId() finds an integer id or nothing", () => {
  assertEquals(peekId({ id: 4 }), 4);
  assertEquals(peekId({ id: "4" }), undefined);
  assertEquals(peekId([1]), undefined);
});

Deno.test("hello v2 reads curvature and outputs (required on the factor route, dropped for hessian)", () => {
  for (const curvature of ["ggn", "ggn_mc"]) {
    const m = parseClientMessage({ ...hello, run: { ...run, curvature, outputs: 4 } });
    assert(m.type === "hello" && m.run.outputs === 4 && m.run.curvature === curvature);
  }
  const h = parseClientMessage({ ...hello, run: { ...run, outputs: 4 } });
  assert(h.type === "hello" && h.run.outputs === undefined);
});
