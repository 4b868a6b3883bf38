import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { ProtocolError } from "../protocol/errors.ts";
import { decodeTensor, encodeTensor } from "../protocol/tensor.ts";
import { type OpChannel, type OpResult, RemoteOracle } from "./remote_oracle.ts";

/** A channel that records each op and answers with the next canned result. */
function channel(answers: OpResult[]) {
  const sent: { op: string; args: Record<string, unknown> }[] = [];
  const ch: OpChannel = {
    call: (op, args, parse) => {
      sent.push({ op, args });
      try {
        return Promise.resolve(parse(answers.shift()!));
      } catch (e) {
        return Promise.reject(e);
      }
    },
  };
  return { ch, sent };
}

const t = (data: number[], shape: number[]) => encodeTensor(new Float64Array(data), shape);
const code = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    assert(e instanceof ProtocolError, String(e));
    return e.code;
  }
  return "none";
};

Deno.test("RemoteOracle.expand() sends m×k×r and k×r tensors and reads proj, norms, kept, blocks", async () => {
  // m = 2, k = 1, r = 2, one column kept → blocks m × 2 × 1
  const { ch, sent } = channel([{
    basis: 2,
    hvps: 8,
    fields: { proj: t([1, 2], [1, 2]), norms: t([0.5, 0], [2]), kept: 1, kept_index: [0], blocks: t([1, 2, 3, 4], [2, 2, 1]) },
  }]);
  const o = new RemoteOracle(ch, 2, 1);
  const res = await o.expand(new Float64Array(4), new Float64Array(2), 2, true);
  assertEquals(sent[0].op, "expand");
  assertEquals(decodeTensor(sent[0].args.coeffs, "c").shape, [2, 1, 2]);
  assertEquals(decodeTensor(sent[0].args.basis_coeffs, "b").shape, [1, 2]);
  assertEquals(sent[0].args.blocks, true);
  assertEquals([[...res.proj], [...res.norms], res.keptIndex, [...res.blocks!]], [[1, 2], [0.5, 0], [0], [1, 2, 3, 4]]);
  assertEquals([o.basisSize, o.hvps], [2, 8]);
});

Deno.test("RemoteOracle.expand() refuses kept_index and basis that disagree with kept", async () => {
  const base = { proj: t([1, 2], [1, 2]), norms: t([1, 1], [2]) };
  const bad = [
    { basis: 2, hvps: 0, fields: { ...base, kept: 1, kept_index: [0, 1] } },
    { basis: 3, hvps: 0, fields: { ...base, kept: 1, kept_index: [1] } },
    { basis: 2, hvps: 0, fields: { ...base, kept: 1, kept_index: [2] } },
  ];
  for (const ans of bad) {
    const o = new RemoteOracle(channel([ans]).ch, 2, 1);
    assert(["malformed", "bad_tensor"].includes(await code(o.expand(new Float64Array(4), new Float64Array(2), 2, false))));
    assertEquals(o.basisSize, 1, "basis unchanged after a refused result");
  }
});

Deno.test("RemoteOracle.grads(), hutchinson() and rotate() check shapes against m, k, r", async () => {
  const m = 2, k = 1;
  const good = channel([
    { basis: 1, hvps: 2, fields: { losses: t([1, 2], [2]), sq_norms: t([1, 4], [2]), proj: t([1, 2], [2, 1]), mean_sq_norm: 0.5 } },
    { basis: 1, hvps: 6, fields: { quad: t([1, 2, 3, 4, 5, 6], [2, 3]), sq_norms: t([1, 2, 3, 4, 5, 6], [2, 3]) } },
    { basis: 2, hvps: 0, fields: {} },
  ]);
  const o = new RemoteOracle(good.ch, m, k);
  assertEquals((await o.grads()).meanSqNorm, 0.5);
  assertEquals((await o.hutchinson(3, 7)).quad.length, 6);
  await o.rotate(new Float64Array([1, 0]), 2);
  assertEquals([o.basisSize, o.hvps], [2, 8]);
  assertEquals(decodeTensor(good.sent[2].args.u, "u").shape, [1, 2]);

  const wrong = new RemoteOracle(channel([{ basis: 1, hvps: 0, fields: { quad: t([1, 2], [2, 1]), sq_norms: t([1, 2], [2, 1]) } }]).ch, m, k);
  assertEquals(await code(wrong.hutchinson(3, 7)), "bad_tensor");
  const nan = new RemoteOracle(channel([{ basis: 1, hvps: 0, fields: { losses: t([1, 2], [2]), sq_norms: t([1, 4], [2]), proj: t([1, 2], [2, 1]), mean_sq_norm: NaN } }]).ch, m, k);
  assertEquals(await code(nan.grads()), "non_finite");
});

