import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { TestDealer } from "./_test_dealer.ts";
import { decode, encode } from "../protocol/codec.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { encodeTensor } from "../protocol/tensor.ts";
import type { OpChannel, OpResult } from "./remote_oracle.ts";
import { silentLogger } from "./log.ts";
import { startSidecar } from "./server.ts";
import type { RoundRunner } from "./session.ts";
import { WorkerPool } from "./worker_pool.ts";

const BUSY = new URL("./_busy_task.ts", import.meta.url).href;
type Msg = Record<string, unknown>;

/** Answers ops as a client with m = 2 samples would: blocks are all ones. */
function fakeClient(fail?: string): OpChannel & { ops: string[] } {
  let k = 0;
  const ops: string[] = [];
  return {
    ops,
    call<T>(op: string, args: Record<string, unknown>, parse: (r: OpResult) => T): Promise<T> {
      ops.push(op);
      if (op === fail) return Promise.reject(new ProtocolError("bad_tensor", `Cannot read ${op}`));
      if (op === "reset") k = 0;
      if (op === "random") k += args.r as number;
      const fields: Record<string, unknown> = op === "random" ? { kept: args.r } : {};
      if (op === "blocks") fields.blocks = encodeTensor(new Float64Array(2 * k * (args.count as number)).fill(1), [2, k, args.count as number]);
      return Promise.resolve(parse({ basis: k, hvps: 0, fields }));
    },
  };
}

Deno.test("WorkerPool runs a task in a worker against the session's channel, errors keep their code", async () => {
  const pool = new WorkerPool({ size: 2 });
  try {
    const ch = fakeClient();
    assertEquals(await pool.run(ch, 2, 0, { module: BUSY, input: { ms: 1, r: 3 } }), { k: 3, sum: 18 });
    assertEquals(ch.ops, ["reset", "random", "blocks"]);
    // the result is parsed in the worker: a wrong blocks shape is the client's bad_tensor
    const both = await Promise.allSettled([
      pool.run(fakeClient("random"), 2, 0, { module: BUSY, input: { ms: 1, r: 2 } }),
      pool.run(fakeClient(), 2, 0, { module: BUSY, input: { ms: 1, r: 2 } }),
      pool.run(fakeClient(), 2, 0, { module: BUSY, input: { ms: 1, r: 1 } }), // waits for a free worker
    ]);
    assert(both[0].status === "rejected" && (both[0].reason as ProtocolError).code === "bad_tensor");
    assertEquals(both.slice(1).map((b) => b.status === "fulfilled" && (b.value as { k: number }).k), [2, 1]);
  } finally {
    pool.close();
  }
});

/** Starts a round whose solve spins `ms` in a worker (or on the event loop without a pool). */
async function heartbeatLatencyDuringRound(pool: WorkerPool | undefined, ms: number): Promise<number> {
  const runRound: RoundRunner = async (oracle, round, session, channel) => {
    if (pool) return await pool.run(channel, session.run.probe, round.basis, { module: BUSY, input: { ms, r: 2 } }) as Msg;
    const { runRound: inline } = await import(BUSY);
    return await inline(oracle, { ms, r: 2 });
  };
  const sidecar = await startSidecar({ endpoint: "tcp://127.0.0.1:*", runRound, log: silentLogger });
  const a = await TestDealer.connect(sidecar.endpoint);
  const b = await TestDealer.connect(sidecar.endpoint);
  let id = 0;
  const ask = async (sock: TestDealer, m: Msg) => {
    await sock.send(encode({ id: ++id, ...m }));
    return decode((await sock.receive(30_000))[0]) as Msg;
  };
  const run = (rid: string) => ({ id: rid, name: "t", params: 2, probe: 2, n: 10, batch_size: 2, curvature: "hessian", dtype: "f64" });
  const hello = (rid: string) => ({ type: "hello", protocol: 2, client: "t", run: run(rid), capabilities: [] });
  try {
    const sa = (await ask(a, hello("busy"))).session;
    const sb = (await ask(b, hello("other"))).session;
    await ask(a, { type: "round", session: sa, step: 1, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0, budget: {} });
    await ask(a, { type: "result", session: sa, seq: 0, op: "reset", basis: 0, hvps: 0, wall_ms: 0 });
    // this result starts the solve; its answer (the blocks op) comes when the solve ends. The
    // sidecar shares this test's event loop, so the clock starts before the result is sent: a
    // solve on the event loop delays everything after it, the heartbeat's answer included.
    const t0 = performance.now();
    await a.send(encode({ id: ++id, type: "result", session: sa, seq: 1, op: "random", basis: 2, hvps: 0, wall_ms: 0, kept: 2 }));
    assertEquals((await ask(b, { type: "heartbeat", session: sb })).type, "heartbeat");
    let worst = performance.now() - t0;
    for (let i = 0; i < 5; i++) {
      const t1 = performance.now();
      assertEquals((await ask(b, { type: "heartbeat", session: sb })).type, "heartbeat");
      worst = Math.max(worst, performance.now() - t1);
    }
    assertEquals((decode((await a.receive(30_000))[0]) as Msg).op, "blocks"); // the solve ended
    return worst;
  } finally {
    await a.close();
    await b.close();
    await sidecar.close();
  }
}

Deno.test({
  name: "another session's heartbeat is answered while a round solves in a worker",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const pool = new WorkerPool({ size: 1 });
    try {
      const worst = await heartbeatLatencyDuringRound(pool, 2000);
      console.log(`heartbeat during a 2 s solve in a worker: worst ${worst.toFixed(1)} ms`);
      assert(worst < 500, `a heartbeat waited ${worst.toFixed(0)} ms`); // on the event loop: ≈ 2000 ms
    } finally {
      pool.close();
    }
  },
});

Deno.test("an abandoned round's worker is stopped and replaced, so the next round need not wait for it", async () => {
  const pool = new WorkerPool({ size: 1 });
  await pool.preload(BUSY);
  try {
    const abort = new AbortController();
    const t0 = performance.now();
    const long = pool.run(fakeClient(), 2, 0, { module: BUSY, input: { ms: 60_000, r: 2 } }, abort.signal);
    const next = pool.run(fakeClient(), 2, 0, { module: BUSY, input: { ms: 1, r: 1 } }); // queued behind it
    setTimeout(() => abort.abort(), 200);
    const [a, b] = await Promise.allSettled([long, next]);
    assert(a.status === "rejected" && (a.reason as ProtocolError).code === "bad_state");
    assert(b.status === "fulfilled" && (b.value as { k: number }).k === 1);
    const took = performance.now() - t0;
    assert(took < 30_000, `the queued round waited ${took.toFixed(0)} ms`); // not the 60 s spin
  } finally {
    pool.close();
  }
});

Deno.test("a round abandoned while waiting for a worker leaves the queue at once", async () => {
  const pool = new WorkerPool({ size: 1 });
  try {
    const busy = pool.run(fakeClient(), 2, 0, { module: BUSY, input: { ms: 1500, r: 1 } });
    const abort = new AbortController();
    const queued = pool.run(fakeClient(), 2, 0, { module: BUSY, input: { ms: 1, r: 1 } }, abort.signal);
    assertEquals(pool.waiting, 1);
    abort.abort();
    const [settled] = await Promise.allSettled([queued]);
    assert(settled.status === "rejected" && (settled.reason as ProtocolError).code === "bad_state");
    assertEquals(pool.waiting, 0);
    assertEquals(((await busy) as { k: number }).k, 1);
  } finally {
    pool.close();
  }
});
