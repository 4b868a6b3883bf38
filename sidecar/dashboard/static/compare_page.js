/**
 * Compare view: the runs named in the page overlaid on shared charts (margin, λ_gen, λ_max,
 * lr), one colour per run, following each run's server-sent events.
 *
 * @module
 */
import { compareCharts } from "./chart_specs.js";
import { ChartGroup, syncPanels } from "./uplot_chart.js";

const ids = JSON.parse(document.querySelector('meta[name="edgewise-runs"]').content);
const chartsEl = document.getElementById("charts");
const group = new ChartGroup("compare");
const panels = new Map();
/** @type {{id: string, name: string, started: number, series: any}[]} */
const runs = ids.map((id) => ({ id, name: id, started: 0, series: null }));
let xMode = "step", queued = false;

function render() {
  queued = false;
  const ready = runs.filter((r) => r.series);
  if (!ready.length) return;
  syncPanels(chartsEl, panels, compareCharts(ready, { xMode }), group, { fileName: "compare" });
  document.body.dataset.runs = `${ready.length}`;
  document.body.dataset.points = `${ready.reduce((a, r) => a + r.series.round.length, 0)}`;
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
globalThis.edgewise = { panels, group, runs };

const status = document.getElementById("status");
let open = 0;
for (const r of runs) {
  const events = new EventSource(`/api/runs/${encodeURIComponent(r.id)}/events`);
  events.addEventListener("open", () => {
    status.textContent = `live (${++open} of ${runs.length})`;
    status.className = "live";
  });
  events.addEventListener("error", () => {
    open = Math.max(0, open - 1);
    status.textContent = "disconnected, retrying…";
    status.className = "down";
  });
  events.addEventListener("init", (e) => {
    const msg = JSON.parse(e.data);
    r.name = msg.run.name;
    r.started = msg.run.started;
    r.series = msg.series;
    schedule();
  });
  events.addEventListener("report", (e) => {
    const msg = JSON.parse(e.data);
    const s = r.series;
    if (!s || (s.round.length && msg.point.round <= s.round[s.round.length - 1])) return;
    for (const k of Object.keys(s)) s[k].push(msg.point[k] ?? null);
    schedule();
  });
}
if (!runs.length) chartsEl.textContent = "No runs chosen: tick runs on the runs page, then Compare.";
