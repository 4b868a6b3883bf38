import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { TestDealer } from "./_test_dealer.ts";
import type { Logger } from "./log.ts";
import { Router, type RouterOptions } from "./router.ts";
import { ZMQ } from "./zmq_ffi.ts";
import { findLibzmq } from "./zmq_lib.ts";
import { ZmqContext } from "./zmq_socket.ts";

/** A logger that keeps events, for checking what the socket monitor reported. */
function recorder(): { log: Logger; events: { level: string; event: string }[] } {
  const events: { level: string; event: string }[] = [];
  return { events, log: (level, event) => void events.push({ level, event }) };
}

async function echoRouter(endpoint: string, options: Partial<RouterOptions> = {}) {
  const rec = recorder();
  const router = await Router.bind(findLibzmq(), endpoint, { maxMessageSize: 8 << 20, log: rec.log, ...options });
  const loop = (async () => {
    for await (const [id, ...frames] of router) await router.send(id, frames);
  })();
  return { router, events: rec.events, close: async () => (await router.close(), await loop) };
}

const until = async (what: string, ok: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

Deno.test("Router echoes short and long (> 255 byte, 2 MiB) frames over tcp, and reports the bound port", async () => {
  const r = await echoRouter("tcp://127.0.0.1:*");
  assert(/^tcp:\/\/127\.0\.0\.1:\d+$/.test(r.router.endpoint), r.router.endpoint);
  const d = await TestDealer.connect(r.router.endpoint);
  try {
    for (const n of [0, 1, 255, 256, 2 << 20]) {
      const body = new Uint8Array(n).map((_, i) => i % 251);
      await d.send(body);
      const [back] = await d.receive();
      assertEquals(back.byteLength, n);
      assert(back.every((x, i) => x === i % 251));
    }
  } finally {
    await d.close();
    await r.close();
  }
});

Deno.test("Router serves ipc:// endpoints and removes the socket file on close", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgewise-zmq-" });
  const r = await echoRouter(`ipc://${dir}/s.sock`);
  const d = await TestDealer.connect(`ipc://${dir}/s.sock`);
  await d.send(new Uint8Array([1, 2, 3]));
  assertEquals([...(await d.receive())[0]], [1, 2, 3]);
  await d.close();
  await r.close();
  throws(() => Deno.statSync(`${dir}/s.sock`));
});

Deno.test("Router drops a peer that sends more than maxMessageSize and keeps serving others", async () => {
  const r = await echoRouter("tcp://127.0.0.1:*", { maxMessageSize: 100 });
  const big = await TestDealer.connect(r.router.endpoint);
  const ok = await TestDealer.connect(r.router.endpoint);
  try {
    await ok.send(new Uint8Array([1]));
    await ok.receive();
    await big.send(new Uint8Array(100)); // at the limit: served
    assertEquals((await big.receive())[0].byteLength, 100);
    await big.send(new Uint8Array(101));
    await rejects(big.receive(1000));
    await ok.send(new Uint8Array([9]));
    assertEquals([...(await ok.receive())[0]], [9]);
    await until("a disconnect in the log", () => r.events.some((e) => e.event === "zmq_disconnected"));
  } finally {
    await big.close();
    await ok.close();
    await r.close();
  }
});

/** Reads a raw TCP connection until the other side closes it; the bytes it sent. */
async function readUntilClosed(conn: Deno.Conn, ms: number): Promise<number> {
  let total = 0;
  const buf = new Uint8Array(1024);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return total;
      total += n;
    }
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionReset) return total;
    throw new Error(`connection still open after ${ms} ms`);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("Router drops a TCP peer that stays silent past the handshake interval", async () => {
  const r = await echoRouter("tcp://127.0.0.1:*", { handshakeMs: 300 });
  const port = Number(r.router.endpoint.split(":").pop());
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const t0 = Date.now();
    await readUntilClosed(conn, 5000);
    assert(Date.now() - t0 >= 250, "dropped before the handshake interval");
    await until(
      "a handshake failure in the log",
      () => r.events.some((e) => e.event.startsWith("zmq_handshake_failed") && e.level === "warn"),
    );
    // and it still serves a real client
    const d = await TestDealer.connect(r.router.endpoint);
    await d.send(new Uint8Array([7]));
    assertEquals([...(await d.receive())[0]], [7]);
    await d.close();
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
    await r.close();
  }
});

