/**
 * Interactive charts on uPlot (loaded as the global `uPlot` from /static/uPlot.iife.min.js):
 * a {@linkcode ChartPanel} draws one {@linkcode ChartSpec} with a live legend (every
 * series' value at the cursor), a crosshair and x-zoom shared with the other charts of its
 * {@linkcode ChartGroup}, readable ticks, resizing with its box, and SVG/PNG export through
 * `svg.js`. Browser only.
 *
 * @module
 */
import { fmt, fmtDuration } from "./format.js";
import { linTicks, logTicks } from "./ticks.js";
import { renderSvg } from "./svg.js";

/** @typedef {import("./chart_specs.js").ChartSpec} ChartSpec */

const uPlot = globalThis.uPlot;

/** uPlot's aligned data for a spec: one x column, one y column per line. */
export function alignedData(spec) {
  const x0 = spec.lines[0]?.x ?? [];
  if (spec.lines.every((l) => l.x === x0)) return [x0, ...spec.lines.map((l) => l.y)];
  return uPlot.join(spec.lines.map((l) => [l.x, l.y]));
}

/** First and last x, or `null` when there is none. */
function extentOf(x) {
  return x?.length ? [x[0], x[x.length - 1]] : null;
}

/** Range of a scale padded like the SVG export (multiplicatively on log axes). */
function padded(log) {
  return (_u, min, max) => {
    if (min == null || max == null || !Number.isFinite(min) || !Number.isFinite(max)) return log ? [1, 10] : [0, 1];
    if (log) {
      const f = min === max ? 1.5 : (max / min) ** 0.05;
      return [min / f, max * f];
    }
    const d = min === max ? Math.abs(min) * 0.1 || 1 : (max - min) * 0.05;
    return [min - d, max + d];
  };
}

function xFormat(spec) {
  return (v) => (v == null ? "–" : spec.xMode === "wall" ? fmtDuration(v) : fmt(v));
}

/** uPlot series options: the x column, then one per line (points-only, stepped or plain). */
function seriesOptions(spec) {
  const shared = spec.lines.every((l) => l.x === spec.lines[0]?.x);
  return [
    { label: spec.xLabel.replace(/ \(.*\)$/, ""), value: (_u, v) => xFormat(spec)(v) },
    ...spec.lines.map((l) => ({
      label: l.label,
      stroke: l.color,
      width: l.width ?? 1.5,
      dash: l.dash,
      spanGaps: !shared, // joined runs (compare view) have holes where the other run has x
      value: (_u, v) => fmt(v),
      paths: l.kind === "points" ? () => null : l.kind === "step" ? uPlot.paths.stepped({ align: 1 }) : undefined,
      points: l.kind === "points"
        ? { show: true, size: l.size ?? 8, stroke: l.color, fill: "#fff", width: 2 }
        : { show: false },
    })),
  ];
}

/** uPlot bands (fill between two lines, by series index). */
function bandOptions(spec) {
  const idx = new Map(spec.lines.map((l, i) => [l.label, i + 1]));
  return spec.bands
    .filter((b) => idx.has(b.lo) && idx.has(b.hi))
    .map((b) => ({ series: [idx.get(b.hi), idx.get(b.lo)], fill: b.color }));
}

/** y ticks from `ticks.js` (shared with the SVG export), about one per 45 px. */
function yTicks(spec) {
  return spec.logY
    ? (_u, _a, min, max) => logTicks(min, max)
    : (u, _a, min, max) => linTicks(min, max, Math.max(2, Math.round((u.height - 90) / 45)));
}

/** x ticks, about one per 90 px. */
function xTicks(spec) {
  return spec.logX
    ? (_u, _a, min, max) => logTicks(min, max)
    : (u, _a, min, max) => linTicks(min, max, Math.max(2, Math.round((u.width - 80) / 90)));
}

/** Charts that share a crosshair and an x zoom. */
export class ChartGroup {
  /** @param {string} key Sync key; charts of other groups do not follow. */
  constructor(key) {
    this.key = key;
    /** @type {Set<ChartPanel>} */
    this.panels = new Set();
    this.syncing = false;
  }

  /** Applies a zoom (or, with `full`, the full range) to every chart but `from`. */
  zoom(from, min, max) {
    if (this.syncing) return;
    this.syncing = true;
    try {
      for (const p of this.panels) if (p !== from && p.u) p.u.setScale("x", { min, max });
    } finally {
      this.syncing = false;
    }
  }

  /** Back to the full x range on every chart. */
  reset() {
    for (const p of this.panels) p.resetZoom();
  }
}

/**
 * One chart in its panel: title, export buttons, the uPlot chart, a caption.
 */
