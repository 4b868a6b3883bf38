/**
 * ZMTP 3.0 wire format (rfc.zeromq.org/spec/23), NULL mechanism only: greeting, READY
 * command and message frames, plus a buffered frame reader over a Deno connection.
 *
 * Why our own: zeromq.js (a Node-API addon) misbehaves under Deno — sockets stop reading
 * until an unrelated signal wakes them, and processes segfault at random (denoland/deno
 * #18345). ZMTP with the NULL mechanism is small, and any libzmq peer (pyzmq's DEALER)
 * speaks it.
 *
 * @module
 */

/** Frame flag bits. */
export const MORE = 0x01, LONG = 0x02, COMMAND = 0x04;

/** Our 64-byte greeting: signature, version 3.0, mechanism NULL, as-server flag, filler. */
export function greeting(asServer: boolean): Uint8Array {
  const g = new Uint8Array(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = 0;
  g.set(new TextEncoder().encode("NULL"), 12);
  g[32] = asServer ? 1 : 0;
  return g;
}

/** Checks a peer greeting; returns an error text or undefined. */
export function checkGreeting(g: Uint8Array): string | undefined {
  if (g[0] !== 0xff || (g[9] & 0x01) !== 1) return "not a ZMTP peer (bad signature)";
  if (g[10] < 3) return `ZMTP ${g[10]}.x is not supported (need 3.x)`;
  const mech = new TextDecoder().decode(g.subarray(12, 32)).replace(/\0+$/, "");
  if (mech !== "NULL") return `security mechanism ${mech} is not supported (need NULL)`;
  return undefined;
}

/** Encodes one frame with its header. */
export function encodeFrame(body: Uint8Array, flags: number): Uint8Array {
  const long = body.byteLength > 255;
  const head = long ? 9 : 2;
  const out = new Uint8Array(head + body.byteLength);
  out[0] = (flags & (MORE | COMMAND)) | (long ? LONG : 0);
  if (long) new DataView(out.buffer).setBigUint64(1, BigInt(body.byteLength));
  else out[1] = body.byteLength;
  out.set(body, head);
  return out;
}

/** Encodes a multipart message (`MORE` on all frames but the last). */
export function encodeMessage(frames: readonly Uint8Array[]): Uint8Array {
  const parts = frames.map((f, i) => encodeFrame(f, i < frames.length - 1 ? MORE : 0));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Encodes a command frame `name` with ZMTP metadata properties. */
export function encodeCommand(name: string, props: Record<string, string> = {}): Uint8Array {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [new Uint8Array([name.length]), enc.encode(name)];
  for (const [k, v] of Object.entries(props)) {
    const vb = enc.encode(v);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, vb.byteLength);
    chunks.push(new Uint8Array([k.length]), enc.encode(k), len, vb);
  }
  const body = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return encodeFrame(body, COMMAND);
}

/** Reads a command frame body into its name and properties. */
export function decodeCommand(body: Uint8Array): { name: string; props: Record<string, Uint8Array> } {
  const dec = new TextDecoder();
  const n = body[0] ?? 0;
  const name = dec.decode(body.subarray(1, 1 + n));
  const props: Record<string, Uint8Array> = {};
  if (name === "READY") {
    let at = 1 + n;
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    while (at < body.byteLength) {
      const kl = body[at];
      const k = dec.decode(body.subarray(at + 1, at + 1 + kl));
      at += 1 + kl;
      if (at + 4 > body.byteLength) break;
      const vl = dv.getUint32(at);
      props[k] = body.subarray(at + 4, at + 4 + vl);
      at += 4 + vl;
    }
  }
  return { name, props };
}

/** Writes all of `bytes` (Deno's `write` may write part). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) at += await conn.write(bytes.subarray(at));
}

/** Raised when a peer's frame exceeds the hard size limit; the connection is dropped. */
export class FrameTooLarge extends Error {}

/** Buffered reader of exact byte counts and ZMTP frames from a connection. */
export class FrameReader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Reads exactly `n` bytes (a fresh copy), or null at a clean end of stream. */
  async exact(n: number): Promise<Uint8Array | null> {
    while (this.#end - this.#start < n) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (this.#buf.byteLength < n) {
        const bigger = new Uint8Array(Math.max(this.#buf.byteLength * 2, n));
        bigger.set(this.#buf.subarray(0, this.#end));
        this.#buf = bigger;
      }
      const got = await this.#conn.read(this.#buf.subarray(this.#end));
      if (got === null) return null;
      this.#end += got;
    }
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** Reads one frame; null at end of stream. */
  async frame(maxSize: number): Promise<{ flags: number; body: Uint8Array } | null> {
    const f = await this.exact(1);
    if (!f) return null;
    const flags = f[0];
    let size: number;
    if (flags & LONG) {
      const s = await this.exact(8);
      if (!s) return null;
      size = Number(new DataView(s.buffer).getBigUint64(0));
    } else {
      const s = await this.exact(1);
      if (!s) return null;
      size = s[0];
    }
    if (size > maxSize) throw new FrameTooLarge(`Frame of ${size} bytes exceeds maxMessageSize: ${maxSize}`);
    const body = await this.exact(size);
    if (!body) return null;
    return { flags, body };
  }
}
