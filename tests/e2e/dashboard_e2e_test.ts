/**
 * The dashboard in real headless Chromium (Debian package `chromium`), driven by Playwright:
 * hover readout, drag-zoom, live appends, non-converged markers and notes, the x-axis
 * switch, SVG/PNG export, the sortable runs table, the compare view, and a 420 px screen.
 * Expected values come from the report generator (`fixtures.ts`), never from the page's
 * code. Writes docs/dashboard-run.png and docs/dashboard-compare.png. Skipped, with a
 * message, only if Chromium is missing.
 */
// Code passed to page.evaluate() runs in Chromium; these DOM names exist there, not in Deno's
// types (the "dom" lib would clash with Deno's streams in the other tests).
// deno-lint-ignore no-explicit-any
declare const document: any, Image: any, DOMParser: any, scrollTo: any;
// deno-lint-ignore no-explicit-any
type HTMLElement = any;
// deno-lint-ignore no-explicit-any
type HTMLCanvasElement = any;
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { HistoryStore } from "../../sidecar/store/history_store.ts";
import { syntheticReport } from "../../sidecar/store/_synthetic.ts";
import { startDashboard } from "../../sidecar/dashboard/server.ts";
import {
  chartInk,
  findChromium,
  launchBrowser,
  legend,
  type Page,
  pngStats,
  waitFor,
} from "./browser.ts";
import { fillRun, LR_CUT, NOT_CONVERGED, richReport, WARNED, WARNING } from "./fixtures.ts";

const chromium = await findChromium();
if (!chromium) {
  console.warn("SKIP dashboard e2e: chromium not found on PATH (apt-get install -y chromium)");
}

const docs = (name: string) => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url));
const RUN = "resnet18-cifar10";
const OTHER = "resnet18-b256";
const ROUNDS = 120;
const STEPS_PER_ROUND = 100; // syntheticReport's default

/** Relative difference of a legend's text from the expected number. */
function near(text: string, expected: number): boolean {
  const v = Number(text.replace(/,/g, ""));
  return Math.abs(v - expected) <= 1e-3 * Math.abs(expected);
}

/** uPlot's x scale of a chart. */
function xScale(page: Page, id: string): Promise<[number, number]> {
  return page.evaluate((id) => {
    // deno-lint-ignore no-explicit-any
    const u = (globalThis as any).edgewise.panels.get(id).u;
    return [u.scales.x.min, u.scales.x.max] as [number, number];
  }, id);
}

/** Page coordinates of x value `x` on chart `id`, halfway down its plot area. */
function pointAt(page: Page, id: string, x: number): Promise<{ x: number; y: number }> {
  return page.evaluate(([id, x]) => {
    // deno-lint-ignore no-explicit-any
    const u = (globalThis as any).edgewise.panels.get(id).u;
    const r = u.over.getBoundingClientRect();
    return { x: r.left + u.valToPos(x, "x"), y: r.top + r.height / 2 };
  }, [id, x] as const);
}

