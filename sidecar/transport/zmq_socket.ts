/**
 * An async libzmq socket for Deno: the socket lives on the main thread; a `nonblocking`
 * `zmq_poll` on its `ZMQ_FD` waits on FFI's worker thread, and each wake-up reads with
 * `ZMQ_DONTWAIT` until `ZMQ_EVENTS` says nothing is left.
 *
 * Why like this: zeromq.js loses wake-ups and crashes under Deno 2.9 (issue 11), and a libzmq
 * socket must not be touched from two threads, so the worker only ever sees a raw descriptor.
 * `ZMQ_FD` is edge-like (it says "state may have changed", and a send on the main thread can
 * consume the signal), so every send re-checks `ZMQ_EVENTS`, and the poll has a short timeout
 * that re-checks it too. `ZMQ_EVENTS` can fail with EINTR; that is retried, never fatal.
 *
 * @module
 */
import { cstr, ERRNO, lastError, type Libzmq, ZMQ, type ZmqSymbols } from "./zmq_ffi.ts";

/** How long one poll waits before re-checking (bounds `close()` latency too). */
const POLL_MS = 100;

/** A libzmq call failed; `errno` is libzmq's. */
export class ZmqError extends Error {
  constructor(readonly call: string, readonly errno: number, message: string) {
    super(`${call} failed: ${message}`);
    this.name = "ZmqError";
  }
}

/** A context: owns libzmq's I/O thread; close every socket, then {@linkcode ZmqContext.term}. */
export class ZmqContext {
  readonly lib: Libzmq;
  #ptr: Deno.PointerValue;
  #sockets = new Set<ZmqSocket>();

  constructor(lib: Libzmq) {
    this.lib = lib;
    this.#ptr = lib.sym.zmq_ctx_new();
    if (!this.#ptr) {
      throw new ZmqError(
        "zmq_ctx_new",
        lib.sym.zmq_errno(),
        lastError(lib.sym).message,
      );
    }
  }

