/**
 * The live dashboard: an HTTP server over a {@linkcode HistoryStore} with HTML pages,
 * JSON/CSV/JSONL endpoints and server-sent events for live charts.
 *
 * Why SSE: one-way, text, auto-reconnecting in the browser, and plain HTTP, so nothing
 * beyond `Deno.serve` is needed. Local only by default (`127.0.0.1`), and only for requests
 * whose `Host` names that address (DNS-rebinding protection, `host_check.ts`).
 *
 * @module
 */
import type { HistoryStore, Report } from "../store/history_store.ts";
import { csvHeader, csvRow } from "./csv.ts";
import { hostCheck } from "./host_check.ts";
import { comparePage, runPage, runsPage } from "./page.ts";
import { downsample, SeriesCache, toNote, toPoint } from "./series.ts";
import { runStatus } from "./static/format.js";

/** Options for {@linkcode startDashboard}. */
export interface DashboardOptions {
  /** The history to show; the dashboard only reads it. */
  store: HistoryStore;
  /** Interface to bind. Default `127.0.0.1` (local only). */
  hostname?: string;
  /** Port; 0 picks a free one. Default 8765. */
  port?: number;
  /** Aborting it closes the dashboard. */
  signal?: AbortSignal;
  /** Points per series sent to a newly opened run page. Default 2000. */
  maxPoints?: number;
  /** Interval of SSE keep-alive comments in ms. Default 15000. */
  keepAliveMs?: number;
  /** Further `Host` names to answer to (e.g. a reverse proxy's name); see `host_check.ts`. */
  allowHosts?: readonly string[];
}

/** A running dashboard. */
export interface Dashboard {
  /** Base URL, e.g. `http://127.0.0.1:8765/`. */
  url: string;
  /** Closes live streams and the server; resolves when it has stopped. */
  close(): Promise<void>;
}

/** Page code, served from this folder. */
const STATIC = [
  "format.js",
  "ticks.js",
  "chart_specs.js",
  "svg.js",
  "uplot_chart.js",
  "run_page.js",
  "runs_page.js",
  "compare_page.js",
];
/** uPlot, served from the sidecar's own npm modules (`deno install`), never a CDN. */
const UPLOT = ["uPlot.iife.min.js", "uPlot.min.css"];
const UPLOT_DIR = "../../node_modules/uplot/dist/";

const TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

const encoder = new TextEncoder();

