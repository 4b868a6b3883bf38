/**
 * Live dashboard over the run history: HTML pages, JSON/CSV/JSONL, server-sent events, and
 * the SVG chart code shared with the `plot` export.
 *
 * @module
 */
export {
  type Dashboard,
  type DashboardOptions,
  startDashboard,
} from "./server.ts";
export {
  downsample,
  type Series,
  SeriesCache,
  type SeriesPoint,
  toPoint,
} from "./series.ts";
export { csvHeader, csvRow } from "./csv.ts";
