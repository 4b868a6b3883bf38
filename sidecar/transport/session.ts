/**
 * One session per training run: the state machine that turns the client's messages into
 * oracle results for a running round, with op and idle timeouts.
 *
 * States: `idle` (no round) → `running` (a round computes; the session owes an answer to
 * the client's last message) → `waiting` (an `op` was sent; the next `result` resumes the
 * round) → … → `idle` when the `report` (or an `error`) is sent. Any error answered while a
 * round is active ends that round: the client stops waiting for it when it sees the error.
 *
 * @module
 */
import type { CurvatureOracle } from "../estimate/oracle.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  type ClientMessage,
  echoMessage,
  errorMessage,
  type Limits,
  opMessage,
  reportMessage,
  type RoundRequest,
  type RunMeta,
} from "../protocol/messages.ts";
import type { Logger } from "./log.ts";
import { type OpChannel, type OpResult, RemoteOracle } from "./remote_oracle.ts";
import type { Timers } from "./timers.ts";

/** What a round runner sees of its session. */
export interface SessionInfo {
  /** Session id given in `welcome`. */
  readonly id: string;
  /** The run metadata from the latest `hello`. */
  run: RunMeta;
  /** Rounds reported so far (the next report's `round`). */
  rounds: number;
  /** Free slot the runner may use to carry data between rounds (e.g. the kept basis). */
  state: Record<string, unknown>;
  /** Op names the client executes (`hello.capabilities` of the latest `hello`). */
  capabilities?: string[];
}

/**
 * Executes one round against the oracle and returns the report map (SPEC §5). `channel` is
 * the raw op channel under `oracle`, for runners that run the round in a worker (worker_pool.ts);
 * `signal` aborts when the round is abandoned (client gone, timeout, error).
 */
export type RoundRunner = (
  oracle: CurvatureOracle,
  round: RoundRequest,
  session: SessionInfo,
  channel: OpChannel,
  signal: AbortSignal,
) => Promise<Record<string, unknown>>;

/** Sends one message to the peer with this routing id. */
export type SendFn = (routing: Uint8Array, message: Record<string, unknown>) => void;

/** What a session needs from its server. */
export interface SessionDeps {
  runRound: RoundRunner;
  onReport?: (runId: string, report: Record<string, unknown>) => void | Promise<void>;
  send: SendFn;
  limits: Limits;
  timers: Timers;
  log: Logger;
  /** Called when the idle timeout forgets the session. */
  onExpire: (session: Session) => void;
}

/** Session phase (see the module doc). */
export type Phase = "idle" | "running" | "waiting";

interface Owed {
  routing: Uint8Array;
  re: number;
}

interface Outstanding {
  seq: number;
  op: string;
  parse: (r: OpResult) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** A round in progress; `ended` makes every later step of its runner a no-op. */
class RoundState {
  ended = false;
  seq = 0;
  owed: Owed | null;
  outstanding: Outstanding | null = null;
  opTimer: number | undefined;
  /** Aborted when the round is abandoned, so a runner can stop work no one waits for. */
  readonly abort = new AbortController();
  constructor(owed: Owed) {
    this.owed = owed;
  }
}

/** One client session. Create it on `hello`; feed it every later message of its run. */
export class Session {
  readonly info: SessionInfo;
  #deps: SessionDeps;
  #round: RoundState | null = null;
  #idleTimer: number | undefined;

  /**
   * @param id session id
   * @param run run metadata from `hello`
   * @param deps server-side dependencies
   */
  constructor(id: string, run: RunMeta, deps: SessionDeps) {
    this.info = { id, run, rounds: 0, state: {} };
    this.#deps = deps;
    this.touch();
  }

  /** Current phase. */
  get phase(): Phase {
    if (!this.#round) return "idle";
    return this.#round.outstanding ? "waiting" : "running";
  }

  /** Restarts the idle timer; call on every message of this session. */
  touch(): void {
    const { timers, limits } = this.#deps;
    if (this.#idleTimer !== undefined) timers.clearTimeout(this.#idleTimer);
    this.#idleTimer = timers.setTimeout(() => {
      this.#deps.log("info", "session_expired", { session: this.info.id, run: this.info.run.id });
      this.close("idle timeout");
      this.#deps.onExpire(this);
    }, limits.idle_timeout_ms);
  }

