/**
 * Compact, columnar chart series built from reports, and their downsampling.
 *
 * Why: a run page must stay responsive with 10,000 reports per run, so the browser gets a
 * few numeric columns (at most a couple of thousand points), never the full reports.
 *
 * @module
 */
import type { HistoryStore, Report } from "../store/history_store.ts";

/** One chart point per report; `null` where the report lacks the number. */
export interface SeriesPoint {
  round: number;
  step: number | null;
  lr: number | null;
  lambda_max: number | null;
  lambda_gen: number | null;
  lo: number | null;
  hi: number | null;
  margin: number | null;
  eta_star: number | null;
}

/** Columns of {@linkcode SeriesPoint}s, the JSON the browser receives. */
export type Series = { [K in keyof SeriesPoint]: SeriesPoint[K][] };

const KEYS = [
  "round",
  "step",
  "lr",
  "lambda_max",
  "lambda_gen",
  "lo",
  "hi",
  "margin",
  "eta_star",
] as const;

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/**
 * Extracts the charted numbers of a report.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(toPoint({ run: "r", round: 2, step: 7, ci: { lambda_gen_lo: 1 } }).lo, 1);
 * ```
 */
export function toPoint(r: Report): SeriesPoint {
  const ci = (typeof r.ci === "object" && r.ci !== null ? r.ci : {}) as Record<
    string,
    unknown
  >;
  return {
    round: r.round,
    step: num(r.step),
    lr: num(r.lr),
    lambda_max: num(r.lambda_max),
    lambda_gen: num(r.lambda_gen),
    lo: num(ci.lambda_gen_lo),
    hi: num(ci.lambda_gen_hi),
    margin: num(r.margin),
    eta_star: num(r.eta_star),
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
 * Keeps at most `max` points, evenly strided, always keeping the first and last.
 *
 * @param s The full series (not modified).
 * @param max Largest number of points to return (at least 2).
 * @returns `s` itself if short enough, else a new series.
 * @throws {RangeError} If `max < 2`.
 */
export function downsample(s: Series, max: number): Series {
  if (!(max >= 2)) {
    throw new RangeError(`Downsample size must be at least 2: got ${max}`);
  }
  const n = s.round.length;
  if (n <= max) return s;
  const idx: number[] = [];
  for (let i = 0; i < max; i++) idx.push(Math.round((i * (n - 1)) / (max - 1)));
  const out = emptySeries();
  for (const k of KEYS) (out[k] as (number | null)[]) = idx.map((i) => s[k][i]);
  return out;
}

/**
 * Per-run series kept in memory and updated live from the store; built lazily on first use.
 */
export class SeriesCache {
  readonly #store: HistoryStore;
  readonly #series = new Map<string, Promise<Series>>();
  readonly #unsubscribe: () => void;

  constructor(store: HistoryStore) {
    this.#store = store;
    this.#unsubscribe = store.subscribe(({ run, report }) => {
      const s = this.#series.get(run);
      // Reports appended while the series is loading are added once it is loaded.
      s?.then((series) => add(series, report));
    });
  }

  /** The full series of a run (shared; do not modify). */
  get(runId: string): Promise<Series> {
    let s = this.#series.get(runId);
    if (!s) {
      s = (async () => {
        const series = emptySeries();
        for await (const r of this.#store.iterReports(runId)) add(series, r);
        return series;
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

function add(series: Series, r: Report): void {
  const last = series.round[series.round.length - 1];
  if (last === undefined || r.round > last) pushPoint(series, toPoint(r));
}
