/**
 * The sidecar process: `tools/deno run -A sidecar/main.ts [--endpoint E] [--log-level L]
 * [--data-dir D] [--http-port P] [--allow-host NAME,...] [--no-dashboard] [--runner estimate|stub] [--max-message-bytes N] [--op-timeout S]
 * [--zmq-lib FILE] [--curve-keys DIR] [--insecure] [--workers N] [--blas-lib PATH] [--exit-on-stdin-eof]` (endpoint also from
 * `EDGEWISE_ENDPOINT`, libzmq also from `EDGEWISE_ZMQ_LIB`, the BLAS library from `EDGEWISE_BLAS_LIB`:
 * a CBLAS shared library such as numpy's bundled OpenBLAS, else numpy's in the repository's `.venv`, else TypeScript kernels, one `blas` log
 * line says which; rounds run in N Deno Workers, default the CPU count, 0: on the event loop). Prints one JSON line `{"event":"listening","endpoint":…}` on stdout
 * once bound (spawners wait for it); logs go to stderr as JSON lines; SIGINT/SIGTERM close
 * the socket and exit 0. Exit status 2: bad arguments or keys; 3: the endpoint is in use.
 * A non-loopback endpoint needs `--curve-keys` (or `--insecure`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { CurvatureOracle } from "./estimate/oracle.ts";
import { ProtocolError } from "./protocol/errors.ts";
import { describe } from "./protocol/describe.ts";
import type { RoundRequest } from "./protocol/messages.ts";
import { isLogLevel, jsonLogger, type Logger } from "./transport/log.ts";
import { checkExposure, parseEndpoint } from "./transport/endpoint.ts";
import { type CurveKeys, loadCurveKeys } from "./transport/curve.ts";
import { AddressInUse } from "./transport/router.ts";
import { LibzmqNotFound } from "./transport/zmq_lib.ts";
import { type OpChannel, type RoundRunner, type SessionInfo, type SidecarOptions, startSidecar } from "./transport/mod.ts";
import { stubRunRound } from "./transport/stub_runner.ts";
import { type BoundName, estimateRound, type RoundParams, type RoundState } from "./estimate/round.ts";
import { blasInfo, loadBlas } from "./estimate/_blas.ts";
import { venvNumpyBlas } from "./venv_libs.ts";
import type { OptimizerOption } from "./estimate/momentum_round.ts";
import { HistoryStore, type Report as StoredReport, type RunMeta as StoredRunMeta } from "./store/mod.ts";
import { startDashboard } from "./dashboard/mod.ts";
import { WorkerPool } from "./transport/worker_pool.ts";
import { ESTIMATE_TASK } from "./estimate_task.ts";

/** What `--help` prints. */
export const USAGE = `usage: edgewise sidecar [options]   (deno run -A sidecar/main.ts [options])

Serves Edgewise stability reports to training clients over ZeroMQ.

  --endpoint E            where to bind (default $EDGEWISE_ENDPOINT, else tcp://127.0.0.1:5555)
  --log-level L           debug | info | warn | error (default info); logs are JSON lines on stderr
  --data-dir D            report history (default $EDGEWISE_DATA_DIR, else ./edgewise-data)
  --http-port P           dashboard port (default 8765; 0: any free port)
  --no-dashboard          do not serve the dashboard
  --runner R              estimate (default) | stub (protocol tests)
  --max-message-bytes N   soft message size limit (default 64 MiB)
  --op-timeout S          seconds a client may take on one op before its round is abandoned
                          (default 60; raise it for a large model on a slow device)
  --allow-host NAME,...   Host header names the dashboard also answers (default: its bound address)
  --zmq-lib FILE          libzmq to load (default $EDGEWISE_ZMQ_LIB, else discovery: pyzmq, npm zeromq, system)
  --curve-keys DIR        serve CURVE: DIR/server.key_secret, allowed clients in DIR/clients/*.key
  --insecure              allow a non-loopback endpoint without CURVE
  --workers N             round workers (default: the CPU count; 0: rounds on the event loop)
  --blas-lib FILE         CBLAS library for the kernels (default $EDGEWISE_BLAS_LIB, else numpy's OpenBLAS in .venv, else TypeScript)
  --sessions-per-minute N new sessions admitted per minute (default 120; beyond it hello gets overloaded)
  --exit-on-stdin-eof     stop when stdin closes (a spawner's pipe: the sidecar ends with its process, even a killed one)
  -h, --help              this text

Prints {"event":"listening","endpoint":...} on stdout once bound; SIGINT/SIGTERM stop it.`;