  /** Opens a socket of `type` (`ZMQ.ROUTER`, `ZMQ.DEALER`, `ZMQ.PAIR`). */
  socket(type: number): ZmqSocket {
    const p = this.lib.sym.zmq_socket(this.#ptr, type);
    if (!p) throw zmqError(this.lib.sym, "zmq_socket");
    const s = new ZmqSocket(this.lib.sym, p, () => this.#sockets.delete(s));
    this.#sockets.add(s);
    return s;
  }

  /** Closes every socket still open (linger 0), then terminates the context. */
  async term(): Promise<void> {
    await Promise.all([...this.#sockets].map((s) => s.close()));
    if (this.#ptr) this.lib.sym.zmq_ctx_term(this.#ptr);
    this.#ptr = null;
  }
}

/** Outcome of {@linkcode ZmqSocket.trySend}. */
export type SendOutcome = "sent" | "again" | "unreachable";

/** One socket; iterate it with `for await` to receive messages (lists of frames). */
export class ZmqSocket implements AsyncIterable<Uint8Array[]> {
  #sym: ZmqSymbols;
  #ptr: Deno.PointerValue;
  #onClose: () => void;
  #msg = new Uint8Array(64); // zmq_msg_t
  #items: Uint8Array<ArrayBuffer> | null = null;
  #queue: Uint8Array[][] = [];
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #failure: unknown = null;
  #closed = false;

  /** @internal use {@linkcode ZmqContext.socket} */
  constructor(sym: ZmqSymbols, ptr: Deno.PointerValue, onClose: () => void) {
    this.#sym = sym;
    this.#ptr = ptr;
    this.#onClose = onClose;
  }

  /** Sets an int option (or a bytes/string option: keys, domains). */
  setOption(option: number, value: number | string | Uint8Array): void {
    const buf = typeof value === "number"
      ? new Uint8Array(new Int32Array([value]).buffer)
      : typeof value === "string"
      ? new TextEncoder().encode(value)
      : value;
    if (
      this.#sym.zmq_setsockopt(
        this.#ptr,
        option,
        buf,
        BigInt(buf.byteLength),
      ) !== 0
    ) {
      throw zmqError(this.#sym, `zmq_setsockopt(${option})`);
    }
  }

  /** Reads an int option, retrying EINTR. */
  getInt(option: number): number {
    const v = new Int32Array(1);
    const len = new BigUint64Array([4n]);
    for (;;) {
      if (this.#sym.zmq_getsockopt(this.#ptr, option, v, len) === 0) {
        return v[0];
      }
      const e = this.#sym.zmq_errno();
      if (e !== ERRNO.EINTR) {
        throw zmqError(this.#sym, `zmq_getsockopt(${option})`);
      }
    }
  }

  /** Reads a string option (e.g. `ZMQ.LAST_ENDPOINT`). */
  getString(option: number): string {
    const buf = new Uint8Array(1024);
    const len = new BigUint64Array([BigInt(buf.byteLength)]);
    if (this.#sym.zmq_getsockopt(this.#ptr, option, buf, len) !== 0) {
      throw zmqError(this.#sym, `zmq_getsockopt(${option})`);
    }
    const n = Number(len[0]);
    return new TextDecoder().decode(
      buf.subarray(0, n > 0 && buf[n - 1] === 0 ? n - 1 : n),
    );
  }

  /** Binds; the error's errno says why (`ERRNO.EADDRINUSE`). */
  bind(endpoint: string): void {
    if (this.#sym.zmq_bind(this.#ptr, cstr(endpoint)) !== 0) {
      throw zmqError(this.#sym, `zmq_bind(${endpoint})`);
    }
  }

  /** Connects (libzmq reconnects by itself). */
  connect(endpoint: string): void {
    if (this.#sym.zmq_connect(this.#ptr, cstr(endpoint)) !== 0) {
      throw zmqError(this.#sym, `zmq_connect(${endpoint})`);
    }
  }

  /** Publishes this socket's events on `inproc://…` (read them with a PAIR socket). */
  monitor(endpoint: string, events: number = ZMQ.EVENT_ALL): void {
    if (this.#sym.zmq_socket_monitor(this.#ptr, cstr(endpoint), events) !== 0) {
      throw zmqError(this.#sym, "zmq_socket_monitor");
    }
  }

  /**
   * Sends one message without waiting. `"again"`: the peer's queue is at its high-water mark
   * (or, for a DEALER, no peer yet); `"unreachable"`: a ROUTER with `ZMQ_ROUTER_MANDATORY`
   * has no peer with this routing id (the first frame).
   * @throws {ZmqError} on any other failure
   */
  trySend(frames: Uint8Array[]): SendOutcome {
    if (this.#closed) return "unreachable";
    try {
      for (let i = 0; i < frames.length; i++) {
        const flags = ZMQ.DONTWAIT | (i < frames.length - 1 ? ZMQ.SNDMORE : 0);
        for (;;) {
          const f = frames[i] as Uint8Array<ArrayBuffer>;
          if (
            this.#sym.zmq_send(this.#ptr, f, BigInt(f.byteLength), flags) >= 0
          ) break;
          const e = this.#sym.zmq_errno();
          if (e === ERRNO.EINTR) continue;
          if (i === 0 && e === ERRNO.EAGAIN) return "again";
          if (i === 0 && e === ERRNO.EHOSTUNREACH) return "unreachable";
          throw zmqError(this.#sym, "zmq_send");
        }
      }
      return "sent";
    } finally {
      // a send may have consumed the ZMQ_FD signal for pending input: look now
      queueMicrotask(() => this.#drain());
    }
  }

  /** Starts the receive loop (the first `for await` does it too). */
  start(): void {
    if (this.#loop || this.#closed) return;
    const fdBytes = Deno.build.os === "windows" ? 8 : 4;
    const fdBuf = new Uint8Array(fdBytes);
    const len = new BigUint64Array([BigInt(fdBytes)]);
    if (this.#sym.zmq_getsockopt(this.#ptr, ZMQ.FD, fdBuf, len) !== 0) {
      throw zmqError(this.#sym, "zmq_getsockopt(ZMQ_FD)");
    }
    // zmq_pollitem_t { void *socket; fd; short events; short revents; }
    const items = new Uint8Array(fdBytes === 8 ? 24 : 16);
    items.set(fdBuf, 8);
    new DataView(items.buffer).setInt16(8 + fdBytes, ZMQ.POLLIN, true);
    this.#items = items;
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    try {
      while (!this.#closed) {
        this.#drain();
        if (this.#closed) break;
        await this.#sym.zmq_poll(this.#items!, 1, BigInt(POLL_MS));
      }
    } catch (e) {
      this.#failure = e;
    } finally {
      this.#wake?.();
    }
  }

  /** Reads every message available now into the queue. */
  #drain(): void {
    if (this.#closed || !this.#loop) return;
    let got = false;
    try {
      while (this.getInt(ZMQ.EVENTS) & ZMQ.POLLIN) {
        const m = this.#recv();
        if (!m) break;
        this.#queue.push(m);
        got = true;
      }
    } catch (e) {
      this.#failure ??= e;
      got = true;
    }
    if (got) this.#wake?.();
  }

  /** One whole message, or null when none is ready. */
  #recv(): Uint8Array[] | null {
    const frames: Uint8Array[] = [];
    const msg = this.#msg;
    for (;;) {
      this.#sym.zmq_msg_init(msg);
      if (this.#sym.zmq_msg_recv(msg, this.#ptr, ZMQ.DONTWAIT) < 0) {
        const e = this.#sym.zmq_errno();
        this.#sym.zmq_msg_close(msg);
        if (e === ERRNO.EINTR) continue;
        if (e === ERRNO.EAGAIN && frames.length === 0) return null;
        throw new ZmqError("zmq_msg_recv", e, lastError(this.#sym).message);
      }
      const size = Number(this.#sym.zmq_msg_size(msg));
      const data = new Uint8Array(size);
      const p = this.#sym.zmq_msg_data(msg);
      if (size > 0 && p) new Deno.UnsafePointerView(p).copyInto(data);
      const more = this.#sym.zmq_msg_more(msg);
      this.#sym.zmq_msg_close(msg);
      frames.push(data);
      if (!more) return frames;
    }
  }

  /** Next message, or null once closed. */
  async receive(): Promise<Uint8Array[] | null> {
    this.start();
    for (;;) {
      const m = this.#queue.shift();
      if (m) return m;
      if (this.#failure) throw this.#failure;
      if (this.#closed) return null;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array[]> {
    for (;;) {
      const m = await this.receive();
      if (m === null) return;
      yield m;
    }
  }

  /** Whether {@linkcode ZmqSocket.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Ends iteration, waits for the poll in flight, closes with linger 0; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    await this.#loop;
    try {
      this.setOption(ZMQ.LINGER, 0);
    } catch { /* closing anyway */ }
    this.#sym.zmq_close(this.#ptr);
    this.#ptr = null;
    this.#onClose();
  }
}

function zmqError(sym: ZmqSymbols, call: string): ZmqError {
  const { errno, message } = lastError(sym);
  return new ZmqError(call, errno, message);
}
