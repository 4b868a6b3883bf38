/**
 * The sidecar's server on its libzmq ROUTER (router.ts): decodes and validates every frame, answers every bad input
 * with an `error` while other sessions keep working, and routes session messages. Sessions see a peer as
 * the ZeroMQ routing id of its connection (see router.ts) and send frames back to it.
 *
 * @module
 */
import { decode, encode } from "../protocol/codec.ts";
import { clip, MAX_ERROR_MESSAGE } from "../protocol/describe.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  type ClientMessage,
  errorMessage,
  type Limits,
  parseClientMessage,
  peekId,
  type RunMeta,
  welcomeMessage,
} from "../protocol/messages.ts";
import { jsonLogger, type Logger } from "./log.ts";
import { type RoundRunner, Session } from "./session.ts";
import { realTimers, type Timers } from "./timers.ts";
import type { CurveKeys } from "./curve.ts";
import { Router, type RouterOptions } from "./router.ts";
import { findLibzmq } from "./zmq_lib.ts";
import { collectWhenQuiet } from "./idle_gc.ts";
import { newSecret, RateWindow, sameBytes, sha256Hex } from "./ownership.ts";

/** Sidecar name and version sent in `welcome`. */
export const SIDECAR_NAME = "edgewise-sidecar/0.1.0";

/** Default limits (SPEC §7). */
export const DEFAULT_LIMITS: Limits = {
  max_message_bytes: 64 * 1024 * 1024,
  heartbeat_ms: 5_000,
  idle_timeout_ms: 600_000,
  op_timeout_ms: 60_000,
};

/** Options of {@linkcode startSidecar}. */
export interface SidecarOptions {
  /** ZeroMQ endpoint to bind (default `tcp://127.0.0.1:5555`; `tcp://127.0.0.1:*` picks a port). */
  endpoint?: string;
  /** Executes a round against the client's oracle and returns the report map. */
  runRound: RoundRunner;
  /**
   * Awaited when a `hello` opens a new session (not on resume); `secretSha256` is the hash of
   * the session secret, to keep with the run so a restarted sidecar can check it.
   */
  onSessionOpen?: (run: RunMeta, secretSha256: string) => void | Promise<void>;
  /** The secret hash kept with a run the sidecar holds no session for (e.g. on disk), if any. */
  runSecret?: (runId: string) => string | undefined;
  /** Most live sessions (default 256); a `hello` beyond it is answered `overloaded`. */
  maxSessions?: number;
  /** Most sessions opened per minute (default 120); beyond it `hello` is answered `overloaded`. */
  maxNewSessionsPerMinute?: number;
  /** Awaited before a report is sent (the history store fsyncs here); a throw fails the round. */
  onReport?: (runId: string, report: Record<string, unknown>) => void | Promise<void>;
  /** Overrides of {@linkcode DEFAULT_LIMITS}. */
  limits?: Partial<Limits>;
  /** Dashboard URL announced in `welcome`. */
  dashboard?: string;
  /** Logger (default: JSON lines on stderr at `info`). */
  log?: Logger;
  /** Clock for op and idle timeouts (tests inject manual timers). */
  timers?: Timers;
  /** libzmq file to load (`--zmq-lib`); default: discovery (zmq_lib.ts). */
  zmqLib?: string;
  /** Serve CURVE with these keys (`--curve-keys`). */
  curve?: CurveKeys;
  /** libzmq socket settings (handshake, heartbeats, high-water marks); see router.ts. */
  transport?: Pick<RouterOptions, "handshakeMs" | "heartbeatMs" | "hwm" | "sendTimeoutMs">;
}

/** A running sidecar. */
export interface Sidecar {
  /** The bound endpoint (with the real port when bound to `*`). */
  readonly endpoint: string;
  /** Limits in force. */
  readonly limits: Limits;
  /** Number of sessions held. */
  readonly sessionCount: number;
  /** Stops serving, ends every round and closes the socket. */
  close(): Promise<void>;
}

