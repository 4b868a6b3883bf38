import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { compareUtf8, decode, encode } from "./codec.ts";
import { ProtocolError } from "./errors.ts";

const VECTORS = fromFileUrl(new URL("../../protocol/vectors/", import.meta.url));

/** Runs `f`, asserts it throws an instance of `cls`, returns the error. */
function assertThrows<E>(f: () => unknown, cls: new (...a: never[]) => E): E {
  try {
    f();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    return e;
  }
  throw new Error(`expected ${cls.name}, nothing thrown`);
}

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => new Uint8Array(s.match(/../g)?.map((x) => parseInt(x, 16)) ?? []);

/** protocol/vectors/README.md's JSON conventions → plain values. */
function fromJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === "$bin") return unhex(o.$bin as string);
  if (keys.length === 1 && keys[0] === "$float") return Number(o.$float);
  if (keys.length === 1 && keys[0] === "$tensor") {
    const t = o.$tensor as { dtype: string; shape: number[]; data: unknown[] };
    const nums = t.data.map((x) => fromJson(x) as number);
    const arr = t.dtype === "f64"
      ? Float64Array.from(nums)
      : t.dtype === "f32"
      ? Float32Array.from(nums)
      : Int32Array.from(nums);
    return { data: new Uint8Array(arr.buffer), dtype: t.dtype, shape: t.shape };
  }
  return Object.fromEntries(keys.map((k) => [k, fromJson(o[k])]));
}

/** Deep equality where numbers compare numerically (NaN equals NaN, -0 equals 0). */
function same(a: unknown, b: unknown, path = "$"): void {
  if (typeof a === "number" && typeof b === "number") {
    assert(a === b || (Number.isNaN(a) && Number.isNaN(b)), `${path}: ${a} != ${b}`);
  } else if (a instanceof Uint8Array || b instanceof Uint8Array) {
    assert(a instanceof Uint8Array && b instanceof Uint8Array, `${path}: bin vs non-bin`);
    assertEquals(hex(a), hex(b), path);
  } else if (Array.isArray(a) || Array.isArray(b)) {
    assert(Array.isArray(a) && Array.isArray(b), `${path}: array vs non-array`);
    assertEquals(a.length, b.length, `${path}: length`);
    a.forEach((x, i) => same(x, b[i], `${path}[${i}]`));
  } else if (a !== null && typeof a === "object" && b !== null && typeof b === "object") {
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    assertEquals(ka, kb, `${path}: keys`);
    for (const k of ka) {
      same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    }
  } else {
    assertEquals(a, b, path);
  }
}

const files = [...Deno.readDirSync(VECTORS)]
  .map((e) => e.name)
  .filter((n) => /^\d\d_.*\.json$/.test(n))
  .sort();

Deno.test("golden vectors: every message type is covered", () => {
  assert(files.length >= 20, `only ${files.length} vectors`);
  const types = new Set(
    files.map((f) => (JSON.parse(Deno.readTextFileSync(VECTORS + f)).value as { type?: string }).type),
  );
  for (const t of ["hello", "welcome", "round", "op", "result", "report", "heartbeat", "bye", "error"]) {
    assert(types.has(t), `no vector for ${t}`);
  }
});

for (const f of files) {
  Deno.test(`golden vector ${f}: encode gives the canonical bytes, decode gives the value`, () => {
    const doc = JSON.parse(Deno.readTextFileSync(VECTORS + f));
    const value = fromJson(doc.value);
    assertEquals(hex(encode(value)), doc.msgpack_hex);
    same(decode(unhex(doc.msgpack_hex)), value);
  });
}

Deno.test("encode() sorts keys by UTF-8 bytes, including integer-like keys", () => {
  assertEquals(hex(encode({ b: 1, "10": 2, "9": 3 })), "83" + "a23130" + "02" + "a139" + "03" + "a162" + "01");
  assert(compareUtf8("\uff5a", "\u{1d706}") < 0);
});

Deno.test("encode() omits undefined fields and refuses typed arrays and bigints", () => {
  assertEquals(hex(encode({ a: undefined, b: 1 })), "81a16201");
  assertThrows(() => encode({ a: new Float64Array(2) }), TypeError);
  assertThrows(() => encode({ a: 1n }), TypeError);
});

Deno.test("decode() refuses bad bytes with malformed", async (t) => {
  const cases: [string, number[]][] = [
    ["empty frame", []],
    ["truncated map", [0x82, 0x01]],
    ["extension type", [0xd4, 0x01, 0x02]],
    ["trailing bytes", [0x01, 0x02]],
    ["reserved byte 0xc1", [0xc1]],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, () => {
      const e = assertThrows(() => decode(new Uint8Array(bytes)), ProtocolError);
      assertEquals(e.code, "malformed");
    });
  }
});
