import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { encodeTensor } from "../protocol/tensor.ts";
import { type ClientMessage, type RunMeta } from "../protocol/messages.ts";
import { ManualTimers } from "./_manual_timers.ts";
import { silentLogger } from "./log.ts";
import { Session, type SessionDeps } from "./session.ts";
import { stubRunRound } from "./stub_runner.ts";
import { DEFAULT_LIMITS } from "./server.ts";

const run: RunMeta = { id: "r", name: "t", params: 2, probe: 2, n: 10, batch_size: 2, curvature: "hessian", dtype: "f64" };
const peer = new Uint8Array([1]);
const flush = () => new Promise((r) => setTimeout(r, 0));

function setup(overrides: Partial<SessionDeps> = {}) {
  const sent: Record<string, unknown>[] = [];
  const timers = new ManualTimers();
  let expired = 0;
  const s = new Session("r.1", run, {
    runRound: stubRunRound,
    send: (_r, m) => sent.push(m),
    limits: { ...DEFAULT_LIMITS, op_timeout_ms: 1000, idle_timeout_ms: 5000 },
    timers,
    log: silentLogger,
    onExpire: () => expired++,
    ...overrides,
  });
  let id = 10;
  const msg = (m: Record<string, unknown>) => ({ id: id++, session: "r.1", ...m }) as unknown as ClientMessage;
  const result = (seq: number, op: string, basis: number, fields: Record<string, unknown> = {}) =>
    msg({ type: "result", seq, op, basis, hvps: 0, wall_ms: 0, fields });
  const last = () => sent[sent.length - 1];
  return { s, sent, timers, msg, result, last, expired: () => expired };
}

const round = { step: 1, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0, budget: {}, options: {} };
// per-sample 2×2 blocks, mean [[3, 1], [1, 3]] → λ_max = 4
const blocks = encodeTensor(new Float64Array([2, 1, 1, 2, 4, 1, 1, 4]), [2, 2, 2]);

async function toBlocks(t: ReturnType<typeof setup>) {
  t.s.handle(t.msg({ type: "round", round }), peer);
  await flush();
  assertEquals(t.last().op, "reset");
  t.s.handle(t.result(0, "reset", 0), peer);
  await flush();
  assertEquals(t.last().op, "random");
  t.s.handle(t.result(1, "random", 2, { kept: 2 }), peer);
  await flush();
  assertEquals(t.last().op, "blocks");
  assertEquals(t.s.phase, "waiting");
}

Deno.test("Session runs a round: each op answers the last result, the report answers the final one", async () => {
  const t = setup();
  await toBlocks(t);
  const re = (t.last().re as number) + 1;
  t.s.handle(t.result(2, "blocks", 2, { blocks }), peer);
  await flush();
  const rep = t.last();
  assertEquals(rep.type, "report");
  assertEquals(rep.re, re);
  const report = rep.report as Record<string, unknown>;
  assertEquals(report.lambda_max, 4);
  assertEquals([report.run, report.round], ["r", 0]);
  assertEquals(t.s.phase, "idle");
  assertEquals(t.s.info.rounds, 1);
});

Deno.test("Session answers a result with the wrong seq with bad_state and ends the round", async () => {
  const t = setup();
  await toBlocks(t);
  t.s.handle(t.result(7, "blocks", 2, { blocks }), peer);
  await flush();
  assertEquals([t.last().type, t.last().code], ["error", "bad_state"]);
  assertEquals(t.s.phase, "idle");
});

Deno.test("Session answers NaN in a result tensor with non_finite and ends the round", async () => {
  const t = setup();
  await toBlocks(t);
  const nan = encodeTensor(new Float64Array([2, 1, 1, 2, NaN, 1, 1, 4]), [2, 2, 2]);
  t.s.handle(t.result(2, "blocks", 2, { blocks: nan }), peer);
  await flush();
  assertEquals(t.last().code, "non_finite");
  assertEquals(t.s.phase, "idle");
});

Deno.test("Session answers a result of the wrong shape with bad_tensor", async () => {
  const t = setup();
  await toBlocks(t);
  t.s.handle(t.result(2, "blocks", 2, { blocks: encodeTensor(new Float64Array(4), [2, 2, 1]) }), peer);
  await flush();
  assertEquals(t.last().code, "bad_tensor");
});

Deno.test("Session answers a client error during an op with oracle_failed", async () => {
  const t = setup();
  await toBlocks(t);
  t.s.handle(t.msg({ type: "error", code: "oracle_failed", message: "boom", seq: 2 }), peer);
  await flush();
  assertEquals(t.last().code, "oracle_failed");
  assert(String(t.last().message).includes("boom"));
  assertEquals(t.s.phase, "idle");
});

Deno.test("Session refuses a second round while one runs", async () => {
  const t = setup();
  await toBlocks(t);
  t.s.handle(t.msg({ type: "round", round }), peer);
  assertEquals(t.last().code, "bad_state");
});

Deno.test("Session abandons a round whose op is not answered within op_timeout_ms", async () => {
  const t = setup();
  await toBlocks(t);
  t.timers.tick(999);
  assertEquals(t.s.phase, "waiting");
  t.timers.tick(1);
  assertEquals(t.s.phase, "idle");
  const n = t.sent.length;
  await flush();
  assertEquals(t.sent.length, n, "nobody to answer after an op timeout");
  t.s.handle(t.result(2, "blocks", 2, { blocks }), peer);
  assertEquals(t.last().code, "bad_state");
});

Deno.test("Session expires after idle_timeout_ms without messages, and messages reset the clock", () => {
  const t = setup();
  t.timers.tick(4000);
  t.s.handle(t.msg({ type: "heartbeat" }), peer);
  assertEquals(t.last().type, "heartbeat");
  t.timers.tick(4000);
  assertEquals(t.expired(), 0);
  t.timers.tick(1000);
  assertEquals(t.expired(), 1);
  assertEquals(t.timers.pending, 0);
});

Deno.test("Session awaits onReport before sending the report and fails the round if it throws", async (t) => {
  await t.step("awaited", async () => {
    let stored = false;
    const s = setup({ onReport: async () => { await flush(); stored = true; } });
    await toBlocks(s);
    s.s.handle(s.result(2, "blocks", 2, { blocks }), peer);
    assertEquals(s.last().op, "blocks", "report not sent before onReport resolves");
    assert(!stored);
    await flush();
    await flush();
    assert(stored);
    assertEquals(s.last().type, "report");
  });
  await t.step("throws", async () => {
    const s = setup({ onReport: () => { throw new Error("disk full"); } });
    await toBlocks(s);
    s.s.handle(s.result(2, "blocks", 2, { blocks }), peer);
    await flush();
    await flush();
    assertEquals(s.last().code, "internal");
  });
});

Deno.test("Session drops non-finite numbers from a report", async () => {
  const t = setup({ runRound: () => Promise.resolve({ lambda_gen: NaN, eta_star: 1, bounds: { identity: Infinity } }) });
  t.s.handle(t.msg({ type: "round", round }), peer);
  await flush();
  const report = t.last().report as Record<string, unknown>;
  assertEquals(report.lambda_gen, undefined);
  assertEquals(report.eta_star, 1);
  assertEquals(report.bounds, {});
});