Deno.test({
  name: "dashboard in headless Chromium: hover, zoom, live, markers, export, compare, 420 px",
  ignore: !chromium,
  sanitizeResources: false, // Chromium's pipes end when the process is killed
  sanitizeOps: false,
  async fn(t) {
    const dataDir = await Deno.makeTempDir({ prefix: "edgewise-e2e-" });
    const store = await HistoryStore.open({ dataDir });
    const meta = { params: 11_173_962, n: 50_000, probe: 256, curvature: "ggn" };
    await fillRun(store, { id: RUN, name: "ResNet-18 / CIFAR-10 (synthetic)", batch_size: 64, ...meta }, ROUNDS);
    await fillRun(
      store,
      { id: OTHER, name: "ResNet-18, B = 256 (synthetic)", batch_size: 256, ...meta },
      90,
      (run, i) => syntheticReport(run, i, { batchSize: 256, lr: 0.08 }),
    );
    const dash = await startDashboard({ store, port: 0 });
    const browser = await launchBrowser(chromium!);
    const url = (p: string) => new URL(p, dash.url).href;
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(url(`/runs/${RUN}`));
      const points = () => page.evaluate(() => Number(document.body.dataset.points ?? 0));
      await waitFor("first render", points, (n) => n === ROUNDS);
      await page.evaluate(() => ((globalThis as unknown as { noReload: string }).noReload = "same page"));

      await t.step("every chart is drawn from the run's data", async () => {
        const ids = await page.evaluate(() => [...document.querySelectorAll(".panel")].map((p) => p.id));
        assertEquals(ids, ["chart-sharpness", "chart-margin", "chart-lr", "chart-batch", "chart-curvature", "chart-loss"]);
        const ink = await chartInk(page, "sharpness", { gen: [255, 127, 14], max: [31, 119, 180] });
        assert(ink.gen > 300 && ink.max > 300, `too few line pixels: ${JSON.stringify(ink)}`);
        const text = await page.evaluate(() => document.querySelector("main")!.textContent!);
        for (const l of ["2/lr", "edge", "λ_gen CI lo", "B = 64", "lr = 0.04", "training loss", "loss floor", `Latest report (round ${ROUNDS - 1})`]) {
          assert(text.includes(l), `${l} not on the page`);
        }
        // The StabilityLR cut is its own marked series on the lr chart, valued at the new lr.
        const at = await pointAt(page, "lr", LR_CUT * STEPS_PER_ROUND);
        await page.mouse.move(at.x, at.y);
        const lr = await waitFor("lr readout", () => legend(page, "lr"), (l) => l["training step"] === `${LR_CUT * STEPS_PER_ROUND}`);
        assertEquals([lr["lr"], lr["lr change"]], ["0.04", "0.04"]);
      });

      await t.step("hover shows the hovered round's values on every synced chart", async () => {
        const round = 50;
        const r = richReport(RUN, round);
        const at = await pointAt(page, "sharpness", round * STEPS_PER_ROUND);
        await page.mouse.move(at.x, at.y);
        const sharp = await waitFor("hover readout", () => legend(page, "sharpness"), (l) => l["training step"] === "5000");
        assert(near(sharp["λ_gen"], r.lambda_gen as number), `λ_gen ${sharp["λ_gen"]} vs ${r.lambda_gen}`);
        assert(near(sharp["λ_max"], r.lambda_max as number), `λ_max ${sharp["λ_max"]}`);
        assert(near(sharp["2/lr"], 2 / (r.lr as number)), `2/lr ${sharp["2/lr"]}`);
        // The crosshair is synced: the margin chart reads the same round.
        const margin = await waitFor("synced readout", () => legend(page, "margin"), (l) => l["training step"] === "5000");
        assert(near(margin["margin lr/η*"], r.margin as number), `margin ${margin["margin lr/η*"]}`);
      });

      await t.step("a non-converged round is marked on its point and listed in full", async () => {
        const round = NOT_CONVERGED[0];
        const at = await pointAt(page, "sharpness", round * STEPS_PER_ROUND);
        await page.mouse.move(at.x, at.y);
        const l = await waitFor("marker readout", () => legend(page, "sharpness"), (l) => l["training step"] === `${round * STEPS_PER_ROUND}`);
        assert(near(l["not converged"], richReport(RUN, round).lambda_gen as number), JSON.stringify(l));
        const next = await pointAt(page, "sharpness", (round + 1) * STEPS_PER_ROUND);
        await page.mouse.move(next.x, next.y);
        const l2 = await waitFor("next round", () => legend(page, "sharpness"), (l) => l["training step"] === `${(round + 1) * STEPS_PER_ROUND}`);
        assertEquals(l2["not converged"], "–");
        const rows = await page.evaluate(() =>
          Object.fromEntries([...document.querySelectorAll("#notes tbody tr")].map((tr) => [(tr as HTMLElement).dataset.round, tr.textContent]))
        );
        for (const r of NOT_CONVERGED) assert(rows[r]?.includes("not converged") && rows[r]?.includes("max_basis"), `round ${r}: ${rows[r]}`);
        assert(rows[WARNED]?.includes(WARNING), `warning text: ${rows[WARNED]}`);
        assert(rows[0]?.includes("negative curvature"), `round 0: ${rows[0]}`);
        const red = await chartInk(page, "sharpness", { red: [214, 39, 40] });
        assert(red.red > 20, `no red marker pixels: ${JSON.stringify(red)}`);
      });

      await t.step("drag-zoom narrows the x range on all charts; double-click resets", async () => {
        const [a0, b0] = await xScale(page, "sharpness");
        const from = await pointAt(page, "sharpness", 3000), to = await pointAt(page, "sharpness", 6000);
        await page.mouse.move(from.x, from.y);
        await page.mouse.down();
        await page.mouse.move(to.x, to.y, { steps: 8 });
        await page.mouse.up();
        const [a1, b1] = await waitFor("zoom", () => xScale(page, "sharpness"), ([a, b]) => b - a < (b0 - a0) / 2);
        assert(Math.abs(a1 - 3000) < 150 && Math.abs(b1 - 6000) < 150, `zoomed to ${a1}–${b1}`);
        const [ma, mb] = await xScale(page, "margin");
        assert(Math.abs(ma - a1) < 1e-6 && Math.abs(mb - b1) < 1e-6, `margin chart not synced: ${ma}–${mb}`);
        await page.mouse.dblclick(from.x, from.y);
        const [a2, b2] = await waitFor("reset", () => xScale(page, "margin"), ([a, b]) => b - a >= b0 - a0);
        assertEquals([a2, b2], [a0, b0]);
      });

      await t.step("a live append reaches the chart without a reload", async () => {
        const given = () => page.evaluate(() => (globalThis as unknown as { edgewise: { panels: Map<string, { points: number }> } }).edgewise.panels.get("sharpness")!.points);
        const before = await given();
        for (let i = ROUNDS; i < ROUNDS + 3; i++) await store.append(RUN, richReport(RUN, i));
        const last = (ROUNDS + 2) * STEPS_PER_ROUND;
        // The x scale follows the data only when the chart has been given it (setData).
        await waitFor("appended points on the chart", () => xScale(page, "sharpness"), ([, b]) => b === last);
        await waitFor("rounds counted", points, (n) => n === ROUNDS + 3);
        assertEquals(await waitFor("points given", given, (n) => n === before + 3), before + 3);
        assertEquals(await page.evaluate(() => (globalThis as unknown as { noReload: string }).noReload), "same page");
        assertEquals(await page.evaluate(() => document.getElementById("status")!.textContent), "live");
        // A zoom survives live appends.
        const from = await pointAt(page, "sharpness", 2000), to = await pointAt(page, "sharpness", 4000);
        await page.mouse.move(from.x, from.y);
        await page.mouse.down();
        await page.mouse.move(to.x, to.y, { steps: 8 });
        await page.mouse.up();
        const zoom = await waitFor("zoom", () => xScale(page, "sharpness"), ([a, b]) => b - a < 3000);
        await store.append(RUN, richReport(RUN, ROUNDS + 3));
        await waitFor("one more round", points, (n) => n === ROUNDS + 4);
        await page.waitForTimeout(100);
        assertEquals(await xScale(page, "sharpness"), zoom);
        await page.click("#reset-zoom");
        await waitFor("reset", () => xScale(page, "sharpness"), ([, b]) => b === (ROUNDS + 3) * STEPS_PER_ROUND);
      });

      await t.step("exported SVG parses and has the series; PNG is an image", async () => {
        const [svgDl] = await Promise.all([
          page.waitForEvent("download"),
          page.click('#chart-sharpness [data-export="svg"]'),
        ]);
        assertEquals(svgDl.suggestedFilename(), "ResNet-18_CIFAR-10_synthetic_-sharpness.svg");
        const svg = await Deno.readTextFile((await svgDl.path())!);
        const parsed = await page.evaluate((text) => {
          const doc = new DOMParser().parseFromString(text, "image/svg+xml");
          const err = doc.querySelector("parsererror")?.textContent ?? null;
          const series = Object.fromEntries(
            [...doc.querySelectorAll("g[data-series]")].map((g) => [g.getAttribute("data-series"), Number(g.getAttribute("data-points"))]),
          );
          return { err, root: doc.documentElement.nodeName, series };
        }, svg);
        assertEquals(parsed.err, null);
        assertEquals(parsed.root, "svg");
        for (const s of ["λ_max", "λ_gen", "λ_gen CI lo", "λ_gen CI hi", "2/lr"]) {
          assertEquals(parsed.series[s], ROUNDS + 4, `${s}: ${JSON.stringify(parsed.series)}`);
        }
        assertEquals(parsed.series["not converged"], NOT_CONVERGED.length);
        const [pngDl] = await Promise.all([
          page.waitForEvent("download"),
          page.click('#chart-margin [data-export="png"]'),
        ]);
        const png = await Deno.readFile((await pngDl.path())!);
        assertEquals([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
        const stats = await pngStats(page, png);
        assert(stats.width === 1800 && stats.colours > 20 && stats.differing > 10_000, JSON.stringify(stats));
      });

      await t.step("x axis switches to epochs and wall time", async () => {
        await page.selectOption("#x-mode", "epoch");
        const [, e1] = await waitFor("epoch axis", () => xScale(page, "sharpness"), ([, b]) => b < 1000);
        assert(Math.abs(e1 - ((ROUNDS + 3) * STEPS_PER_ROUND * 64) / 50_000) < 1e-9, `last epoch ${e1}`);
        await page.selectOption("#x-mode", "wall");
        const [w0, w1] = await waitFor("wall axis", () => xScale(page, "sharpness"), ([a, b]) => a === 0 && b > 1000);
        assertEquals([w0, w1], [0, (ROUNDS + 3) * 12]); // syntheticReport: 12 s per round
        await page.selectOption("#x-mode", "step");
        await waitFor("step axis", () => xScale(page, "sharpness"), ([, b]) => b === (ROUNDS + 3) * STEPS_PER_ROUND);
      });

      await page.mouse.move(5, 5);
      await page.screenshot({ path: docs("dashboard-run.png") });
      assertEquals(errors, []);

      await t.step("runs table sorts by a column and the compare view overlays two runs", async () => {
        await page.goto(url("/"));
        const names = () => page.evaluate(() => [...document.querySelectorAll("#runs tbody tr")].map((tr) => (tr as HTMLElement).dataset.id));
        await waitFor("live rows", names, (n) => n.length === 2);
        await page.click('#runs th[data-key="rounds"]');
        assertEquals(await names(), [OTHER, RUN]); // 90 < 124 rounds
        await page.click('#runs th[data-key="rounds"]');
        assertEquals(await names(), [RUN, OTHER]);
        await page.check(`input[value="${RUN}"]`);
        await page.check(`input[value="${OTHER}"]`);
        await Promise.all([page.waitForURL(/\/compare\?/), page.click("#compare-button")]);
        await waitFor("two runs drawn", () => page.evaluate(() => Number(document.body.dataset.runs ?? 0)), (n) => n === 2);
        const l = await legend(page, "lambda_gen");
        assert("ResNet-18 / CIFAR-10 (synthetic)" in l && "ResNet-18, B = 256 (synthetic)" in l, JSON.stringify(l));
        const ink = await chartInk(page, "lambda_gen", { a: [31, 119, 180], b: [255, 127, 14] });
        assert(ink.a > 300 && ink.b > 300, `both runs drawn: ${JSON.stringify(ink)}`);
        const at = await pointAt(page, "lambda_gen", 5000);
        await page.mouse.move(at.x, at.y);
        const h = await waitFor("compare hover", () => legend(page, "lambda_gen"), (l) => l["training step"] === "5000");
        assert(near(h["ResNet-18, B = 256 (synthetic)"], syntheticReport(OTHER, 50, { batchSize: 256, lr: 0.08 }).lambda_gen as number), JSON.stringify(h));
        await page.mouse.move(5, 5);
        await page.screenshot({ path: docs("dashboard-compare.png") });
      });

      await t.step("at 420 px nothing overflows and the charts fit", async () => {
        const narrow = await browser.newPage({ viewport: { width: 420, height: 900 } });
        for (const path of [`/runs/${RUN}`, "/", `/compare?run=${RUN}&run=${OTHER}`]) {
          await narrow.goto(url(path));
          await narrow.waitForTimeout(300);
          if (path !== "/") {
            // Charts are built as they scroll into view.
            for (let y = 0; y < 8000; y += 600) {
              await narrow.evaluate((y) => scrollTo(0, y), y);
              await narrow.waitForTimeout(50);
            }
            await waitFor("charts", () => narrow.evaluate(() => [...document.querySelectorAll(".panel")].every((p) => p.querySelector("canvas"))), (v) => v);
          }
          const w = await narrow.evaluate(() => ({
            scroll: document.documentElement.scrollWidth,
            client: document.documentElement.clientWidth,
            widest: Math.max(...[...document.querySelectorAll(".panel, canvas, .u-legend")].map((e) => e.getBoundingClientRect().right)),
          }));
          assert(w.scroll <= w.client && w.widest <= 420, `${path} overflows at 420 px: ${JSON.stringify(w)}`);
        }
        await narrow.close();
      });
    } finally {
      await browser.close();
      await dash.close();
      store.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
