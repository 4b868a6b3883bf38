/**
 * Number, time and HTML formatting shared by the pages (browser) and the SVG export (Deno).
 * Plain JavaScript with JSDoc types, because the browser loads it as it is.
 *
 * @module
 */

/**
 * Formats a number with 4 significant digits, exponent notation outside [1e-3, 1e6).
 *
 * @param {unknown} v
 * @returns {string} `–` for anything that is not a finite number.
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(fmt(0.012345), "0.01235");
 * strictEqual(fmt(2e-5), "2e-5");
 * ```
 */
export function fmt(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) {
    return v.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  return String(Number(v.toPrecision(4)));
}

/**
 * Formats a margin lr/η* with three decimals, so 1.0003 (unstable) never reads as "1".
 *
 * @param {unknown} v
 * @returns {string}
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(fmtMargin(1.0003), "1.000");
 * strictEqual(fmtMargin(0.34081), "0.341");
 * ```
 */
export function fmtMargin(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  return Math.abs(v) >= 1000 ? fmt(v) : v.toFixed(3);
}

/**
 * Formats a count (model size, rounds) exactly below a million, else in millions or billions.
 *
 * @param {unknown} v
 * @returns {string}
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(fmtCount(11274), "11,274");
 * strictEqual(fmtCount(11173962), "11.17 M");
 * ```
 */
export function fmtCount(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return `${Number((v / 1e9).toPrecision(4))} B`;
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(4))} M`;
  return Math.round(v).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * Escapes text for HTML and SVG.
 *
 * @param {unknown} s
 * @returns {string}
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(esc('<a href="x">'), "&lt;a href=&quot;x&quot;&gt;");
 * ```
 */
export function esc(s) {
  return String(s ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}

/**
 * Formats seconds as `m:ss` or `h:mm:ss`.
 *
 * @param {number} s Seconds (may be fractional; rounded down).
 * @returns {string}
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(fmtDuration(3725), "1:02:05");
 * ```
 */
export function fmtDuration(s) {
  if (!Number.isFinite(s)) return "–";
  const sign = s < 0 ? "-" : "";
  let t = Math.floor(Math.abs(s));
  const h = Math.floor(t / 3600);
  t -= h * 3600;
  const m = Math.floor(t / 60);
  const sec = String(t - m * 60).padStart(2, "0");
  return h > 0 ? `${sign}${h}:${String(m).padStart(2, "0")}:${sec}` : `${sign}${m}:${sec}`;
}

/**
 * Formats unix seconds as `YYYY-MM-DD hh:mm:ss UTC`.
 *
 * @param {unknown} t
 * @returns {string}
 */
export function fmtDate(t) {
  if (typeof t !== "number" || !Number.isFinite(t)) return "–";
  return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

/**
 * Whether a run still reports: `live` while its last report is younger than five mean round
 * intervals (at least a minute; a run without reports counts from its start), else `ended`.
 *
 * Why a heuristic: the dashboard reads only the history, which does not record sessions.
 *
 * @param {{started: number, rounds: number, latest?: Record<string, unknown> | null}} run
 * @param {number} now Unix seconds.
 * @returns {"live" | "ended"}
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(runStatus({ started: 0, rounds: 10, latest: { time: 100 } }, 130), "live");
 * strictEqual(runStatus({ started: 0, rounds: 10, latest: { time: 100 } }, 200), "ended");
 * ```
 */
export function runStatus(run, now) {
  const t = run.latest?.time;
  const last = typeof t === "number" ? t : run.started;
  const mean = run.rounds > 1 ? (last - run.started) / run.rounds : 0;
  return now - last < Math.max(60, 5 * mean) ? "live" : "ended";
}

/**
 * The run page's optimizer cards (SPEC §5 optimizer fields): which dynamics the threshold is for,
 * and beside the exact `η*` the plain-SGD value and the full-batch value (for Adam the
 * `38/λ_max(P⁻¹H)`-style one) with the share of it batch noise leaves, Nesterov's upper bound.
 * Nothing for a report without `optimizer` (plain SGD as before).
 *
 * @param {Record<string, any> | null | undefined} r a report
 * @returns {{ k: string, v: string, cls?: string }[]} label, value, CSS class
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * const c = optimizerCards({ optimizer: { kind: "adam", description: "Adam, frozen preconditioner (β₁ = 0.9)", assumed: false }, method: "pencil", eta_star: 2.26, eta_star_full_batch: 26.2, eta_star_sgd: 1.07 });
 * strictEqual(c[0].v, "Adam, frozen preconditioner (β₁ = 0.9)");
 * strictEqual(c[2].v, "26.2 (exact η* is 8.626 % of it)");
 * ```
 */
export function optimizerCards(r) {
  const o = r?.optimizer;
  if (!o || typeof o !== "object") return [];
  const out = [{ k: "optimizer model", v: `${o.description ?? o.kind}${o.assumed ? " (assumed: not modelled)" : ""}`, cls: o.assumed ? "warn" : "" }];
  if (r.method === "sgd") return out;
  out.push({ k: "η* plain SGD", v: fmt(r.eta_star_sgd) });
  const fb = r.eta_star_full_batch;
  if (typeof fb === "number" && Number.isFinite(fb) && fb > 0) {
    const share = typeof r.eta_star === "number" && Number.isFinite(r.eta_star) ? ` (exact η* is ${fmt(100 * r.eta_star / fb)} % of it)` : "";
    out.push({ k: o.kind === "adam" ? "η* full batch (38/λ_max-style)" : "η* full batch", v: `${fmt(fb)}${share}` });
  }
  if (typeof r.eta_star_upper === "number") out.push({ k: "η* upper bound (Nesterov)", v: fmt(r.eta_star_upper) });
  return out;
}
