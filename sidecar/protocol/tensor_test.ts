import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { decodeTensor, encodeTensor } from "./tensor.ts";
import { ProtocolError } from "./errors.ts";

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    assert(e instanceof ProtocolError, String(e));
    return e.code;
  }
  return "none";
};

Deno.test("encodeTensor()/decodeTensor() round-trip f64 data and shape", () => {
  const t = decodeTensor(encodeTensor(new Float64Array([1, -2.5, 3, 4e-300]), [2, 2]), "x");
  assertEquals([...t.data], [1, -2.5, 3, 4e-300]);
  assertEquals(t.shape, [2, 2]);
});

Deno.test("decodeTensor() widens f32 and i32 and accepts an unaligned bin", () => {
  const f32 = new Uint8Array(new Float32Array([1.5, -0.25]).buffer);
  const shifted = new Uint8Array(9).subarray(1);
  shifted.set(f32);
  assertEquals([...decodeTensor({ data: shifted, dtype: "f32", shape: [2] }, "x").data], [1.5, -0.25]);
  const i32 = new Uint8Array(new Int32Array([7, -1]).buffer);
  assertEquals([...decodeTensor({ data: i32, dtype: "i32", shape: [2, 1] }, "x").data], [7, -1]);
});

Deno.test("decodeTensor() refuses bad tensors with bad_tensor", async (t) => {
  const eight = new Uint8Array(8);
  const cases: [string, unknown, number[] | undefined][] = [
    ["not a map", [1, 2], undefined],
    ["unknown dtype", { data: eight, dtype: "f16", shape: [4] }, undefined],
    ["data not bin", { data: "xx", dtype: "f64", shape: [1] }, undefined],
    ["negative dim", { data: eight, dtype: "f64", shape: [-1] }, undefined],
    ["byte length ≠ shape × itemsize", { data: eight, dtype: "f64", shape: [2] }, undefined],
    ["unexpected shape", { data: eight, dtype: "f64", shape: [1] }, [1, 1]],
  ];
  for (const [name, v, shape] of cases) {
    await t.step(name, () => assertEquals(code(() => decodeTensor(v, "x", { shape })), "bad_tensor"));
  }
});

Deno.test("decodeTensor() refuses NaN and Inf with non_finite unless allowed", () => {
  for (const x of [NaN, Infinity, -Infinity]) {
    const m = encodeTensor(new Float64Array([0, x]), [2]);
    assertEquals(code(() => decodeTensor(m, "x")), "non_finite");
    assert(Number.isNaN(x) || decodeTensor(m, "x", { finite: false }).data[1] === x);
  }
});

Deno.test("encodeTensor() refuses a shape that does not match", () => {
  throws(() => encodeTensor(new Float64Array(3), [2, 2]), RangeError);
});
