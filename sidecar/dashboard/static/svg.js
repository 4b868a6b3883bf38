/**
 * Renders a {@linkcode ChartSpec} as a standalone SVG document: the page's "SVG"/"PNG"
 * export buttons and `deno task plot` both use it, so an exported figure shows what the page
 * shows. No DOM needed.
 *
 * @module
 */
import { esc, fmt, fmtDuration } from "./format.js";
import { linTicks, logTicks } from "./ticks.js";

/** @typedef {import("./chart_specs.js").ChartSpec} ChartSpec */

/**
 * @typedef {object} SvgOptions
 * @property {number} [width] Default 900.
 * @property {number} [height] Default 460.
 * @property {[number, number]} [xRange] Draw only this x range (the page's zoom).
 */

const FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif"';

/** Finite extent of `vals` (positive only when `log`). */
function extent(vals, log) {
  let lo = Infinity, hi = -Infinity;
  for (const v of vals) {
    if (v == null || !Number.isFinite(v) || (log && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

/** Pads a range by 5 % (multiplicatively on a log axis) and widens an empty one. */
function pad([lo, hi], log) {
  if (log) {
    const f = lo === hi ? 1.5 : (hi / lo) ** 0.05;
    return [lo / f, hi * f];
  }
  const d = lo === hi ? Math.abs(lo) * 0.1 || 1 : (hi - lo) * 0.05;
  return [lo - d, hi + d];
}

/** Tick label for an x value. */
function xLabelOf(spec, v) {
  return spec.xMode === "wall" ? fmtDuration(v) : fmt(v);
}

/**
 * Renders a chart spec as SVG text (without an XML declaration).
 *
 * @param {ChartSpec} spec
 * @param {SvgOptions} [o]
 * @returns {string} `<svg …>` with one `<g data-series="label" data-points="n">` per line.
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * const svg = renderSvg({ id: "t", title: "T", xLabel: "x", yLabel: "y", xMode: "step",
 *   lines: [{ label: "y", x: [1, 2], y: [3, 4], color: "#000" }], bands: [], vlines: [] });
 * ok(svg.includes('data-series="y"'));
 * ```
 */
export function renderSvg(spec, o = {}) {
  const W = o.width ?? 900, H = o.height ?? 460;
  const [x0, x1] = o.xRange ?? [-Infinity, Infinity];
  const inX = (v) => v >= x0 && v <= x1;
  // Legend rows: greedy wrap at the plot width.
  const legend = [];
  let row = [], rowW = 0;
  for (const l of spec.lines) {
    const w = 30 + 6.6 * [...l.label].length;
    if (rowW + w > W - 70 && row.length) {
      legend.push(row);
      row = [];
      rowW = 0;
    }
    row.push({ l, dx: rowW });
    rowW += w;
  }
  if (row.length) legend.push(row);
  const top = 30 + 18 * legend.length + 6, left = 64, right = 16;
  const bottom = 46 + (spec.caption ? 18 : 0);
  const pw = W - left - right, ph = H - top - bottom;

  const xsAll = spec.lines.flatMap((l) => l.x.filter(inX));
  const xr = extent(xsAll.concat(spec.vlines.map((v) => v.x).filter(inX)), spec.logX);
  const ys = [];
  for (const l of spec.lines) l.x.forEach((x, i) => inX(x) && ys.push(l.y[i]));
  const yr = extent(ys, spec.logY);
  const xd = xr ? (o.xRange && !spec.logX ? [Math.max(x0, xr[0]), Math.min(x1, xr[1])] : xr) : [0, 1];
  const [ya, yb] = yr ? pad(yr, spec.logY) : [0, 1];
  const [xa, xb] = xd[0] === xd[1] ? pad(xd, spec.logX) : xd;
  const t = (v, a, b, log) => (log ? Math.log10(v / a) / Math.log10(b / a) : (v - a) / (b - a));
  const X = (v) => left + pw * t(v, xa, xb, spec.logX);
  const Y = (v) => top + ph * (1 - t(v, ya, yb, spec.logY));
  const ok = (x, y) => y != null && Number.isFinite(y) && inX(x) && (!spec.logY || y > 0) && (!spec.logX || x > 0);
  const n2 = (v) => v.toFixed(1);

  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12" data-chart="${esc(spec.id)}">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${left}" y="20" font-size="15" font-weight="600">${esc(spec.title)}</text>`);
  legend.forEach((r, k) => {
    for (const { l, dx } of r) {
      const y = 36 + 18 * k, x = left + dx;
      const mark = l.kind === "points"
        ? `<circle cx="${x + 10}" cy="${y - 4}" r="4" fill="${l.color}"/>`
        : `<line x1="${x}" x2="${x + 20}" y1="${y - 4}" y2="${y - 4}" stroke="${l.color}" stroke-width="${l.width ?? 1.5}"${l.dash ? ` stroke-dasharray="${l.dash}"` : ""}/>`;
      out.push(`${mark}<text x="${x + 25}" y="${y}">${esc(l.label)}</text>`);
    }
  });
  // Grid and ticks.
  const yt = (spec.logY ? logTicks : linTicks)(ya, yb);
  const xt = (spec.logX ? logTicks : linTicks)(xa, xb);
  for (const v of yt) {
    out.push(`<line x1="${left}" x2="${left + pw}" y1="${n2(Y(v))}" y2="${n2(Y(v))}" stroke="#e6e6e6"/><text x="${left - 6}" y="${n2(Y(v) + 4)}" text-anchor="end">${esc(fmt(v))}</text>`);
  }
  for (const v of xt) {
    out.push(`<line x1="${n2(X(v))}" x2="${n2(X(v))}" y1="${top}" y2="${top + ph}" stroke="#f0f0f0"/><text x="${n2(X(v))}" y="${top + ph + 16}" text-anchor="middle">${esc(xLabelOf(spec, v))}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${left + pw / 2}" y="${top + ph + 34}" text-anchor="middle" fill="#444">${esc(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#444">${esc(spec.yLabel)}</text>`);
  out.push(`<clipPath id="plot-${esc(spec.id)}"><rect x="${left}" y="${top}" width="${pw}" height="${ph}"/></clipPath><g clip-path="url(#plot-${esc(spec.id)})">`);
  const byLabel = new Map(spec.lines.map((l) => [l.label, l]));
  for (const b of spec.bands) out.push(band(byLabel.get(b.lo), byLabel.get(b.hi), b.color, X, Y, ok));
  let total = 0;
  for (const l of spec.lines) {
    const [body, n] = l.kind === "points" ? points(l, X, Y, ok) : path(l, X, Y, ok);
    total += n;
    out.push(`<g data-series="${esc(l.label)}" data-points="${n}">${body}</g>`);
  }
  for (const v of spec.vlines.filter((v) => inX(v.x))) {
    out.push(`<line x1="${n2(X(v.x))}" x2="${n2(X(v.x))}" y1="${top}" y2="${top + ph}" stroke="${v.color}" stroke-dasharray="3,3" opacity="0.7"/><text x="${n2(X(v.x) + 3)}" y="${top + 12}" fill="${v.color}" font-size="11">${esc(v.label)}</text>`);
  }
  out.push(`</g>`);
  if (spec.caption) out.push(`<text x="${left}" y="${H - 8}" fill="#555" font-size="11">${esc(spec.caption)}</text>`);
  out.push(`</svg>`);
  out[0] = out[0].replace("<svg ", `<svg data-points="${total}" `);
  return out.join("\n");
}

/** A polyline with gaps at missing values; `[svg, points drawn]`. */
function path(l, X, Y, ok) {
  let d = "", n = 0, pen = false;
  for (let i = 0; i < l.x.length; i++) {
    if (!ok(l.x[i], l.y[i])) {
      pen = false;
      continue;
    }
    const px = X(l.x[i]).toFixed(1), py = Y(l.y[i]).toFixed(1);
    if (!pen) d += `M${px},${py}`;
    else d += l.kind === "step" ? `H${px}V${py}` : `L${px},${py}`;
    pen = true;
    n++;
  }
  const dash = l.dash ? ` stroke-dasharray="${l.dash}"` : "";
  return [`<path d="${d}" fill="none" stroke="${l.color}" stroke-width="${l.width ?? 1.5}"${dash} stroke-linejoin="round"/>`, n];
}

/** Marker circles; `[svg, points drawn]`. */
function points(l, X, Y, ok) {
  const r = (l.size ?? 8) / 2;
  const c = [];
  for (let i = 0; i < l.x.length; i++) {
    if (ok(l.x[i], l.y[i])) {
      c.push(`<circle cx="${X(l.x[i]).toFixed(1)}" cy="${Y(l.y[i]).toFixed(1)}" r="${r}" fill="none" stroke="${l.color}" stroke-width="2"/>`);
    }
  }
  return [c.join(""), c.length];
}

/** A filled area between two lines over their common x, split at gaps. */
function band(lo, hi, color, X, Y, ok) {
  if (!lo || !hi) return "";
  const parts = [];
  let seg = [];
  const flush = () => {
    if (seg.length > 1) {
      const up = seg.map((i) => `${X(hi.x[i]).toFixed(1)},${Y(hi.y[i]).toFixed(1)}`);
      const down = seg.slice().reverse().map((i) => `${X(lo.x[i]).toFixed(1)},${Y(lo.y[i]).toFixed(1)}`);
      parts.push(`M${up.join("L")}L${down.join("L")}Z`);
    }
    seg = [];
  };
  for (let i = 0; i < hi.x.length; i++) {
    if (ok(hi.x[i], hi.y[i]) && ok(lo.x[i], lo.y[i])) seg.push(i);
    else flush();
  }
  flush();
  return `<path d="${parts.join("")}" fill="${color}" stroke="none"/>`;
}
