/**
 * Dependency-free SVG line charts, shared by the browser dashboard and the server-side
 * `plot.ts` export so both draw the same picture from the same compact series.
 *
 * Why SVG strings: no canvas or DOM needed on the server, no CDN or bundler in the browser,
 * and the drawn points can be counted in tests (`data-points` on the root `<svg>`).
 *
 * @module
 */

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/** Colours used by the dashboard (colour-blind friendly, Okabe–Ito). */
export const COLORS = {
  lambdaMax: "#0072B2",
  lambdaGen: "#D55E00",
  band: "#E69F00",
  edge: "#555555",
  margin: "#009E73",
  batch: "#CC79A7",
};

/** Escapes text for SVG/HTML. */
export function esc(s) {
  return String(s).replace(
    /[&<>"']/g,
    (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[
        c
      ],
  );
}

/** Formats a number compactly for labels: 3 significant digits, exponent when far from 1. */
export function fmt(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) {
    return v.toExponential(2).replace("e+", "e");
  }
  return Number(v.toPrecision(3)).toString();
}

function usable(v, log) {
  return typeof v === "number" && Number.isFinite(v) && (!log || v > 0);
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

function ticks(lo, hi, log, count) {
  if (log) {
    const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    const out = [];
    const mults = b - a <= 2 ? [1, 2, 5] : b - a <= 5 ? [1, 3] : [1];
    for (let e = a; e <= b; e++) {
      for (const m of mults) {
        const v = m * Math.pow(10, e);
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
      }
    }
    return out;
  }
  const step = niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

function extent(values, log, extra) {
  let lo = Infinity, hi = -Infinity;
  for (const arr of values) {
    for (const v of arr) {
      if (usable(v, log)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  for (const v of extra) {
    if (usable(v, log)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo === Infinity) return log ? [1, 10] : [0, 1];
  if (log) {
    if (hi / lo < 1.5) {
      lo /= 1.25;
      hi *= 1.25;
    }
    return [lo / 1.12, hi * 1.25];
  }
  if (hi === lo) {
    lo -= 1;
    hi += 1;
  }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

/**
 * Renders a chart to an SVG string.
 *
 * @param {object} spec `{ width, height, title, xLabel, yLabel, logX, logY, lines, bands,
 *   hlines, vlines, markers, yMin, yMax }`; `lines[i] = { name, x, y, color, dash, width }`,
 *   `bands[i] = { name, x, lo, hi, color }`, `hlines[i] = { y, label, color, labelOnly }`,
 *   `vlines[i] = { x, label, color }`, `markers[i] = { x, y, label, color }`. Missing,
 *   non-finite (and for log axes non-positive) values break the line instead of failing.
 * @returns {string} An `<svg>` element with `data-points` = number of line vertices drawn.
 */
export function renderChart(spec) {
  const W = spec.width ?? 640, H = spec.height ?? 320;
  const hasLegend = (spec.lines ?? []).some((l) => l.name) ||
    (spec.bands ?? []).length > 0;
  const m = {
    l: 64,
    r: 16,
    t: (spec.title ? 26 : 8) + (hasLegend ? 22 : 6),
    b: 44,
  };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const lines = spec.lines ?? [],
    bands = spec.bands ?? [],
    hl = spec.hlines ?? [],
    vl = spec.vlines ?? [],
    mk = spec.markers ?? [];
  const [x0, x1] = extent(
    [...lines.map((l) => l.x), ...bands.map((b) => b.x)],
    spec.logX,
    [...vl.map((v) => v.x), ...mk.map((k) => k.x)],
  );
  let [y0, y1] = extent(
    [
      ...lines.map((l) => l.y),
      ...bands.map((b) => b.lo),
      ...bands.map((b) => b.hi),
    ],
    spec.logY,
    [...hl.map((h) => h.y), ...mk.map((k) => k.y)],
  );
  if (spec.yMin !== undefined) y0 = spec.yMin;
  if (spec.yMax !== undefined) y1 = spec.yMax;
  const tx = spec.logX
    ? (v) => m.l + (Math.log(v / x0) / Math.log(x1 / x0)) * pw
    : (v) => m.l + ((v - x0) / (x1 - x0)) * pw;
  const ty = spec.logY
    ? (v) => m.t + ph - (Math.log(v / y0) / Math.log(y1 / y0)) * ph
    : (v) => m.t + ph - ((v - y0) / (y1 - y0)) * ph;
  const r = (v) => Math.round(v * 10) / 10;
  const o = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="${FONT}" font-size="11" role="img" aria-label="${
      esc(spec.title ?? "chart")
    }"`,
  );
  const body = [];
  body.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  if (spec.title) {
    body.push(
      `<text x="${m.l}" y="20" font-size="13" font-weight="600" fill="#222">${
        esc(spec.title)
      }</text>`,
    );
  }
  body.push(
    `<defs><clipPath id="clip-${
      spec.id ?? "c"
    }"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath></defs>`,
  );
  // grid + ticks
  for (const v of ticks(y0, y1, spec.logY, 5)) {
    const y = r(ty(v));
    body.push(
      `<line x1="${m.l}" x2="${
        m.l + pw
      }" y1="${y}" y2="${y}" stroke="#e6e6e6"/>`,
    );
    body.push(
      `<text x="${m.l - 6}" y="${y + 3.5}" text-anchor="end" fill="#555">${
        esc(fmt(v))
      }</text>`,
    );
  }
  for (const v of ticks(x0, x1, spec.logX, 6)) {
    const x = r(tx(v));
    body.push(
      `<line x1="${x}" x2="${x}" y1="${m.t}" y2="${
        m.t + ph
      }" stroke="#f0f0f0"/>`,
    );
    body.push(
      `<text x="${x}" y="${m.t + ph + 15}" text-anchor="middle" fill="#555">${
        esc(fmt(v))
      }</text>`,
    );
  }
  body.push(
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  );
  if (spec.xLabel) {
    body.push(
      `<text x="${m.l + pw / 2}" y="${
        H - 8
      }" text-anchor="middle" fill="#333">${esc(spec.xLabel)}</text>`,
    );
  }
  if (spec.yLabel) {
    body.push(
      `<text transform="translate(14 ${
        m.t + ph / 2
      }) rotate(-90)" text-anchor="middle" fill="#333">${
        esc(spec.yLabel)
      }</text>`,
    );
  }
  const g = [];
  // bands
  for (const b of bands) {
    const up = [], down = [];
    for (let i = 0; i < b.x.length; i++) {
      if (
        usable(b.x[i], spec.logX) && usable(b.lo[i], spec.logY) &&
        usable(b.hi[i], spec.logY)
      ) {
        up.push(`${r(tx(b.x[i]))},${r(ty(b.hi[i]))}`);
        down.push(`${r(tx(b.x[i]))},${r(ty(b.lo[i]))}`);
      }
    }
    if (up.length) {
      g.push(
        `<polygon class="band" points="${up.join(" ")} ${
          down.reverse().join(" ")
        }" fill="${b.color}" fill-opacity="0.25" stroke="none"/>`,
      );
    }
  }
  // reference lines
  for (const h of hl) {
    if (!usable(h.y, spec.logY)) continue;
    const y = r(ty(h.y));
    if (!h.labelOnly) {
      g.push(
        `<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="${
          h.color ?? "#555"
        }" stroke-width="1.3" stroke-dasharray="6 4"/>`,
      );
    }
    if (h.label) {
      body.push(
        `<text x="${m.l + pw - 4}" y="${y - 4}" text-anchor="end" fill="${
          h.color ?? "#555"
        }" font-weight="600">${esc(h.label)}</text>`,
      );
    }
  }
  for (const v of vl) {
    if (!usable(v.x, spec.logX)) continue;
    const x = r(tx(v.x));
    g.push(
      `<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="${
        v.color ?? "#555"
      }" stroke-width="1.3" stroke-dasharray="3 3"/>`,
    );
    if (v.label) {
      body.push(
        `<text x="${x + 4}" y="${m.t + 12}" fill="${
          v.color ?? "#555"
        }" font-weight="600">${esc(v.label)}</text>`,
      );
    }
  }
  // lines
  let points = 0;
  for (const l of lines) {
    let d = "", pen = false;
    for (let i = 0; i < l.x.length; i++) {
      if (usable(l.x[i], spec.logX) && usable(l.y[i], spec.logY)) {
        d += `${pen ? "L" : "M"}${r(tx(l.x[i]))},${r(ty(l.y[i]))}`;
        pen = true;
        points++;
      } else pen = false;
    }
    if (d) {
      g.push(
        `<path class="series" data-name="${
          esc(l.name)
        }" d="${d}" fill="none" stroke="${l.color}" stroke-width="${
          l.width ?? 1.8
        }" stroke-linejoin="round"${
          l.dash ? ` stroke-dasharray="${l.dash}"` : ""
        }/>`,
      );
    }
    if (l.dots) {
      for (let i = 0; i < l.x.length; i++) {
        if (usable(l.x[i], spec.logX) && usable(l.y[i], spec.logY)) {
          g.push(
            `<circle cx="${r(tx(l.x[i]))}" cy="${
              r(ty(l.y[i]))
            }" r="2.6" fill="${l.color}"/>`,
          );
        }
      }
    }
  }
  for (const k of mk) {
    if (!usable(k.x, spec.logX) || !usable(k.y, spec.logY)) continue;
    const x = r(tx(k.x)), y = r(ty(k.y));
    g.push(
      `<circle cx="${x}" cy="${y}" r="5" fill="${
        k.color ?? "#000"
      }" stroke="#fff" stroke-width="1.5"/>`,
    );
    if (k.label) {
      body.push(
        `<text x="${x + 8}" y="${y + 14}" fill="${
          k.color ?? "#000"
        }" font-weight="600">${esc(k.label)}</text>`,
      );
    }
  }
  body.push(`<g clip-path="url(#clip-${spec.id ?? "c"})">${g.join("")}</g>`);
  // legend: one row between the title and the plot, never over the data
  const entries = [
    ...bands.map((b) => ({ name: b.name, color: b.color, band: true })),
    ...lines.filter((l) => l.name).map((l) => ({
      name: l.name,
      color: l.color,
      dash: l.dash,
    })),
  ];
  let lx = m.l + 8;
  const ly = m.t - 9;
  if (entries.length) {
    const widths = entries.map((e) => 30 + e.name.length * 6.2);
    entries.forEach((e, i) => {
      body.push(
        e.band
          ? `<rect x="${lx}" y="${
            ly - 6
          }" width="18" height="9" fill="${e.color}" fill-opacity="0.35"/>`
          : `<line x1="${lx}" x2="${lx + 18}" y1="${ly - 2}" y2="${
            ly - 2
          }" stroke="${e.color}" stroke-width="2.2"${
            e.dash ? ` stroke-dasharray="${e.dash}"` : ""
          }/>`,
      );
      body.push(
        `<text x="${lx + 22}" y="${ly + 2}" fill="#222">${esc(e.name)}</text>`,
      );
      lx += widths[i];
    });
  }
  o.push(` data-points="${points}">`, ...body, "</svg>");
  return o.join("");
}

/**
 * Main chart: λ_max, λ_gen with its CI band, and the GD edge 2/lr, against step (log y).
 * @param {object} s Compact series (`step`, `lambda_max`, `lambda_gen`, `lo`, `hi`, `lr`).
 * @param {object} [opts] `{ title, width, height }`.
 */
export function sharpnessSpec(s, opts = {}) {
  return {
    id: "sharpness",
    width: opts.width,
    height: opts.height,
    title: opts.title ?? "Sharpness vs step",
    xLabel: "training step",
    yLabel: "eigenvalue, 1/lr units (log)",
    logY: true,
    bands: [{
      name: "λ_gen CI",
      x: s.step,
      lo: s.lo,
      hi: s.hi,
      color: COLORS.band,
    }],
    lines: [
      {
        name: "2/lr (edge)",
        x: s.step,
        y: s.lr.map((v) => (v > 0 ? 2 / v : null)),
        color: COLORS.edge,
        dash: "6 4",
        width: 1.5,
      },
      { name: "λ_max", x: s.step, y: s.lambda_max, color: COLORS.lambdaMax },
      { name: "λ_gen", x: s.step, y: s.lambda_gen, color: COLORS.lambdaGen },
    ],
    hlines: s.lr.length && s.lr[s.lr.length - 1] > 0
      ? [{
        y: 2 / s.lr[s.lr.length - 1],
        label: "2/lr",
        color: COLORS.edge,
        labelOnly: true,
      }]
      : [],
  };
}

/** Margin chart: lr/η* against step, with the stability edge at 1. */
export function marginSpec(s, opts = {}) {
  const hi = Math.max(1.25, ...s.margin.filter((v) => Number.isFinite(v)));
  return {
    id: "margin",
    width: opts.width,
    height: opts.height,
    title: opts.title ?? "Margin lr / η*  (above 1: unstable in mean square)",
    xLabel: "training step",
    yLabel: "lr / η*",
    yMin: 0,
    yMax: hi * 1.08,
    lines: [{ name: "lr / η*", x: s.step, y: s.margin, color: COLORS.margin }],
    hlines: [{ y: 1, label: "edge", color: "#C0392B" }],
  };
}

/** η*(B) of one report, with the run's batch size and lr marked. */
export function batchSpec(report, opts = {}) {
  const grid = (report && report.eta_star_by_batch) || [];
  const B = report && report.batch_size, lr = report && report.lr;
  return {
    id: "batch",
    width: opts.width,
    height: opts.height,
    title: opts.title ??
      `Stable lr η*(B), round ${report ? report.round : "–"}`,
    xLabel: "batch size B (log)",
    yLabel: "η* = 2/λ_gen(B) (log)",
    logX: true,
    logY: true,
    lines: [{
      name: "η*(B)",
      x: grid.map((e) => e.B),
      y: grid.map((e) => e.eta_star),
      color: COLORS.batch,
      dots: true,
    }],
    hlines: Number.isFinite(lr)
      ? [{ y: lr, label: `lr = ${fmt(lr)}`, color: COLORS.edge }]
      : [],
    vlines: Number.isFinite(B)
      ? [{ x: B, label: `B = ${B}`, color: COLORS.lambdaMax }]
      : [],
    markers: Number.isFinite(B) && Number.isFinite(report.eta_star)
      ? [{
        x: B,
        y: report.eta_star,
        label: `η* = ${fmt(report.eta_star)}`,
        color: COLORS.lambdaGen,
      }]
      : [],
  };
}
