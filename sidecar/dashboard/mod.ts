/**
 * Live dashboard over the run history: HTML pages, JSON/CSV/JSONL, server-sent events, and
 * the chart specs and SVG renderer shared by the page's export buttons and `deno task plot`.
 *
 * @module
 */
export {
  type Dashboard,
  type DashboardOptions,
  startDashboard,
} from "./server.ts";
export { hostCheck } from "./host_check.ts";
export {
  downsample,
  type Note,
  type Series,
  SeriesCache,
  type SeriesPoint,
  toNote,
  toPoint,
} from "./series.ts";
export { csvHeader, csvRow } from "./csv.ts";
