/**
 * Dashboard at scale: 10 runs × 10,000 reports. Prints the time to load the store, to
 * serve the runs page, a run's reports JSON / series / CSV, the fsync'd append latency,
 * and (with Chromium) the time until the run page has rendered all 10,000 rounds and how
 * long a live report takes to reach the chart.
 *
 * Run: tools/deno run -A benchmarks/bench_dashboard.ts [--runs 10] [--reports 10000]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { HistoryStore } from "../sidecar/store/history_store.ts";
import { runDirName } from "../sidecar/store/run_dir.ts";
import { syntheticReport } from "../sidecar/store/_synthetic.ts";
import { startDashboard } from "../sidecar/dashboard/server.ts";
import { findChromium, launchBrowser } from "../tests/e2e/cdp.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string" }, reports: { type: "string" } },
});
const RUNS = Number(values.runs ?? 10),
  REPORTS = Number(values.reports ?? 10_000);

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
}

/** Median of `k` timings of `fn`, in ms. */
async function median(k: number, fn: () => Promise<unknown>): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < k; i++) ts.push((await timed(fn))[1]);
  return ts.sort((a, b) => a - b)[Math.floor(k / 2)];
}

const dataDir = await Deno.makeTempDir({ prefix: "edgewise-bench-" });
const rows: [string, string][] = [];
const row = (k: string, v: string) => {
  rows.push([k, v]);
  console.log(`${k.padEnd(52)} ${v}`);
};
try {
  // Bulk-write the history (one fsync per report would only measure the disk).
  {
    const store = await HistoryStore.open({ dataDir });
    for (let r = 0; r < RUNS; r++) {
      const id = `bench-run-${r}`;
      await store.openRun({
        id,
        name: `Bench run ${r}`,
        batch_size: 64,
        params: 1_000_000,
        n: 50_000,
        probe: 256,
      });
      const lines: string[] = [];
      for (let i = 0; i < REPORTS; i++) {
        lines.push(JSON.stringify(syntheticReport(id, i)));
      }
      await Deno.writeTextFile(
        join(dataDir, "runs", await runDirName(id), "reports.jsonl"),
        lines.join("\n") + "\n",
      );
    }
    store.close();
  }
  const [store, openMs] = await timed(() => HistoryStore.open({ dataDir }));
  row(
    `store open (${RUNS} runs × ${REPORTS} reports)`,
    `${openMs.toFixed(0)} ms`,
  );
  const dash = await startDashboard({ store, port: 0 });
  const id = "bench-run-3";
  const get = (p: string) =>
    fetch(new URL(p, dash.url)).then((r) => r.arrayBuffer());
  const size = async (p: string) =>
    ((await get(p)).byteLength / 1e6).toFixed(1) + " MB";
  row(
    "GET / (runs page), median of 5",
    `${(await median(5, () => get("/"))).toFixed(1)} ms`,
  );
  row(
    `GET /api/runs/:id/reports (${REPORTS}), median of 3`,
    `${
      (await median(3, () => get(`/api/runs/${id}/reports`))).toFixed(0)
    } ms, ${await size(`/api/runs/${id}/reports`)}`,
  );
  const [, firstSeries] = await timed(() => get(`/api/runs/${id}/series`));
  row(
    "GET /api/runs/:id/series, first (loads run)",
    `${firstSeries.toFixed(0)} ms`,
  );
  row(
    "GET /api/runs/:id/series, cached, median of 5",
    `${
      (await median(5, () => get(`/api/runs/${id}/series`))).toFixed(1)
    } ms, ${await size(`/api/runs/${id}/series`)}`,
  );
  row(
    "GET /api/runs/:id/reports.csv, median of 3",
    `${
      (await median(3, () => get(`/api/runs/${id}/reports.csv`))).toFixed(0)
    } ms, ${await size(`/api/runs/${id}/reports.csv`)}`,
  );
  let round = REPORTS;
  row(
    "append (write + fsync), median of 50",
    `${
      (await median(50, () => store.append(id, syntheticReport(id, round++))))
        .toFixed(2)
    } ms`,
  );
  row(
    "RSS after loading everything",
    `${(Deno.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );

  const chromium = await findChromium();
  if (!chromium) {
    console.log(
      "Chromium not found: skipped the page render timing (apt-get install -y chromium)",
    );
  } else {
    const browser = await launchBrowser(chromium);
    try {
      await browser.send("Page.enable");
      const pageId = "bench-run-7"; // not yet loaded by the server: includes reading the run
      const expect = store.run(pageId)!.rounds;
      const t0 = performance.now();
      await browser.send("Page.navigate", {
        url: new URL(`/runs/${pageId}`, dash.url).href,
      });
      while (
        await browser.evaluate<number>(
          "Number(document.body?.dataset.points ?? 0)",
        ) !== expect
      ) {
        await new Promise((r) => setTimeout(r, 20));
      }
      row(
        `run page: navigate → charts rendered (${expect} rounds)`,
        `${(performance.now() - t0).toFixed(0)} ms`,
      );
      const renderMs = await browser.evaluate<number>(
        `(() => { const t = performance.now();
        document.getElementById('status'); const s = document.querySelector('#chart-sharpness svg').outerHTML;
        const d = document.createElement('div'); d.innerHTML = s; return performance.now() - t; })()`,
      );
      row(
        "  re-parse of the sharpness SVG in page",
        `${renderMs.toFixed(1)} ms`,
      );
      const drawn = await browser.evaluate<number>(
        "Number(document.body.dataset.drawn)",
      );
      row("  points per line drawn (downsampled)", `${drawn}`);
      const lat: number[] = [];
      let r2 = store.run(pageId)!.nextRound;
      for (let i = 0; i < 5; i++) {
        const before = await browser.evaluate<number>(
          "Number(document.body.dataset.points)",
        );
        const t1 = performance.now();
        await store.append(pageId, syntheticReport(pageId, r2++));
        while (
          await browser.evaluate<number>(
            "Number(document.body.dataset.points)",
          ) === before
        ) {
          await new Promise((r) => setTimeout(r, 5));
        }
        lat.push(performance.now() - t1);
      }
      lat.sort((a, b) => a - b);
      row(
        "live append → chart updated, median of 5 (incl. 200 ms throttle)",
        `${lat[2].toFixed(0)} ms`,
      );
    } finally {
      await browser.close();
    }
  }
  await dash.close();
  store.close();
} finally {
  await Deno.remove(dataDir, { recursive: true });
}
