/**
 * HTML of the dashboard's two pages. The runs page is rendered on the server (it refreshes
 * itself every few seconds); the run page is a shell filled by `static/run_page.js` from the
 * run's server-sent events.
 *
 * @module
 */
import type { RunSummary } from "../store/history_store.ts";
import { esc, fmt } from "./static/chart.js";

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#1f2933;color:#fff;padding:10px 20px;display:flex;align-items:baseline;gap:16px}
header h1{font-size:18px;margin:0}header a{color:#9fd3ff;text-decoration:none}
main{padding:14px 20px}.meta{color:#555;font-size:13px;margin-bottom:10px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #e3e3e3;text-align:left}th{background:#eef1f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin-bottom:12px}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:6px 12px;min-width:110px}
.card .k{font-size:11px;color:#666}.card .v{font-size:20px;font-weight:600}
.bad{color:#C0392B}.ok{color:#1e8449}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.panel{background:#fff;border:1px solid #dde;border-radius:6px;padding:4px}
.panel svg{width:100%;height:auto;display:block}
#latest{width:100%}#latest td{padding:2px 10px}
#status{font-size:12px}.live{color:#7CFC9A}.down{color:#ffb3b3}
`;

function layout(title: string, body: string, head = ""): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${
    esc(title)
  }</title>` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style>${head}</head>` +
    `<body>${body}</body></html>`;
}

/** URL path of a run page. */
export function runPath(id: string): string {
  return `/runs/${encodeURIComponent(id)}`;
}

function marginCell(m: unknown): string {
  if (typeof m !== "number") return `<td class="num">–</td>`;
  return `<td class="num ${m > 1 ? "bad" : "ok"}">${esc(fmt(m))}</td>`;
}

/** The runs page: one row per run, newest first. */
export function runsPage(runs: RunSummary[]): string {
  const rows = [...runs].reverse().map((r) => {
    const l = r.latest;
    return `<tr><td><a href="${runPath(r.meta.id)}">${
      esc(r.meta.name)
    }</a></td><td>${esc(r.meta.id)}</td>` +
      `<td>${
        esc(
          new Date(r.meta.started * 1000).toISOString().replace("T", " ").slice(
            0,
            19,
          ),
        )
      } UTC</td>` +
      `<td class="num">${r.rounds}</td><td class="num">${
        esc(fmt(l?.step as number))
      }</td>${marginCell(l?.margin)}` +
      `<td class="num">${esc(fmt(l?.eta_star as number))}</td><td class="num">${
        esc(fmt(l?.lr as number))
      }</td></tr>`;
  }).join("");
  const body =
    `<header><h1>Edgewise runs</h1><span>${runs.length} run(s)</span></header><main>` +
    `<table id="runs"><thead><tr><th>name</th><th>id</th><th>started</th><th>rounds</th><th>step</th>` +
    `<th>margin lr/η*</th><th>η*</th><th>lr</th></tr></thead><tbody>${
      rows || `<tr><td colspan="8">No runs yet.</td></tr>`
    }</tbody></table></main>` +
    `<script>setTimeout(()=>location.reload(),5000)</script>`;
  return layout("Edgewise runs", body);
}

/** The run page shell; `static/run_page.js` draws into it. */
export function runPage(run: RunSummary): string {
  const m = run.meta;
  const info = [
    `id <b>${esc(m.id)}</b>`,
    m.params !== undefined ? `d = ${esc(m.params)}` : "",
    m.n !== undefined ? `n = ${esc(m.n)}` : "",
    m.batch_size !== undefined ? `B = ${esc(m.batch_size)}` : "",
    m.probe !== undefined ? `probe m = ${esc(m.probe)}` : "",
    m.curvature ? `curvature ${esc(m.curvature)}` : "",
    `started ${
      esc(
        new Date(m.started * 1000).toISOString().replace("T", " ").slice(0, 19),
      )
    } UTC`,
  ].filter(Boolean).join(" · ");
  const body =
    `<header><a href="/">← runs</a><h1>Edgewise — ${esc(m.name)}</h1>` +
    `<span id="status" class="down">connecting…</span><span style="margin-left:auto;font-size:12px">` +
    `<a href="/api/runs/${encodeURIComponent(m.id)}/reports.csv">CSV</a> · ` +
    `<a href="/api/runs/${
      encodeURIComponent(m.id)
    }/reports.jsonl">JSONL</a></span></header><main>` +
    `<div class="meta">${info} · <span id="point-count" data-points="0">0</span> rounds shown</div>` +
    `<div class="cards" id="cards"></div><div class="grid">` +
    `<div class="panel" id="chart-sharpness"></div><div class="panel" id="chart-margin"></div>` +
    `<div class="panel" id="chart-batch"></div><div class="panel"><table id="latest"></table></div></div></main>` +
    `<script type="module" src="/static/run_page.js"></script>`;
  return layout(
    `Edgewise — ${m.name}`,
    body,
    `<meta name="edgewise-run" content="${esc(m.id)}">`,
  );
}
