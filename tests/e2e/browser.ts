/**
 * Headless Chromium for the dashboard's browser tests and benchmark, driven by Playwright
 * (`npm:playwright-core`) with Debian's `chromium` package (no browser download).
 *
 * @module
 */
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
