/**
 * The sidecar's ROUTER socket on libzmq: the options that bound what one peer can cost, the
 * socket monitor feeding the structured log, CURVE when keys are given, and sends that wait
 * (bounded) when a peer's queue is full instead of growing it.
 *
 * Routing id: each message is yielded as `[routing, ...frames]`, where `routing` is the
 * ZeroMQ routing id libzmq's ROUTER gives the connection: 5 bytes (a zero, then a 32-bit
 * counter) unless the client set `ZMQ_ROUTING_ID` itself. It names one connection: a client
 * that reconnects (or a restarted client) gets a new one, and two live connections never
 * share one (libzmq refuses a duplicate chosen id). Sessions answer to it; issue 10 binds a
 * session to it.
 *
 * @module
 */
import { applyCurveServer, type CurveKeys, startZapHandler } from "./curve.ts";
import type { Logger } from "./log.ts";
import { ERRNO, type Libzmq, MONITOR_EVENTS, ZMQ } from "./zmq_ffi.ts";
import { ZmqContext, ZmqError, type ZmqSocket } from "./zmq_socket.ts";

/** libzmq settings of the sidecar's socket (SPEC §7). */
export interface RouterOptions {
  /** Hard limit on one incoming frame (`ZMQ_MAXMSGSIZE`); a peer sending more is disconnected. */
  maxMessageSize: number;
  /** A connection that has not finished the ZMTP (and CURVE) handshake by then is dropped. */
  handshakeMs?: number;
  /** ZMTP PING interval; a peer silent for three intervals is dropped. */
  heartbeatMs?: number;
  /** Messages queued per peer in each direction (`ZMQ_SNDHWM`, `ZMQ_RCVHWM`). */
  hwm?: number;
  /** How long a send waits for a full peer queue before the message is dropped. */
  sendTimeoutMs?: number;
  /** Serve CURVE with these keys (ZAP handler admits only the listed clients). */
  curve?: CurveKeys;
  log: Logger;
}

/** Defaults of {@linkcode RouterOptions}. */
export const ROUTER_DEFAULTS = {
  handshakeMs: 10_000,
  heartbeatMs: 5_000,
  hwm: 64,
  sendTimeoutMs: 10_000,
};

type Message = [Uint8Array, ...Uint8Array[]];

/** Thrown by {@linkcode Router.bind} when another process holds the address. */
export class AddressInUse extends Error {
  constructor(readonly endpoint: string) {
    super(`Cannot bind ${endpoint}: address already in use`);
    this.name = "AddressInUse";
  }
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** The bound ROUTER; iterate it with `for await`, which ends after {@linkcode Router.close}. */
export class Router implements AsyncIterable<Message> {
  /** The bound endpoint, with the real port when bound to `*`. */
  readonly endpoint: string;
  #ctx: ZmqContext;
  #socket: ZmqSocket;
  #monitor: ZmqSocket;
  #zap?: ZmqSocket;
  #sendTimeoutMs: number;
  #log: Logger;
  #chains = new Map<string, Promise<void>>();
  #closed = false;

  private constructor(
    ctx: ZmqContext,
    socket: ZmqSocket,
    monitor: ZmqSocket,
    zap: ZmqSocket | undefined,
    options: RouterOptions,
  ) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.#monitor = monitor;
    this.#zap = zap;
    this.#log = options.log;
    this.#sendTimeoutMs = options.sendTimeoutMs ??
      ROUTER_DEFAULTS.sendTimeoutMs;
    this.endpoint = socket.getString(ZMQ.LAST_ENDPOINT);
    this.#watch();
  }

