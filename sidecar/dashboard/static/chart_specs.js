/**
 * What each chart shows, as plain data: lines, bands, markers and labels built from a run's
 * columnar series. The page turns a spec into an interactive uPlot chart
 * (`uplot_chart.js`); `svg.js` turns the same spec into an SVG file, in the page (export
 * buttons) and on the server (`deno task plot`), so all three always agree.
 *
 * @module
 */
import { fmt } from "./format.js";

/**
 * @typedef {object} Line One drawn series.
 * @property {string} label Legend name (unique within a chart).
 * @property {number[]} x Ascending x values.
 * @property {(number | null)[]} y Same length as `x`; `null` leaves a gap.
 * @property {string} color
 * @property {number} [width] Stroke width in px. Default 1.5.
 * @property {number[]} [dash] Dash pattern.
 * @property {"line" | "step" | "points"} [kind] Default `line`; `step` holds until the next x.
 * @property {number} [size] Point diameter for `points`.
 */

/**
 * @typedef {object} ChartSpec
 * @property {string} id Stable name (`sharpness`, `margin`, ...).
 * @property {string} title
 * @property {string} xLabel
 * @property {string} yLabel
 * @property {"step" | "epoch" | "wall" | "batch"} xMode How to label x ticks.
 * @property {boolean} [logX]
 * @property {boolean} [logY]
 * @property {Line[]} lines
 * @property {{lo: string, hi: string, color: string}[]} bands Filled between two lines.
 * @property {{x: number, label: string, color: string}[]} vlines Vertical markers.
 * @property {string} [caption] One line under the chart saying what could be misread.
 */

/** Bits of the series' `flags` column. */
export const FLAG = Object.freeze({ notConverged: 1, warnings: 2, negativeCurvature: 4 });

/**
 * Whether a minimum curvature is meaningfully negative: below `-1e-6·λ_max` (or below 0 when
 * λ_max is unknown). Why a tolerance: a PSD curvature (GGN) comes out as −1e-16 in round-off,
 * which is zero, not a saddle.
 *
 * @param {number | null | undefined} mc
 * @param {number | null | undefined} lambdaMax
 * @returns {boolean}
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(negativeCurvature(-1.9e-16, 2), false);
 * strictEqual(negativeCurvature(-0.01, 2), true);
 * ```
 */
export function negativeCurvature(mc, lambdaMax) {
  if (typeof mc !== "number" || !Number.isFinite(mc)) return false;
  const scale = typeof lambdaMax === "number" && Number.isFinite(lambdaMax) ? Math.abs(lambdaMax) : 0;
  return mc < -1e-6 * scale;
}

/** x-axis choices: column and axis label. */
export const X_MODES = Object.freeze({
  step: "training step",
  epoch: "epoch",
  wall: "wall time since start (h:mm:ss)",
});

const C = {
  max: "#1f77b4",
  gen: "#ff7f0e",
  band: "rgba(255,127,14,0.18)",
  edge: "#d62728",
  margin: "#9467bd",
  lr: "#2ca02c",
  sugg: "#17becf",
  bound: "#7f7f7f",
  curv: "#8c564b",
  loss: "#1f77b4",
  floor: "#e377c2",
  bad: "#d62728",
  warn: "#e6a100",
};

/** Colours of the runs in the compare view. */
export const RUN_COLORS = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];

/**
 * The x values of a series for an x-axis choice, and the indices usable with them (finite,
 * non-decreasing).
 *
 * @param {Record<string, (number | null)[]>} s Columnar series (`/api/runs/:id/series`).
 * @param {"step" | "epoch" | "wall"} mode
 * @param {number} t0 Start time (unix seconds) for `wall`.
 * @returns {{x: number[], idx: number[]}}
 */
