import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { HistoryStore } from "../store/history_store.ts";
import { syntheticReport } from "../store/_synthetic.ts";
import { startDashboard } from "./server.ts";
import { CSV_COLUMNS } from "./csv.ts";

/** A store with two runs (one with a hostile id) and a dashboard on a free port. */
async function fixture(rounds = 30) {
  const dataDir = await Deno.makeTempDir({ prefix: "edgewise-dash-" });
  const store = await HistoryStore.open({ dataDir });
  await store.openRun({
    id: "run-1",
    name: "ResNet <b>test</b>",
    batch_size: 64,
    params: 11274,
  });
  await store.openRun({ id: "../odd/id,1", name: "odd" });
  for (let i = 0; i < rounds; i++) {
    await store.append("run-1", syntheticReport("run-1", i));
  }
  await store.append("../odd/id,1", syntheticReport("../odd/id,1", 0));
  const dash = await startDashboard({ store, port: 0, maxPoints: 10 });
  const get = (path: string) => fetch(new URL(path, dash.url));
  return {
    store,
    dash,
    get,
    async [Symbol.asyncDispose]() {
      await dash.close();
      store.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

Deno.test("dashboard serves pages and JSON endpoints", async (t) => {
  await using f = await fixture();
  await t.step("runs page lists runs with escaped names", async () => {
    const res = await f.get("/");
    const text = await res.text();
    assertEquals(res.status, 200);
    assert(text.includes("ResNet &lt;b&gt;test&lt;/b&gt;"));
    assert(text.includes(`href="/runs/${encodeURIComponent("../odd/id,1")}"`));
  });
  await t.step("run page, compare page, page code and uPlot from node_modules", async () => {
    const page = await f.get(`/runs/${encodeURIComponent("../odd/id,1")}`);
    assertEquals(page.status, 200);
    const html = await page.text();
    assert(html.includes('content="../odd/id,1"'));
    assert(html.includes('src="/static/uPlot.iife.min.js"'), "uPlot served locally");
    assert(!/https?:\/\/(?!127)/.test(html.replace(/xmlns="[^"]*"/g, "")), "no CDN");
    const cmp = await (await f.get("/compare?run=run-1&run=nope&run=..%2Fodd%2Fid%2C1")).text();
    assert(cmp.includes(`content="${"[&quot;run-1&quot;,&quot;../odd/id,1&quot;]"}"`), cmp);
    for (const name of ["run_page.js", "chart_specs.js", "svg.js", "uplot_chart.js"]) {
      const js = await f.get(`/static/${name}`);
      assertEquals(js.headers.get("content-type"), "text/javascript; charset=utf-8");
      await js.body?.cancel();
    }
    const up = await f.get("/static/uPlot.iife.min.js");
    assertEquals(up.status, 200);
    assert((await up.text()).includes("uPlot"));
    const css = await f.get("/static/uPlot.min.css");
    assertEquals(css.headers.get("content-type"), "text/css; charset=utf-8");
    await css.body?.cancel();
  });
  await t.step("runs table has the sortable columns and live status", async () => {
    const text = await (await f.get("/")).text();
    for (const h of ["name", "started", "status", "model size d", "lr", "B", "last margin lr/η*", "rounds"]) {
      assert(text.includes(`>${h}</th>`), h);
    }
    // Synthetic reports are dated 2026-09: both runs have ended.
    assert(text.includes(">11,274<") && text.includes('class="ended"'), "params and status");
    assert(!text.includes("location.reload"), "no reloading");
  });
  await t.step("/api/runs and /api/runs/:id", async () => {
    const runs = await (await f.get("/api/runs")).json();
    assertEquals(runs.map((r: { id: string }) => r.id), [
      "run-1",
      "../odd/id,1",
    ]);
    const one = await (await f.get("/api/runs/run-1")).json();
    assertEquals([one.rounds, one.latest.round, one.meta.batch_size], [
      30,
      29,
      64,
    ]);
  });
  await t.step("/api/runs/:id/reports with since", async () => {
    const all = await (await f.get("/api/runs/run-1/reports")).json();
    assertEquals(all.length, 30);
    assertEquals(
      all[7],
      JSON.parse(JSON.stringify(syntheticReport("run-1", 7))),
    );
    const some = await (await f.get("/api/runs/run-1/reports?since=25")).json();
    assertEquals(some.map((r: { round: number }) => r.round), [
      25,
      26,
      27,
      28,
      29,
    ]);
    assertEquals(
      (await f.get("/api/runs/run-1/reports?since=abc")).status,
      400,
    );
  });
  await t.step("series is downsampled and keeps the last point", async () => {
    const s = await (await f.get("/api/runs/run-1/series")).json();
    assertEquals(s.round.length, 10);
    assertEquals([s.round[0], s.round[9]], [0, 29]);
    assert(s.lo[9] < s.lambda_gen[9] && s.lambda_gen[9] < s.hi[9]);
  });
  await t.step("unknown run, unknown path, bad method", async () => {
    const r404 = await f.get("/api/runs/nope/reports");
    assertEquals([r404.status, (await r404.json()).error], [
      404,
      "Unknown run: nope",
    ]);
    assertEquals(
      (await (await f.get("/nothing")).text()).includes("Not found"),
      true,
    );
    const post = await fetch(new URL("/api/runs", f.dash.url), {
      method: "POST",
    });
    await post.body?.cancel();
    assertEquals(post.status, 405);
  });
});

Deno.test("dashboard downloads CSV and JSONL", async () => {
  await using f = await fixture(5);
  const csv = await f.get(
    `/api/runs/${encodeURIComponent("../odd/id,1")}/reports.csv`,
  );
  assertEquals(csv.headers.get("content-type"), "text/csv; charset=utf-8");
  assert(
    csv.headers.get("content-disposition")!.includes(
      'filename="___odd_id_1.csv"',
    ),
  );
  const lines = (await csv.text()).trimEnd().split("\r\n");
  assertEquals(lines.length, 2);
  assertEquals(lines[0].split(",").length, CSV_COLUMNS.length);
  assert(lines[1].startsWith('"../odd/id,1",0,0,0,0.05,64,'), lines[1]);
  const header = lines[0].split(",");
  const csv1 = (await (await f.get("/api/runs/run-1/reports.csv")).text())
    .trimEnd().split("\r\n");
  const row3 = csv1[4].split(",");
  assertEquals(
    Number(row3[header.indexOf("lambda_gen")]),
    syntheticReport("run-1", 3).lambda_gen,
  );
  assertEquals(
    Number(row3[header.indexOf("ci_lambda_gen_hi")]),
    (syntheticReport("run-1", 3).ci as { lambda_gen_hi: number }).lambda_gen_hi,
  );
  const jsonl = await (await f.get("/api/runs/run-1/reports.jsonl")).text();
  assertEquals(jsonl.trimEnd().split("\n").map((l) => JSON.parse(l).round), [
    0,
    1,
    2,
    3,
    4,
  ]);
});

/** Reads server-sent events from a response body. */
async function* sse(
  res: Response,
): AsyncGenerator<{ event: string; data: unknown }> {
  let buf = "";
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) yield { event, data: JSON.parse(data) };
    }
  }
}

Deno.test("dashboard SSE sends a snapshot then delivers newly appended reports live", async () => {
  await using f = await fixture(12);
  const res = await f.get("/api/runs/run-1/events");
  assertEquals(res.headers.get("content-type"), "text/event-stream");
  const it = sse(res);
  const init = (await it.next()).value!;
  assertEquals(init.event, "init");
  const d = init.data as {
    total: number;
    series: { round: number[] };
    latest: { round: number };
  };
  assertEquals([d.total, d.series.round.length, d.latest.round], [12, 10, 11]);
  assertEquals((init.data as { notes: unknown[] }).notes, []);
  await f.store.append("run-1", syntheticReport("run-1", 12));
  await f.store.append("../odd/id,1", syntheticReport("../odd/id,1", 1)); // other run: not sent
  await f.store.append("run-1", syntheticReport("run-1", 13));
  const a = (await it.next()).value!;
  const b = (await it.next()).value!;
  assertEquals([a.event, b.event], ["report", "report"]);
  const pa = a.data as {
    point: { round: number; lambda_gen: number };
    latest: { run: string };
  };
  assertEquals([pa.point.round, pa.latest.run], [12, "run-1"]);
  assertEquals(pa.point.lambda_gen, syntheticReport("run-1", 12).lambda_gen);
  assertEquals((b.data as { point: { round: number } }).point.round, 13);
  // A round that did not converge arrives with its note (full warning text).
  const bad = { ...syntheticReport("run-1", 14), converged: false, stopped: "max_basis", warnings: ["w1 full text"] };
  await f.store.append("run-1", bad);
  const c = (await it.next()).value!.data as { point: { flags: number }; note: { warnings: string[]; stopped: string } };
  assertEquals([c.point.flags, c.note.stopped, c.note.warnings], [3, "max_basis", ["w1 full text"]]);
  await it.return(undefined);
  // The series endpoint saw the live appends too.
  const s = await (await f.get("/api/runs/run-1/series?max=100")).json();
  assertEquals(s.round.at(-1), 14);
});

Deno.test("dashboard series downsampling keeps every flagged round", async () => {
  await using f = await fixture(0);
  for (let i = 0; i < 200; i++) {
    const r = syntheticReport("run-1", i);
    if (i === 37 || i === 151) Object.assign(r, { converged: false });
    await f.store.append("run-1", r);
  }
  const s = await (await f.get("/api/runs/run-1/series?max=10")).json();
  assert(s.round.includes(37) && s.round.includes(151), JSON.stringify(s.round));
  assertEquals(s.round.length, 12);
  assertEquals(s.flags[s.round.indexOf(37)], 1);
});

Deno.test("dashboard /api/events sends every run, then each run as it reports", async () => {
  await using f = await fixture(3);
  const res = await f.get("/api/events");
  const it = sse(res);
  const first = (await it.next()).value!;
  assertEquals(first.event, "runs");
  assertEquals((first.data as { id: string }[]).map((r) => r.id), ["run-1", "../odd/id,1"]);
  await f.store.append("run-1", { ...syntheticReport("run-1", 3), time: Date.now() / 1000 });
  const next = (await it.next()).value!;
  const run = next.data as { id: string; rounds: number; status: string };
  assertEquals([next.event, run.id, run.rounds, run.status], ["run", "run-1", 4, "live"]);
  await it.return(undefined);
});

/** Sends one raw HTTP/1.1 GET with the given Host header; returns the status code. */
async function rawStatus(url: string, host: string | null): Promise<number> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    const req = `GET /api/runs HTTP/1.1\r\n${host === null ? "" : `Host: ${host}\r\n`}Connection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(req));
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(new TextDecoder().decode(buf.subarray(0, n ?? 0)))?.[1]);
  } finally {
    conn.close();
  }
}

Deno.test("dashboard answers only Host headers naming its address (DNS rebinding)", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgewise-dash-" });
  const store = await HistoryStore.open({ dataDir });
  const dash = await startDashboard({ store, port: 0, allowHosts: ["dash.example"] });
  try {
    const port = new URL(dash.url).port;
    assertEquals(await rawStatus(dash.url, `127.0.0.1:${port}`), 200);
    assertEquals(await rawStatus(dash.url, `localhost:${port}`), 200);
    assertEquals(await rawStatus(dash.url, `dash.example:${port}`), 200);
    assertEquals(await rawStatus(dash.url, `DASH.example.:${port}`), 200);
    // A rebinding page's own name, a wrong port, no Host at all: refused.
    assertEquals(await rawStatus(dash.url, `evil.example:${port}`), 403);
    assertEquals(await rawStatus(dash.url, "evil.example"), 403);
    assertEquals(await rawStatus(dash.url, `127.0.0.1:${Number(port) + 1}`), 403);
    assertEquals(await rawStatus(dash.url, `127.0.0.1.evil.example:${port}`), 403);
    assertEquals(await rawStatus(dash.url, null), 403);
    const refused = await fetch(new URL("/api/runs", dash.url), { headers: { host: `evil.example:${port}` } });
    const body = await refused.text();
    if (refused.status === 403) assert(body.includes("Host not allowed: evil.example"), body);
  } finally {
    await dash.close();
    store.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("dashboard close() ends open event streams and frees the port", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgewise-dash-" });
  const store = await HistoryStore.open({ dataDir });
  await store.openRun({ id: "r" });
  const ac = new AbortController();
  const dash = await startDashboard({ store, port: 0, signal: ac.signal });
  const res = await fetch(new URL("/api/runs/r/events", dash.url));
  const reader = res.body!.getReader();
  await reader.read(); // init
  ac.abort();
  await dash.close();
  // The stream ends (cleanly or with a connection error) instead of hanging.
  let done = false;
  while (!done) done = await reader.read().then((r) => r.done, () => true);
  const port = Number(new URL(dash.url).port);
  const l = Deno.listen({ hostname: "127.0.0.1", port });
  l.close();
  store.close();
  await Deno.remove(dataDir, { recursive: true });
});