  /**
   * Binds a ROUTER on `endpoint` with its own context.
   * @throws {AddressInUse} when the address is taken; {@linkcode ZmqError} for other failures
   */
  static async bind(
    lib: Libzmq,
    endpoint: string,
    options: RouterOptions,
  ): Promise<Router> {
    const ctx = new ZmqContext(lib);
    try {
      const zap = options.curve ? startZapHandler(ctx, options.curve.clients, options.log) : undefined;
      const s = ctx.socket(ZMQ.ROUTER);
      const heartbeat = options.heartbeatMs ?? ROUTER_DEFAULTS.heartbeatMs;
      const hwm = options.hwm ?? ROUTER_DEFAULTS.hwm;
      s.setOption(ZMQ.ROUTER_MANDATORY, 1); // unknown peer: EHOSTUNREACH; full queue: EAGAIN
      setInt64(s, ZMQ.MAXMSGSIZE, options.maxMessageSize);
      s.setOption(ZMQ.SNDHWM, hwm);
      s.setOption(ZMQ.RCVHWM, hwm);
      s.setOption(
        ZMQ.HANDSHAKE_IVL,
        options.handshakeMs ?? ROUTER_DEFAULTS.handshakeMs,
      );
      s.setOption(ZMQ.HEARTBEAT_IVL, heartbeat);
      s.setOption(ZMQ.HEARTBEAT_TIMEOUT, 3 * heartbeat);
      s.setOption(ZMQ.HEARTBEAT_TTL, 3 * heartbeat);
      s.setOption(ZMQ.LINGER, 0);
      if (/^tcp:\/\/\[/.test(endpoint)) s.setOption(ZMQ.IPV6, 1);
      if (options.curve) applyCurveServer(s, options.curve);
      const monitorAt = `inproc://edgewise-monitor-${crypto.randomUUID()}`;
      s.monitor(monitorAt);
      const monitor = ctx.socket(ZMQ.PAIR);
      monitor.connect(monitorAt);
      removeStaleSocketFile(endpoint);
      try {
        s.bind(endpoint);
      } catch (e) {
        if (e instanceof ZmqError && e.errno === ERRNO.EADDRINUSE) {
          throw new AddressInUse(endpoint);
        }
        throw e;
      }
      s.start();
      return new Router(ctx, s, monitor, zap, options);
    } catch (e) {
      await ctx.term();
      throw e;
    }
  }

  /** Logs the socket's events: per-peer trouble at `warn`, connection churn at `debug`. */
  #watch(): void {
    (async () => {
      for await (const [head, addr] of this.#monitor) {
        if (head.byteLength < 6) continue;
        const dv = new DataView(head.buffer, head.byteOffset, 6);
        const bit = dv.getUint16(0, true);
        const name = MONITOR_EVENTS[bit] ?? `event_${bit}`;
        const fields = {
          event_value: dv.getUint32(2, true),
          endpoint: new TextDecoder().decode(addr ?? new Uint8Array()),
        };
        const level = name.startsWith("handshake_failed") || name.endsWith("_failed") ? "warn" : "debug";
        this.#log(level, `zmq_${name}`, fields);
      }
    })().catch((e) => this.#log("error", "monitor_failed", { error: String(e) }));
  }

  /**
   * Sends to a peer, in order per peer. Resolves once libzmq took the message, at once when
   * the peer is gone (dropped, as a ROUTER does), or after `sendTimeoutMs` of a full queue
   * (dropped, logged).
   */
  send(routing: Uint8Array, frames: Uint8Array[]): Promise<void> {
    const key = hex(routing);
    const prev = this.#chains.get(key) ?? Promise.resolve();
    const p = prev.then(() => this.#sendNow(routing, frames, key));
    this.#chains.set(key, p);
    p.finally(() => {
      if (this.#chains.get(key) === p) this.#chains.delete(key);
    });
    return p;
  }

  async #sendNow(
    routing: Uint8Array,
    frames: Uint8Array[],
    key: string,
  ): Promise<void> {
    const deadline = Date.now() + this.#sendTimeoutMs;
    for (let wait = 1;; wait = Math.min(2 * wait, 50)) {
      if (this.#closed) return;
      const r = this.#socket.trySend([routing, ...frames]);
      if (r === "sent") return;
      if (r === "unreachable") {
        this.#log("debug", "peer_gone", { peer: key });
        return;
      }
      if (Date.now() > deadline) {
        this.#log("warn", "send_dropped", {
          peer: key,
          why: `peer queue full for ${this.#sendTimeoutMs} ms`,
        });
        return;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Closes the sockets (linger 0) and the context; ends iteration. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#socket.close();
    await Promise.all([this.#zap?.close(), this.#monitor.close()]);
    await this.#ctx.term();
    removeStaleSocketFile(this.endpoint);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    for await (const m of this.#socket) {
      if (m.length >= 1) yield m as Message;
    }
  }
}

/** Removes the socket file of an `ipc://` endpoint (a killed sidecar leaves one behind). */
function removeStaleSocketFile(endpoint: string): void {
  const path = /^ipc:\/\/(.+)$/.exec(endpoint)?.[1];
  try {
    if (path && Deno.statSync(path).isSocket) Deno.removeSync(path);
  } catch { /* absent */ }
}

/** `ZMQ_MAXMSGSIZE` is an int64 option. */
function setInt64(s: ZmqSocket, option: number, value: number): void {
  s.setOption(
    option,
    new Uint8Array(new BigInt64Array([BigInt(value)]).buffer),
  );
}
