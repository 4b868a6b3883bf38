/**
 * A minimal Chrome DevTools Protocol client for end-to-end tests: launches headless
 * Debian `chromium`, reads the DevTools WebSocket URL from its stderr, and talks CDP over
 * Deno's built-in WebSocket. No puppeteer: nothing to download at run time.
 *
 * @module
 */

/** Finds a Chromium binary on PATH (`chromium`, `chromium-browser`, `google-chrome`). */
export async function findChromium(): Promise<string | undefined> {
  const env = Deno.env.get("EDGEWISE_CHROMIUM");
  if (env) return env;
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
      try {
        const path = `${dir}/${name}`;
        if ((await Deno.stat(path)).isFile) return path;
      } catch { /* not here */ }
    }
  }
  return undefined;
}

/** Waits for `p`, or `ms` milliseconds, whichever comes first, leaving no timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p,
    new Promise((r) => timer = setTimeout(r, ms)),
  ]).finally(() => clearTimeout(timer));
}

/** A page session of a launched browser. */
export interface Browser {
  /** Sends a CDP command to the page and resolves with its result. */
  send(
    method: string,
    params?: Record<string, unknown>,
  ): Promise<Record<string, unknown>>;
  /** Evaluates an expression in the page (awaiting promises) and returns its JSON value. */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** Closes the browser, kills the process and removes its profile directory. */
  close(): Promise<void>;
}

/**
 * Launches headless Chromium with a fresh profile and opens one page.
 *
 * @param binary Path of the Chromium binary.
 * @param size Window size in CSS pixels.
 * @throws {Error} If Chromium does not print its DevTools URL within 30 s.
 */
export async function launchBrowser(
  binary: string,
  size = { width: 1480, height: 1060 },
): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "edgewise-chromium-" });
  const child = new Deno.Command(binary, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      "--hide-scrollbars",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      `--window-size=${size.width},${size.height}`,
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const cleanup = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };
  let ws: WebSocket;
  let stderrTail = "";
  try {
    const reader = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `Chromium printed no DevTools URL in 30 s: ${
                stderrTail.slice(-500)
              }`,
            ),
          ),
        30_000,
      );
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            return reject(
              new Error(
                `Chromium exited before it was ready: ${
                  stderrTail.slice(-500)
                }`,
              ),
            );
          }
          stderrTail += value;
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderrTail);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
            // Keep draining stderr so Chromium never blocks on a full pipe.
            (async () => {
              while (
                !(await reader.read().catch(() => ({ done: true }))).done
              ) { /* drain */ }
            })();
            return;
          }
        }
      })().catch(reject);
    });
    ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () =>
        reject(new Error(`Cannot connect to DevTools: ${url}`));
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  let nextId = 1;
  const pending = new Map<
    number,
    {
      resolve: (v: Record<string, unknown>) => void;
      reject: (e: Error) => void;
    }
  >();
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`CDP error: ${msg.error.message}`));
    else p.resolve(msg.result);
  };
  ws.onclose = () => {
    for (const p of pending.values()) {
      p.reject(new Error("DevTools connection closed"));
    }
    pending.clear();
  };
  const raw = (
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(
        JSON.stringify({
          id,
          method,
          params,
          ...(sessionId ? { sessionId } : {}),
        }),
      );
    });
  let sessionId: string;
  try {
    const { targetId } = await raw("Target.createTarget", {
      url: "about:blank",
    });
    ({ sessionId } = await raw("Target.attachToTarget", {
      targetId,
      flatten: true,
    }) as { sessionId: string });
    await raw("Emulation.setDeviceMetricsOverride", {
      ...size,
      deviceScaleFactor: 1,
      mobile: false,
    }, sessionId);
  } catch (err) {
    ws.close();
    await cleanup();
    throw err;
  }
  const send = (method: string, params: Record<string, unknown> = {}) =>
    raw(method, params, sessionId);
  return {
    send,
    async evaluate<T>(expression: string): Promise<T> {
      const r = await send("Runtime.evaluate", {
        expression,
        awaitPromise: true,
        returnByValue: true,
      });
      if (r.exceptionDetails) {
        throw new Error(
          `Page exception: ${JSON.stringify(r.exceptionDetails).slice(0, 500)}`,
        );
      }
      return (r.result as { value: T }).value;
    },
    async close() {
      await within(raw("Browser.close").catch(() => {}), 2000);
      ws.close();
      // Let Chromium exit by itself first: it then reaps its helper processes, which a
      // SIGKILL would orphan (as zombies where PID 1 does not reap).
      await within(child.status, 5000);
      await cleanup();
    },
  };
}

/**
 * Polls `fn` every 100 ms until `ok` accepts its value, and returns that value.
 *
 * @throws {Error} With the last value seen, if `ms` pass first.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  let v = await fn();
  while (!ok(v)) {
    if (Date.now() > end) {
      throw new Error(
        `Timed out waiting for ${what}: last value ${JSON.stringify(v)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
    v = await fn();
  }
  return v;
}

/**
 * Page expression: counts pixels of the run page's sharpness chart close to the λ_gen
 * (`gen`) and λ_max (`max`) colours, and non-white ones (`ink`), by rasterising its SVG.
 */
export const COUNT_PIXELS = `(async () => {
  const svg = document.querySelector('#chart-sharpness svg');
  const img = new Image();
  img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg.outerHTML);
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let gen = 0, max = 0, ink = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, gg, b] = [d[i], d[i + 1], d[i + 2]];
    if (Math.abs(r - 213) + Math.abs(gg - 94) + Math.abs(b - 0) < 60) gen++;
    if (Math.abs(r - 0) + Math.abs(gg - 114) + Math.abs(b - 178) < 60) max++;
    if (r + gg + b < 720) ink++;
  }
  return { gen, max, ink, total: d.length / 4 };
})()`;

/** What {@linkcode pngStats} finds in a PNG. */
export interface PngStats {
  width: number;
  height: number;
  /** Pixels that differ from the top-left pixel's colour. */
  differing: number;
  /** Distinct colours, quantised to 4 bits per channel. */
  colours: number;
}

/**
 * Decodes a PNG in the page (no decoder needed here) and measures how much is drawn on
 * it, so a test can tell a real screenshot from a blank or single-colour one.
 */
export async function pngStats(
  browser: Browser,
  png: Uint8Array,
): Promise<PngStats> {
  let bin = "";
  for (let i = 0; i < png.length; i += 0x8000) {
    bin += String.fromCharCode(...png.subarray(i, i + 0x8000));
  }
  const b64 = btoa(bin);
  return await browser.evaluate<PngStats>(`(async () => {
    const img = new Image();
    img.src = 'data:image/png;base64,${b64}';
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let differing = 0;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) differing++;
      seen.add(((d[i] >> 4) << 8) | ((d[i + 1] >> 4) << 4) | (d[i + 2] >> 4));
    }
    return { width: c.width, height: c.height, differing, colours: seen.size };
  })()`);
}
