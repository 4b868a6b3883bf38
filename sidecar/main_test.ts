import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { blasChoice, parseMainArgs, stdinClosed } from "./main.ts";

const noEnv = () => undefined;

Deno.test("parseMainArgs() defaults to tcp://127.0.0.1:5555, the estimator and info logs", () => {
  assertEquals(parseMainArgs([], noEnv), {
    endpoint: "tcp://127.0.0.1:5555",
    logLevel: "info",
    dataDir: undefined,
    httpPort: undefined,
    allowHosts: [],
    dashboard: true,
    runner: "estimate",
    maxMessageBytes: undefined,
    opTimeoutSeconds: undefined,
    blasLib: undefined,
    zmqLib: undefined,
    curveKeys: undefined,
    insecure: false,
    exitOnStdinEof: false,
    workers: undefined,
    sessionsPerMinute: undefined,
  });
  assertEquals(parseMainArgs(["--workers", "0"], noEnv).workers, 0);
  assertEquals(parseMainArgs(["--op-timeout", "600"], noEnv).opTimeoutSeconds, 600);
  assertEquals(parseMainArgs(["--sessions-per-minute", "100000"], noEnv).sessionsPerMinute, 100000);
  assertEquals(parseMainArgs(["--no-dashboard"], noEnv).dashboard, false);
  assertEquals(parseMainArgs(["--allow-host", "a.example,b.example", "--allow-host", "c"], noEnv).allowHosts, [
    "a.example",
    "b.example",
    "c",
  ]);
});

Deno.test("parseMainArgs() takes EDGEWISE_ENDPOINT, and --endpoint over it", () => {
  const env = (k: string) => (k === "EDGEWISE_ENDPOINT" ? "ipc:///tmp/e.sock" : undefined);
  assertEquals(parseMainArgs([], env).endpoint, "ipc:///tmp/e.sock");
  assertEquals(parseMainArgs(["--endpoint", "tcp://127.0.0.1:7"], env).endpoint, "tcp://127.0.0.1:7");
});

Deno.test("parseMainArgs() takes EDGEWISE_BLAS_LIB, and --blas-lib over it", () => {
  const env = (k: string) => (k === "EDGEWISE_BLAS_LIB" ? "/lib/a.so" : undefined);
  assertEquals(parseMainArgs([], env).blasLib, "/lib/a.so");
  assertEquals(parseMainArgs(["--blas-lib", "/lib/b.so"], env).blasLib, "/lib/b.so");
});

Deno.test("blasChoice(): the asked library, else numpy's OpenBLAS in .venv, else none", () => {
  const args = parseMainArgs([], noEnv);
  assertEquals(blasChoice(args, () => ["/venv/libscipy_openblas.so"]), { source: "numpy in .venv", path: "/venv/libscipy_openblas.so" });
  assertEquals(blasChoice(args, () => []), undefined);
  const asked = parseMainArgs(["--blas-lib", "/lib/b.so"], noEnv);
  assertEquals(blasChoice(asked, () => ["/venv/libscipy_openblas.so"]), { source: "asked", path: "/lib/b.so" });
});

Deno.test("stdinClosed() resolves at end of file, not before", async () => {
  const chunks = [3, 5, null];
  let reads = 0;
  await stdinClosed({ read: () => Promise.resolve(chunks[reads++]) });
  assertEquals(reads, 3);
  assertEquals(parseMainArgs(["--exit-on-stdin-eof"], noEnv).exitOnStdinEof, true);
});

Deno.test("parseMainArgs() passes --data-dir and --http-port through", () => {
  const a = parseMainArgs(["--data-dir", "/tmp/d", "--http-port", "8765", "--runner", "stub"], noEnv);
  assertEquals([a.dataDir, a.httpPort, a.runner], ["/tmp/d", 8765, "stub"]);
});

Deno.test("parseMainArgs() refuses bad flags", async (t) => {
  for (const argv of [["--log-level", "loud"], ["--runner", "x"], ["--http-port", "http"], ["--max-message-bytes", "0"], ["--op-timeout", "0"], ["--op-timeout", "1e9"], ["--nope"], ["--endpoint", "udp://1.2.3.4:5"]]) {
    await t.step(argv.join(" "), () => throws(() => parseMainArgs(argv, noEnv)));
  }
});

Deno.test("parseMainArgs() refuses a non-loopback endpoint without --curve-keys or --insecure, saying why", async (t) => {
  for (const ep of ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.10:5555", "tcp://[::]:5555", "tcp://eth0:5555"]) {
    await t.step(ep, () => {
      throws(() => parseMainArgs(["--endpoint", ep], noEnv), (e: Error) => e instanceof TypeError && /without authentication.*--curve-keys.*--insecure/s.test(e.message));
      assertEquals(parseMainArgs(["--endpoint", ep, "--insecure"], noEnv).insecure, true);
      assertEquals(parseMainArgs(["--endpoint", ep, "--curve-keys", "/k"], noEnv).curveKeys, "/k");
    });
  }
  for (const ep of ["tcp://127.0.0.1:5555", "tcp://127.3.2.1:*", "tcp://localhost:7", "tcp://[::1]:7", "ipc:///tmp/x.sock"]) {
    await t.step(ep, () => assertEquals(parseMainArgs(["--endpoint", ep], noEnv).endpoint, ep));
  }
});

Deno.test("the sidecar says in one line that its endpoint is in use, naming it and what to do (exit 3)", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const endpoint = `tcp://127.0.0.1:${(taken.addr as Deno.NetAddr).port}`;
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./main.ts", import.meta.url).pathname, "--endpoint", endpoint, "--runner", "stub", "--log-level", "error"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr).trim();
    assertEquals(out.code, 3, err);
    assertEquals(err.split("\n").length, 1, err);
    assert(err.includes(endpoint) && err.includes("address already in use") && err.includes("--endpoint"), err);
  } finally {
    taken.close();
  }
});
