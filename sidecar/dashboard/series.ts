/**
 * Compact, columnar chart series built from reports, their downsampling, and the notes
 * (rounds that did not converge, warnings, negative curvature) shown in full beside them.
 *
 * Why: a run page must stay responsive with 10,000 reports per run, so the browser gets a
 * few numeric columns (at most a couple of thousand points), never the full reports. The
 * rounds a reader must not miss are kept whatever the downsampling.
 *
 * @module
 */
import type { HistoryStore, Report } from "../store/history_store.ts";
import { FLAG, negativeCurvature } from "./static/chart_specs.js";

/** One chart point per report; `null` where the report lacks the number. */
export interface SeriesPoint {
  round: number;
  step: number | null;
  /** Fractional epoch `step·B/n` when those are known, else the report's `epoch`. */
  epoch: number | null;
  /** Unix seconds. */
  time: number | null;
  lr: number | null;
  suggested_lr: number | null;
  lambda_max: number | null;
  lambda_gen: number | null;
  lo: number | null;
  hi: number | null;
  margin: number | null;
  eta_star: number | null;
  bound_top: number | null;
  bound_identity: number | null;
  bound_rank_one: number | null;
  min_curvature: number | null;
  /** Training loss, when the client sends it (`loss` or `train_loss`). */
  loss: number | null;
  loss_floor: number | null;
  /** Bits of {@linkcode FLAG}: not converged, warnings, negative min curvature. */
  flags: number;
}

/** Columns of {@linkcode SeriesPoint}s, the JSON the browser receives. */
export type Series = { [K in keyof SeriesPoint]: SeriesPoint[K][] };

/** A round worth reading in full: what went wrong, in the report's own words. */
export interface Note {
  round: number;
  step: number | null;
  flags: number;
  converged: boolean | null;
  stopped: string | null;
  residual: number | null;
  min_curvature: number | null;
  warnings: string[];
}

const KEYS = [
  "round",
  "step",
  "epoch",
  "time",
  "lr",
  "suggested_lr",
  "lambda_max",
  "lambda_gen",
  "lo",
  "hi",
  "margin",
  "eta_star",
  "bound_top",
  "bound_identity",
  "bound_rank_one",
  "min_curvature",
  "loss",
  "loss_floor",
  "flags",
] as const;

/** Notes kept per run (the most recent). */
const MAX_NOTES = 1000;

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : {};
}

/** The warnings of a report as strings (anything else is stringified). */
function warningsOf(r: Report): string[] {
  const w = r.warnings;
  if (Array.isArray(w)) return w.map((x) => typeof x === "string" ? x : JSON.stringify(x));
  return typeof w === "string" && w ? [w] : [];
}

/** The {@linkcode FLAG} bits of a report. */
export function flagsOf(r: Report): number {
  let f = 0;
  if (r.converged === false) f |= FLAG.notConverged;
  if (warningsOf(r).length) f |= FLAG.warnings;
  if (negativeCurvature(num(r.min_curvature), num(r.lambda_max))) {
    f |= FLAG.negativeCurvature;
  }
  return f;
}

/**
 * Extracts the charted numbers of a report.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(toPoint({ run: "r", round: 2, step: 7, ci: { lambda_gen_lo: 1 } }).lo, 1);
 * strictEqual(toPoint({ run: "r", round: 2, converged: false }).flags, 1);
 * ```
 */
export function toPoint(r: Report): SeriesPoint {
  const ci = obj(r.ci), b = obj(r.bounds);
  const step = num(r.step), B = num(r.batch_size), n = num(r.n);
  return {
    round: r.round,
    step,
    epoch: step !== null && B !== null && n !== null && n > 0 ? (step * B) / n : num(r.epoch),
    time: num(r.time),
    lr: num(r.lr),
    suggested_lr: num(r.suggested_lr),
    lambda_max: num(r.lambda_max),
    lambda_gen: num(r.lambda_gen),
    lo: num(ci.lambda_gen_lo),
    hi: num(ci.lambda_gen_hi),
    margin: num(r.margin),
    eta_star: num(r.eta_star),
    bound_top: num(b.top_eigvec),
    bound_identity: num(b.identity),
    bound_rank_one: num(b.rank_one),
    min_curvature: num(r.min_curvature),
    loss: num(r.loss) ?? num(r.train_loss),
    loss_floor: num(r.loss_floor),
    flags: flagsOf(r),
  };
}

