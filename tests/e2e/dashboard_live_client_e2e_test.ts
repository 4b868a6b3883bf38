/**
 * The whole stack in a real browser: a real sidecar process (`sidecar/main.ts`), a real
 * Python client process (`_stream_rounds.py`: a tiny torch MLP trained with SGD under
 * `edgewise.Monitor`) streaming rounds over ZeroMQ, and headless Chromium (Debian package
 * `chromium`, driven by Playwright) on the run page. Checks the charts gain the client's rounds live
 * (server-sent events, no reload) and draw real data, and writes docs/dashboard.png.
 * Skipped, with a message, only if Chromium is missing.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type Browser,
  chartInk,
  findChromium,
  launchBrowser,
  pngStats,
  waitFor,
} from "./browser.ts";

const chromium = await findChromium();
if (!chromium) {
  console.warn(
    "SKIP dashboard live-client e2e: chromium not found on PATH (apt-get install -y chromium)",
  );
}

const root = (p: string) =>
  fileURLToPath(new URL(`../../${p}`, import.meta.url));
const SCREENSHOT = root("docs/dashboard.png");
const DENO = root("tools/deno");
const PYTHON = Deno.env.get("EDGEWISE_PYTHON") ?? root(".venv/bin/python");

const ROUNDS = 12;
/** Rounds the client streams before it waits for the page to be open. */
const HOLD_AFTER = 3;
const LR = 0.1;

/** A child process whose stdout is read as JSON lines and whose stderr tail is kept. */
interface Proc {
  child: Deno.ChildProcess;
  /** Parsed stdout JSON lines so far. */
  events: Record<string, unknown>[];
  /** Resolves on the first event `pred` accepts; rejects if the process ends first. */
  next(
    what: string,
    pred: (e: Record<string, unknown>) => boolean,
    ms: number,
  ): Promise<Record<string, unknown>>;
  tail(): string;
  /** Sends `signal`, then SIGKILL after `graceMs`; resolves once the process has ended. */
  stop(signal?: Deno.Signal, graceMs?: number): Promise<void>;
}