/**
 * Starts the dashboard HTTP server.
 *
 * @param options Store, address and lifetime.
 * @returns Its URL and a `close()`.
 * @throws {Deno.errors.AddrInUse} If the port is taken.
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { HistoryStore } from "../store/history_store.ts";
 * const dataDir = await Deno.makeTempDir();
 * const store = await HistoryStore.open({ dataDir });
 * const dash = await startDashboard({ store, port: 0 });
 * const res = await fetch(new URL("/api/runs", dash.url));
 * strictEqual(JSON.stringify(await res.json()), "[]");
 * await dash.close();
 * store.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function startDashboard(
  options: DashboardOptions,
): Promise<Dashboard> {
  const { store } = options;
  const maxPoints = options.maxPoints ?? 2000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const cache = new SeriesCache(store);
  const streams = new Set<() => void>();
  const aborter = new AbortController();
  /** Set once the port is known; until then every request is refused. */
  const guard: { check?: (host: string | null) => string | null } = {};
  const statics = await loadStatics();

  const { promise: listening, resolve: onListen } = Promise.withResolvers<
    Deno.NetAddr
  >();
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8765,
    signal: aborter.signal,
    onListen: (addr) => onListen(addr as Deno.NetAddr),
  }, async (req) => {
    const refused = guard.check?.(req.headers.get("host"));
    if (refused !== null) {
      return json({ error: refused ?? "Dashboard is starting" }, 403);
    }
    try {
      return await route(req);
    } catch (err) {
      console.error("Dashboard request failed:", err);
      return json({ error: `Internal error: ${err}` }, 500);
    }
  });

  async function route(req: Request): Promise<Response> {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json({ error: `Method not allowed: ${req.method}` }, 405, {
        allow: "GET, HEAD",
      });
    }
    const url = new URL(req.url);
    const raw = url.pathname.split("/").slice(1);
    let seg: string[];
    try {
      seg = raw.map(decodeURIComponent);
    } catch {
      return json({ error: `Bad URL encoding: ${url.pathname}` }, 400);
    }
    const now = Date.now() / 1000;
    if (url.pathname === "/") {
      return html(runsPage(store.runs().map((r) => summaryJson(r, now))));
    }
    if (url.pathname === "/compare") {
      const ids = url.searchParams.getAll("run").filter((id) => store.run(id));
      for (const id of ids) cache.get(id).catch(() => {});
      return html(comparePage(ids.map((id) => summaryJson(store.run(id)!, now))));
    }
    const file = statics.get(url.pathname);
    if (file) {
      if (typeof file === "string") return json({ error: file }, 503);
      return new Response(file.slice(), {
        headers: {
          "content-type": TYPES[url.pathname.split(".").pop()!] ??
            "application/octet-stream",
          "cache-control": "no-cache",
        },
      });
    }
    if (url.pathname === "/api/events") return runEvents();
    if (url.pathname === "/favicon.ico") return new Response(null, { status: 204 });
    if (seg[0] === "runs" && seg.length === 2) {
      const run = store.run(seg[1]);
      // Start reading the history now: it overlaps the page loading its scripts.
      if (run) cache.get(seg[1]).catch(() => {});
      return run
        ? html(runPage(summaryJson(run, now)))
        : html(`<p>Unknown run: ${seg[1].replace(/[<&]/g, "")}</p>`, 404);
    }
    if (seg[0] === "api" && seg[1] === "runs") {
      if (seg.length === 2) {
        return json(store.runs().map((r) => summaryJson(r, now)));
      }
      const id = seg[2];
      const run = store.run(id);
      if (!run) return json({ error: `Unknown run: ${id}` }, 404);
      const sinceParam = url.searchParams.get("since");
      const since = sinceParam === null ? undefined : Number(sinceParam);
      if (since !== undefined && !Number.isFinite(since)) {
        return json({
          error: `Bad since: expected a round number, got ${sinceParam}`,
        }, 400);
      }
      switch (seg.length === 4 ? seg[3] : seg.length === 3 ? "" : "\0") {
        case "":
          return json(summaryJson(run, now));
        case "reports":
          return json(await store.reports(id, { since }));
        case "reports.jsonl":
          return download(
            id,
            "jsonl",
            "application/x-ndjson",
            store.iterReports(id, { since }),
            (r) => JSON.stringify(r) + "\n",
          );
        case "reports.csv":
          return download(
            id,
            "csv",
            "text/csv; charset=utf-8",
            store.iterReports(id, { since }),
            csvRow,
            csvHeader(),
          );
        case "series": {
          const max = Number(url.searchParams.get("max") ?? maxPoints);
          if (!(max >= 2)) {
            return json({
              error: `Bad max: expected at least 2, got ${
                url.searchParams.get("max")
              }`,
            }, 400);
          }
          return json(downsample((await cache.get(id)).series, max));
        }
        case "events":
          return events(id);
      }
    }
    return json({ error: `Not found: ${url.pathname}` }, 404);
  }

  /**
   * An SSE response: `open` gets `send` and returns its unsubscribe function; keep-alives, the
   * registration for `close()` and the cleanup on disconnect (the body's `cancel`) are shared.
   */
  function sseStream(
    open: (send: (event: string, data: unknown) => void) => Promise<() => void> | (() => void),
  ): Response {
    let stop = () => {};
    const body = new ReadableStream<Uint8Array>({
      start: async (controller) => {
        const send = (event: string, data: unknown) => {
          try {
            controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
          } catch { /* stream already closed */ }
        };
        let unsubscribe = () => {};
        let stopped = false;
        const timer = setInterval(() => {
          try {
            controller.enqueue(encoder.encode(": keep-alive\n\n"));
          } catch { /* closed */ }
        }, keepAliveMs);
        stop = () => {
          stopped = true;
          unsubscribe();
          clearInterval(timer);
          streams.delete(stop);
          try {
            controller.close();
          } catch { /* already closed */ }
        };
        streams.add(stop);
        unsubscribe = await open(send);
        if (stopped) unsubscribe(); // the viewer left while the snapshot was being read
      },
      cancel: () => stop(),
    });
    return eventStream(body);
  }

  /** One run's snapshot, then each new report of it. */
  function events(id: string): Response {
    return sseStream(async (send) => {
      // Subscribe first, buffer, then send the snapshot: no report falls in between.
      const pending: Report[] = [];
      let ready = false;
      const unsubscribe = store.subscribe(({ run, report }) => {
        if (run !== id) return;
        if (!ready) pending.push(report);
        else send("report", reportEvent(report));
      });
      try {
        const { series: full, notes } = await cache.get(id);
        const lastRound = full.round[full.round.length - 1] ?? -1;
        send("init", {
          run: summaryJson(store.run(id)!, Date.now() / 1000),
          series: downsample(full, maxPoints),
          notes,
          total: full.round.length,
          latest: store.run(id)!.latest ?? null,
        });
        ready = true;
        for (const r of pending) {
          if (r.round > lastRound) send("report", reportEvent(r));
        }
      } catch (e) {
        unsubscribe();
        throw e;
      }
      return unsubscribe;
    });
  }

  /** All runs' summaries, one `run` event per new report (the runs page's live rows). */
  function runEvents(): Response {
    return sseStream((send) => {
      const unsubscribe = store.subscribe(({ run }) => {
        const r = store.run(run);
        if (r) send("run", summaryJson(r, Date.now() / 1000));
      });
      send("runs", store.runs().map((r) => summaryJson(r, Date.now() / 1000)));
      return unsubscribe;
    });
  }

  const addr = await listening;
  guard.check = hostCheck(addr.hostname, addr.port, options.allowHosts);
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      for (const stop of [...streams]) stop();
      cache.close();
      aborter.abort();
      await server.finished;
    })();
    return closed;
  };
  options.signal?.addEventListener("abort", () => void close(), { once: true });
  if (options.signal?.aborted) await close();
  return { url: `http://${host}:${addr.port}/`, close };
}

