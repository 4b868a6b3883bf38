import { assert } from "./_assert.ts";
import { SpareBuffer } from "./_spare_buffer.ts";

Deno.test("SpareBuffer lends its buffer whole to one taker at a time and keeps the larger one given back", () => {
  let news = 0;
  const made = () => news; // a call: no narrowing between the checks
  const spare = new SpareBuffer<Float64Array>((n) => (news++, new Float64Array(n)));
  const a = spare.take(10);
  assert(a.length === 10 && made() === 1, "a new buffer when none is spare");
  spare.give(a);
  const b = spare.take(6);
  assert(b === a && made() === 1, "the spare when it fits");
  const c = spare.take(6);
  assert(c !== b && made() === 2, "a second taker gets its own buffer while the first holds the spare");
  spare.give(c);
  spare.give(b);
  assert(spare.take(8) === b, "the larger of two given back is kept");
  assert(spare.take(20).length === 20 && made() === 3, "a new buffer when the spare is too small");
});
