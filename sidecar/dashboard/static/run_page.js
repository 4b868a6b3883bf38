/**
 * Run page: follows `/api/runs/:id/events` (server-sent events) and redraws on the next
 * animation frame after each report. `document.body.dataset.points` (rounds received),
 * `.drawn` (points held), `.renderMs` (last redraw, until the next frame) and
 * `window.edgewise` (the chart panels) are there for the tests and the benchmark.
 *
 * @module
 */
import { esc, fmt, fmtDate, fmtMargin, optimizerCards } from "./format.js";
import { FLAG, negativeCurvature, runCharts } from "./chart_specs.js";
import { ChartGroup, syncPanels } from "./uplot_chart.js";

// Beyond this many points (at least twice what the server first sent), every other unflagged
// point goes: a long live run stays light.
let maxPoints = 4000;
const runId = document.querySelector('meta[name="edgewise-run"]').content;
const chartsEl = document.getElementById("charts");
const group = new ChartGroup("run");
/** @type {Map<string, import("./uplot_chart.js").ChartPanel>} */
const panels = new Map();
let series = null, notes = [], latest = null, total = 0, run = null, queued = false;
let xMode = "step", noteVersion = 0, shownNotes = -1;

function decimate(s) {
  const n = s.round.length;
  const keep = s.round.map((_, i) => i % 2 === 0 || i === n - 1 || s.flags[i] !== 0);
  for (const k of Object.keys(s)) s[k] = s[k].filter((_, i) => keep[i]);
}

function card(k, v, cls = "") {
  return `<div class="card"><div class="k">${esc(k)}</div><div class="v ${cls}">${esc(v)}</div></div>`;
}

function cards(r) {
  if (!r) return "";
  const ci = r.ci ?? {};
  const warnings = Array.isArray(r.warnings) ? r.warnings.length : 0;
  return card("margin lr/η*", fmtMargin(r.margin), r.margin > 1 ? "bad" : "ok") +
    card("η* = 2/λ_gen", fmt(r.eta_star)) +
    optimizerCards(r).map((c) => card(c.k, c.v, c.cls)).join("") +
    card("lr", fmt(r.lr)) + card("suggested lr", fmt(r.suggested_lr)) +
    card(`λ_gen${ci.lambda_gen_lo != null ? ` (${fmt(ci.lambda_gen_lo)}–${fmt(ci.lambda_gen_hi)})` : ""}`, fmt(r.lambda_gen)) +
    card("λ_max", fmt(r.lambda_max)) +
    card("min stable B", r.min_stable_batch ?? "–") + card("step", fmt(r.step)) +
    (r.converged === false ? card("round", `not converged${r.stopped ? ` (${r.stopped})` : ""}`, "bad") : "") +
    (typeof r.min_curvature === "number" ? card("min curvature", fmt(r.min_curvature), negativeCurvature(r.min_curvature, r.lambda_max) ? "bad" : "") : "") +
    (warnings ? card("warnings", `${warnings}`, "warn") : "");
}

function what(n) {
  const w = [];
  if (n.flags & FLAG.notConverged) w.push(`<span class="bad">not converged</span>`);
  if (n.flags & FLAG.warnings) w.push(`<span class="warn">warning</span>`);
  if (n.flags & FLAG.negativeCurvature) w.push(`<span class="bad">negative curvature</span>`);
  return w.join(", ");
}

function notesTable() {
  document.getElementById("notes-count").textContent = notes.length
    ? `(${notes.length}: rounds that did not converge, had warnings or negative curvature)`
    : "(none: every round converged without warnings)";
  if (!notes.length) return "";
  const rows = notes.slice(-200).reverse().map((n) =>
    `<tr data-round="${n.round}"><td class="num">${n.round}</td><td class="num">${esc(fmt(n.step))}</td><td>${what(n)}</td>` +
    `<td>${esc(n.stopped ?? "–")}</td><td class="num">${esc(fmt(n.residual))}</td><td class="num">${esc(fmt(n.min_curvature))}</td>` +
    `<td class="text">${n.warnings.map(esc).join("<br>") || "–"}</td></tr>`
  ).join("");
  return `<thead><tr><th>round</th><th>step</th><th>what</th><th>stopped</th><th>residual</th><th>min curvature</th><th>warnings (full text)</th></tr></thead><tbody>${rows}</tbody>`;
}

