/**
 * CURVE for remote runs: key files and the ZAP handler that admits only listed clients.
 *
 * `--curve-keys DIR` reads `DIR/server.key_secret` (the server's key pair) and every
 * `DIR/clients/*.key` (allowed client public keys). Files are ZeroMQ certificates (ZPL) as
 * pyzmq's `zmq.auth.create_certificates` and `python -m edgewise keys` write them.
 * Without a ZAP handler libzmq would admit any client that knows the server's public key;
 * the handler (RFC 27, on `inproc://zeromq.zap.01` in the sidecar's context) checks the
 * client's key against the list and answers 200 or 400.
 *
 * @module
 */
import type { Logger } from "./log.ts";
import { ZMQ } from "./zmq_ffi.ts";
import type { ZmqContext, ZmqSocket } from "./zmq_socket.ts";

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/**
 * Z85-encodes bytes (length a multiple of 4), as ZeroMQ writes keys.
 * @example
 * ```ts
 * import { z85Encode } from "./curve.ts";
 * // the example of ZeroMQ RFC 32
 * if (z85Encode(new Uint8Array([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b])) !== "HelloWorld") throw new Error();
 * ```
 */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.byteLength % 4 !== 0) {
    throw new RangeError(
      `Cannot Z85-encode ${bytes.byteLength} bytes: not a multiple of 4`,
    );
  }
  let out = "";
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += 4) {
    let v = dv.getUint32(i);
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85[v % 85]);
      v = Math.floor(v / 85);
    }
    out += chunk.join("");
  }
  return out;
}

/** The server's keys and the allowed clients (Z85 public key → file name). */
export interface CurveKeys {
  publicKey: string;
  secretKey: string;
  clients: Map<string, string>;
}

/** Reads `public-key` (and `secret-key`) from a ZeroMQ certificate file. */
export function readCertificate(
  path: string,
): { publicKey: string; secretKey?: string } {
  const text = Deno.readTextFileSync(path);
  const field = (name: string) => new RegExp(`^\\s*${name}\\s*=\\s*"(.{40})"\\s*$`, "m").exec(text)?.[1];
  const publicKey = field("public-key");
  if (!publicKey) {
    throw new Error(
      `Cannot read ${path}: no public-key = "<40 Z85 characters>" line`,
    );
  }
  return { publicKey, secretKey: field("secret-key") };
}

/**
 * Loads `DIR/server.key_secret` and `DIR/clients/*.key`.
 * @throws {Error} naming the missing file or folder, or an empty client list
 */
export function loadCurveKeys(dir: string): CurveKeys {
  const server = readCertificate(`${dir}/server.key_secret`);
  if (!server.secretKey) {
    throw new Error(`Cannot read ${dir}/server.key_secret: no secret-key line`);
  }
  const clients = new Map<string, string>();
  let names: string[];
  try {
    names = [...Deno.readDirSync(`${dir}/clients`)].map((e) => e.name).filter((
      n,
    ) => n.endsWith(".key")).sort();
  } catch (e) {
    throw new Error(
      `Cannot read allowed client keys in ${dir}/clients: ${(e as Error).message}`,
    );
  }
  for (const n of names) {
    clients.set(
      readCertificate(`${dir}/clients/${n}`).publicKey,
      n.replace(/\.key$/, ""),
    );
  }
  if (clients.size === 0) {
    throw new Error(
      `No allowed client keys (*.key) in ${dir}/clients: make one with \`python -m edgewise keys ${dir}\``,
    );
  }
  return { publicKey: server.publicKey, secretKey: server.secretKey, clients };
}

/** Makes a socket a CURVE server with these keys. */
export function applyCurveServer(socket: ZmqSocket, keys: CurveKeys): void {
  socket.setOption(ZMQ.CURVE_SERVER, 1);
  socket.setOption(ZMQ.CURVE_SECRETKEY, keys.secretKey);
  socket.setOption(ZMQ.ZAP_DOMAIN, "edgewise");
}

const text = (s: string) => new TextEncoder().encode(s);

/**
 * Binds the context's ZAP handler and answers every request until the socket closes.
 * @returns the handler's socket (close it before terminating the context)
 */
export function startZapHandler(
  ctx: ZmqContext,
  clients: Map<string, string>,
  log: Logger,
): ZmqSocket {
  const zap = ctx.socket(ZMQ.ROUTER);
  zap.bind("inproc://zeromq.zap.01");
  (async () => {
    // [routing, "", version, request id, domain, address, identity, mechanism, credentials…]
    for await (const f of zap) {
      if (f.length < 8) continue;
      const [routing, empty, , requestId, , address, , mechanism, key] = f;
      const mech = new TextDecoder().decode(mechanism);
      const z85 = mech === "CURVE" && key?.byteLength === 32 ? z85Encode(key) : undefined;
      const name = z85 === undefined ? undefined : clients.get(z85);
      const addr = new TextDecoder().decode(address);
      if (name) log("info", "curve_accepted", { client: name, address: addr });
      else {log("warn", "curve_refused", {
          mechanism: mech,
          key: z85,
          address: addr,
          why: "client key not in the allowed list",
        });}
      const reply = name ? ["200", "OK", name] : ["400", "client key not allowed", ""];
      zap.trySend([
        routing,
        empty,
        text("1.0"),
        requestId,
        ...reply.map(text),
        new Uint8Array(0),
      ]);
    }
  })().catch((e) => log("error", "zap_failed", { error: String(e) }));
  return zap;
}
