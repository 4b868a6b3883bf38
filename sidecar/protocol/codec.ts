/**
 * Canonical MessagePack (SPEC §2), the only place msgpackr's options are chosen.
 *
 * Why a canonicalisation pass: msgpackr writes object keys in insertion order (and JS puts
 * integer-like keys first), and picks float64 for integral numbers ≥ 2^32 but an integer for
 * `-0`. We rebuild every map as a `Map` with keys sorted by UTF-8 bytes and leave number
 * headers to msgpackr, whose choices match SPEC §2 with these options.
 *
 * @module
 */
import { Packr } from "msgpackr";
import { ProtocolError } from "./errors.ts";

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  variableMapSize: true,
  mapsAsObjects: true,
  useFloat32: 0,
  int64AsType: "number",
});

const utf8 = new TextEncoder();

/** Compares strings by their UTF-8 bytes (SPEC §2 key order), not UTF-16 code units. */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function canonical(v: unknown, path: string): unknown {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") return Object.is(v, -0) ? 0 : v;
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) {
    throw new TypeError(`Cannot encode typed array at ${path}: wrap it as a tensor map first`);
  }
  if (Array.isArray(v)) return v.map((x, i) => canonical(x, `${path}[${i}]`));
  if (typeof v === "object") {
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v as object);
    const m = new Map<string, unknown>();
    const kept = entries.filter(([, x]) => x !== undefined);
    for (const [k] of kept) {
      if (typeof k !== "string") throw new TypeError(`Cannot encode map key at ${path}: not a string`);
    }
    kept.sort(([a], [b]) => compareUtf8(a, b));
    for (const [k, x] of kept) m.set(k, canonical(x, `${path}.${k}`));
    return m;
  }
  throw new TypeError(`Cannot encode value at ${path}: unsupported type ${typeof v}`);
}

/**
 * Encodes a value as canonical MessagePack. Object and `Map` entries whose value is
 * `undefined` are omitted (absent optional fields, SPEC §2).
 *
 * @param value plain data: null, boolean, number, string, Uint8Array, arrays, objects/Maps
 * @returns the canonical bytes
 * @throws {TypeError} on values SPEC §2 has no encoding for (bigint, functions, typed arrays)
 * @example
 * ```ts
 * import { encode } from "./codec.ts";
 * const bytes = encode({ b: 2.0, a: "x" });
 * if (bytes[0] !== 0x82) throw new Error("expected a fixmap of 2");
 * ```
 */
export function encode(value: unknown): Uint8Array {
  // Copy: msgpackr returns a view into a buffer it reuses for the next pack, and zeromq.js
  // may still be sending the previous message from it.
  return Uint8Array.prototype.slice.call(packr.pack(canonical(value, "$")));
}

/**
 * Decodes one MessagePack value. Accepts any integer or float encoding; refuses extension
 * types and trailing bytes.
 *
 * @param bytes one complete MessagePack value
 * @returns plain data (maps as objects, bin as Uint8Array)
 * @throws {ProtocolError} `malformed` when the bytes are not exactly one MessagePack value
 * @example
 * ```ts
 * import { decode, encode } from "./codec.ts";
 * const v = decode(encode({ x: [1, 2] })) as { x: number[] };
 * if (v.x[1] !== 2) throw new Error("round trip failed");
 * ```
 */
export function decode(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new ProtocolError("malformed", "Cannot decode message: empty frame");
  let values: unknown[];
  try {
    values = packr.unpackMultiple(bytes) as unknown[];
  } catch (e) {
    throw new ProtocolError("malformed", `Cannot decode message: ${(e as Error).message}`);
  }
  if (values.length !== 1) {
    throw new ProtocolError(
      "malformed",
      `Cannot decode message: expected one MessagePack value, got ${values.length}`,
    );
  }
  return normalize(values[0], "$");
}

/** Rejects what msgpackr decoded from extension types and makes bin a plain Uint8Array view. */
function normalize(v: unknown, path: string): unknown {
  if (v === null || typeof v !== "object") {
    if (typeof v === "bigint") {
      throw new ProtocolError("malformed", `Cannot decode value at ${path}: 64-bit integer out of range`);
    }
    if (v === undefined) {
      throw new ProtocolError("malformed", `Cannot decode value at ${path}: undefined (extension type)`);
    }
    return v;
  }
  if (v instanceof Uint8Array) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map((x, i) => normalize(x, `${path}[${i}]`));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    throw new ProtocolError("malformed", `Cannot decode value at ${path}: extension type`);
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) o[k] = normalize(o[k], `${path}.${k}`);
  return o;
}