export function xOf(s, mode, t0) {
  const raw = mode === "epoch"
    ? s.epoch
    : mode === "wall"
    ? s.time.map((t) => (t == null ? null : t - t0))
    : s.step.every((v) => v != null)
    ? s.step
    : s.step.map((v, i) => v ?? s.round[i]);
  const x = [], idx = [];
  let last = -Infinity;
  // Fast path: every value usable and ascending, so x is the column itself.
  if (raw.every((v, i) => typeof v === "number" && Number.isFinite(v) && (i === 0 || v >= raw[i - 1]))) {
    return { x: raw, idx: raw.map((_, i) => i) };
  }
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (typeof v === "number" && Number.isFinite(v) && v >= last) {
      x.push(v);
      idx.push(i);
      last = v;
    }
  }
  return { x, idx };
}

/**
 * A column's values at `idx`: the column itself when `idx` is every index (the usual case),
 * so a 10,000-round run is not copied once per line on each live update.
 */
function pick(col, idx) {
  if (Array.isArray(col) && col.length === idx.length) return col;
  return idx.map((i) => col?.[i] ?? null);
}

/** @returns {boolean} Whether a column has any number at the given indices. */
function has(col, idx) {
  return Array.isArray(col) && idx.some((i) => col[i] != null);
}

/**
 * Builds a line from a column (skipped by callers when the column is empty).
 *
 * @returns {Line}
 */
function line(label, x, col, idx, color, extra = {}) {
  return { label, x, y: pick(col, idx), color, ...extra };
}

/** Marker points at `col`'s values where `flags` has `bit`. */
function flagged(label, x, s, col, idx, bit, color) {
  const y = idx.map((i) => ((s.flags?.[i] ?? 0) & bit ? col[i] ?? null : null));
  return { label, x, y, color, kind: "points", size: 9 };
}

/**
 * The sharpness chart: λ_max, λ_gen with its interval, the lower bounds and the edge 2/lr.
 *
 * The interval's lower end is drawn no lower than λ_max: the exact λ_gen is never below
 * λ_max, so a bootstrap interval reaching under it would invite a misreading; the caption
 * says on how many rounds that happened.
 *
 * @param {Record<string, (number | null)[]>} s
 * @param {{x: number[], idx: number[]}} xs From {@linkcode xOf}.
 * @param {{title?: string, xMode?: string}} [o]
 * @returns {ChartSpec}
 */
export function sharpnessSpec(s, xs, o = {}) {
  const { x, idx } = xs;
  let clipped = 0;
  const lo = idx.map((i) => {
    const l = s.lo?.[i], m = s.lambda_max?.[i];
    if (l == null) return null;
    if (m != null && l < m) {
      clipped++;
      return m;
    }
    return l;
  });
  // the interval first, so that λ_max and λ_gen are drawn over it (a clipped lower end runs
  // along λ_max and would hide it)
  const lines = [];
  const bands = [];
  if (has(s.lo, idx) && has(s.hi, idx)) {
    lines.push({ label: "λ_gen CI lo", x, y: lo, color: C.band, width: 1 });
    lines.push(line("λ_gen CI hi", x, s.hi, idx, C.band, { width: 1 }));
    bands.push({ lo: "λ_gen CI lo", hi: "λ_gen CI hi", color: C.band });
  }
  if (has(s.lambda_max, idx)) lines.push(line("λ_max", x, s.lambda_max, idx, C.max, { width: 2 }));
  if (has(s.lambda_gen, idx)) lines.push(line("λ_gen", x, s.lambda_gen, idx, C.gen, { width: 2 }));
  const bounds = [
    ["bound_top", "lower bound: top eigvec", [2, 3]],
    ["bound_identity", "lower bound: identity", [6, 3]],
    ["bound_rank_one", "lower bound: rank-one", [1, 3]],
  ];
  for (const [k, label, dash] of bounds) {
    if (has(s[k], idx)) lines.push(line(label, x, s[k], idx, C.bound, { width: 1, dash }));
  }
  if (has(s.lr, idx)) {
    const edge = s.lr.map((v) => (v ? 2 / v : null));
    lines.push(line("2/lr", x, edge, idx, C.edge, { dash: [6, 4], kind: "step" }));
  }
  lines.push(...markers(s, x, s.lambda_gen ?? [], idx));
  return {
    id: "sharpness",
    title: o.title ?? "Sharpness",
    xLabel: X_MODES[o.xMode ?? "step"] ?? "",
    yLabel: "curvature (log)",
    xMode: /** @type {any} */ (o.xMode ?? "step"),
    logY: true,
    lines,
    bands,
    vlines: [],
    caption: clipped > 0
      ? `λ_gen CI drawn no lower than λ_max (λ_gen ≥ λ_max always; the bootstrap's lower end fell below it on ${clipped} rounds)`
      : undefined,
  };
}