/** Parsed command line. */
export interface MainArgs {
  endpoint: string;
  logLevel: "debug" | "info" | "warn" | "error";
  dataDir?: string;
  httpPort?: number;
  /** Further `Host` names the dashboard answers to (DNS-rebinding protection). */
  allowHosts?: string[];
  /** Serve the dashboard (default true; `--no-dashboard` turns it off). */
  dashboard?: boolean;
  runner: "estimate" | "stub";
  /** Soft size limit (SPEC §7); default 64 MiB. */
  maxMessageBytes?: number;
  /** Seconds a client may spend on one op (SPEC §7 `op_timeout_ms`); default 60. */
  opTimeoutSeconds?: number;
  /** CBLAS shared library for the dense kernels (`--blas-lib` or `EDGEWISE_BLAS_LIB`). */
  blasLib?: string;
  /** libzmq file (`--zmq-lib`); default: discovery, see transport/zmq_lib.ts. */
  zmqLib?: string;
  /** Folder with `server.key_secret` and `clients/*.key`: serve CURVE. */
  curveKeys?: string;
  /** Allow a non-loopback endpoint without CURVE. */
  insecure?: boolean;
  /** Stop when stdin reaches end of file (`--exit-on-stdin-eof`): the spawner holds the pipe's other end. */
  exitOnStdinEof?: boolean;
  /** Round workers (default: the CPU count); 0 runs rounds on the event loop. */
  workers?: number;
  /** New sessions admitted per minute (default 120 in the server). */
  sessionsPerMinute?: number;
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
      "allow-host": { type: "string", multiple: true },
      "no-dashboard": { type: "boolean", default: false },
      runner: { type: "string", default: "estimate" },
      "max-message-bytes": { type: "string" },
      "op-timeout": { type: "string" },
      "blas-lib": { type: "string" },
      "zmq-lib": { type: "string" },
      "curve-keys": { type: "string" },
      insecure: { type: "boolean", default: false },
      "exit-on-stdin-eof": { type: "boolean", default: false },
      workers: { type: "string" },
      "sessions-per-minute": { type: "string" },
    },
    strict: true,
  });
  const logLevel = values["log-level"];
  if (!isLogLevel(logLevel)) throw new TypeError(`Invalid --log-level: expected debug|info|warn|error, got ${logLevel}`);
  const runner = values.runner;
  if (runner !== "estimate" && runner !== "stub") throw new TypeError(`Invalid --runner: expected estimate|stub, got ${runner}`);
  const port = values["http-port"];
  if (port !== undefined && !/^\d+$/.test(port)) {
    throw new TypeError(`Invalid --http-port: expected a port number (0: any free port), got ${port}`);
  }
  const maxBytes = values["max-message-bytes"];
  if (maxBytes !== undefined && !/^[1-9]\d*$/.test(maxBytes)) {
    throw new TypeError(`Invalid --max-message-bytes: expected a positive integer, got ${maxBytes}`);
  }
  const opTimeout = values["op-timeout"];
  if (opTimeout !== undefined && !(/^\d+(\.\d+)?$/.test(opTimeout) && Number(opTimeout) > 0 && Number(opTimeout) <= 86_400)) {
    throw new TypeError(`Invalid --op-timeout: expected seconds in (0, 86400], got ${opTimeout}`);
  }
  const endpoint = values.endpoint ?? env("EDGEWISE_ENDPOINT") ?? "tcp://127.0.0.1:5555";
  parseEndpoint(endpoint);
  checkExposure(endpoint, { curve: values["curve-keys"] !== undefined, insecure: values.insecure });
  const workers = values.workers;
  if (workers !== undefined && !/^\d+$/.test(workers)) {
    throw new TypeError(`Invalid --workers: expected a number of round workers (0: none), got ${workers}`);
  }
  const perMinute = values["sessions-per-minute"];
  if (perMinute !== undefined && !/^[1-9]\d*$/.test(perMinute)) {
    throw new TypeError(`Invalid --sessions-per-minute: expected a positive integer, got ${perMinute}`);
  }
  return {
    workers: workers === undefined ? undefined : Number(workers),
    sessionsPerMinute: perMinute === undefined ? undefined : Number(perMinute),
    maxMessageBytes: maxBytes === undefined ? undefined : Number(maxBytes),
    opTimeoutSeconds: opTimeout === undefined ? undefined : Number(opTimeout),
    endpoint,
    zmqLib: values["zmq-lib"],
    curveKeys: values["curve-keys"],
    insecure: values.insecure,
    exitOnStdinEof: values["exit-on-stdin-eof"],
    logLevel,
    dataDir: values["data-dir"],
    httpPort: port === undefined ? undefined : Number(port),
    allowHosts: (values["allow-host"] ?? []).flatMap((h) => h.split(",")).map((h) => h.trim()).filter(Boolean),
    dashboard: !values["no-dashboard"],
    runner,
    blasLib: values["blas-lib"] ?? (env("EDGEWISE_BLAS_LIB") || undefined),
  };
}

