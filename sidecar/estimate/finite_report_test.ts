import { assert, assertEquals } from "./_assert.ts";
import { dropNonFinite } from "./finite_report.ts";
import type { Report } from "./round.ts";

const report = (fields: Record<string, unknown>) => ({ lambda_gen: 2, eta_star: 1, ...fields }) as unknown as Report;

Deno.test("dropNonFinite() keeps an interval whose lower end is 0, without its infinite η* end", () => {
  const ci = { lambda_gen_lo: 0, lambda_gen_hi: 4, eta_star_lo: 0.5, eta_star_hi: Infinity, level: 0.9 };
  const out = dropNonFinite(report({ ci }));
  assertEquals(out.ci as unknown, { lambda_gen_lo: 0, lambda_gen_hi: 4, eta_star_lo: 0.5, level: 0.9 });
});

Deno.test("dropNonFinite() drops an interval missing anything else, whole", () => {
  for (
    const ci of [
      { lambda_gen_lo: NaN, lambda_gen_hi: 4, eta_star_lo: 0.5, eta_star_hi: 1, level: 0.9 },
      { lambda_gen_lo: 1, lambda_gen_hi: 4, eta_star_lo: 0.5, eta_star_hi: Infinity, level: 0.9 },
      { lambda_gen_lo: 1, lambda_gen_hi: Infinity, eta_star_lo: 0, eta_star_hi: 2, level: 0.9 },
    ]
  ) {
    assert(!("ci" in dropNonFinite(report({ ci }))), JSON.stringify(ci));
  }
  const whole = { lambda_gen_lo: 1, lambda_gen_hi: 4, eta_star_lo: 0.5, eta_star_hi: 2, level: 0.9 };
  assertEquals(dropNonFinite(report({ ci: whole })).ci as unknown, whole);
});

Deno.test("dropNonFinite() removes NaN and ±Inf everywhere, and empty optional maps and lists", () => {
  const out = dropNonFinite(report({
    margin: NaN, eta_gd: Infinity, bounds: { rank_one: -Infinity }, warnings: [],
    eta_star_by_batch: [{ B: 1, eta_star: Infinity }], nested: { a: [1, NaN, 2] },
  })) as unknown as Record<string, unknown>;
  assertEquals(out, { lambda_gen: 2, eta_star: 1, eta_star_by_batch: [{ B: 1 }], nested: { a: [1, 2] } });
});