function cell(k, v) {
  if (k === "time" && typeof v === "number") return fmtDate(v);
  if (k === "eta_star_by_batch" && Array.isArray(v)) {
    return v.map((e) => `B=${e.B}: η*=${fmt(e.eta_star)}`).join(" · ");
  }
  if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join("\n") : "none";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : fmt(v);
  return String(v);
}

function latestTable(r) {
  if (!r) return "<tr><td>No reports yet.</td></tr>";
  const rows = [];
  const walk = (prefix, v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    } else rows.push([prefix, cell(prefix, v)]);
  };
  walk("", r);
  return `<thead><tr><th colspan="2">Latest report (round ${esc(r.round)})</th></tr></thead><tbody>` +
    rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="text" style="white-space:pre-line">${esc(v)}</td></tr>`).join("") +
    "</tbody>";
}

function render() {
  queued = false;
  if (!series) return;
  const started = performance.now();
  const t0 = series.time.find((t) => t != null) ?? run?.started ?? 0;
  const specs = runCharts(series, latest, { xMode, t0, title: `${run?.name ?? runId}: sharpness` });
  syncPanels(chartsEl, panels, specs, group, { fileName: run?.name ?? runId });
  document.getElementById("cards").innerHTML = cards(latest);
  if (noteVersion !== shownNotes) {
    document.getElementById("notes").innerHTML = notesTable();
    shownNotes = noteVersion;
  }
  document.getElementById("latest").innerHTML = latestTable(latest);
  const pc = document.getElementById("point-count");
  pc.textContent = `${total}`;
  pc.dataset.points = `${total}`;
  document.body.dataset.points = `${total}`;
  document.body.dataset.drawn = `${series.round.length}`;
  // uPlot draws in a microtask: by the next frame the charts are on the canvas.
  requestAnimationFrame(() => {
    document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
    document.body.dataset.drawnAt = performance.now().toFixed(0); // ms since navigation start
  });
}

function schedule() {
  if (queued) return;
  queued = true;
  requestAnimationFrame(render);
}

document.getElementById("x-mode").addEventListener("change", (e) => {
  xMode = e.target.value;
  for (const p of panels.values()) p.destroy();
  panels.clear();
  render();
});
document.getElementById("reset-zoom").addEventListener("click", () => group.reset());
globalThis.edgewise = { panels, group, get series() {
  return series;
} };

const events = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
const status = document.getElementById("status");
events.addEventListener("open", () => {
  status.textContent = "live";
  status.className = "live";
});
events.addEventListener("error", () => {
  status.textContent = "disconnected, retrying…";
  status.className = "down";
});
events.addEventListener("init", (e) => {
  document.body.dataset.initAt = performance.now().toFixed(0);
  const msg = JSON.parse(e.data);
  run = msg.run;
  series = msg.series;
  maxPoints = Math.max(4000, 2 * series.round.length);
  notes = msg.notes ?? [];
  noteVersion++;
  latest = msg.latest ?? null;
  total = msg.total;
  schedule();
});
events.addEventListener("report", (e) => {
  const msg = JSON.parse(e.data);
  if (!series) return;
  const last = series.round[series.round.length - 1];
  if (last !== undefined && msg.point.round <= last) return;
  for (const k of Object.keys(series)) series[k].push(msg.point[k] ?? null);
  if (series.round.length > maxPoints) decimate(series);
  if (msg.note) {
    notes.push(msg.note);
    if (notes.length > 1000) notes.splice(0, notes.length - 1000);
    noteVersion++;
  }
  latest = msg.latest;
  total++;
  schedule();
});