/**
 * The BLAS library to load: `--blas-lib` / `EDGEWISE_BLAS_LIB`, else numpy's OpenBLAS in the
 * repository's `.venv` (a sidecar started by hand, not by the Python client, which names it),
 * else none (TypeScript kernels: the same numbers, rounds about 6× slower).
 */
export function blasChoice(args: MainArgs, venvBlas: () => string[] = venvNumpyBlas): { source: string; path: string } | undefined {
  if (args.blasLib) return { source: "asked", path: args.blasLib };
  const found = venvBlas()[0];
  return found ? { source: "numpy in .venv", path: found } : undefined;
}

/**
 * Resolves when stdin reaches end of file. A spawner that holds the pipe's write end closes it by
 * exiting in any way, SIGKILL and crashes included, which no signal handler of its own can report.
 */
export async function stdinClosed(stdin: { read(p: Uint8Array): Promise<number | null> } = Deno.stdin): Promise<void> {
  const buf = new Uint8Array(256);
  try {
    while ((await stdin.read(buf)) !== null) { /* nothing is ever written; discard it */ }
  } catch {
    // a stdin that cannot be read counts as closed
  }
}

/** Reads an optional number from `round.options`; a wrong type is the client's error. */
function optionalNumber(options: Record<string, unknown>, key: string): number | undefined {
  const v = options[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ProtocolError("malformed", `Invalid round option ${key}: expected a finite number, got ${describe(v)}`);
  }
  return v;
}

/** Reads the optional batch-size grid from `round.options`. */
function optionalGrid(options: Record<string, unknown>): number[] | undefined {
  const v = options.batch_grid;
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((b) => Number.isInteger(b) && b >= 1)) {
    throw new ProtocolError("malformed", `Invalid round option batch_grid: expected positive integers, got ${describe(v)}`);
  }
  return v as number[];
}

/** Reads the optional `target` from `round.options`. */
function optionalTarget(options: Record<string, unknown>): "lambda_gen" | "lambda_max" | undefined {
  const v = options.target;
  if (v === undefined || v === "lambda_gen" || v === "lambda_max") return v;
  throw new ProtocolError("malformed", `Invalid round option target: expected "lambda_gen" or "lambda_max", got ${describe(v)}`);
}

