/**
 * End to end in a real browser: headless Chromium (Debian package `chromium`) opens the run
 * page over CDP while reports are appended live, and checks the charts grow and draw real
 * data. Writes docs/dashboard.png. Skipped, with a message, only if Chromium is missing.
 */
import { ok as assert } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Buffer } from "node:buffer";
import { HistoryStore } from "../../sidecar/store/history_store.ts";
import { syntheticReport } from "../../sidecar/store/_synthetic.ts";
import { startDashboard } from "../../sidecar/dashboard/server.ts";
import { COUNT_PIXELS, findChromium, launchBrowser, waitFor } from "./cdp.ts";
import { syntheticFeeder } from "./feeder.ts";

const chromium = await findChromium();
if (!chromium) {
  console.warn(
    "SKIP dashboard e2e: chromium not found on PATH (apt-get install -y chromium)",
  );
}

const SCREENSHOT = fileURLToPath(
  new URL("../../docs/dashboard.png", import.meta.url),
);

Deno.test({
  name:
    "dashboard run page in headless Chromium grows live and draws real charts",
  ignore: !chromium,
  sanitizeResources: false, // Chromium's stderr drain ends when the process is killed
  sanitizeOps: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "edgewise-e2e-" });
    const store = await HistoryStore.open({ dataDir });
    const runId = "resnet18-cifar10";
    await store.openRun({
      id: runId,
      name: "ResNet-18 / CIFAR-10 (synthetic)",
      params: 11_173_962,
      n: 50_000,
      batch_size: 64,
      probe: 256,
      curvature: "ggn",
    });
    for (let i = 0; i < 120; i++) {
      await store.append(runId, syntheticReport(runId, i));
    }
    const dash = await startDashboard({ store, port: 0 });
    const feeder = syntheticFeeder(store, runId, { intervalMs: 60 });
    const browser = await launchBrowser(chromium!);
    try {
      await browser.send("Page.enable");
      await browser.send("Page.navigate", {
        url: new URL(`/runs/${encodeURIComponent(runId)}`, dash.url).href,
      });
      const points = () =>
        browser.evaluate<number>("Number(document.body?.dataset.points ?? 0)");
      const first = await waitFor("first render", points, (n) => n >= 120);
      const drawn1 = await browser.evaluate<number>(
        "Number(document.querySelector('#chart-sharpness svg')?.dataset.points ?? 0)",
      );
      // Live: the page gains points as the feeder appends, without reloading.
      const later = await waitFor(
        "live points",
        points,
        (n) => n >= first + 10,
      );
      const drawn2 = await waitFor(
        "chart growth",
        () =>
          browser.evaluate<number>(
            "Number(document.querySelector('#chart-sharpness svg')?.dataset.points ?? 0)",
          ),
        (n) => n > drawn1,
      );
      assert(
        later > first && drawn2 > drawn1,
        `page did not grow: ${first}→${later}, drawn ${drawn1}→${drawn2}`,
      );
      await feeder.stop();
      const total = store.run(runId)!.rounds;
      await waitFor("final render", points, (n) => n === total);
      assert(
        await browser.evaluate<boolean>(
          "document.getElementById('status').textContent === 'live'",
        ),
      );
      // Real drawing, not a blank chart: the λ_gen and λ_max lines cover many pixels.
      const px = await browser.evaluate<
        { gen: number; max: number; ink: number; total: number }
      >(COUNT_PIXELS);
      assert(
        px.gen > 300 && px.max > 300,
        `too few line pixels: ${JSON.stringify(px)}`,
      );
      // All three charts and the labelled reference lines are on the page.
      const labels = await browser.evaluate<string>(
        "document.querySelector('.grid').textContent",
      );
      for (
        const l of [
          "2/lr",
          "edge",
          "λ_gen CI",
          "B = 64",
          "lr = 0.05",
          "Latest report",
        ]
      ) assert(labels.includes(l), l);
      const shot = await browser.send("Page.captureScreenshot", {
        format: "png",
        captureBeyondViewport: false,
      });
      const png = new Uint8Array(Buffer.from(shot.data as string, "base64"));
      assert(
        png.length > 20_000,
        `screenshot suspiciously small: ${png.length} bytes`,
      );
      await Deno.writeFile(SCREENSHOT, png);
    } finally {
      await feeder.stop();
      await browser.close();
      await dash.close();
      store.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
