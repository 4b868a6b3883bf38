/**
 * HTML of the dashboard's pages: the runs table, a run's page and the compare view. The
 * server renders the shells (the runs table complete, so it reads without JavaScript); the
 * page scripts in `static/` fill and update them from server-sent events, never by
 * reloading.
 *
 * @module
 */
import type { RunSummaryJson } from "./server.ts";
import { esc, fmt, fmtCount, fmtDate, fmtMargin } from "./static/format.js";

const STYLE = `
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#1f2933;color:#fff;padding:8px 16px;display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 16px}
header h1{font-size:18px;margin:0;overflow-wrap:anywhere}header a{color:#9fd3ff;text-decoration:none}
main{padding:12px 16px;max-width:1800px}.meta{color:#555;font-size:13px;margin-bottom:8px;overflow-wrap:anywhere}
.toolbar{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;font-size:13px;margin-bottom:10px}
.toolbar .hint{color:#666}
button,select{font:inherit;font-size:13px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}th{background:#eef1f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{overflow-wrap:anywhere;min-width:14em}
th[data-key]{cursor:pointer;user-select:none;white-space:nowrap}th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.cards{display:flex;gap:8px;flex-wrap:wrap;margin-bottom:10px}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:5px 10px;min-width:96px}
.card .k{font-size:11px;color:#666}.card .v{font-size:19px;font-weight:600;font-variant-numeric:tabular-nums}
.bad{color:#C0392B}.ok{color:#1e8449}.warn{color:#b07800}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,540px),1fr));gap:12px;margin-bottom:12px}
.panel{background:#fff;border:1px solid #dde;border-radius:6px;padding:6px;min-width:0}
.panel-head{display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline;justify-content:space-between}
.panel-head .title{font-weight:600;font-size:14px}
.panel-head button{font-size:11px;padding:1px 6px}
.caption{font-size:12px;color:#555;margin-top:2px}
.plot{width:100%;min-width:0}
.u-legend{font-size:12px;text-align:left}.u-legend .u-series{padding:1px 4px}.u-legend th{background:none;font-weight:normal}
.u-legend td,.u-legend th{border:0;padding:1px 2px}.u-legend .u-value{font-variant-numeric:tabular-nums}
h2{font-size:15px;margin:14px 0 6px}
@media (max-width:600px){main{padding:8px}.u-legend{font-size:11px}.u-legend .u-series{padding:0 2px}.card .v{font-size:16px}}
#status{font-size:12px}.live{color:#7CFC9A}.down{color:#ffb3b3}
td .live{color:#1e8449;font-weight:600}td .ended{color:#777}
`;

function layout(title: string, body: string, head = ""): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${
    esc(title)
  }</title>` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style>${head}</head>` +
    `<body>${body}</body></html>`;
}

/** uPlot, and the chart modules fetched in parallel rather than one import at a time. */
const UPLOT_HEAD = `<link rel="stylesheet" href="/static/uPlot.min.css">` +
  ["format.js", "ticks.js", "chart_specs.js", "svg.js", "uplot_chart.js"]
    .map((f) => `<link rel="modulepreload" href="/static/${f}">`).join("") +
  `<script src="/static/uPlot.iife.min.js"></script>`;

/** URL path of a run page. */
export function runPath(id: string): string {
  return `/runs/${encodeURIComponent(id)}`;
}

/** Columns of the runs table: key (sorting), header, and cell. */
export const RUN_COLUMNS: [string, string][] = [
  ["name", "name"],
  ["started", "started"],
  ["status", "status"],
  ["params", "model size d"],
  ["lr", "lr"],
  ["batch", "B"],
  ["margin", "last margin lr/η*"],
  ["rounds", "rounds"],
];

function runRow(r: RunSummaryJson): string {
  const l = r.latest ?? {} as Record<string, unknown>;
  const m = l.margin as number | undefined;
  const B = r.meta.batch_size ?? l.batch_size;
  return `<tr data-id="${esc(r.id)}"><td><input type="checkbox" name="run" value="${
    esc(r.id)
  }" aria-label="compare ${esc(r.name)}"></td>` +
    `<td class="text"><a href="${runPath(r.id)}">${esc(r.name)}</a><br><small>${
      esc(r.id)
    }</small></td><td>${esc(fmtDate(r.started))}</td>` +
    `<td><span class="${r.status}">${r.status}</span></td>` +
    `<td class="num">${esc(fmtCount(r.meta.params))}</td><td class="num">${
      esc(fmt(l.lr))
    }</td><td class="num">${esc(fmt(B))}</td>` +
    `<td class="num ${typeof m === "number" ? (m > 1 ? "bad" : "ok") : ""}">${
      esc(fmtMargin(m))
    }</td><td class="num">${r.rounds}</td></tr>`;
}

