/**
 * The sidecar process: `tools/deno run -A sidecar/main.ts [--endpoint E] [--log-level L]
 * [--data-dir D] [--http-port P] [--runner estimate|stub] [--max-message-bytes N]` (endpoint also from
 * `EDGEWISE_ENDPOINT`). Prints one JSON line `{"event":"listening","endpoint":…}` on stdout
 * once bound (spawners wait for it); logs go to stderr as JSON lines; SIGINT/SIGTERM close
 * the socket and exit 0.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { CurvatureOracle } from "./estimate/oracle.ts";
import { ProtocolError } from "./protocol/errors.ts";
import type { RoundRequest } from "./protocol/messages.ts";
import { isLogLevel, jsonLogger } from "./transport/log.ts";
import { type SessionInfo, type SidecarOptions, startSidecar } from "./transport/mod.ts";
import { stubRunRound } from "./transport/stub_runner.ts";

/** Parsed command line. */
export interface MainArgs {
  endpoint: string;
  logLevel: "debug" | "info" | "warn" | "error";
  dataDir?: string;
  httpPort?: number;
  runner: "estimate" | "stub";
  /** Soft size limit (SPEC §7); default 64 MiB. */
  maxMessageBytes?: number;
}

/** Parses the command line; throws `TypeError` with a usage hint on bad arguments. */
export function parseMainArgs(argv: string[], env: (k: string) => string | undefined): MainArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      endpoint: { type: "string" },
      "log-level": { type: "string", default: "info" },
      "data-dir": { type: "string" },
      "http-port": { type: "string" },
      runner: { type: "string", default: "estimate" },
      "max-message-bytes": { type: "string" },
    },
    strict: true,
  });
  const logLevel = values["log-level"];
  if (!isLogLevel(logLevel)) throw new TypeError(`Invalid --log-level: expected debug|info|warn|error, got ${logLevel}`);
  const runner = values.runner;
  if (runner !== "estimate" && runner !== "stub") throw new TypeError(`Invalid --runner: expected estimate|stub, got ${runner}`);
  const port = values["http-port"];
  if (port !== undefined && !/^\d+$/.test(port)) throw new TypeError(`Invalid --http-port: expected a port number, got ${port}`);
  const maxBytes = values["max-message-bytes"];
  if (maxBytes !== undefined && !/^[1-9]\d*$/.test(maxBytes)) {
    throw new TypeError(`Invalid --max-message-bytes: expected a positive integer, got ${maxBytes}`);
  }
  return {
    maxMessageBytes: maxBytes === undefined ? undefined : Number(maxBytes),
    endpoint: values.endpoint ?? env("EDGEWISE_ENDPOINT") ?? "tcp://127.0.0.1:5555",
    logLevel,
    dataDir: values["data-dir"],
    httpPort: port === undefined ? undefined : Number(port),
    runner,
  };
}

/**
 * The one place where rounds meet the estimator. `stub` is the transport test runner.
 * TODO(lead): wire `estimateRound` from ./estimate/round.ts here, the history store into
 * `onReport` / `onSessionOpen` (with `args.dataDir`) and the dashboard (with `args.httpPort`).
 */
function makeRunner(args: MainArgs): Pick<SidecarOptions, "runRound" | "onReport" | "onSessionOpen" | "dashboard"> {
  if (args.runner === "stub") return { runRound: stubRunRound };
  return {
    runRound: (_oracle: CurvatureOracle, _round: RoundRequest, _session: SessionInfo) =>
      Promise.reject(new ProtocolError("internal", "Cannot run round: the estimator is not wired into sidecar/main.ts yet")),
  };
}

async function main(): Promise<number> {
  let args: MainArgs;
  try {
    args = parseMainArgs(Deno.args, (k) => Deno.env.get(k));
  } catch (e) {
    console.error(`edgewise sidecar: ${(e as Error).message}`);
    return 2;
  }
  const log = jsonLogger(args.logLevel);
  // listen for signals before announcing, so a spawner that stops us at once is obeyed
  const stopped = new Promise<string>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => resolve(sig));
  });
  const limits = args.maxMessageBytes ? { max_message_bytes: args.maxMessageBytes } : {};
  const sidecar = await startSidecar({ endpoint: args.endpoint, log, limits, ...makeRunner(args) });
  console.log(JSON.stringify({ event: "listening", endpoint: sidecar.endpoint, pid: Deno.pid }));
  const sig = await stopped;
  log("info", "shutdown", { signal: sig });
  await sidecar.close();
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(JSON.stringify({ time: new Date().toISOString(), level: "error", event: "fatal", error: String((e as Error)?.stack ?? e) }));
    Deno.exit(1);
  }
}