Deno.test("RemoteOracle refuses bad arguments from the estimator with RangeError, sending nothing", async () => {
  const { ch, sent } = channel([]);
  const o = new RemoteOracle(ch, 2, 1);
  await rejects(async () => await o.blocks(0, 2), RangeError);
  await rejects(async () => await o.expand(new Float64Array(3), new Float64Array(2), 2, false), RangeError);
  await rejects(async () => await o.random(-1, 0), RangeError);
  assertEquals(sent.length, 0);
});

Deno.test("RemoteOracle on the factor route sends out_coeffs m×c×r and reads factors m×c×count", async () => {
  // m = 2, c = 3, k = 1, r = 1, one column kept
  const f = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  const { ch, sent } = channel([
    { basis: 2, hvps: 2, fields: { proj: t([1], [1, 1]), norms: t([0.5], [1]), kept: 1, kept_index: [0], factors: t(f(6), [2, 3, 1]) } },
    { basis: 2, hvps: 2, fields: { factors: t(f(12), [2, 3, 2]) } },
    { basis: 2, hvps: 2, fields: { factors: t(f(6), [2, 3, 1]) } },
  ]);
  const o = new RemoteOracle(ch, 2, 1, 3);
  const res = await o.expand(new Float64Array(6), new Float64Array(1), 1, true);
  assertEquals(Array.from(res.blocks!), f(6));
  assertEquals(decodeTensor(sent[0].args.out_coeffs, "u").shape, [2, 3, 1]);
  assert(!("coeffs" in sent[0].args));
  assertEquals(Array.from(await o.blocks(0, 2)), f(12));
  assertEquals(await code(o.blocks(0, 2)), "bad_tensor");
  assert(o.waitMs >= 0 && o.hvps === 4, `hvps ${o.hvps}`);
});

Deno.test("RemoteOracle.hessianGram() sends start/count and reads gram count×k, finite, basis unchanged", async () => {
  const m = 2, k = 3;
  const good = channel([{ basis: 3, hvps: 4, fields: { gram: t([1, 2, 3, 4, 5, 6], [2, 3]) } }]);
  const o = new RemoteOracle(good.ch, m, k);
  assertEquals([...(await o.hessianGram(1, 2))], [1, 2, 3, 4, 5, 6]);
  assertEquals(good.sent[0], { op: "hessian_gram", args: { start: 1, count: 2 } });
  assertEquals([o.basisSize, o.hvps], [3, 4]);
  const cases: [OpResult, string][] = [
    [{ basis: 3, hvps: 0, fields: { gram: t([1, 2, 3], [1, 3]) } }, "bad_tensor"], // count rows wrong
    [{ basis: 3, hvps: 0, fields: { gram: t([1, 2, 3, 4], [2, 2]) } }, "bad_tensor"], // k columns wrong
    [{ basis: 3, hvps: 0, fields: { gram: t([1, 2, NaN, 4, 5, 6], [2, 3]) } }, "non_finite"],
    [{ basis: 4, hvps: 0, fields: { gram: t([1, 2, 3, 4, 5, 6], [2, 3]) } }, "bad_tensor"], // basis must stay k
    [{ basis: 3, hvps: 0, fields: {} }, "malformed"],
  ];
  for (const [ans, want] of cases) {
    const got = await code(new RemoteOracle(channel([ans]).ch, m, k).hessianGram(1, 2));
    assert(got === want || (want === "malformed" && got === "bad_tensor"), `${got} vs ${want}`);
  }
  const none = channel([]);
  await rejects(async () => await new RemoteOracle(none.ch, m, k).hessianGram(2, 2), RangeError);
  await rejects(async () => await new RemoteOracle(none.ch, m, k).hessianGram(0, 0), RangeError);
  assertEquals(none.sent.length, 0);
});