/** Reads the page code and uPlot once; a missing file is served as a 503 saying why. */
async function loadStatics(): Promise<Map<string, Uint8Array | string>> {
  const out = new Map<string, Uint8Array | string>();
  const files = [
    ...STATIC.map((f) => [f, `./static/${f}`]),
    ...UPLOT.map((f) => [f, UPLOT_DIR + f]),
  ];
  for (const [name, rel] of files) {
    const url = new URL(rel, import.meta.url);
    try {
      out.set(`/static/${name}`, await Deno.readFile(url));
    } catch (err) {
      const why = `Dashboard file missing: ${url.pathname} (${
        (err as Error).name
      }; run tools/deno install)`;
      console.error(why);
      out.set(`/static/${name}`, why);
    }
  }
  return out;
}

/** What the pages get for a run: its metadata, counts, latest report and live status. */
export interface RunSummaryJson {
  id: string;
  name: string;
  started: number;
  meta: Record<string, unknown>;
  rounds: number;
  next_round: number;
  latest: Report | null;
  status: "live" | "ended";
}

function summaryJson(
  run: NonNullable<ReturnType<HistoryStore["run"]>>,
  now: number,
): RunSummaryJson {
  const l = run.latest;
  return {
    id: run.meta.id,
    name: run.meta.name,
    started: run.meta.started,
    meta: run.meta,
    rounds: run.rounds,
    next_round: run.nextRound,
    latest: l ?? null,
    status: runStatus(
      { started: run.meta.started, rounds: run.rounds, latest: l },
      now,
    ),
  };
}

function reportEvent(r: Report) {
  return { point: toPoint(r), note: toNote(r), latest: r };
}

function eventStream(body: ReadableStream<Uint8Array>): Response {
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}

function json(
  value: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function html(text: string, status = 200): Response {
  return new Response(text, {
    status,
    headers: { "content-type": "text/html; charset=utf-8" },
  });
}

function download(
  id: string,
  ext: string,
  type: string,
  reports: AsyncGenerator<Report>,
  line: (r: Report) => string,
  header = "",
): Response {
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      let chunk = header;
      for await (const r of reports) {
        chunk += line(r);
        if (chunk.length > 1 << 16) {
          controller.enqueue(encoder.encode(chunk));
          chunk = "";
        }
      }
      if (chunk) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  const name = id.replace(/[^A-Za-z0-9_-]/g, "_");
  return new Response(body, {
    headers: {
      "content-type": type,
      "content-disposition": `attachment; filename="${name}.${ext}"`,
    },
  });
}
