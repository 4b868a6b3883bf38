/**
 * Axis ticks people can read, shared by the interactive charts and the SVG export.
 *
 * Why not uPlot's log ticks: they sit on powers of ten only, so a sharpness that moves
 * between 1.8 and 4 got one label. Here a log axis spanning less than a decade gets linear
 * 1-2-5 ticks, a few decades get 1, 2 and 5 per decade, and many decades powers of ten.
 *
 * @module
 */

/**
 * "Nice" linear ticks (steps of 1, 2 or 5 × 10^k) inside [min, max].
 *
 * @param {number} min
 * @param {number} max
 * @param {number} [target] Roughly how many ticks. Default 5.
 * @returns {number[]} Ascending; `[min]` when `min === max`; `[]` for non-finite bounds.
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * deepStrictEqual(linTicks(1.8, 4), [2, 2.5, 3, 3.5, 4]);
 * ```
 */
export function linTicks(min, max, target = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) return [];
  if (max === min) return [min];
  const raw = (max - min) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/**
 * Ticks for a log axis over [min, max] (both > 0).
 *
 * @param {number} min
 * @param {number} max
 * @returns {number[]} Ascending, at least two ticks whenever `min < max`.
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * deepStrictEqual(logTicks(1.8, 4), [2, 3, 4]);
 * deepStrictEqual(logTicks(0.3, 30), [0.5, 1, 2, 5, 10, 20]);
 * ```
 */
export function logTicks(min, max) {
  if (!(min > 0) || !Number.isFinite(max) || max < min) return [];
  const decades = Math.log10(max / min);
  if (decades < 0.7) {
    const t = linTicks(min, max, 4);
    return t.length >= 2 ? t : [min, max].map((v) => Number(v.toPrecision(3)));
  }
  const lo = Math.floor(Math.log10(min)), hi = Math.ceil(Math.log10(max));
  const mantissas = decades <= 1.5 ? [1, 2, 3, 5] : decades <= 4 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil(decades / 8));
  const out = [];
  for (let e = lo; e <= hi; e++) {
    if (mantissas.length === 1 && (e - lo) % every !== 0) continue;
    for (const m of mantissas) {
      const v = Number((m * 10 ** e).toPrecision(12));
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v);
    }
  }
  return out.length >= 2 ? out : [min, max].map((v) => Number(v.toPrecision(3)));
}
