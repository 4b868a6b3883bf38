/**
 * Exports a run's chart as a standalone SVG file, without a browser: the same chart specs
 * (`static/chart_specs.js`) and SVG renderer (`static/svg.js`) as the page's export buttons.
 *
 * Usage: deno task plot <run-id> [--data-dir D] [--out file.svg] [--max-points N]
 *        [--chart sharpness|margin|lr|batch|curvature|loss] [--x step|epoch|wall]
 * The data directory defaults to $EDGEWISE_DATA_DIR, then ./edgewise-data; the output to
 * <run-id>[-<chart>].svg (sanitised) in the current directory.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { HistoryStore, type Report } from "../store/history_store.ts";
import { downsample, emptySeries, pushPoint, toPoint } from "./series.ts";
import { runCharts } from "./static/chart_specs.js";
import { renderSvg } from "./static/svg.js";

/** Charts `plot` can draw. */
export const CHARTS = ["sharpness", "margin", "lr", "batch", "curvature", "loss"];

/** Options for {@linkcode plotRun}. */
export interface PlotOptions {
  /** Points drawn per line. Default 2000. */
  maxPoints?: number;
  width?: number;
  height?: number;
  /** Which chart. Default `sharpness`. */
  chart?: string;
  /** x axis. Default `step`. */
  x?: "step" | "epoch" | "wall";
}

/**
 * Renders one chart of a run as an SVG document.
 *
 * @param store The history.
 * @param runId The run.
 * @returns The SVG text.
 * @throws {RangeError} If the run is unknown, has no reports, or lacks the chart's data.
 */
export async function plotRun(
  store: HistoryStore,
  runId: string,
  options: PlotOptions = {},
): Promise<string> {
  const run = store.run(runId);
  if (!run) {
    const known = store.runs().map((r) => r.meta.id).join(", ") || "none";
    throw new RangeError(`Unknown run: ${runId} (known: ${known})`);
  }
  const series = emptySeries();
  let latest: Report | null = null;
  for await (const r of store.iterReports(runId)) {
    pushPoint(series, toPoint(r));
    latest = r;
  }
  if (series.round.length === 0) {
    throw new RangeError(`Run has no reports yet: ${runId}`);
  }
  const chart = options.chart ?? "sharpness";
  const specs = runCharts(
    downsample(series, options.maxPoints ?? 2000) as unknown as Record<
      string,
      (number | null)[]
    >,
    latest,
    {
      xMode: options.x ?? "step",
      title: `${run.meta.name}: sharpness (${series.round.length} rounds)`,
    },
  );
  const spec = specs.find((s) => s.id === chart);
  if (!spec) {
    throw new RangeError(
      `Chart not available for this run: ${chart} (available: ${
        specs.map((s) => s.id).join(", ")
      })`,
    );
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n${
    renderSvg(spec, { width: options.width ?? 900, height: options.height ?? 460 })
  }\n`;
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        "data-dir": { type: "string" },
        out: { type: "string" },
        "max-points": { type: "string" },
        chart: { type: "string" },
        x: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    console.error(`plot: ${(err as Error).message}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const x = values.x ?? "step";
  if (
    values.help || positionals.length !== 1 ||
    !["step", "epoch", "wall"].includes(x) ||
    (values.chart !== undefined && !CHARTS.includes(values.chart))
  ) {
    console.error(
      `Usage: deno task plot <run-id> [--data-dir D] [--out file.svg] [--max-points N] [--chart ${
        CHARTS.join("|")
      }] [--x step|epoch|wall]`,
    );
    return values.help ? 0 : 2;
  }
  const runId = positionals[0];
  const dataDir = values["data-dir"] ?? Deno.env.get("EDGEWISE_DATA_DIR") ??
    "./edgewise-data";
  try {
    await Deno.stat(dataDir);
  } catch {
    console.error(`plot: data directory not found: ${dataDir}`);
    return 1;
  }
  const store = await HistoryStore.open({ dataDir });
  try {
    const svg = await plotRun(store, runId, {
      maxPoints: values["max-points"] ? Number(values["max-points"]) : undefined,
      chart: values.chart,
      x: x as PlotOptions["x"],
    });
    const suffix = values.chart ? `-${values.chart}` : "";
    const out = values.out ??
      `${runId.replace(/[^A-Za-z0-9_-]/g, "_")}${suffix}.svg`;
    await Deno.writeTextFile(out, svg);
    console.log(`Wrote ${out}`);
    return 0;
  } catch (err) {
    console.error(`plot: ${(err as Error).message}`);
    return 1;
  } finally {
    store.close();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
