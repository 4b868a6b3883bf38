import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { TestDealer } from "./_test_dealer.ts";
import { decode, encode } from "../protocol/codec.ts";
import { encodeTensor } from "../protocol/tensor.ts";
import { jsonLogger, silentLogger } from "./log.ts";
import { AddressInUse } from "./router.ts";
import { startSidecar } from "./server.ts";
import { stubRunRound } from "./stub_runner.ts";

type Msg = Record<string, unknown>;

/** A DEALER that sends one frame and waits (with a timeout) for one answer. */
async function client(endpoint: string) {
  const sock = await TestDealer.connect(endpoint);
  let id = 0;
  const raw = async (frame: Uint8Array): Promise<Msg> => {
    await sock.send(frame);
    const [reply] = await sock.receive();
    return decode(reply) as Msg;
  };
  const ask = (m: Msg): Promise<Msg> => raw(encode({ id: ++id, ...m }));
  return { sock, raw, ask, nextId: () => id + 1 };
}

const run = (id: string) => ({ id, name: "t", params: 2, probe: 2, n: 10, batch_size: 2, curvature: "hessian", dtype: "f64" });
const hello = (id: string) => ({ type: "hello", protocol: 2, client: "deno-test", run: run(id), capabilities: [] });
const roundMsg = (session: string) => ({
  type: "round", session, step: 1, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0, budget: {},
});
const blocks = encodeTensor(new Float64Array([2, 1, 1, 2, 4, 1, 1, 4]), [2, 2, 2]);

Deno.test("sidecar over libzmq: a full stub round, and every bad input answered while another session works", async (t) => {
  const sidecar = await startSidecar({
    endpoint: "tcp://127.0.0.1:*",
    runRound: stubRunRound,
    log: Deno.env.get("EDGEWISE_TEST_LOG") ? jsonLogger("debug") : silentLogger,
    limits: { max_message_bytes: 4096 },
  });
  const a = await client(sidecar.endpoint);
  const b = await client(sidecar.endpoint);
  try {
    const wa = await a.ask(hello("run-a"));
    assertEquals(wa.type, "welcome");
    assertEquals((wa.limits as Msg).max_message_bytes, 4096);
    const sa = wa.session as string;
    // session a starts a round and stays in it while b misbehaves
    let m = await a.ask(roundMsg(sa));
    assertEquals(m.op, "reset");

    const sb = (await b.ask(hello("run-b"))).session as string;
    const bad: [string, () => Promise<Msg>, string][] = [
      ["non-msgpack frame", () => b.raw(new Uint8Array([0xc1, 0x00])), "malformed"],
      ["truncated frame", () => b.raw(encode({ type: "heartbeat", id: 1, session: sb }).slice(0, 5)), "malformed"],
      ["empty frame", () => b.raw(new Uint8Array(0)), "malformed"],
      ["non-map body", () => b.raw(encode([1, 2, 3])), "malformed"],
      ["unknown type", () => b.ask({ type: "gossip", session: sb }), "unknown_type"],
      ["wrong protocol version", () => b.ask({ ...hello("run-c"), protocol: 9 }), "version_mismatch"],
      ["unknown session", () => b.ask({ type: "heartbeat", session: "nope" }), "unknown_session"],
      ["result with no op outstanding", () => b.ask({ type: "result", session: sb, seq: 0, op: "reset", basis: 0, hvps: 0, wall_ms: 0 }), "bad_state"],
      ["message over the soft limit", () => b.ask({ type: "heartbeat", session: sb, pad: new Uint8Array(5000) }), "too_large"],
    ];
    for (const [name, send, code] of bad) {
      await t.step(name, async () => {
        const e = await send();
        assertEquals([e.type, e.code], ["error", code]);
        assert(typeof e.message === "string" && e.message.length > 0);
      });
    }
    // session b still works, session a finishes its round
    assertEquals((await b.ask({ type: "heartbeat", session: sb })).type, "heartbeat");
    m = await a.ask({ type: "result", session: sa, seq: 0, op: "reset", basis: 0, hvps: 0, wall_ms: 0 });
    assertEquals(m.op, "random");
    m = await a.ask({ type: "result", session: sa, seq: 1, op: "random", basis: 2, hvps: 0, wall_ms: 0, kept: 2 });
    assertEquals(m.op, "blocks");
    const re = a.nextId();
    m = await a.ask({ type: "result", session: sa, seq: 2, op: "blocks", basis: 2, hvps: 4, wall_ms: 0, blocks });
    assertEquals([m.type, m.re, (m.report as Msg).lambda_max], ["report", re, 4]);
    // hello again with the session secret resumes the same session; bye forgets it
    assertEquals((await a.ask({ ...hello("run-a"), secret: wa.secret })).session, sa);
    assertEquals((await a.ask({ type: "bye", session: sa })).type, "bye");
    assertEquals((await a.ask({ type: "heartbeat", session: sa })).code, "unknown_session");
  } finally {
    await a.sock.close();
    await b.sock.close();
    await sidecar.close();
  }
});

Deno.test("startSidecar() fails clearly when the endpoint is taken", async () => {
  const one = await startSidecar({ endpoint: "tcp://127.0.0.1:*", runRound: stubRunRound, log: silentLogger });
  try {
    let err: unknown;
    try {
      const two = await startSidecar({ endpoint: one.endpoint, runRound: stubRunRound, log: silentLogger });
      await two.close();
    } catch (e) {
      err = e;
    }
    assert(err instanceof AddressInUse, `second bind should fail with AddressInUse, got ${err}`);
    assert(err.message.includes(one.endpoint), err.message);
  } finally {
    await one.close();
  }
});