/**
 * Binds a ROUTER and serves protocol v1 until {@linkcode Sidecar.close}. The receive loop
 * (`for await` over the socket) ends when the socket closes; `close` owns the socket.
 *
 * @param options endpoint, runner, hooks, limits
 * @returns the running sidecar
 * @throws {Error} `AddressInUse` (router.ts) when another process holds the endpoint; an `Error` when no libzmq loads
 * @example
 * ```ts ignore
 * import { startSidecar } from "./server.ts";
 * import { stubRunRound } from "./stub_runner.ts";
 * const sidecar = await startSidecar({ endpoint: "tcp://127.0.0.1:*", runRound: stubRunRound });
 * await sidecar.close();
 * ```
 */
export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const log = options.log ?? jsonLogger("info");
  const timers = options.timers ?? realTimers;
  const lib = findLibzmq({ explicit: options.zmqLib, needCurve: options.curve !== undefined, log });
  const router = await Router.bind(lib, options.endpoint ?? "tcp://127.0.0.1:5555", {
    ...options.transport,
    // the soft limit is answered with `too_large`; twice it, libzmq drops the connection
    maxMessageSize: 2 * limits.max_message_bytes,
    curve: options.curve,
    log,
  });
  const endpoint = router.endpoint;

  const sessions = new Map<string, Session>(); // by session id
  const byRun = new Map<string, Session>(); // by run id
  let closed = false;

  const inFlight = new Set<Promise<void>>();
  const send = (routing: Uint8Array, message: Record<string, unknown>) => {
    let bytes: Uint8Array;
    try {
      bytes = encode(message);
    } catch (e) {
      log("error", "encode_failed", { type: message.type, error: String(e) });
      bytes = encode(errorMessage(new ProtocolError("internal", `Cannot encode ${message.type}: ${(e as Error).message}`), message.re as number | undefined, message.session as string | undefined));
    }
    const p = router.send(routing, [bytes]).catch((e) => {
      if (!closed) log("warn", "send_failed", { error: String(e) });
    }).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const answerError = (routing: Uint8Array, err: ProtocolError, re: number | undefined, session?: string) => {
    log("info", "bad_input", { code: err.code, message: clip(err.message, MAX_ERROR_MESSAGE), re });
    send(routing, errorMessage(err, re, session));
  };

  const deps = {
    runRound: options.runRound,
    onReport: options.onReport,
    send,
    limits,
    timers,
    log,
    onExpire: (s: Session) => forget(s),
  };
  const forget = (s: Session) => {
    sessions.delete(s.info.id);
    owners.delete(s.info.id);
    if (byRun.get(s.info.run.id) === s) byRun.delete(s.info.run.id);
  };

  const owners = new Map<string, Uint8Array>(); // session id → routing id of its connection
  const secrets = new Map<string, string>(); // run id → sha256 of its session secret
  const opened = new RateWindow(60_000);
  const maxSessions = options.maxSessions ?? 256;
  const maxPerMinute = options.maxNewSessionsPerMinute ?? 120;

  /**
   * `hello` (SPEC §3 "Sessions"): a run id held live or on disk is resumed only with its
   * secret; without it the client gets a new run (the id with a suffix), never the old one.
   */
  async function hello(msg: Extract<ClientMessage, { type: "hello" }>, routing: Uint8Array) {
    const asked = msg.run.id;
    const live = byRun.get(asked);
    const known = live ? secrets.get(asked) : options.runSecret?.(asked);
    const presented = msg.secret === undefined ? undefined : await sha256Hex(msg.secret);
    const resume = known === undefined ? live === undefined : presented === known;
    if (live && resume) {
      live.abandon("client said hello again");
      live.info.run = msg.run;
      live.info.capabilities = msg.capabilities;
      live.touch();
      owners.set(live.info.id, routing);
      log("info", "session_resumed", { session: live.info.id, run: asked });
      send(routing, welcomeMessage(msg.id, live.info.id, limits, SIDECAR_NAME, options.dashboard, { run: asked, secret: msg.secret! }));
      return;
    }
    if (sessions.size >= maxSessions || opened.count() >= maxPerMinute) {
      const why = sessions.size >= maxSessions ? `${sessions.size} sessions are live (limit ${maxSessions})` : `${maxPerMinute} sessions were opened in the last minute (limit)`;
      answerError(routing, new ProtocolError("overloaded", `Cannot open a session: ${why}; retry later or close idle runs with bye`), msg.id);
      return;
    }
    let runId = asked;
    if (!resume) {
      do runId = `${asked.slice(0, 1000)}~${newSecret().slice(0, 6)}`; while (byRun.has(runId) || options.runSecret?.(runId));
      log("warn", "run_id_taken", { asked: clip(asked, 128), run: runId });
    }
    const secret = resume && msg.secret !== undefined ? msg.secret : newSecret();
    const hash = await sha256Hex(secret);
    const run = { ...msg.run, id: runId };
    await options.onSessionOpen?.(run, hash);
    const s = new Session(`${runId.slice(0, 64)}.${crypto.randomUUID().slice(0, 8)}`, run, deps);
    s.info.capabilities = msg.capabilities;
    sessions.set(s.info.id, s);
    byRun.set(runId, s);
    owners.set(s.info.id, routing);
    secrets.set(runId, hash);
    opened.add();
    log("info", "session_open", { session: s.info.id, run: runId, client: clip(msg.client, 128) });
    send(routing, welcomeMessage(msg.id, s.info.id, limits, SIDECAR_NAME, options.dashboard, { run: runId, secret }));
  }

  function dispatch(routing: Uint8Array, frame: Uint8Array) {
    let value: unknown;
    try {
      value = decode(frame);
    } catch (e) {
      answerError(routing, asProtocolError(e), undefined);
      return;
    }
    const re = peekId(value);
    const sid = typeof (value as { session?: unknown })?.session === "string"
      ? (value as { session: string }).session
      : undefined;
    // a session answers only the connection that opened (or resumed) it
    const session = sid === undefined || !sameBytes(owners.get(sid), routing) ? undefined : sessions.get(sid);
    const fail = (err: ProtocolError) => session ? session.fail(err, routing, re) : answerError(routing, err, re, sid);
    if (frame.byteLength > limits.max_message_bytes) {
      fail(new ProtocolError("too_large", `Message of ${frame.byteLength} bytes exceeds max_message_bytes: ${limits.max_message_bytes}`));
      return;
    }
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(value);
    } catch (e) {
      fail(asProtocolError(e));
      return;
    }
    if (msg.type === "hello") {
      hello(msg, routing).catch((e) => {
        log("error", "hello_failed", { error: String((e as Error)?.stack ?? e) });
        answerError(routing, new ProtocolError("internal", `Cannot open session: ${(e as Error).message}`), msg.id);
      });
      return;
    }
    if (sid === undefined || !session) {
      const why = sid === undefined ? "no session, send hello first" : `session ${clip(sid, 80)} is not held by this connection, send hello again`;
      answerError(routing, new ProtocolError("unknown_session", `Cannot handle ${msg.type}: ${why}`), msg.id, sid);
      return;
    }
    session.handle(msg, routing);
    if (msg.type === "bye") forget(session);
  }

  const quiet = collectWhenQuiet(2_000);
  const loop = (async () => {
    try {
      for await (const [routing, ...frames] of router) {
        quiet.touch();
        if (frames.length !== 1) {
          answerError(routing, new ProtocolError("malformed", `Cannot read message: expected 1 frame, got ${frames.length}`), undefined);
          continue;
        }
        try {
          dispatch(routing, frames[0]);
        } catch (e) {
          log("error", "dispatch_failed", { error: String((e as Error)?.stack ?? e) });
          answerError(routing, new ProtocolError("internal", `Cannot handle message: ${(e as Error).message}`), undefined);
        }
      }
    } catch (e) {
      if (!closed) log("error", "receive_failed", { error: String(e) });
    }
  })();

  log("info", "listening", { endpoint });
  return {
    endpoint,
    limits,
    get sessionCount() {
      return sessions.size;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const s of sessions.values()) s.close("sidecar shutting down");
      sessions.clear();
      byRun.clear();
      await Promise.race([Promise.all(inFlight), new Promise((r) => setTimeout(r, 1000))]);
      await router.close();
      await loop;
      quiet.stop();
      log("info", "closed", { endpoint });
    },
  };
}

function asProtocolError(e: unknown): ProtocolError {
  return e instanceof ProtocolError ? e : new ProtocolError("internal", (e as Error)?.message ?? String(e));
}
