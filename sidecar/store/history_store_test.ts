import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
} from "node:assert/strict";
import { join } from "node:path";
import { HistoryStore } from "./history_store.ts";
import { runDirName } from "./run_dir.ts";
import { syntheticReport } from "./_synthetic.ts";

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "edgewise-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("HistoryStore appends, reads back, lists runs and filters by round", () =>
  withTmp(async (dataDir) => {
    const store = await HistoryStore.open({ dataDir });
    assertEquals(
      await store.openRun({
        id: "a",
        name: "Run A",
        batch_size: 64,
        params: 10,
      }),
      0,
    );
    for (let i = 0; i < 5; i++) {
      await store.append("a", syntheticReport("a", i));
    }
    const all = await store.reports("a");
    assertEquals(all.map((r) => r.round), [0, 1, 2, 3, 4]);
    assertEquals(all[3], JSON.parse(JSON.stringify(syntheticReport("a", 3))));
    assertEquals((await store.reports("a", { since: 3 })).map((r) => r.round), [
      3,
      4,
    ]);
    const [run] = store.runs();
    assertEquals(
      [run.meta.name, run.rounds, run.nextRound, run.latest?.round],
      ["Run A", 5, 5, 4],
    );
    assertEquals(await store.reports("unknown"), []);
    store.close();
  }));

Deno.test("HistoryStore resumes a run after reopening and continues round numbering", () =>
  withTmp(async (dataDir) => {
    let store = await HistoryStore.open({ dataDir });
    await store.openRun({ id: "r", name: "first" });
    for (let i = 0; i < 3; i++) {
      await store.append("r", syntheticReport("r", i));
    }
    const started = store.run("r")!.meta.started;
    store.close();
    store = await HistoryStore.open({ dataDir });
    assertEquals(store.run("r")!.rounds, 3);
    assertEquals(await store.openRun({ id: "r", name: "renamed" }), 3);
    assertEquals(store.run("r")!.meta.started, started);
    assertEquals(store.run("r")!.meta.name, "renamed");
    await store.append("r", syntheticReport("r", 3));
    assertEquals((await store.reports("r")).length, 4);
    store.close();
  }));

Deno.test("HistoryStore refuses bad reports with a clear error and keeps what it had", () =>
  withTmp(async (dataDir) => {
    const store = await HistoryStore.open({ dataDir });
    await store.openRun({ id: "r" });
    await store.append("r", syntheticReport("r", 0));
    await rejects(store.append("nope", syntheticReport("nope", 0)), RangeError);
    await rejects(
      store.append("r", syntheticReport("other", 1)),
      /does not match/,
    );
    await rejects(
      // deno-lint-ignore no-explicit-any
      store.append("r", { run: "r", round: 1.5 } as any),
      TypeError,
    );
    await rejects(store.append("r", syntheticReport("r", 0)), /goes backwards/);
    await store.append("r", syntheticReport("r", 1));
    assertEquals((await store.reports("r")).map((r) => r.round), [0, 1]);
    store.close();
  }));

Deno.test("HistoryStore skips and repairs a torn last line with a warning", () =>
  withTmp(async (dataDir) => {
    let store = await HistoryStore.open({ dataDir });
    await store.openRun({ id: "t" });
    for (let i = 0; i < 3; i++) {
      await store.append("t", syntheticReport("t", i));
    }
    store.close();
    const path = join(dataDir, "runs", "t", "reports.jsonl");
    const good = (await Deno.stat(path)).size;
    await Deno.writeTextFile(path, '{"run":"t","round":3,"lambda', {
      append: true,
    });
    const warnings: string[] = [];
    store = await HistoryStore.open({
      dataDir,
      onWarning: (m) => warnings.push(m),
    });
    assertEquals(warnings.length, 1);
    assert(/torn last line/.test(warnings[0]), warnings[0]);
    assertEquals((await Deno.stat(path)).size, good);
    assertEquals(await store.openRun({ id: "t" }), 3);
    await store.append("t", syntheticReport("t", 3));
    assertEquals((await store.reports("t")).map((r) => r.round), [0, 1, 2, 3]);
    store.close();
  }));

Deno.test("HistoryStore keeps a complete last report whose newline was lost", () =>
  withTmp(async (dataDir) => {
    let store = await HistoryStore.open({ dataDir });
    await store.openRun({ id: "t" });
    await store.append("t", syntheticReport("t", 0));
    store.close();
    const path = join(dataDir, "runs", "t", "reports.jsonl");
    await Deno.writeTextFile(path, JSON.stringify(syntheticReport("t", 1)), {
      append: true,
    });
    const warnings: string[] = [];
    store = await HistoryStore.open({
      dataDir,
      onWarning: (m) => warnings.push(m),
    });
    assertEquals(warnings.length, 1);
    assertEquals((await store.reports("t")).map((r) => r.round), [0, 1]);
    store.close();
  }));

Deno.test("HistoryStore keeps hostile run ids inside the data directory", () =>
  withTmp(async (dataDir) => {
    const store = await HistoryStore.open({ dataDir });
    const ids = [
      "../../escape",
      "/etc/passwd",
      "..",
      ".",
      "a/b\\c",
      "nul\0byte",
      "ünï cødé 🚀",
      "x".repeat(1000),
    ];
    for (const id of ids) {
      await store.openRun({ id });
      await store.append(id, syntheticReport(id, 0));
    }
    const names: string[] = [];
    for await (const e of Deno.readDir(join(dataDir, "runs"))) {
      names.push(e.name);
    }
    assertEquals(names.length, ids.length);
    for (const name of names) {
      assert(/^[A-Za-z0-9_%~-]+$/.test(name) && name.length <= 160, name);
    }
    for await (const e of Deno.readDir(dataDir)) assertEquals(e.name, "runs");
    store.close();
    const reopened = await HistoryStore.open({ dataDir });
    assertEquals(reopened.runs().map((r) => r.meta.id).sort(), [...ids].sort());
    for (const id of ids) assertEquals((await reopened.reports(id))[0].run, id);
    reopened.close();
    await rejects(runDirName(""), RangeError);
    // deno-lint-ignore no-explicit-any
    await rejects(runDirName(42 as any), TypeError);
  }));

Deno.test("HistoryStore notifies subscribers after the report is durable", () =>
  withTmp(async (dataDir) => {
    const store = await HistoryStore.open({ dataDir });
    await store.openRun({ id: "s" });
    const seen: number[] = [];
    const unsubscribe = store.subscribe(({ report }) => {
      seen.push(report.round);
    });
    const sizes: number[] = [];
    store.subscribe(() =>
      sizes.push(
        Deno.statSync(join(dataDir, "runs", "s", "reports.jsonl")).size,
      )
    );
    await store.append("s", syntheticReport("s", 0));
    unsubscribe();
    await store.append("s", syntheticReport("s", 1));
    assertEquals(seen, [0]);
    assert(sizes[0] > 0);
    store.close();
  }));

Deno.test("HistoryStore serialises concurrent appends into whole lines", () =>
  withTmp(async (dataDir) => {
    const store = await HistoryStore.open({ dataDir });
    await store.openRun({ id: "c" });
    await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => store.append("c", syntheticReport("c", i)),
      ),
    );
    assertEquals(
      (await store.reports("c")).map((r) => r.round),
      Array.from({ length: 20 }, (_, i) => i),
    );
    store.close();
  }));