/** Non-converged and warning markers on the values `col`. */
function markers(s, x, col, idx) {
  const out = [];
  if (has(s.flags, idx) && idx.some((i) => s.flags[i] & FLAG.notConverged)) {
    out.push(flagged("not converged", x, s, col, idx, FLAG.notConverged, C.bad));
  }
  if (has(s.flags, idx) && idx.some((i) => s.flags[i] & FLAG.warnings)) {
    out.push(flagged("warning", x, s, col, idx, FLAG.warnings, C.warn));
  }
  return out;
}

/**
 * The margin chart: lr/η* with its interval against the edge at 1.
 *
 * @param {Record<string, (number | null)[]>} s
 * @param {{x: number[], idx: number[]}} xs
 * @param {{xMode?: string}} [o]
 * @returns {ChartSpec}
 */
export function marginSpec(s, xs, o = {}) {
  const { x, idx } = xs;
  const lines = [line("margin lr/η*", x, s.margin ?? [], idx, C.margin, { width: 2 })];
  const bands = [];
  if (has(s.lo, idx) && has(s.hi, idx) && has(s.lr, idx)) {
    const at = (col) => s.lr.map((v, i) => (v != null && col[i] != null ? (v * col[i]) / 2 : null));
    lines.push(line("margin CI lo", x, at(s.lo), idx, "rgba(148,103,189,0.2)", { width: 1 }));
    lines.push(line("margin CI hi", x, at(s.hi), idx, "rgba(148,103,189,0.2)", { width: 1 }));
    bands.push({ lo: "margin CI lo", hi: "margin CI hi", color: "rgba(148,103,189,0.18)" });
  }
  lines.push({ label: "edge", x, y: x.map(() => 1), color: C.edge, dash: [6, 4] });
  lines.push(...markers(s, x, s.margin ?? [], idx));
  return {
    id: "margin",
    title: "Margin lr/η* (unstable above 1)",
    xLabel: X_MODES[o.xMode ?? "step"] ?? "",
    yLabel: "lr/η*",
    xMode: /** @type {any} */ (o.xMode ?? "step"),
    lines,
    bands,
    vlines: [],
  };
}

/**
 * The learning-rate chart: the lr used, the suggested lr and η*, with every change of the lr
 * (a StabilityLR step or a schedule) marked.
 *
 * @param {Record<string, (number | null)[]>} s
 * @param {{x: number[], idx: number[]}} xs
 * @param {{xMode?: string}} [o]
 * @returns {ChartSpec}
 */