/** The runs page: a sortable table, newest first, with a compare button. */
export function runsPage(runs: RunSummaryJson[]): string {
  const rows = [...runs].reverse().map(runRow).join("");
  const head = RUN_COLUMNS.map(([k, h]) =>
    `<th data-key="${k}"${k === "started" ? ' aria-sort="descending"' : ""}>${
      esc(h)
    }</th>`
  ).join("");
  const body =
    `<header><h1>Edgewise runs</h1><span id="count">${runs.length} run(s)</span>` +
    `<span id="status" class="down"></span></header><main>` +
    `<form id="compare" action="/compare" method="get"><div class="toolbar">` +
    `<button type="submit" id="compare-button">Compare selected runs</button>` +
    `<span class="hint">Tick two or more runs; click a column header to sort.</span></div>` +
    `<div class="scroll"><table id="runs"><thead><tr><th></th>${head}</tr></thead><tbody>${
      rows || `<tr><td colspan="9">No runs yet.</td></tr>`
    }</tbody></table></div></form></main>` +
    `<script type="module" src="/static/runs_page.js"></script>`;
  return layout("Edgewise runs", body);
}

const X_SWITCH = `<label>x axis <select id="x-mode">` +
  `<option value="step">step</option><option value="epoch">epoch</option>` +
  `<option value="wall">wall time</option></select></label>` +
  `<button type="button" id="reset-zoom">Reset zoom</button>` +
  `<span class="hint">Hover for values; drag across a chart to zoom, double-click to reset.</span>`;

/** The run page shell; `static/run_page.js` draws into it. */
export function runPage(run: RunSummaryJson): string {
  const m = run.meta;
  const info = [
    `id <b>${esc(m.id)}</b>`,
    m.params !== undefined ? `d = ${esc(m.params)}` : "",
    m.n !== undefined ? `n = ${esc(m.n)}` : "",
    m.batch_size !== undefined ? `B = ${esc(m.batch_size)}` : "",
    m.probe !== undefined ? `probe m = ${esc(m.probe)}` : "",
    m.curvature ? `curvature ${esc(m.curvature)}` : "",
    `started ${esc(fmtDate(run.started))}`,
  ].filter(Boolean).join(" · ");
  const id = encodeURIComponent(m.id as string);
  const body =
    `<header><a href="/">← runs</a><h1>${esc(run.name)}</h1>` +
    `<span id="status" class="down">connecting…</span><span style="margin-left:auto;font-size:12px">` +
    `<a href="/api/runs/${id}/reports.csv">CSV</a> · <a href="/api/runs/${id}/reports.jsonl">JSONL</a></span></header><main>` +
    `<div class="meta">${info} · <span id="point-count" data-points="0">0</span> rounds</div>` +
    `<div class="toolbar">${X_SWITCH}</div>` +
    `<div class="cards" id="cards"></div><div class="grid" id="charts"></div>` +
    `<h2>Rounds to read <small id="notes-count"></small></h2><div class="scroll"><table id="notes"></table></div>` +
    `<h2>Latest report</h2><div class="scroll"><table id="latest"></table></div></main>` +
    `<script type="module" src="/static/run_page.js"></script>`;
  return layout(
    `Edgewise — ${run.name}`,
    body,
    `<meta name="edgewise-run" content="${esc(m.id)}">${UPLOT_HEAD}`,
  );
}

/** The compare view: the chosen runs overlaid; `static/compare_page.js` draws it. */
export function comparePage(runs: RunSummaryJson[]): string {
  const list = runs.map((r) => `<a href="${runPath(r.id)}">${esc(r.name)}</a>`)
    .join(", ");
  const body = `<header><a href="/">← runs</a><h1>Compare runs</h1>` +
    `<span id="status" class="down">connecting…</span></header><main>` +
    `<div class="meta">${runs.length} run(s): ${list || "none chosen"}</div>` +
    `<div class="toolbar">${X_SWITCH}</div>` +
    `<div class="grid" id="charts"></div></main>` +
    `<script type="module" src="/static/compare_page.js"></script>`;
  return layout(
    "Edgewise — compare",
    body,
    `<meta name="edgewise-runs" content="${
      esc(JSON.stringify(runs.map((r) => r.id)))
    }">${UPLOT_HEAD}`,
  );
}
