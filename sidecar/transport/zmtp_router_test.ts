import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { TestDealer } from "./_zmtp_dealer.ts";
import { parseEndpoint, ZmtpRouter } from "./zmtp_router.ts";

/** Echoes every message back to its sender until the router closes. */
function echo(router: ZmtpRouter): Promise<void> {
  return (async () => {
    for await (const [id, ...frames] of router) await router.send(id, frames);
  })();
}

Deno.test("ZmtpRouter echoes short and long (> 255 byte, 2 MiB) frames over tcp", async () => {
  const router = await ZmtpRouter.bind("tcp://127.0.0.1:*", { maxMessageSize: 8 << 20 });
  const loop = echo(router);
  const d = await TestDealer.connect(router.endpoint);
  try {
    for (const n of [0, 1, 255, 256, 2 << 20]) {
      const body = new Uint8Array(n).map((_, i) => i % 251);
      await d.send(body);
      const [back] = await d.receive();
      assertEquals(back.byteLength, n);
      assert(back.every((x, i) => x === i % 251));
    }
  } finally {
    d.close();
    router.close();
    await loop;
  }
});

Deno.test("ZmtpRouter serves ipc:// endpoints and removes the socket file on close", async () => {
  const path = await Deno.makeTempFile({ prefix: "edgewise-zmtp-" });
  await Deno.remove(path);
  const router = await ZmtpRouter.bind(`ipc://${path}`, { maxMessageSize: 1024 });
  const loop = echo(router);
  const d = await TestDealer.connect(`ipc://${path}`);
  await d.send(new Uint8Array([1, 2, 3]));
  assertEquals([...(await d.receive())[0]], [1, 2, 3]);
  d.close();
  router.close();
  await loop;
  throws(() => Deno.statSync(path));
});

Deno.test("ZmtpRouter drops a peer that exceeds maxMessageSize and keeps serving others", async () => {
  const errors: string[] = [];
  const router = await ZmtpRouter.bind("tcp://127.0.0.1:*", { maxMessageSize: 100, onPeerError: (m) => errors.push(m) });
  const loop = echo(router);
  const big = await TestDealer.connect(router.endpoint);
  const ok = await TestDealer.connect(router.endpoint);
  try {
    await big.send(new Uint8Array(101));
    await rejects(big.receive(2000));
    await ok.send(new Uint8Array([9]));
    assertEquals([...(await ok.receive())[0]], [9]);
    assert(errors.some((e) => e.includes("exceeds maxMessageSize")), errors.join("; "));
  } finally {
    big.close();
    ok.close();
    router.close();
    await loop;
  }
});

Deno.test("parseEndpoint() reads tcp and ipc endpoints and refuses others", () => {
  assertEquals(parseEndpoint("tcp://127.0.0.1:5555"), { transport: "tcp", hostname: "127.0.0.1", port: 5555 });
  assertEquals(parseEndpoint("tcp://localhost:*"), { transport: "tcp", hostname: "localhost", port: 0 });
  assertEquals(parseEndpoint("ipc:///tmp/x.sock"), { transport: "unix", path: "/tmp/x.sock" });
  throws(() => parseEndpoint("udp://1.2.3.4:5"), TypeError);
  throws(() => parseEndpoint("tcp://host"), TypeError);
});
