/**
 * Dashboard at scale: 10 runs × 10,000 reports. Prints the time to load the store, to
 * serve the runs page, a run's reports JSON / series / CSV, the fsync'd append latency,
 * and (with Chromium, driven by Playwright) the time until the run page has drawn all
 * 10,000 rounds (as sent by default, downsampled, and at full resolution) and how long a
 * live report takes to reach the chart. A benchmark, not a test: it prints numbers.
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
import { findChromium, launchBrowser, type Page } from "../tests/e2e/browser.ts";

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
    const full = await startDashboard({ store, port: 0, maxPoints: REPORTS });
    const browser = await launchBrowser(chromium);
    try {
      for (const [label, base, pageId] of [
        ["default (≤ 2000 points + flagged)", dash.url, "bench-run-7"],
        [`full resolution (${REPORTS} points)`, full.url, "bench-run-8"],
      ] as const) {
        // Runs 7 and 8 are not yet loaded by the server: includes reading the run.
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        const expect = store.run(pageId)!.rounds;
        const t0 = performance.now();
        await page.goto(new URL(`/runs/${pageId}`, base).href);
        await page.waitForFunction(
          `Number(document.body.dataset.points) === ${expect} && document.body.dataset.renderMs !== undefined`,
          undefined,
          { polling: "raf" },
        );
        row(
          `run page ${label}: navigate → charts drawn (${expect} rounds)`,
          `${(performance.now() - t0).toFixed(0)} ms`,
        );
        row(
          "  navigation start → charts drawn, page clock",
          `${await page.evaluate<string>("document.body.dataset.drawnAt")} ms (scripts ready ${await page
            .evaluate<string>(
              'performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd.toFixed(0)',
            )} ms, run's series arrived ${await page.evaluate<string>("document.body.dataset.initAt")} ms)`,
        );
        row(
          "  of which the page's chart build + draw",
          `${await page.evaluate<string>("document.body.dataset.renderMs")} ms, ${await page
            .evaluate<string>("document.body.dataset.drawn")} points per line`,
        );
        const t2 = performance.now();
        await page.reload();
        await page.waitForFunction(
          `Number(document.body.dataset.points) === ${expect} && document.body.dataset.renderMs !== undefined`,
          undefined,
          { polling: "raf" },
        );
        row(
          "  reload (run cached by the server) → charts drawn",
          `${(performance.now() - t2).toFixed(0)} ms (in page: ${await page.evaluate<string>(
            "document.body.dataset.renderMs",
          )} ms)`,
        );
        const redraws: number[] = [];
        for (let i = 0; i < 5; i++) redraws.push(await redrawAll(page));
        redraws.sort((a, b) => a - b);
        row("  rebuild + draw of all charts in page, median of 5", `${redraws[2].toFixed(1)} ms`);
        const lat: number[] = [];
        let r2 = store.run(pageId)!.nextRound;
        for (let i = 0; i < 11; i++) {
          const want = r2;
          const t1 = performance.now();
          await store.append(pageId, syntheticReport(pageId, r2++));
          await page.waitForFunction(
            `(() => { const x = globalThis.edgewise.series.round; return x[x.length - 1] === ${want} && globalThis.edgewise.panels.get("sharpness").points === x.length; })()`,
            undefined,
            { polling: "raf" },
          );
          lat.push(performance.now() - t1);
        }
        lat.sort((a, b) => a - b);
        row(
          "  live append (fsync) → on the chart, median / max of 11",
          `${lat[5].toFixed(0)} / ${lat[10].toFixed(0)} ms`,
        );
        await page.close();
      }
    } finally {
      await browser.close();
      await full.close();
    }
  }
  await dash.close();
  store.close();
} finally {
  await Deno.remove(dataDir, { recursive: true });
}

/** Rebuilds every chart of the page from scratch; ms until the next frame, timed in page. */
function redrawAll(page: Page): Promise<number> {
  return page.evaluate<number>(`new Promise((done) => {
    const t0 = performance.now();
    const sel = document.getElementById("x-mode");
    sel.value = "step";
    sel.dispatchEvent(new Event("change"));
    requestAnimationFrame(() => done(performance.now() - t0));
  })`);
}
