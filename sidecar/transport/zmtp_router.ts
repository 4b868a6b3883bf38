/**
 * A ZMTP 3.0 ROUTER socket over Deno's TCP and Unix-socket listeners: accepts DEALER peers,
 * gives each a routing id, yields `[routingId, ...frames]` and sends to a routing id.
 * Messages to peers that have gone are dropped, as a libzmq ROUTER does.
 *
 * @module
 */
import {
  checkGreeting,
  COMMAND,
  decodeCommand,
  encodeCommand,
  encodeMessage,
  FrameReader,
  greeting,
  MORE,
  writeAll,
} from "./zmtp.ts";

/** Options of {@linkcode ZmtpRouter.bind}. */
export interface ZmtpRouterOptions {
  /** Hard limit per frame; a peer sending more is disconnected (like ZMQ_MAXMSGSIZE). */
  maxMessageSize: number;
  /** Called with connection-level trouble (bad greeting, oversize frame, reset). */
  onPeerError?: (message: string) => void;
}

interface Peer {
  conn: Deno.Conn;
  writing: Promise<void>;
}

type Message = [Uint8Array, ...Uint8Array[]];

/** Parses `tcp://host:port` (port `*` or 0 for any) or `ipc://path`. */
export function parseEndpoint(endpoint: string): Deno.ListenOptions & { transport: "tcp" } | Deno.UnixListenOptions & { transport: "unix" } {
  const tcp = /^tcp:\/\/([^:/]+|\[[^\]]+\]):(\d+|\*)$/.exec(endpoint);
  if (tcp) {
    return { transport: "tcp", hostname: tcp[1].replace(/^\[|\]$/g, ""), port: tcp[2] === "*" ? 0 : Number(tcp[2]) };
  }
  const ipc = /^ipc:\/\/(.+)$/.exec(endpoint);
  if (ipc) return { transport: "unix", path: ipc[1] };
  throw new TypeError(`Invalid endpoint: expected tcp://host:port or ipc://path, got ${endpoint}`);
}

/**
 * The ROUTER. Iterate it with `for await`; the loop ends after {@linkcode ZmtpRouter.close},
 * which closes the listener and every connection.
 *
 * @example
 * ```ts
 * import { ZmtpRouter } from "./zmtp_router.ts";
 * const router = await ZmtpRouter.bind("tcp://127.0.0.1:*", { maxMessageSize: 1 << 20 });
 * if (!router.endpoint.startsWith("tcp://127.0.0.1:")) throw new Error("unexpected");
 * router.close();
 * ```
 */
export class ZmtpRouter implements AsyncIterable<Message> {
  /** The bound endpoint, with the real port. */
  readonly endpoint: string;
  #listener: Deno.Listener;
  #options: ZmtpRouterOptions;
  #peers = new Map<string, Peer>();
  #queue: Message[] = [];
  #wake: (() => void) | null = null;
  #closed = false;
  #next = 1;
  #unixPath?: string;

  private constructor(listener: Deno.Listener, endpoint: string, options: ZmtpRouterOptions, unixPath?: string) {
    this.#listener = listener;
    this.endpoint = endpoint;
    this.#options = options;
    this.#unixPath = unixPath;
    this.#accept();
  }

  /**
   * Binds the endpoint.
   * @param endpoint `tcp://host:port` (`*` picks a free port) or `ipc://path`
   * @param options limits and error hook
   * @returns the bound router
   * @throws {Deno.errors.AddrInUse} when the address is taken
   */
  static bind(endpoint: string, options: ZmtpRouterOptions): Promise<ZmtpRouter> {
    const opts = parseEndpoint(endpoint);
    if (opts.transport === "unix") {
      try {
        // a stale socket file from a killed sidecar would block the bind
        if (Deno.statSync(opts.path).isSocket) Deno.removeSync(opts.path);
      } catch { /* absent */ }
      const l = Deno.listen(opts);
      return Promise.resolve(new ZmtpRouter(l, endpoint, options, opts.path));
    }
    const l = Deno.listen(opts);
    const addr = l.addr as Deno.NetAddr;
    const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
    return Promise.resolve(new ZmtpRouter(l, `tcp://${host}:${addr.port}`, options));
  }

  /** Number of connected peers. */
  get peerCount(): number {
    return this.#peers.size;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        if (conn.localAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
        this.#serve(conn);
      }
    } catch (e) {
      if (!this.#closed) this.#options.onPeerError?.(`accept failed: ${e}`);
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const idNum = this.#next++;
    const routing = new Uint8Array(5);
    new DataView(routing.buffer).setUint32(1, idNum);
    const key = String(idNum);
    const reader = new FrameReader(conn);
    try {
      await writeAll(conn, greeting(true));
      const g = await reader.exact(64);
      if (!g) return;
      const bad = checkGreeting(g);
      if (bad) throw new Error(bad);
      await writeAll(conn, encodeCommand("READY", { "Socket-Type": "ROUTER" }));
      const ready = await reader.frame(this.#options.maxMessageSize);
      if (!ready) return;
      if (!(ready.flags & COMMAND)) throw new Error("expected READY, got a message frame");
      const cmd = decodeCommand(ready.body);
      if (cmd.name !== "READY") throw new Error(`expected READY, got ${cmd.name}`);
      const type = new TextDecoder().decode(cmd.props["Socket-Type"] ?? new Uint8Array());
      if (type !== "DEALER" && type !== "REQ") throw new Error(`peer socket type ${type} cannot talk to a ROUTER`);
      this.#peers.set(key, { conn, writing: Promise.resolve() });
      let parts: Uint8Array[] = [];
      for (;;) {
        const f = await reader.frame(this.#options.maxMessageSize);
        if (!f) break;
        if (f.flags & COMMAND) {
          const c = decodeCommand(f.body);
          if (c.name === "PING") this.#write(key, encodeCommand("PONG"));
          continue;
        }
        parts.push(f.body);
        if (!(f.flags & MORE)) {
          this.#push([routing, ...parts]);
          parts = [];
        }
      }
    } catch (e) {
      if (!this.#closed) this.#options.onPeerError?.(`peer ${key}: ${(e as Error).message}`);
    } finally {
      this.#peers.delete(key);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  #push(m: Message): void {
    this.#queue.push(m);
    this.#wake?.();
  }

  #write(key: string, bytes: Uint8Array): Promise<void> {
    const peer = this.#peers.get(key);
    if (!peer) return Promise.resolve();
    const p = peer.writing.then(() => writeAll(peer.conn, bytes)).catch(() => {/* peer gone: dropped */});
    peer.writing = p;
    return p;
  }

  /**
   * Sends a message to a peer; resolves when written, or at once when the peer is gone.
   * @param routing the routing id from a received message
   * @param frames the message frames
   */
  send(routing: Uint8Array, frames: Uint8Array[]): Promise<void> {
    if (this.#closed || routing.byteLength !== 5) return Promise.resolve();
    const key = String(new DataView(routing.buffer, routing.byteOffset, 5).getUint32(1));
    return this.#write(key, encodeMessage(frames));
  }

  /** Closes the listener and all connections; ends iteration. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const p of this.#peers.values()) {
      try {
        p.conn.close();
      } catch { /* closed */ }
    }
    this.#peers.clear();
    if (this.#unixPath) {
      try {
        Deno.removeSync(this.#unixPath);
      } catch { /* gone */ }
    }
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    for (;;) {
      const m = this.#queue.shift();
      if (m) {
        yield m;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }
}