  /** Ends any round and stops the timers (bye, resume, expiry, shutdown). */
  close(reason: string): void {
    this.abandon(reason);
    if (this.#idleTimer !== undefined) this.#deps.timers.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  /** Ends the round in progress, if any, without answering anyone. */
  abandon(reason: string): void {
    const r = this.#round;
    if (!r) return;
    this.#round = null;
    r.ended = true;
    if (r.opTimer !== undefined) this.#deps.timers.clearTimeout(r.opTimer);
    this.#deps.log("warn", "round_abandoned", { session: this.info.id, run: this.info.run.id, reason });
    r.outstanding?.reject(new ProtocolError("bad_state", `Round abandoned: ${reason}`));
    r.outstanding = null;
    r.abort.abort();
  }

  /**
   * Answers `err` to the message `(routing, re)`; if a round is active it ends.
   * @param err what to answer
   * @param routing the peer
   * @param re the id answered (undefined when it could not be read)
   */
  fail(err: ProtocolError, routing: Uint8Array, re: number | undefined): void {
    this.abandon(`${err.code}: ${err.message}`);
    this.#deps.send(routing, errorMessage(err, re, this.info.id));
  }

  /**
   * Handles a message addressed to this session (everything but `hello`).
   * @param msg the validated message
   * @param routing the peer's routing id
   */
  handle(msg: ClientMessage, routing: Uint8Array): void {
    this.touch();
    const { send } = this.#deps;
    const sid = this.info.id;
    switch (msg.type) {
      case "heartbeat":
        send(routing, echoMessage("heartbeat", msg.id, sid));
        return;
      case "bye":
        this.close("client said bye");
        send(routing, echoMessage("bye", msg.id, sid));
        return;
      case "round":
        if (this.#round) {
          this.fail(new ProtocolError("bad_state", `Cannot start a round: one is already ${this.phase}`), routing, msg.id);
          return;
        }
        this.#start(msg.round, { routing, re: msg.id });
        return;
      case "result":
        this.#result(msg, routing);
        return;
      case "error": {
        const r = this.#round;
        const what = r?.outstanding ? `client could not execute ${r.outstanding.op} (seq ${r.outstanding.seq})` : "no op outstanding";
        this.#deps.log("warn", "client_error", { session: sid, code: msg.code, message: msg.message, seq: msg.seq });
        const code = r?.outstanding ? "oracle_failed" : "bad_state";
        this.fail(new ProtocolError(code, `Round abandoned: ${what}: ${msg.message}`), routing, msg.id);
        return;
      }
      case "hello":
        throw new Error("hello is handled by the server");
    }
  }

  #result(msg: Extract<ClientMessage, { type: "result" }>, routing: Uint8Array): void {
    const r = this.#round;
    const out = r?.outstanding;
    if (!r || !out) {
      this.fail(new ProtocolError("bad_state", `Cannot accept result seq ${msg.seq}: no op outstanding (${this.phase})`), routing, msg.id);
      return;
    }
    if (msg.seq !== out.seq || msg.op !== out.op) {
      this.fail(
        new ProtocolError("bad_state", `Cannot accept result seq ${msg.seq} (${msg.op}): waiting for seq ${out.seq} (${out.op})`),
        routing,
        msg.id,
      );
      return;
    }
    if (r.opTimer !== undefined) this.#deps.timers.clearTimeout(r.opTimer);
    r.outstanding = null;
    r.owed = { routing, re: msg.id };
    let value: unknown;
    try {
      value = out.parse({ basis: msg.basis, hvps: msg.hvps, fields: msg.fields });
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError("internal", `Cannot read result: ${(e as Error).message}`);
      this.fail(err, routing, msg.id);
      out.reject(err);
      return;
    }
    out.resolve(value);
  }

  #start(round: RoundRequest, owed: Owed): void {
    const r = new RoundState(owed);
    this.#round = r;
    const channel = this.#channel(r);
    const oracle = new RemoteOracle(channel, this.info.run.probe, round.basis, this.info.run.outputs);
    const t0 = performance.now();
    this.#deps.log("debug", "round_start", { session: this.info.id, step: round.step });
    // through a promise chain, so a runner that throws synchronously still lands in .then
    const runner = Promise.resolve().then(() => this.#deps.runRound(oracle, round, this.info, channel, r.abort.signal));
    runner.then(
      async (report) => {
        if (r.ended) return;
        const full = finalizeReport(report, this.info, this.#deps.log);
        try {
          await this.#deps.onReport?.(this.info.run.id, full);
        } catch (e) {
          if (!r.ended) this.#endWith(r, new ProtocolError("internal", `Cannot store report: ${(e as Error).message}`));
          return;
        }
        if (r.ended || !r.owed) return;
        this.info.rounds++;
        this.#round = null;
        r.ended = true;
        this.#deps.send(r.owed.routing, reportMessage(r.owed.re, this.info.id, full));
        this.#deps.log("info", "round_done", {
          session: this.info.id,
          run: this.info.run.id,
          round: full.round,
          ms: Math.round(performance.now() - t0),
        });
      },
      (e) => {
        if (r.ended) return;
        const err = e instanceof ProtocolError ? e : new ProtocolError("internal", `Round failed: ${(e as Error)?.message ?? e}`);
        if (!(e instanceof ProtocolError)) this.#deps.log("error", "round_failed", { session: this.info.id, error: String((e as Error)?.stack ?? e) });
        this.#endWith(r, err);
      },
    );
  }