export function lrSpec(s, xs, o = {}) {
  const { x, idx } = xs;
  const lines = [line("lr", x, s.lr ?? [], idx, C.lr, { width: 2, kind: "step" })];
  if (has(s.suggested_lr, idx)) {
    lines.push(line("suggested lr", x, s.suggested_lr, idx, C.sugg, { dash: [4, 3] }));
  }
  if (has(s.eta_star, idx)) lines.push(line("η* = 2/λ_gen", x, s.eta_star, idx, C.gen, { width: 1 }));
  const vlines = [];
  let prev = null;
  const changes = idx.map((i, j) => {
    const v = s.lr?.[i] ?? null;
    const changed = v != null && prev != null && Math.abs(v - prev) > 1e-12 * Math.abs(prev);
    if (v != null) prev = v;
    if (changed) vlines.push({ x: x[j], label: `lr → ${fmt(v)}`, color: C.lr });
    return changed ? v : null;
  });
  if (vlines.length) lines.push({ label: "lr change", x, y: changes, color: C.lr, kind: "points", size: 9 });
  return {
    id: "lr",
    title: "Learning rate",
    xLabel: X_MODES[o.xMode ?? "step"] ?? "",
    yLabel: "lr (log)",
    xMode: /** @type {any} */ (o.xMode ?? "step"),
    logY: true,
    lines,
    bands: [],
    vlines: vlines.length > 40 ? [] : vlines,
  };
}

/**
 * The minimum-curvature chart, with negative values marked; `null` when no report has it.
 *
 * @param {Record<string, (number | null)[]>} s
 * @param {{x: number[], idx: number[]}} xs
 * @param {{xMode?: string}} [o]
 * @returns {ChartSpec | null}
 */
export function curvatureSpec(s, xs, o = {}) {
  const { x, idx } = xs;
  if (!has(s.min_curvature, idx)) return null;
  const neg = idx.map((i) => (negativeCurvature(s.min_curvature[i], s.lambda_max?.[i]) ? s.min_curvature[i] : null));
  const lines = [
    line("min curvature", x, s.min_curvature, idx, C.curv, { width: 2 }),
    { label: "zero", x, y: x.map(() => 0), color: "#999", dash: [2, 3], width: 1 },
  ];
  if (neg.some((v) => v != null)) lines.push({ label: "negative", x, y: neg, color: C.bad, kind: "points", size: 8 });
  return {
    id: "curvature",
    title: "Minimum curvature (negative: not at a minimum)",
    xLabel: X_MODES[o.xMode ?? "step"] ?? "",
    yLabel: "min curvature",
    xMode: /** @type {any} */ (o.xMode ?? "step"),
    lines,
    bands: [],
    vlines: [],
  };
}

/**
 * The loss chart: the training loss the client sent and the loss floor; `null` when neither
 * is in any report.
 *
 * @param {Record<string, (number | null)[]>} s
 * @param {{x: number[], idx: number[]}} xs
 * @param {{xMode?: string}} [o]
 * @returns {ChartSpec | null}
 */
export function lossSpec(s, xs, o = {}) {
  const { x, idx } = xs;
  const lines = [];
  if (has(s.loss, idx)) lines.push(line("training loss", x, s.loss, idx, C.loss, { width: 2 }));
  if (has(s.loss_floor, idx)) lines.push(line("loss floor", x, s.loss_floor, idx, C.floor, { dash: [5, 3], width: 2 }));
  if (!lines.length) return null;
  return {
    id: "loss",
    title: lines.length === 2 ? "Training loss and loss floor" : `${lines[0].label} (no ${lines[0].label === "loss floor" ? "training loss" : "loss floor"} sent)`,
    xLabel: X_MODES[o.xMode ?? "step"] ?? "",
    yLabel: "loss",
    xMode: /** @type {any} */ (o.xMode ?? "step"),
    lines,
    bands: [],
    vlines: [],
  };
}

/**
 * The η*(B) curve of one report, with its lr and batch size marked.
 *
 * @param {Record<string, unknown> | null} r A report (the latest).
 * @returns {ChartSpec}
 */
