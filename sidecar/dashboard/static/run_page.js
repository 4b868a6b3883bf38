/**
 * Run page client: follows `/api/runs/:id/events` (server-sent events) and redraws the
 * charts at most a few times a second. `#point-count[data-points]` and `document.body
 * .dataset.points` expose the number of rounds held, for tests.
 *
 * @module
 */
import {
  batchSpec,
  esc,
  fmt,
  marginSpec,
  renderChart,
  sharpnessSpec,
} from "/static/chart.js";

const MAX_POINTS = 4000; // decimate by 2 beyond this so a long live run stays light
const runId = document.querySelector('meta[name="edgewise-run"]').content;
let series = null, latest = null, total = 0, dirty = false;

function decimate(s) {
  for (const k of Object.keys(s)) {
    const a = s[k];
    s[k] = a.filter((_, i) => i % 2 === 0 || i === a.length - 1);
  }
}

function cards(r) {
  if (!r) return "";
  const card = (k, v, cls = "") =>
    `<div class="card"><div class="k">${esc(k)}</div><div class="v ${cls}">${
      esc(v)
    }</div></div>`;
  return card(
    "margin lr/η*",
    Number.isFinite(r.margin) ? r.margin.toFixed(3) : "–",
    r.margin > 1 ? "bad" : "ok",
  ) +
    card("η* = 2/λ_gen", fmt(r.eta_star)) +
    card("lr", fmt(r.lr)) + card("suggested lr", fmt(r.suggested_lr)) +
    card("λ_gen", fmt(r.lambda_gen)) +
    card("λ_max", fmt(r.lambda_max)) +
    card("min stable B", r.min_stable_batch ?? "–") + card("step", fmt(r.step));
}

function table(r) {
  if (!r) return "<tr><td>No reports yet.</td></tr>";
  const rows = [];
  const walk = (prefix, v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) {
        walk(prefix ? `${prefix}.${k}` : k, x);
      }
    } else if (Array.isArray(v)) rows.push([prefix, `${v.length} entries`]);
    else if (prefix === "time" && typeof v === "number") {
      rows.push([
        prefix,
        new Date(v * 1000).toISOString().replace("T", " ").slice(0, 19) +
        " UTC",
      ]);
    } else if (typeof v === "number") {
      rows.push([
        prefix,
        Number.isInteger(v)
          ? String(v)
          : Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6
          ? v.toExponential(3)
          : String(Number(v.toPrecision(4))),
      ]);
    } else rows.push([prefix, String(v)]);
  };
  walk("", r);
  return `<thead><tr><th colspan="2">Latest report (round ${
    esc(r.round)
  })</th></tr></thead><tbody>` +
    rows.map(([k, v]) =>
      `<tr><td>${esc(k)}</td><td class="num">${esc(v)}</td></tr>`
    ).join("") + "</tbody>";
}

function render() {
  dirty = false;
  if (!series) return;
  const run = document.title.replace(/^Edgewise — /, "");
  document.getElementById("chart-sharpness").innerHTML = renderChart(
    sharpnessSpec(series, {
      title: `${run}: sharpness vs step`,
      width: 720,
      height: 340,
    }),
  );
  document.getElementById("chart-margin").innerHTML = renderChart(
    marginSpec(series, { width: 720, height: 340 }),
  );
  document.getElementById("chart-batch").innerHTML = renderChart(
    batchSpec(latest, { width: 720, height: 340 }),
  );
  document.getElementById("latest").innerHTML = table(latest);
  document.getElementById("cards").innerHTML = cards(latest);
  const pc = document.getElementById("point-count");
  pc.textContent = `${total}`;
  pc.dataset.points = `${total}`;
  document.body.dataset.points = `${total}`;
  document.body.dataset.drawn = `${series.step.length}`;
}

function schedule() {
  if (dirty) return;
  dirty = true;
  setTimeout(() => requestAnimationFrame(render), 200);
}

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
  const msg = JSON.parse(e.data);
  series = msg.series;
  latest = msg.latest ?? null;
  total = msg.total;
  schedule();
});
events.addEventListener("report", (e) => {
  const msg = JSON.parse(e.data);
  if (!series) return;
  const last = series.round[series.round.length - 1];
  if (last !== undefined && msg.point.round <= last) return;
  for (const k of Object.keys(series)) series[k].push(msg.point[k]);
  if (series.round.length > MAX_POINTS) decimate(series);
  latest = msg.latest;
  total++;
  schedule();
});