function spawn(cmd: string, args: string[], stdin = false): Proc {
  const child = new Deno.Command(cmd, {
    args,
    cwd: root(""),
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const events: Record<string, unknown>[] = [];
  let out = "", err = "";
  let wake = () => {};
  let ended = false;
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    onText: (t: string) => void,
  ) => {
    for await (const t of stream.pipeThrough(new TextDecoderStream())) {
      onText(t);
      wake();
    }
  };
  const outDone = pump(child.stdout, (t) => {
    out += t;
    let nl;
    while ((nl = out.indexOf("\n")) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      try {
        events.push(JSON.parse(line));
      } catch { /* not an event line */ }
    }
  }).catch(() => {});
  const errDone = pump(child.stderr, (t) => {
    err = (err + t).slice(-4000);
  }).catch(() => {});
  const status = child.status.then(async (s) => {
    await Promise.all([outDone, errDone]);
    ended = true;
    wake();
    return s;
  });
  const proc: Proc = {
    child,
    events,
    tail: () => err.slice(-1500),
    next(what, pred, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          wake = () => {};
          reject(
            new Error(
              `Timed out (${ms} ms) waiting for ${what} from ${cmd}; stderr: ${proc.tail()}`,
            ),
          );
        }, ms);
        wake = () => {
          const hit = events.find(pred);
          if (hit) {
            clearTimeout(timer);
            wake = () => {};
            resolve(hit);
          } else if (ended) {
            clearTimeout(timer);
            wake = () => {};
            reject(
              new Error(
                `${cmd} ended before ${what}; stdout events: ${
                  JSON.stringify(events).slice(-800)
                }; stderr: ${proc.tail()}`,
              ),
            );
          }
        };
        wake();
      });
    },
    async stop(signal: Deno.Signal = "SIGTERM", graceMs = 5000) {
      if (!ended) {
        try {
          child.kill(signal);
        } catch { /* already gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, graceMs);
        await status;
        clearTimeout(timer);
      }
      await status;
    },
  };
  return proc;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function getJson<T>(url: URL): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`GET ${url}: ${res.status}`);
  }
  return await res.json() as T;
}

type RunRow = { id: string; name: string; rounds: number };

Deno.test({
  name:
    "dashboard run page grows live while a real Python client streams rounds through a real sidecar",
  ignore: !chromium,
  sanitizeResources: false, // child-process pipes end when the processes are killed
  sanitizeOps: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "edgewise-e2e-live-" });
    const endpoint = `tcp://127.0.0.1:${freePort()}`;
    let sidecar: Proc | undefined;
    let client: Proc | undefined;
    let browser: Browser | undefined;
    try {
      sidecar = spawn(DENO, [
        "run",
        "-A",
        "sidecar/main.ts",
        "--endpoint",
        endpoint,
        "--http-port",
        "0",
        "--data-dir",
        dataDir,
      ]);
      const listening = await sidecar.next(
        "the listening line",
        (e) => e.event === "listening",
        60_000,
      );
      assert(
        typeof listening.dashboard === "string",
        `no dashboard URL: ${JSON.stringify(listening)}`,
      );
      const dash = listening.dashboard as string;

      client = spawn(PYTHON, [
        "tests/e2e/_stream_rounds.py",
        "--endpoint",
        endpoint,
        "--rounds",
        `${ROUNDS}`,
        "--hold-after",
        `${HOLD_AFTER}`,
        "--lr",
        `${LR}`,
        "--run-name",
        "e2e-live",
      ], true);
      const started = await client.next(
        "the client's start line",
        (e) => e.event === "start",
        90_000,
      );
      const runId = started.run_id as string;

      // The run appears in the dashboard's run list once the client's session opens.
      const runs = () => getJson<RunRow[]>(new URL("/api/runs", dash));
      const listed = await waitFor(
        "the run in /api/runs",
        runs,
        (rs) => rs.some((r) => r.id === runId && r.rounds >= HOLD_AFTER),
        90_000,
      );
      assert.equal(listed.length, 1, JSON.stringify(listed));
      assert(listed[0].name === "e2e-live", JSON.stringify(listed[0]));

      browser = await launchBrowser(chromium!);
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(new URL(`/runs/${encodeURIComponent(runId)}`, dash).href);
      const points = () => page.evaluate<number>("Number(document.body?.dataset.points ?? 0)");
      // Points on the sharpness chart (uPlot's x column).
      const drawn = () =>
        page.evaluate<number>(
          'globalThis.edgewise?.panels.get("sharpness")?.points ?? 0',
        );
      const first = await waitFor(
        "first render",
        points,
        (n) => n >= HOLD_AFTER,
        30_000,
      );
      const drawn1 = await waitFor("first chart", drawn, (n) => n >= 1);
      assert(
        first < ROUNDS,
        `the client finished before the page opened (${first} rounds)`,
      );
      // A marker that a reload would wipe: the points below must arrive by SSE.
      await page.evaluate("globalThis.noReload = 'same page'");

      // Release the client: it streams its remaining rounds while the page is open.
      const w = client.child.stdin.getWriter();
      await w.write(new TextEncoder().encode("go\n"));
      await w.close();

      const later = await waitFor(
        "live points from the client",
        points,
        (n) => n > first,
        60_000,
      );
      const drawn2 = await waitFor("chart growth", drawn, (n) => n > drawn1);
      assert(
        later > first && drawn2 > drawn1,
        `page did not grow: ${first}→${later}, drawn ${drawn1}→${drawn2}`,
      );

      const done = await client.next(
        "the client's done line",
        (e) => e.event === "done",
        120_000,
      );
      assert.equal(
        done.missing,
        0,
        `client had missing rounds: ${JSON.stringify(client.events)}`,
      );
      const code = (await client.child.status).code;
      assert.equal(code, 0, `client exited with ${code}: ${client.tail()}`);
      const rounds = client.events.filter((e) => e.event === "round");
      assert.equal(rounds.length, ROUNDS);

      const run = await getJson<RunRow>(
        new URL(`/api/runs/${encodeURIComponent(runId)}`, dash),
      );
      assert.equal(run.rounds, ROUNDS);
      await waitFor("final render", points, (n) => n === ROUNDS);
      await waitFor("final chart", drawn, (n) => n === ROUNDS);
      assert.equal(
        await page.evaluate<string>("String(globalThis.noReload)"),
        "same page",
        "the page was reloaded",
      );
      assert.equal(
        await page.evaluate<string>("document.getElementById('status').textContent"),
        "live",
      );

      // Real drawing, not a blank chart: the λ_gen and λ_max lines cover many pixels.
      const px = await chartInk(page, "sharpness", { gen: [255, 127, 14], max: [31, 119, 180] });
      assert(
        px.gen > 300 && px.max > 300,
        `too few line pixels: ${JSON.stringify(px)}`,
      );
      // The client's own numbers are on the page: its batch size and lr label the charts,
      // and the latest-report table shows its last round.
      const labels = await page.evaluate<string>("document.querySelector('main').textContent");
      for (
        const l of [
          "2/lr",
          "edge",
          "λ_gen CI",
          "B = 8",
          `lr = ${LR}`,
          `Latest report (round ${ROUNDS - 1})`,
        ]
      ) assert(labels.includes(l), `${l} not on the page`);

      await page.mouse.move(5, 5);
      const png = new Uint8Array(await page.screenshot({ type: "png" }));
      assert(
        png.length > 20_000,
        `screenshot suspiciously small: ${png.length} bytes`,
      );
      // Non-blank: most of the page differs from its corner colour, in many colours.
      const stats = await pngStats(page, png);
      assert(
        stats.width >= 1000 &&
          stats.differing > stats.width * stats.height / 10 &&
          stats.colours > 50,
        `screenshot looks blank: ${JSON.stringify(stats)}`,
      );
      await Deno.writeFile(SCREENSHOT, png);
    } finally {
      await browser?.close().catch(() => {});
      await client?.stop("SIGKILL").catch(() => {});
      await sidecar?.stop("SIGTERM").catch(() => {});
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