/**
 * The note of a report, or `null` when nothing in it needs a reader's attention.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * deepStrictEqual(toNote({ run: "r", round: 3, warnings: ["slow"] })?.warnings, ["slow"]);
 * ```
 */
export function toNote(r: Report): Note | null {
  const flags = flagsOf(r);
  if (!flags) return null;
  return {
    round: r.round,
    step: num(r.step),
    flags,
    converged: typeof r.converged === "boolean" ? r.converged : null,
    stopped: typeof r.stopped === "string" ? r.stopped : null,
    residual: num(r.residual),
    min_curvature: num(r.min_curvature),
    warnings: warningsOf(r),
  };
}

/** An empty series. */
export function emptySeries(): Series {
  return Object.fromEntries(KEYS.map((k) => [k, []])) as unknown as Series;
}

/** Appends a point to a series in place. */
export function pushPoint(s: Series, p: SeriesPoint): void {
  for (const k of KEYS) (s[k] as (number | null)[]).push(p[k]);
}

/**
 * Keeps at most about `max` points, evenly strided, always keeping the first and last and
 * every flagged point (up to `max` of them, evenly chosen).
 *
 * @param s The full series (not modified).
 * @param max Number of strided points to keep (at least 2).
 * @returns `s` itself if short enough, else a new series.
 * @throws {RangeError} If `max < 2`.
 */
export function downsample(s: Series, max: number): Series {
  if (!(max >= 2)) {
    throw new RangeError(`Downsample size must be at least 2: got ${max}`);
  }
  const n = s.round.length;
  if (n <= max) return s;
  const keep = new Set<number>();
  for (let i = 0; i < max; i++) keep.add(Math.round((i * (n - 1)) / (max - 1)));
  const flagged: number[] = [];
  for (let i = 0; i < n; i++) if (s.flags[i]) flagged.push(i);
  const fk = Math.min(flagged.length, max);
  for (let j = 0; j < fk; j++) {
    keep.add(flagged[fk === 1 ? flagged.length - 1 : Math.round((j * (flagged.length - 1)) / (fk - 1))]);
  }
  const idx = [...keep].sort((a, b) => a - b);
  const out = emptySeries();
  for (const k of KEYS) (out[k] as (number | null)[]) = idx.map((i) => s[k][i]);
  return out;
}

/** A run's full series and its notes. */
export interface RunSeries {
  series: Series;
  notes: Note[];
}

/**
 * Per-run series kept in memory and updated live from the store; built lazily on first use.
 */
export class SeriesCache {
  readonly #store: HistoryStore;
  readonly #series = new Map<string, Promise<RunSeries>>();
  readonly #unsubscribe: () => void;

  constructor(store: HistoryStore) {
    this.#store = store;
    this.#unsubscribe = store.subscribe(({ run, report }) => {
      const s = this.#series.get(run);
      // Reports appended while the series is loading are added once it is loaded.
      s?.then((rs) => add(rs, report));
    });
  }

  /** The full series and notes of a run (shared; do not modify). */
  get(runId: string): Promise<RunSeries> {
    let s = this.#series.get(runId);
    if (!s) {
      s = (async () => {
        const rs = { series: emptySeries(), notes: [] };
        for await (const r of this.#store.iterReports(runId)) add(rs, r);
        return rs;
      })();
      this.#series.set(runId, s);
      s.catch(() => this.#series.delete(runId));
    }
    return s;
  }

  /** Stops following the store. */
  close(): void {
    this.#unsubscribe();
  }
}

function add(rs: RunSeries, r: Report): void {
  const last = rs.series.round[rs.series.round.length - 1];
  if (last !== undefined && r.round <= last) return;
  const point = toPoint(r);
  pushPoint(rs.series, point);
  const note = point.flags ? toNote(r) : null;
  if (note) {
    rs.notes.push(note);
    if (rs.notes.length > MAX_NOTES) rs.notes.splice(0, rs.notes.length - MAX_NOTES);
  }
}
