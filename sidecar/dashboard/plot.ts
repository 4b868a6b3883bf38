/**
 * Exports a run's main chart (λ_max, λ_gen with CI band, 2/lr against step) as a
 * standalone SVG file, drawn by the same code as the dashboard.
 *
 * Usage: deno task plot <run-id> [--data-dir D] [--out file.svg] [--max-points N]
 * The data directory defaults to $EDGEWISE_DATA_DIR, then ./edgewise-data; the output to
 * <run-id>.svg (sanitised) in the current directory.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { HistoryStore } from "../store/history_store.ts";
import { downsample, emptySeries, pushPoint, toPoint } from "./series.ts";
import { renderChart, sharpnessSpec } from "./static/chart.js";

/** Options for {@linkcode plotRun}. */
export interface PlotOptions {
  /** Points drawn per line. Default 2000. */
  maxPoints?: number;
  width?: number;
  height?: number;
}

/**
 * Renders a run's main chart as an SVG document.
 *
 * @param store The history.
 * @param runId The run.
 * @returns The SVG text.
 * @throws {RangeError} If the run is unknown or has no reports.
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
  for await (const r of store.iterReports(runId)) pushPoint(series, toPoint(r));
  if (series.round.length === 0) {
    throw new RangeError(`Run has no reports yet: ${runId}`);
  }
  const spec = sharpnessSpec(downsample(series, options.maxPoints ?? 2000), {
    title:
      `${run.meta.name}: sharpness vs step (${series.round.length} rounds)`,
    width: options.width ?? 900,
    height: options.height ?? 420,
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n${renderChart(spec)}\n`;
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
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    console.error(`plot: ${(err as Error).message}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length !== 1) {
    console.error(
      "Usage: deno task plot <run-id> [--data-dir D] [--out file.svg] [--max-points N]",
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
      maxPoints: values["max-points"]
        ? Number(values["max-points"])
        : undefined,
    });
    const out = values.out ?? `${runId.replace(/[^A-Za-z0-9_-]/g, "_")}.svg`;
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