Deno.test("Router drops a peer whose ZMTP greeting names an unknown security mechanism", async () => {
  const r = await echoRouter("tcp://127.0.0.1:*");
  const port = Number(r.router.endpoint.split(":").pop());
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    // ZMTP 3.0 greeting: signature, version 3.0, mechanism "BOGUS", as-server 0, filler
    const greeting = new Uint8Array(64);
    greeting.set([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0]);
    greeting.set(new TextEncoder().encode("BOGUS"), 12);
    await conn.write(greeting);
    await readUntilClosed(conn, 5000);
    await until(
      "a handshake failure in the log",
      () => r.events.some((e) => e.event.startsWith("zmq_handshake_failed")),
    );
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
    await r.close();
  }
});

Deno.test("Router.send() to a routing id that is gone resolves (dropped, as a ROUTER does)", async () => {
  const r = await echoRouter("tcp://127.0.0.1:*");
  try {
    await r.router.send(new Uint8Array([0, 0, 0, 0, 99]), [new Uint8Array([1])]);
    assert(r.events.some((e) => e.event === "peer_gone"));
  } finally {
    await r.close();
  }
});

Deno.test("Router serves 32 concurrent clients, 20 messages each, every answer to its sender", async () => {
  const r = await echoRouter("tcp://127.0.0.1:*");
  const clients = await Promise.all(Array.from({ length: 32 }, () => TestDealer.connect(r.router.endpoint)));
  try {
    await Promise.all(clients.map(async (d, c) => {
      for (let i = 0; i < 20; i++) {
        const body = new TextEncoder().encode(`${c}:${i}`);
        await d.send(body);
        assertEquals(new TextDecoder().decode((await d.receive(10_000))[0]), `${c}:${i}`);
      }
    }));
  } finally {
    await Promise.all(clients.map((d) => d.close()));
    await r.close();
  }
});

Deno.test("Router waits for a peer that does not read, then drops (bounded queue), and keeps serving others", async () => {
  const rec = recorder();
  const router = await Router.bind(findLibzmq(), "tcp://127.0.0.1:*", {
    maxMessageSize: 1 << 10,
    hwm: 2,
    sendTimeoutMs: 300,
    log: rec.log,
  });
  const ctx = new ZmqContext(findLibzmq());
  const stuck = ctx.socket(ZMQ.DEALER); // never started: reads nothing
  stuck.setOption(ZMQ.RCVHWM, 1);
  stuck.connect(router.endpoint);
  const ok = ctx.socket(ZMQ.DEALER);
  ok.connect(router.endpoint);
  try {
    await until("stuck connected", () => stuck.trySend([new Uint8Array([0])]) === "sent");
    let routing: Uint8Array | undefined;
    for await (const [id] of router) {
      routing = id;
      break;
    }
    const mib = new Uint8Array(1 << 20);
    const t0 = Date.now();
    for (let i = 0; i < 64 && !rec.events.some((e) => e.event === "send_dropped"); i++) {
      await router.send(routing!, [mib]);
    }
    assert(rec.events.some((e) => e.event === "send_dropped"), "64 MiB went into a peer that reads nothing");
    assert(Date.now() - t0 >= 250, "dropped before waiting sendTimeoutMs");
    await until("ok connected", () => ok.trySend([new Uint8Array([5])]) === "sent");
    for await (const [id, body] of router) {
      await router.send(id, [body]);
      break;
    }
    assertEquals([...(await ok.receive())![0]], [5]);
  } finally {
    await ctx.term();
    await router.close();
  }
});