  /** Ends round `r` by answering `err` to the message it owes an answer to. */
  #endWith(r: RoundState, err: ProtocolError): void {
    const owed = r.owed;
    this.abandon(`${err.code}: ${err.message}`);
    if (owed) this.#deps.send(owed.routing, errorMessage(err, owed.re, this.info.id));
  }

  #channel(r: RoundState): OpChannel {
    return {
      call: <T>(op: string, args: Record<string, unknown>, parse: (res: OpResult) => T): Promise<T> => {
        if (r.ended) return Promise.reject(new ProtocolError("bad_state", `Cannot send op ${op}: the round has ended`));
        if (r.outstanding || !r.owed) {
          return Promise.reject(new ProtocolError("internal", `Cannot send op ${op}: another op is outstanding`));
        }
        return new Promise<T>((resolve, reject) => {
          const seq = r.seq++;
          const owed = r.owed!;
          r.owed = null;
          r.outstanding = { seq, op, parse, resolve: resolve as (v: unknown) => void, reject };
          r.opTimer = this.#deps.timers.setTimeout(() => {
            this.#deps.log("warn", "op_timeout", { session: this.info.id, op, seq });
            this.abandon(`no result for ${op} (seq ${seq}) within ${this.#deps.limits.op_timeout_ms} ms`);
          }, this.#deps.limits.op_timeout_ms);
          this.#deps.send(owed.routing, opMessage(owed.re, this.info.id, seq, op, args));
        });
      },
    };
  }
}

/**
 * Adds `run` and `round` when the runner left them out and drops numbers that are not
 * finite (SPEC §5: omitted, never NaN), logging what was dropped.
 */
export function finalizeReport(report: Record<string, unknown>, info: SessionInfo, log: Logger): Record<string, unknown> {
  const dropped: string[] = [];
  const clean = (v: unknown, path: string): unknown => {
    if (typeof v === "number") {
      if (Number.isFinite(v)) return v;
      dropped.push(path);
      return undefined;
    }
    if (Array.isArray(v)) return v.map((x, i) => clean(x, `${path}[${i}]`)).filter((x) => x !== undefined);
    if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) => [k, clean(x, `${path}.${k}`)]).filter(([, x]) => x !== undefined),
      );
    }
    return v;
  };
  const out = clean({ run: info.run.id, round: info.rounds, time: Date.now() / 1000, ...report }, "report") as Record<string, unknown>;
  if (dropped.length) log("warn", "report_non_finite_dropped", { session: info.id, fields: dropped });
  return out;
}
