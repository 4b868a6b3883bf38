/**
 * A bounded protocol-level fuzz of a live sidecar on 127.0.0.1: every field of every client
 * message mutated (wrong types, unsafe integers, NaN, oversized strings, nesting, deletion),
 * whole random MessagePack values and random or truncated frames. Checks: every input gets an
 * answer, no answer and no log line is over 4 KiB, and a legitimate client completes a round
 * after each batch. Wire-level garbage (bad greetings, huge declared frames, reset storms) is
 * left to the transport's own tests.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { TestDealer } from "./_test_dealer.ts";
import { decode, encode } from "../protocol/codec.ts";
import { encodeTensor } from "../protocol/tensor.ts";
import { type Logger, logLine } from "./log.ts";
import { startSidecar } from "./server.ts";
import { stubRunRound } from "./stub_runner.ts";

type Msg = Record<string, unknown>;
const LIMIT = 4096;
const INPUTS = Number(Deno.env.get("EDGEWISE_FUZZ_INPUTS") ?? 20_000);
const BATCH = 250;

/** mulberry32: a small seeded generator, so a failure can be replayed. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const run = (id: string) => ({ id, name: "fuzz", params: 2, probe: 2, n: 10, batch_size: 2, curvature: "hessian", dtype: "f64" });
const blocks = encodeTensor(new Float64Array([2, 1, 1, 2, 4, 1, 1, 4]), [2, 2, 2]);

function templates(session: string): Msg[] {
  return [
    { type: "hello", protocol: 2, client: "fuzz", run: run("fuzz-run"), capabilities: ["random"] },
    { type: "round", session, step: 1, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0, budget: { hvps: 10 }, options: { tol: 0.01, bootstrap: 10, batch_grid: [1, 2] } },
    { type: "result", session, seq: 0, op: "reset", basis: 0, hvps: 0, wall_ms: 0 },
    { type: "result", session, seq: 2, op: "blocks", basis: 2, hvps: 4, wall_ms: 0, blocks },
    { type: "heartbeat", session },
    { type: "error", session, code: "oracle_failed", message: "x", seq: 0 },
  ];
}

function mutant(r: () => number): unknown {
  const big = "Z".repeat(1 + Math.floor(r() * 300_000));
  const pool: unknown[] = [
    big, "", -1, 0, 2 ** 53, -(2 ** 60), 1.5, NaN, Infinity, -Infinity, null, true,
    [big, big], { [big.slice(0, 5000)]: big }, new Uint8Array(Math.floor(r() * 100_000)),
    Array(2000).fill(7), { nested: { deeper: [big] } },
  ];
  return pool[Math.floor(r() * pool.length)];
}

/** Replaces, deletes or adds one field (possibly nested one level) of a template. */
function mutate(t: Msg, r: () => number): Msg {
  const m: Msg = structuredClone(t);
  const keys = Object.keys(m);
  const k = keys[Math.floor(r() * keys.length)];
  const roll = r();
  if (roll < 0.1) delete m[k];
  else if (roll < 0.2) m[`extra_${Math.floor(r() * 9)}`] = mutant(r);
  else if (roll < 0.4 && m[k] !== null && typeof m[k] === "object" && !(m[k] instanceof Uint8Array) && !Array.isArray(m[k])) {
    const inner = m[k] as Msg;
    const ik = Object.keys(inner);
    inner[ik.length ? ik[Math.floor(r() * ik.length)] : "x"] = mutant(r);
  } else m[k] = mutant(r);
  return m;
}

function frame(r: () => number, session: string, id: number): Uint8Array {
  const roll = r();
  if (roll < 0.05) return crypto.getRandomValues(new Uint8Array(1 + Math.floor(r() * 2000)));
  if (roll < 0.1) return encode(mutant(r));
  const t = templates(session);
  const msg = { id, ...mutate(t[Math.floor(r() * t.length)], r) };
  const bytes = encode(msg);
  return roll < 0.15 ? bytes.slice(0, Math.floor(r() * bytes.length)) || bytes : bytes;
}

Deno.test({
  name: "fuzzed client messages: every one answered, no reply or log line over 4 KiB, rounds still complete",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    let longestLog = 0;
    let worstLog = "";
    const log: Logger = (level, event, fields = {}) => {
      const line = logLine(level, event, fields);
      if (line.length > longestLog) [longestLog, worstLog] = [line.length, line.slice(0, 200)];
    };
    const sidecar = await startSidecar({ endpoint: "tcp://127.0.0.1:*", runRound: stubRunRound, log, maxNewSessionsPerMinute: 100_000 });
    const fuzzer = await TestDealer.connect(sidecar.endpoint);
    const legit = await TestDealer.connect(sidecar.endpoint);
    const r = rng(20261127);
    let id = 0;
    const ask = async (sock: TestDealer, bytes: Uint8Array) => {
      await sock.send(bytes);
      const [reply] = await sock.receive(10_000);
      return reply;
    };
    try {
      const w = decode(await ask(legit, encode({ id: ++id, type: "hello", protocol: 2, client: "legit", run: run("legit"), capabilities: [] }))) as Msg;
      const legitSession = w.session as string;
      const fs = decode(await ask(fuzzer, encode({ id: ++id, type: "hello", protocol: 2, client: "fuzz", run: run("fuzz-run"), capabilities: [] }))) as Msg;
      const rssBefore = Deno.memoryUsage().rss;
      let largest = 0;
      const codes = new Map<string, number>();
      for (let done = 0; done < INPUTS; done += BATCH) {
        for (let i = 0; i < BATCH; i++) {
          const reply = await ask(fuzzer, frame(r, fs.session as string, ++id));
          largest = Math.max(largest, reply.byteLength);
          assert(reply.byteLength <= LIMIT, `reply of ${reply.byteLength} bytes to input ${done + i}`);
          const m = decode(reply) as Msg;
          if (m.type === "error") codes.set(m.code as string, (codes.get(m.code as string) ?? 0) + 1);
        }
        // a legitimate client completes a round after each batch
        let m = decode(await ask(legit, encode({ id: ++id, type: "round", session: legitSession, step: done, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0, budget: {} }))) as Msg;
        assertEquals(m.op, "reset");
        m = decode(await ask(legit, encode({ id: ++id, type: "result", session: legitSession, seq: 0, op: "reset", basis: 0, hvps: 0, wall_ms: 0 }))) as Msg;
        m = decode(await ask(legit, encode({ id: ++id, type: "result", session: legitSession, seq: 1, op: "random", basis: 2, hvps: 0, wall_ms: 0, kept: 2 }))) as Msg;
        m = decode(await ask(legit, encode({ id: ++id, type: "result", session: legitSession, seq: 2, op: "blocks", basis: 2, hvps: 4, wall_ms: 0, blocks }))) as Msg;
        assertEquals([m.type, (m.report as Msg).lambda_max], ["report", 4]);
      }
      assert(!codes.has("internal"), `internal errors for client input: ${codes.get("internal")}`);
      assert(longestLog <= LIMIT, `log line of ${longestLog} characters: ${worstLog}`);
      const rss = (Deno.memoryUsage().rss / 2 ** 20).toFixed(0);
      console.log(`fuzz: ${INPUTS} inputs, largest reply ${largest} B, longest log line ${longestLog} chars, RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> ${rss} MiB (test process), codes ${JSON.stringify(Object.fromEntries(codes))}`);
    } finally {
      await fuzzer.close();
      await legit.close();
      await sidecar.close();
    }
  },
});
