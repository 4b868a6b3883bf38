/**
 * Reports as CSV (one row per report) for spreadsheets and pandas.
 *
 * Why a fixed column list: columns stay stable across rounds even when optional SPEC §5
 * fields come and go; nested maps are flattened (`ci_lambda_gen_lo`), `eta_star_by_batch`
 * is left to the JSONL download.
 *
 * @module
 */
import type { Report } from "../store/history_store.ts";

/** The CSV columns, in order: `[header, path into the report]`. */
export const CSV_COLUMNS: readonly [string, string[]][] = [
  ...[
    "run",
    "round",
    "step",
    "epoch",
    "lr",
    "batch_size",
    "n",
    "p",
    "m",
    "lambda_max",
    "lambda_gen",
    "eta_star",
    "eta_gd",
    "margin",
    "suggested_lr",
    "converged",
    "residual",
    "basis_size",
    "hvps",
    "wall_ms",
    "time",
    "min_stable_batch",
    "loss_floor",
    "loss_floor_leading",
    "grad_norm",
    "grad_norm_floor",
    "min_curvature",
    "stopped",
    "warnings",
  ].map((k): [string, string[]] => [k, [k]]),
  ...["lambda_gen_lo", "lambda_gen_hi", "eta_star_lo", "eta_star_hi", "level"]
    .map((k): [string, string[]] => [`ci_${k}`, ["ci", k]]),
  ...["top_eigvec", "identity", "identity_se", "rank_one"]
    .map((k): [string, string[]] => [`bounds_${k}`, ["bounds", k]]),
  // the optimizer fields of SPEC §5 (issue 14), appended so earlier columns keep their place
  ["optimizer", ["optimizer", "description"]],
  ...["method", "eta_star_sgd", "eta_star_full_batch", "eta_star_upper"].map((k): [string, string[]] => [k, [k]]),
];

/** Quotes one CSV field (RFC 4180). */
export function csvField(v: unknown): string {
  if (v === undefined || v === null) return "";
  const s = Array.isArray(v)
    ? v.join("; ")
    : typeof v === "object"
    ? JSON.stringify(v)
    : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The header line, with its line break. */
export function csvHeader(): string {
  return CSV_COLUMNS.map(([h]) => h).join(",") + "\r\n";
}

/**
 * One report as a CSV row, with its line break.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * ok(csvRow({ run: "a,b", round: 0 }).startsWith('"a,b",0,'));
 * ```
 */
export function csvRow(r: Report): string {
  return CSV_COLUMNS.map(([, path]) => {
    let v: unknown = r;
    for (const k of path) {
      v = v && typeof v === "object"
        ? (v as Record<string, unknown>)[k]
        : undefined;
    }
    return csvField(v);
  }).join(",") + "\r\n";
}
