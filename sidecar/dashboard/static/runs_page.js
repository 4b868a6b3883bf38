/**
 * Runs page: sorts the table by a clicked column and keeps its rows current from
 * `/api/events` (server-sent `runs` and `run` events), without reloading. The live/ended
 * status is re-evaluated every 15 s.
 *
 * @module
 */
import { esc, fmt, fmtCount, fmtDate, fmtMargin, runStatus } from "./format.js";

const tbody = document.querySelector("#runs tbody");
const heads = [...document.querySelectorAll("#runs th[data-key]")];
/** @type {Map<string, any>} */
const runs = new Map();
let sortKey = "started", dir = -1;

const value = {
  name: (r) => r.name.toLowerCase(),
  started: (r) => r.started,
  status: (r) => r.status,
  params: (r) => r.meta.params ?? -1,
  lr: (r) => r.latest?.lr ?? -1,
  batch: (r) => r.meta.batch_size ?? r.latest?.batch_size ?? -1,
  margin: (r) => r.latest?.margin ?? -1,
  rounds: (r) => r.rounds,
};

function row(r, checked) {
  const l = r.latest ?? {};
  const m = l.margin;
  const B = r.meta.batch_size ?? l.batch_size;
  return `<tr data-id="${esc(r.id)}"><td><input type="checkbox" name="run" value="${esc(r.id)}"${checked ? " checked" : ""} aria-label="compare ${esc(r.name)}"></td>` +
    `<td class="text"><a href="/runs/${encodeURIComponent(r.id)}">${esc(r.name)}</a><br><small>${esc(r.id)}</small></td>` +
    `<td>${esc(fmtDate(r.started))}</td><td><span class="${r.status}">${r.status}</span></td>` +
    `<td class="num">${esc(fmtCount(r.meta.params))}</td><td class="num">${esc(fmt(l.lr))}</td><td class="num">${esc(fmt(B))}</td>` +
    `<td class="num ${typeof m === "number" ? (m > 1 ? "bad" : "ok") : ""}">${esc(fmtMargin(m))}</td><td class="num">${r.rounds}</td></tr>`;
}

function render() {
  const checked = new Set([...document.querySelectorAll('input[name="run"]:checked')].map((c) => c.value));
  const now = Date.now() / 1000;
  for (const r of runs.values()) r.status = runStatus(r, now);
  const list = [...runs.values()].sort((a, b) => {
    const x = value[sortKey](a), y = value[sortKey](b);
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
  tbody.innerHTML = list.map((r) => row(r, checked.has(r.id))).join("") ||
    `<tr><td colspan="9">No runs yet.</td></tr>`;
  document.getElementById("count").textContent = `${list.length} run(s)`;
  for (const h of heads) {
    if (h.dataset.key === sortKey) h.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    else h.removeAttribute("aria-sort");
  }
}

for (const h of heads) {
  h.addEventListener("click", () => {
    dir = sortKey === h.dataset.key ? -dir : 1;
    sortKey = h.dataset.key;
    render();
  });
}

document.getElementById("compare").addEventListener("submit", (e) => {
  if (document.querySelectorAll('input[name="run"]:checked').length < 1) {
    e.preventDefault();
    alert("Tick at least one run to compare.");
  }
});

const status = document.getElementById("status");
const events = new EventSource("/api/events");
events.addEventListener("open", () => {
  status.textContent = "live";
  status.className = "live";
});
events.addEventListener("error", () => {
  status.textContent = "disconnected, retrying…";
  status.className = "down";
});
events.addEventListener("runs", (e) => {
  runs.clear();
  for (const r of JSON.parse(e.data)) runs.set(r.id, r);
  render();
});
events.addEventListener("run", (e) => {
  const r = JSON.parse(e.data);
  runs.set(r.id, r);
  render();
});
setInterval(render, 15_000);