export function batchSpec(r) {
  const grid = Array.isArray(r?.eta_star_by_batch) ? r.eta_star_by_batch : [];
  const pts = grid.filter((e) => e && e.B > 0 && e.eta_star > 0).sort((a, b) => a.B - b.B);
  const x = pts.map((e) => e.B);
  const lines = [{ label: "η*(B)", x, y: pts.map((e) => e.eta_star), color: C.gen, width: 2 }];
  const vlines = [];
  const lr = typeof r?.lr === "number" ? r.lr : null;
  const B = typeof r?.batch_size === "number" ? r.batch_size : null;
  if (lr != null && x.length) {
    lines.push({ label: `lr = ${fmt(lr)}`, x, y: x.map(() => lr), color: C.lr, dash: [6, 4] });
  }
  if (B != null && x.length) {
    const j = x.indexOf(B);
    lines.push({ label: `run's B = ${B}`, x, y: x.map((_, i) => (i === j ? pts[i].eta_star : null)), color: C.edge, kind: "points", size: 11 });
    vlines.push({ x: B, label: `B = ${B}`, color: C.edge });
  }
  return {
    id: "batch",
    title: r ? `η*(B) at round ${r.round}: stable where η* ≥ lr` : "η*(B)",
    xLabel: "batch size B (log)",
    yLabel: "η* (log)",
    xMode: "batch",
    logX: true,
    logY: true,
    lines,
    bands: [],
    vlines,
    caption: typeof r?.min_stable_batch === "number" ? `smallest stable batch on the grid: ${r.min_stable_batch}` : undefined,
  };
}

/**
 * Every chart of a run page, in page order (absent data: chart left out).
 *
 * @param {Record<string, (number | null)[]>} s
 * @param {Record<string, unknown> | null} latest The last report.
 * @param {{xMode?: "step" | "epoch" | "wall", t0?: number, title?: string}} [o]
 * @returns {ChartSpec[]}
 */
export function runCharts(s, latest, o = {}) {
  const mode = o.xMode ?? "step";
  const xs = xOf(s, mode, o.t0 ?? s.time?.find((t) => t != null) ?? 0);
  return [
    sharpnessSpec(s, xs, o),
    marginSpec(s, xs, o),
    lrSpec(s, xs, o),
    batchSpec(latest),
    curvatureSpec(s, xs, o),
    lossSpec(s, xs, o),
  ].filter((c) => c !== null);
}

/**
 * Charts overlaying several runs: one line per run for margin, λ_gen, λ_max and lr.
 *
 * @param {{id?: string, name: string, started?: number, series: Record<string, (number | null)[]>}[]} runs
 * @param {{xMode?: "step" | "epoch" | "wall"}} [o]
 * @returns {ChartSpec[]}
 */
export function compareCharts(runs, o = {}) {
  const mode = o.xMode ?? "step";
  const xsOf = runs.map((r) => xOf(r.series, mode, r.series.time?.find((t) => t != null) ?? r.started ?? 0));
  const names = runs.map((r) => r.name);
  const label = (r, k) => (names.indexOf(r.name) === k && names.lastIndexOf(r.name) === k ? r.name : `${r.name} (${r.id ?? k + 1})`);
  const spec = (id, title, key, logY, yLabel) => {
    const lines = runs.map((r, k) => line(label(r, k), xsOf[k].x, r.series[key] ?? [], xsOf[k].idx, RUN_COLORS[k % RUN_COLORS.length], { width: 2 }));
    return { id, title, xLabel: X_MODES[mode], yLabel, xMode: mode, logY, lines, bands: [], vlines: [] };
  };
  const margin = spec("margin", "Margin lr/η* (unstable above 1)", "margin", false, "lr/η*");
  const all = xsOf.flatMap((xs) => xs.x);
  if (all.length) {
    const lo = all.reduce((a, b) => Math.min(a, b)), hi = all.reduce((a, b) => Math.max(a, b));
    margin.lines.push({ label: "edge", x: lo === hi ? [lo] : [lo, hi], y: lo === hi ? [1] : [1, 1], color: C.edge, dash: [6, 4] });
  }
  return [
    margin,
    spec("lambda_gen", "λ_gen", "lambda_gen", true, "λ_gen (log)"),
    spec("lambda_max", "λ_max", "lambda_max", true, "λ_max (log)"),
    spec("lr", "Learning rate", "lr", true, "lr (log)"),
  ];
}