/** Reads the optional `bounds` list from `round.options`. */
function optionalBounds(options: Record<string, unknown>): BoundName[] | undefined {
  const v = options.bounds;
  if (v === undefined) return undefined;
  const names = ["top_eigvec", "identity", "rank_one"];
  if (!Array.isArray(v) || !v.every((b) => names.includes(b as string))) {
    throw new ProtocolError("malformed", `Invalid round option bounds: expected a subset of ${JSON.stringify(names)}, got ${JSON.stringify(v)}`);
  }
  return v as BoundName[];
}

/** Reads the optional boolean `exact` from `round.options`. */
function optionalExact(options: Record<string, unknown>): boolean | undefined {
  const v = options.exact;
  if (v === undefined || typeof v === "boolean") return v;
  throw new ProtocolError("malformed", `Invalid round option exact: expected a boolean, got ${JSON.stringify(v)}`);
}

/**
 * Runs one round with the estimators, carrying their state in the session. The round index
 * comes from the history store when there is one, so a run resumed after a sidecar restart
 * keeps counting where its history ends.
 */
export function estimateRunner(store?: HistoryStore, pool?: WorkerPool, blasLib?: string): RoundRunner {
  return async (oracle: CurvatureOracle, round: RoundRequest, session: SessionInfo, channel?: OpChannel, signal?: AbortSignal) => {
    const o = round.options;
    const index = store?.run(session.run.id)?.nextRound ?? session.rounds;
    const params: RoundParams = {
      run: session.run.id,
      round: index,
      step: round.step,
      epoch: round.epoch,
      lr: round.lr,
      batch_size: round.batch_size,
      n: round.n,
      momentum: round.momentum,
      budget: round.budget,
      params: session.run.params,
      tol: optionalNumber(o, "tol"),
      batch_grid: optionalGrid(o),
      bootstrap: optionalNumber(o, "bootstrap"),
      seed: optionalNumber(o, "seed"),
      max_basis: optionalNumber(o, "max_basis"),
      target: optionalTarget(o),
      bounds: optionalBounds(o),
      exact: optionalExact(o),
      // checked by protocol/limits.ts (SPEC §3.1)
      optimizer: o.optimizer as OptimizerOption | undefined,
      hessianGram: session.capabilities?.includes("hessian_gram") ?? false,
    };
    const previous = session.state.estimate as RoundState | undefined;
    // in a worker when there is a pool: the event loop keeps answering other sessions
    const { report, state } = pool && channel
      ? await pool.run(
        channel,
        session.run.probe,
        round.basis,
        { module: ESTIMATE_TASK, input: { params, state: previous, blasLib } },
        signal,
        session.run.outputs,
      ) as { report: unknown; state: RoundState }
      : await estimateRound(oracle, params, { state: previous });
    session.state.estimate = state;
    return { ...(report as Record<string, unknown>), curvature: session.run.curvature };
  };
}

/** The one place where rounds meet the estimator, the history store and the dashboard URL. */
function makeRunner(
  args: MainArgs,
  store: HistoryStore | undefined,
  dashboard: string | undefined,
  pool?: WorkerPool,
): Pick<SidecarOptions, "runRound" | "onReport" | "onSessionOpen" | "runSecret" | "dashboard"> {
  if (args.runner === "stub") return { runRound: stubRunRound };
  return {
    runRound: estimateRunner(store, pool, blasInfo().dgemm ? blasInfo().lib : undefined),
    dashboard,
    // the secret's hash stays with the run, so a restarted sidecar still knows who owns it
    onSessionOpen: store
      ? async (run, secretSha256) => void await store.openRun({ ...run, secret_sha256: secretSha256 } as StoredRunMeta)
      : undefined,
    runSecret: store ? (runId) => store.run(runId)?.meta.secret_sha256 as string | undefined : undefined,
    // awaited before the report is sent: a report the client sees is already on disk
    onReport: store ? async (runId, report) => void await store.append(runId, report as StoredReport) : undefined,
  };
}