export class ChartPanel {
  /**
   * @param {HTMLElement} parent Where the panel goes.
   * @param {ChartSpec} spec
   * @param {ChartGroup | null} group `null`: no sync (a chart with another x, like η*(B)).
   * @param {{fileName?: string, height?: number}} [o]
   */
  constructor(parent, spec, group, o = {}) {
    this.spec = spec;
    this.group = group;
    this.o = o;
    this.el = document.createElement("div");
    this.el.className = "panel";
    this.el.id = `chart-${spec.id}`;
    this.el.innerHTML = `<div class="panel-head"><span class="title"></span><span>` +
      `<button type="button" data-export="svg">SVG</button> <button type="button" data-export="png">PNG</button></span></div>` +
      `<div class="plot"></div><div class="caption"></div>`;
    parent.appendChild(this.el);
    this.plot = this.el.querySelector(".plot");
    this.el.querySelector('[data-export="svg"]').onclick = () => this.download("svg");
    this.el.querySelector('[data-export="png"]').onclick = () => this.download("png");
    group?.panels.add(this);
    // Off-screen charts are neither built nor redrawn live; they catch up when scrolled into
    // view (the first screen draws sooner, a live update costs only what is seen).
    const r = this.el.getBoundingClientRect();
    this.visible = r.top < innerHeight + 200 && r.bottom > -200;
    this.stale = !this.visible;
    if (this.visible) this.build();
    else this.el.querySelector(".title").textContent = spec.title;
    this.resizer = new ResizeObserver(() => this.fit());
    this.resizer.observe(this.plot);
    this.seen = new IntersectionObserver(([e]) => {
      this.visible = e.isIntersecting;
      if (this.visible && this.stale) this.update(this.spec);
    }, { rootMargin: "200px" });
    this.seen.observe(this.el);
  }

  /** Size for the panel's current width. */
  size() {
    const width = Math.max(200, Math.floor(this.plot.clientWidth));
    return { width, height: this.o.height ?? (width < 480 ? 240 : 300) };
  }

  fit() {
    if (!this.u) return;
    const s = this.size();
    if (s.width !== this.u.width || s.height !== this.u.height) this.u.setSize(s);
  }

  /** Creates the uPlot chart for the current spec. */
  build() {
    const spec = this.spec;
    this.el.querySelector(".title").textContent = spec.title;
    this.el.querySelector(".caption").textContent = spec.caption ?? "";
    this.u?.destroy();
    this.u = null;
    this.labels = spec.lines.map((l) => l.label).join("\u0000");
    if (!uPlot) {
      this.plot.textContent = "Charts unavailable: uPlot did not load (run tools/deno install).";
      return;
    }
    const group = this.group;
    const opts = {
      ...this.size(),
      series: seriesOptions(spec),
      bands: bandOptions(spec),
      scales: {
        x: { time: false, distr: spec.logX ? 3 : 1, ...(spec.logX ? { range: padded(true) } : {}) },
        y: { distr: spec.logY ? 3 : 1, range: padded(!!spec.logY) },
      },
      axes: [
        // `filter` keeps every tick label (uPlot's log filter would blank most of ours).
        { label: spec.xLabel, splits: xTicks(spec), filter: (_u, s) => s, values: (_u, s) => s.map(xFormat(spec)), space: 50, labelSize: 20 },
        { label: spec.yLabel, splits: yTicks(spec), filter: (_u, s) => s, values: (_u, s) => s.map(fmt), size: 58, labelSize: 20 },
      ],
      cursor: {
        sync: group ? { key: group.key } : undefined,
        drag: { x: true, y: false, setScale: true },
        points: { size: 7 },
      },
      legend: { live: true },
      hooks: {
        // Without a cursor on the chart, the legend reads the latest values (not dashes).
        draw: [(u) => this.drawVlines(u), (u) => u.cursor.idx == null && this.showLatest()],
        setCursor: [(u) => u.cursor.idx == null && this.showLatest()],
        setScale: [(u, key) => {
          // Only a zoom travels; a chart autoscaling to its new data must not unzoom the rest.
          if (key !== "x" || !group || group.syncing || !this.zoomed()) return;
          group.zoom(this, u.scales.x.min, u.scales.x.max);
        }],
      },
    };
    const data = alignedData(spec);
    this.extent = extentOf(data[0]);
    /** Points given to the chart at its last update (for tests: the x column may grow before). */
    this.points = data[0].length;
    this.u = new uPlot(opts, data, this.plot);
    this.u.over.addEventListener("dblclick", () => group ? group.reset() : this.resetZoom());
  }

