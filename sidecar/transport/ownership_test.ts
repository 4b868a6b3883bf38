import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { TestDealer } from "./_test_dealer.ts";
import { decode, encode } from "../protocol/codec.ts";
import { silentLogger } from "./log.ts";
import { RateWindow, sameBytes, sha256Hex } from "./ownership.ts";
import { type SidecarOptions, startSidecar } from "./server.ts";
import { stubRunRound } from "./stub_runner.ts";

type Msg = Record<string, unknown>;

async function client(endpoint: string) {
  const sock = await TestDealer.connect(endpoint);
  let id = 0;
  const ask = async (m: Msg): Promise<Msg> => {
    await sock.send(encode({ id: ++id, ...m }));
    const [reply] = await sock.receive();
    return decode(reply) as Msg;
  };
  return { sock, ask };
}

const run = (id: string) => ({ id, name: "t", params: 2, probe: 2, n: 10, batch_size: 2, curvature: "hessian", dtype: "f64" });
const hello = (id: string, secret?: string) => ({
  type: "hello", protocol: 2, client: "deno-test", run: run(id), capabilities: [], ...(secret ? { secret } : {}),
});
const roundMsg = (session: string) => ({
  type: "round", session, step: 1, epoch: 0, lr: 0.1, batch_size: 2, n: 10, momentum: 0, basis: 0, budget: {},
});

async function withSidecar(extra: Partial<SidecarOptions>, body: (endpoint: string) => Promise<void>) {
  const sidecar = await startSidecar({ endpoint: "tcp://127.0.0.1:*", runRound: stubRunRound, log: silentLogger, ...extra });
  try {
    await body(sidecar.endpoint);
  } finally {
    await sidecar.close();
  }
}

Deno.test("a second connection presenting a live run's id gets a new run, not the session", async () => {
  await withSidecar({}, async (endpoint) => {
    const owner = await client(endpoint);
    const thief = await client(endpoint);
    try {
      const w = await owner.ask(hello("victim"));
      assertEquals([w.type, w.run], ["welcome", "victim"]);
      assert(typeof w.secret === "string" && (w.secret as string).length === 32);
      const sid = w.session as string;
      assertEquals((await owner.ask(roundMsg(sid))).op, "reset"); // a round in progress

      const t = await thief.ask(hello("victim"));
      assertEquals(t.type, "welcome");
      assert(t.run !== "victim" && (t.run as string).startsWith("victim~"), String(t.run));
      assert(t.session !== sid && t.secret !== w.secret);
      // a wrong secret is no better than none
      const t2 = await thief.ask(hello("victim", "0".repeat(32)));
      assert(t2.run !== "victim" && t2.session !== sid);
      // the owner's session id, used from another connection, is not held there: no bye, no round
      assertEquals((await thief.ask({ type: "bye", session: sid })).code, "unknown_session");
      assertEquals((await thief.ask(roundMsg(sid))).code, "unknown_session");
      assertEquals((await thief.ask({ type: "heartbeat", session: sid, bogus: 1, step: "x" })).code, "unknown_session");
      // ... and the owner's round was not disturbed by any of it
      const m = await owner.ask({ type: "result", session: sid, seq: 0, op: "reset", basis: 0, hvps: 0, wall_ms: 0 });
      assertEquals(m.op, "random");
    } finally {
      await owner.sock.close();
      await thief.sock.close();
    }
  });
});

Deno.test("a restarted client resumes its run with the secret, from a new connection", async () => {
  await withSidecar({}, async (endpoint) => {
    const first = await client(endpoint);
    const w = await first.ask(hello("mine"));
    await first.sock.close();
    const again = await client(endpoint);
    try {
      const r = await again.ask(hello("mine", w.secret as string));
      assertEquals([r.type, r.session, r.run, r.secret], ["welcome", w.session, "mine", w.secret]);
      assertEquals((await again.ask({ type: "heartbeat", session: r.session })).type, "heartbeat");
    } finally {
      await again.sock.close();
    }
  });
});

Deno.test("a run known only on disk (sidecar restarted) is resumed with its secret and taken by nobody else", async () => {
  const hashes = new Map<string, string>();
  const opened: string[] = [];
  const extra: Partial<SidecarOptions> = {
    runSecret: (id) => hashes.get(id),
    onSessionOpen: (r, h) => {
      opened.push(r.id);
      hashes.set(r.id, h);
    },
  };
  let secret = "";
  await withSidecar(extra, async (endpoint) => {
    const c = await client(endpoint);
    secret = (await c.ask(hello("kept"))).secret as string;
    await c.sock.close();
  });
  assertEquals(hashes.get("kept"), await sha256Hex(secret));
  await withSidecar(extra, async (endpoint) => {
    const stranger = await client(endpoint);
    const owner = await client(endpoint);
    try {
      assert((await stranger.ask(hello("kept"))).run !== "kept");
      const r = await owner.ask(hello("kept", secret));
      assertEquals([r.run, r.secret], ["kept", secret]);
    } finally {
      await stranger.sock.close();
      await owner.sock.close();
    }
  });
  assertEquals(opened.filter((id) => id === "kept").length, 2);
});

Deno.test("caps on live sessions and on sessions opened per minute answer overloaded", async (t) => {
  await t.step("live sessions", async () => {
    await withSidecar({ maxSessions: 2 }, async (endpoint) => {
      const c = await client(endpoint);
      try {
        assertEquals((await c.ask(hello("a"))).type, "welcome");
        const b = await c.ask(hello("b"));
        assertEquals((await c.ask(hello("c"))).code, "overloaded");
        assertEquals((await c.ask({ type: "bye", session: b.session })).type, "bye");
        assertEquals((await c.ask(hello("c"))).type, "welcome");
      } finally {
        await c.sock.close();
      }
    });
  });
  await t.step("per minute", async () => {
    await withSidecar({ maxNewSessionsPerMinute: 3 }, async (endpoint) => {
      const c = await client(endpoint);
      try {
        for (const id of ["a", "b", "c"]) {
          const w = await c.ask(hello(id));
          assertEquals((await c.ask({ type: "bye", session: w.session })).type, "bye");
        }
        const e = await c.ask(hello("d"));
        assertEquals(e.code, "overloaded");
        assert((e.message as string).includes("last minute"), e.message as string);
      } finally {
        await c.sock.close();
      }
    });
  });
});

Deno.test("RateWindow forgets events older than its window; sameBytes compares routing ids", () => {
  let now = 0;
  const w = new RateWindow(1000, () => now);
  w.add();
  now = 500;
  w.add();
  assertEquals(w.count(), 2);
  now = 1200;
  assertEquals(w.count(), 1);
  assert(!sameBytes(undefined, new Uint8Array([1])));
  assert(!sameBytes(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
});
