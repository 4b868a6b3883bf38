import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { parseMainArgs } from "./main.ts";

const noEnv = () => undefined;

Deno.test("parseMainArgs() defaults to tcp://127.0.0.1:5555, the estimator and info logs", () => {
  assertEquals(parseMainArgs([], noEnv), {
    endpoint: "tcp://127.0.0.1:5555",
    logLevel: "info",
    dataDir: undefined,
    httpPort: undefined,
    dashboard: true,
    runner: "estimate",
    maxMessageBytes: undefined,
    workers: undefined,
  });
  assertEquals(parseMainArgs(["--workers", "0"], noEnv).workers, 0);
  assertEquals(parseMainArgs(["--no-dashboard"], noEnv).dashboard, false);
});

Deno.test("parseMainArgs() takes EDGEWISE_ENDPOINT, and --endpoint over it", () => {
  const env = (k: string) => (k === "EDGEWISE_ENDPOINT" ? "ipc:///tmp/e.sock" : undefined);
  assertEquals(parseMainArgs([], env).endpoint, "ipc:///tmp/e.sock");
  assertEquals(parseMainArgs(["--endpoint", "tcp://127.0.0.1:7"], env).endpoint, "tcp://127.0.0.1:7");
});

Deno.test("parseMainArgs() passes --data-dir and --http-port through", () => {
  const a = parseMainArgs(["--data-dir", "/tmp/d", "--http-port", "8765", "--runner", "stub"], noEnv);
  assertEquals([a.dataDir, a.httpPort, a.runner], ["/tmp/d", 8765, "stub"]);
});

Deno.test("parseMainArgs() refuses bad flags", async (t) => {
  for (const argv of [["--log-level", "loud"], ["--runner", "x"], ["--http-port", "http"], ["--max-message-bytes", "0"], ["--nope"]]) {
    await t.step(argv.join(" "), () => throws(() => parseMainArgs(argv, noEnv)));
  }
});
