/**
 * The libzmq C API through Deno FFI: the symbols the sidecar uses, the option, event and
 * errno numbers it needs, and {@linkcode openLibzmq} that loads one library file.
 *
 * Numbers are libzmq 4.3's `zmq.h` (checked against pyzmq 27.3's constants for libzmq 4.3.5);
 * errno values are the platform's, which libzmq passes through.
 * Only `zmq_poll` is `nonblocking` (it waits on FFI's worker thread, on raw descriptors
 * only); every other call runs on the main thread that owns the sockets.
 *
 * @module
 */

/** Socket types, options, flags and events from `zmq.h`. */
export const ZMQ = {
  PAIR: 0,
  DEALER: 5,
  ROUTER: 6,
  // socket options
  LINGER: 17,
  MAXMSGSIZE: 22,
  SNDHWM: 23,
  RCVHWM: 24,
  RCVMORE: 13,
  FD: 14,
  EVENTS: 15,
  LAST_ENDPOINT: 32,
  ROUTER_MANDATORY: 33,
  IPV6: 42,
  CURVE_SERVER: 47,
  CURVE_PUBLICKEY: 48,
  CURVE_SECRETKEY: 49,
  CURVE_SERVERKEY: 50,
  ZAP_DOMAIN: 55,
  HANDSHAKE_IVL: 66,
  HEARTBEAT_IVL: 75,
  HEARTBEAT_TTL: 76,
  HEARTBEAT_TIMEOUT: 77,
  // flags
  DONTWAIT: 1,
  SNDMORE: 2,
  POLLIN: 1,
  POLLOUT: 2,
  // monitor events (4.3, non-draft)
  EVENT_ALL: 0xffff,
} as const;

/** Monitor event names by bit (`ZMQ_EVENT_*`). */
export const MONITOR_EVENTS: Record<number, string> = {
  0x1: "connected",
  0x2: "connect_delayed",
  0x4: "connect_retried",
  0x8: "listening",
  0x10: "bind_failed",
  0x20: "accepted",
  0x40: "accept_failed",
  0x80: "closed",
  0x100: "close_failed",
  0x200: "disconnected",
  0x400: "monitor_stopped",
  0x800: "handshake_failed_no_detail",
  0x1000: "handshake_succeeded",
  0x2000: "handshake_failed_protocol",
  0x4000: "handshake_failed_auth",
};

const LINUX_ERRNO = { EINTR: 4, EAGAIN: 11, EADDRINUSE: 98, EHOSTUNREACH: 113 };
const DARWIN_ERRNO = { EINTR: 4, EAGAIN: 35, EADDRINUSE: 48, EHOSTUNREACH: 65 };

/** errno values libzmq reports here (platform's own; libzmq's ETERM is its own number). */
export const ERRNO = {
  ...(Deno.build.os === "darwin" ? DARWIN_ERRNO : LINUX_ERRNO),
  ETERM: 156384765,
};

const SYMBOLS = {
  zmq_version: { parameters: ["buffer", "buffer", "buffer"], result: "void" },
  zmq_has: { parameters: ["buffer"], result: "i32" },
  zmq_errno: { parameters: [], result: "i32" },
  zmq_strerror: { parameters: ["i32"], result: "pointer" },
  zmq_ctx_new: { parameters: [], result: "pointer" },
  zmq_ctx_term: { parameters: ["pointer"], result: "i32" },
  zmq_socket: { parameters: ["pointer", "i32"], result: "pointer" },
  zmq_close: { parameters: ["pointer"], result: "i32" },
  zmq_bind: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_connect: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_setsockopt: {
    parameters: ["pointer", "i32", "buffer", "usize"],
    result: "i32",
  },
  zmq_getsockopt: {
    parameters: ["pointer", "i32", "buffer", "buffer"],
    result: "i32",
  },
  zmq_send: {
    parameters: ["pointer", "buffer", "usize", "i32"],
    result: "i32",
  },
  zmq_msg_init: { parameters: ["buffer"], result: "i32" },
  zmq_msg_recv: { parameters: ["buffer", "pointer", "i32"], result: "i32" },
  zmq_msg_data: { parameters: ["buffer"], result: "pointer" },
  zmq_msg_size: { parameters: ["buffer"], result: "usize" },
  zmq_msg_more: { parameters: ["buffer"], result: "i32" },
  zmq_msg_close: { parameters: ["buffer"], result: "i32" },
  zmq_socket_monitor: {
    parameters: ["pointer", "buffer", "i32"],
    result: "i32",
  },
  zmq_curve_keypair: { parameters: ["buffer", "buffer"], result: "i32" },
  zmq_curve_public: { parameters: ["buffer", "buffer"], result: "i32" },
  zmq_poll: {
    parameters: ["buffer", "i32", "i64"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols. */
export type ZmqSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A loaded libzmq. */
export interface Libzmq {
  /** Where it was loaded from. */
  readonly path: string;
  /** `major.minor.patch`. */
  readonly version: string;
  /** Whether it was built with CURVE (libsodium or tweetnacl). */
  readonly curve: boolean;
  readonly sym: ZmqSymbols;
}

/** A NUL-terminated C string. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(s + "\0");
}

/** The last libzmq error: its errno and text. */
export function lastError(sym: ZmqSymbols): { errno: number; message: string } {
  const errno = sym.zmq_errno();
  const p = sym.zmq_strerror(errno);
  return {
    errno,
    message: p ? Deno.UnsafePointerView.getCString(p) : `errno ${errno}`,
  };
}

/**
 * Loads libzmq from `path` and checks it is 4.3 or newer (heartbeats, handshake events).
 *
 * @param path a library file, or a bare name the system loader searches (`libzmq.so.5`)
 * @returns the library
 * @throws {Error} when it cannot be loaded, lacks a symbol, or is older than 4.3
 */
export function openLibzmq(path: string): Libzmq {
  const lib = Deno.dlopen(path, SYMBOLS);
  const v = [new Int32Array(1), new Int32Array(1), new Int32Array(1)];
  lib.symbols.zmq_version(v[0], v[1], v[2]);
  const [major, minor, patch] = v.map((x) => x[0]);
  if (major < 4 || (major === 4 && minor < 3)) {
    lib.close();
    throw new Error(
      `libzmq ${major}.${minor}.${patch} is too old (need 4.3 or newer)`,
    );
  }
  return {
    path,
    version: `${major}.${minor}.${patch}`,
    curve: lib.symbols.zmq_has(cstr("curve")) === 1,
    sym: lib.symbols,
  };
}
