/**
 * The report as it goes on the wire: msgpack could carry NaN and ±Inf, but protocol/SPEC.md §5
 * promises finite numbers, and an absent field is what every client already handles.
 *
 * @module
 */
import type { Report } from "./round.ts";

/** Fields an interval needs; `eta_star_hi` may be absent only when `lambda_gen_lo` is 0 (then it is infinite). */
const CI_FIELDS = ["lambda_gen_lo", "lambda_gen_hi", "eta_star_lo", "level"];

/**
 * Remove non-finite numbers (and empty optional maps/arrays) so the report never carries NaN or
 * ±Inf. An interval whose lower end is 0 keeps its ends without `eta_star_hi` (unbounded); one
 * missing anything else is dropped whole, never sent half.
 */
export function dropNonFinite(r: Report): Report {
  const out = clean(r) as Record<string, unknown>;
  for (const key of ["bounds", "ci"]) {
    const v = out[key] as Record<string, unknown> | undefined;
    if (v && Object.keys(v).length === 0) delete out[key];
  }
  if (out.ci && !completeInterval(out.ci as Record<string, unknown>)) delete out.ci;
  for (const key of ["eta_star_by_batch", "warnings"]) {
    if (Array.isArray(out[key]) && (out[key] as unknown[]).length === 0) {
      delete out[key];
    }
  }
  return out as unknown as Report;
}

function completeInterval(ci: Record<string, unknown>): boolean {
  return CI_FIELDS.every((key) => key in ci) && ("eta_star_hi" in ci || ci.lambda_gen_lo === 0);
}

/** A deep copy without the non-finite numbers. */
function clean(v: unknown): unknown {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (Array.isArray(v)) return v.map(clean).filter((x) => x !== undefined);
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [key, x] of Object.entries(v)) {
      const c = clean(x);
      if (c !== undefined) o[key] = c;
    }
    return o;
  }
  return v;
}
