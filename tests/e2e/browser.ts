/**
 * Headless Chromium for the dashboard's browser tests and benchmark, driven by Playwright
 * (`npm:playwright-core`) with Debian's `chromium` package (no browser download).
 *
 * @module
 */
// Code passed to page.evaluate() runs in Chromium; these DOM names exist there, not in Deno's
// types (the "dom" lib would clash with Deno's streams in the other tests).
// deno-lint-ignore no-explicit-any
declare const document: any, Image: any, DOMParser: any;
// deno-lint-ignore no-explicit-any
type HTMLElement = any;
// deno-lint-ignore no-explicit-any
type HTMLCanvasElement = any;
import { type Browser, chromium } from "playwright-core";

export type { Browser, Page } from "playwright-core";

/** Path of a Chromium binary: `$CHROMIUM`, else the first of the usual names on PATH. */
export async function findChromium(): Promise<string | null> {
  const env = Deno.env.get("CHROMIUM");
  const names = env ? [env] : ["chromium", "chromium-browser", "google-chrome"];
  for (const n of names) {
    if (n.includes("/")) {
      if (await Deno.stat(n).then(() => true, () => false)) return n;
      continue;
    }
    for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
      const p = `${dir}/${n}`;
      if (await Deno.stat(p).then((s) => s.isFile, () => false)) return p;
    }
  }
  return null;
}

/** Launches headless Chromium (no sandbox: tests run as root in containers). */
export function launchBrowser(executablePath: string): Promise<Browser> {
  return chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

/** Polls `fn` until `ok` accepts its value; throws with the last value after `ms`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 20_000,
): Promise<T> {
  const end = performance.now() + ms;
  let last: T | undefined;
  while (performance.now() < end) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch { /* page still loading */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out (${ms} ms) waiting for ${what}; last value: ${JSON.stringify(last)}`);
}

/**
 * Pixels of each colour on a chart's canvas (within ±24 per channel), to tell a drawn line
 * from an empty chart.
 */
export function chartInk(
  page: import("playwright-core").Page,
  chartId: string,
  colours: Record<string, [number, number, number]>,
): Promise<Record<string, number>> {
  return page.evaluate(([id, cols]) => {
    const c = document.querySelector(`#chart-${id} canvas`) as HTMLCanvasElement | null;
    const out: Record<string, number> = {};
    for (const k of Object.keys(cols)) out[k] = 0;
    if (!c) return out;
    const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      for (const [k, [r, g, b]] of Object.entries(cols)) {
        if (Math.abs(d[i] - r) < 24 && Math.abs(d[i + 1] - g) < 24 && Math.abs(d[i + 2] - b) < 24 && d[i + 3] > 200) out[k]++;
      }
    }
    return out;
  }, [chartId, colours] as const);
}

/** Size, non-background pixels and distinct colours of a PNG, decoded by the page. */
export function pngStats(
  page: import("playwright-core").Page,
  png: Uint8Array,
): Promise<{ width: number; height: number; differing: number; colours: number }> {
  const b64 = btoa(Array.from(png, (c) => String.fromCharCode(c)).join(""));
  return page.evaluate(async (data) => {
    const img = new Image();
    img.src = `data:image/png;base64,${data}`;
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext("2d")!;
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const bg = [d[0], d[1], d[2]];
    let differing = 0;
    const colours = new Set<number>();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] !== bg[0] || d[i + 1] !== bg[1] || d[i + 2] !== bg[2]) differing++;
      colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return { width: c.width, height: c.height, differing, colours: colours.size };
  }, b64);
}

/** Legend of a chart: label → value text, as the hover readout shows it. */
export function legend(
  page: import("playwright-core").Page,
  chartId: string,
): Promise<Record<string, string>> {
  return page.evaluate((id) => {
    const out: Record<string, string> = {};
    for (const tr of document.querySelectorAll(`#chart-${id} .u-legend .u-series`)) {
      const label = tr.querySelector(".u-label")?.textContent ?? "";
      out[label] = tr.querySelector(".u-value")?.textContent ?? "";
    }
    return out;
  }, chartId);
}