  /**
   * Shows each line's last value in the legend (a run that ended earlier in the compare view
   * keeps its own last value); marker series show their value at the last x only; the η*(B)
   * chart shows the run's batch size.
   */
  showLatest() {
    const u = this.u;
    const n = u?.data[0]?.length ?? 0;
    if (!n) return;
    if (this.spec.xMode === "batch") {
      // η*(B): the run's own batch size, where its marker is.
      const k = this.spec.lines.findIndex((l) => l.kind === "points");
      const at = k < 0 ? -1 : u.data[k + 1].findIndex((v) => v != null);
      if (at >= 0) return u.setLegend({ idx: at }, false);
    }
    const idxs = u.data.map((col, k) => {
      if (k === 0 || this.spec.lines[k - 1]?.kind === "points") return n - 1;
      let i = n - 1;
      while (i > 0 && col[i] == null) i--;
      return i;
    });
    u.setLegend({ idxs }, false);
  }

  /** Dashed vertical markers with labels (lr changes, the run's B). */
  drawVlines(u) {
    const ctx = u.ctx;
    const { top, height } = u.bbox;
    ctx.save();
    for (const v of this.spec.vlines) {
      const x = Math.round(u.valToPos(v.x, "x", true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      ctx.strokeStyle = v.color;
      ctx.globalAlpha = 0.6;
      ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.fillStyle = v.color;
      ctx.font = `${11 * devicePixelRatio}px system-ui,sans-serif`;
      ctx.fillText(v.label, x + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
    }
    ctx.restore();
  }

  /**
   * Shows a new spec: new data in place (keeping a zoom), or a rebuilt chart when its lines
   * changed.
   *
   * @param {ChartSpec} spec
   */
  update(spec) {
    const same = spec.lines.map((l) => l.label).join("\u0000") === this.labels && !!spec.logY === !!this.spec.logY;
    this.spec = spec;
    this.stale = !this.visible;
    if (this.stale) return;
    if (!this.u || !same) return this.build();
    this.el.querySelector(".title").textContent = spec.title;
    this.el.querySelector(".caption").textContent = spec.caption ?? "";
    const zoomed = this.zoomed();
    const data = alignedData(spec);
    // The x column may be the live series itself, already grown: remember its extent now.
    this.extent = extentOf(data[0]);
    this.points = data[0].length;
    if (zoomed) {
      const { min, max } = this.u.scales.x;
      this.u.setData(data, false);
      this.u.setScale("x", { min, max });
    } else this.u.setData(data);
  }

  /** Whether the x range shown is narrower than the data's when last set (a zoom). */
  zoomed() {
    const e = this.extent;
    const s = this.u?.scales.x;
    if (!e || s?.min == null || s?.max == null) return false;
    const eps = 1e-9 * (Math.abs(e[1] - e[0]) || 1);
    return s.min > e[0] + eps || s.max < e[1] - eps;
  }

  resetZoom() {
    if (!this.u || !this.zoomed()) return;
    this.u.setData(this.u.data);
  }

  /** The x range shown now. */
  xRange() {
    const s = this.u?.scales.x;
    return s && s.min != null && s.max != null ? [s.min, s.max] : undefined;
  }

  /** The chart as a standalone SVG document, as shown (zoom included). */
  svg() {
    return `<?xml version="1.0" encoding="UTF-8"?>\n` +
      renderSvg(this.spec, { width: 900, height: 460, xRange: this.zoomed() ? this.xRange() : undefined }) + "\n";
  }

  /** The chart as a PNG (the SVG drawn at twice its size). */
  async png() {
    const url = URL.createObjectURL(new Blob([this.svg()], { type: "image/svg+xml" }));
    try {
      const img = new Image();
      img.src = url;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = 1800;
      c.height = 920;
      const ctx = c.getContext("2d");
      ctx.scale(2, 2);
      ctx.drawImage(img, 0, 0, 900, 460);
      return await new Promise((res) => c.toBlob(res, "image/png"));
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  /** Saves the chart as a file. */
  async download(kind) {
    const blob = kind === "svg" ? new Blob([this.svg()], { type: "image/svg+xml" }) : await this.png();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${(this.o.fileName ?? "edgewise").replace(/[^A-Za-z0-9_-]+/g, "_")}-${this.spec.id}.${kind}`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }

  destroy() {
    this.resizer.disconnect();
    this.seen.disconnect();
    this.group?.panels.delete(this);
    this.u?.destroy();
    this.el.remove();
  }
}

/**
 * Keeps a set of panels in `parent` in step with a list of specs (by id, in order).
 *
 * @param {HTMLElement} parent
 * @param {Map<string, ChartPanel>} panels Current panels by spec id (updated in place).
 * @param {ChartSpec[]} specs
 * @param {ChartGroup} group Group of the time-series charts.
 * @param {{fileName?: string}} o
 */
export function syncPanels(parent, panels, specs, group, o) {
  const ids = new Set(specs.map((s) => s.id));
  for (const [id, p] of panels) {
    if (!ids.has(id)) {
      p.destroy();
      panels.delete(id);
    }
  }
  for (const spec of specs) {
    const p = panels.get(spec.id);
    if (p) p.update(spec);
    else panels.set(spec.id, new ChartPanel(parent, spec, spec.xMode === "batch" ? null : group, o));
  }
}