/** Starts the dashboard on the asked port; a port in use falls back to a free one. */
async function startDashboardOrFallback(store: HistoryStore, port: number, log: Logger, allowHosts?: string[]) {
  try {
    return await startDashboard({ store, port, allowHosts });
  } catch (e) {
    if (!(e instanceof Deno.errors.AddrInUse) || port === 0) throw e;
    log("warn", "dashboard_port_in_use", { port });
    return await startDashboard({ store, port: 0, allowHosts });
  }
}

async function main(): Promise<number> {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let args: MainArgs;
  try {
    args = parseMainArgs(Deno.args, (k) => Deno.env.get(k));
  } catch (e) {
    console.error(`edgewise sidecar: ${(e as Error).message} (--help for usage)`);
    return 2;
  }
  const log = jsonLogger(args.logLevel);
  const blas = blasChoice(args);
  try {
    log("info", "blas", { ...loadBlas(blas?.path), ...(blas ? { source: blas.source } : {}) });
  } catch (e) {
    // a bad library is not fatal: the TypeScript kernels give the same numbers, slower
    log("warn", "blas", { lib: "typescript", requested: blas?.path, source: blas?.source, error: (e as Error).message });
  }
  // listen for signals before announcing, so a spawner that stops us at once is obeyed
  const stopped = new Promise<string>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => resolve(sig));
    if (args.exitOnStdinEof) void stdinClosed().then(() => resolve("stdin closed"));
  });
  const pool = args.runner === "estimate" && args.workers !== 0 ? new WorkerPool({ size: args.workers }) : undefined;
  const poolReady = pool?.preload(ESTIMATE_TASK); // in parallel with opening the store
  // with rounds in workers, heartbeats are answered during rounds: clients may rely on it
  const limits = {
    ...(args.maxMessageBytes ? { max_message_bytes: args.maxMessageBytes } : {}),
    ...(args.opTimeoutSeconds ? { op_timeout_ms: Math.round(args.opTimeoutSeconds * 1000) } : {}),
    ...(pool ? { liveness_ms: 5_000 } : {}),
  };
  const dataDir = args.dataDir ?? Deno.env.get("EDGEWISE_DATA_DIR") ?? "./edgewise-data";
  const store = args.runner === "stub" ? undefined : await HistoryStore.open({
    dataDir,
    onWarning: (message) => log("warn", "history", { message }),
  });
  const dashboard = store && args.dashboard !== false
    ? await startDashboardOrFallback(store, args.httpPort ?? 8765, log, args.allowHosts)
    : undefined;
  let curve: CurveKeys | undefined;
  try {
    curve = args.curveKeys === undefined ? undefined : loadCurveKeys(args.curveKeys);
  } catch (e) {
    console.error(`edgewise sidecar: ${(e as Error).message}`);
    return 2;
  }
  if (curve) log("info", "curve", { keys: args.curveKeys, clients: [...curve.clients.values()] });
  else if (args.insecure) log("warn", "insecure", { endpoint: args.endpoint, why: "--insecure: no authentication, no encryption" });
  await poolReady;
  let sidecar;
  try {
    sidecar = await startSidecar({ endpoint: args.endpoint, log, limits, zmqLib: args.zmqLib, curve,
      maxNewSessionsPerMinute: args.sessionsPerMinute, ...makeRunner(args, store, dashboard?.url, pool) });
  } catch (e) {
    if (e instanceof LibzmqNotFound) {
      console.error(`edgewise sidecar: ${e.message}`);
      await dashboard?.close();
      store?.close();
      return 1;
    }
    if (!(e instanceof AddressInUse)) throw e;
    console.error(`edgewise sidecar: cannot bind ${args.endpoint}: address already in use; another sidecar (or program) is listening there: stop it, or pass --endpoint with a free port (tcp://127.0.0.1:* picks one)`);
    await dashboard?.close();
    store?.close();
    return 3;
  }
  console.log(JSON.stringify({ event: "listening", endpoint: sidecar.endpoint, dashboard: dashboard?.url, pid: Deno.pid }));
  const sig = await stopped;
  log("info", "shutdown", { signal: sig });
  await sidecar.close();
  pool?.close();
  await dashboard?.close();
  store?.close();
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
