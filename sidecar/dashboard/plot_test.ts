import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HistoryStore } from "../store/history_store.ts";
import { syntheticReport } from "../store/_synthetic.ts";

const plot = fileURLToPath(new URL("./plot.ts", import.meta.url));

Deno.test("plot CLI writes an SVG of the main chart, and fails clearly on an unknown run", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgewise-plot-" });
  try {
    const store = await HistoryStore.open({ dataDir });
    await store.openRun({ id: "p/1", name: "Plot me" });
    for (let i = 0; i < 50; i++) {
      await store.append("p/1", syntheticReport("p/1", i));
    }
    store.close();
    const out = join(dataDir, "out.svg");
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", plot, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run(["p/1", "--data-dir", dataDir, "--out", out]);
    assertEquals(ok.code, 0, new TextDecoder().decode(ok.stderr));
    const svg = await Deno.readTextFile(out);
    assert(svg.startsWith("<?xml"));
    // Every round on each of the run's lines: λ_max, λ_gen, its CI ends, 3 bounds, 2/lr.
    for (
      const label of [
        "λ_max",
        "λ_gen",
        "λ_gen CI lo",
        "λ_gen CI hi",
        "lower bound: top eigvec",
        "2/lr",
      ]
    ) {
      assertEquals(
        new RegExp(`data-series="${label}" data-points="(\\d+)"`).exec(svg)?.[1],
        "50",
        label,
      );
    }
    for (const text of ["Plot me: sharpness (50 rounds)", "training step"]) {
      assert(svg.includes(text), text);
    }
    const margin = join(dataDir, "margin.svg");
    const okMargin = await run(["p/1", "--data-dir", dataDir, "--out", margin, "--chart", "margin", "--x", "epoch"]);
    assertEquals(okMargin.code, 0, new TextDecoder().decode(okMargin.stderr));
    const m = await Deno.readTextFile(margin);
    assert(m.includes('data-series="edge"') && m.includes(">epoch<"), "margin chart against epochs");
    const loss = await run(["p/1", "--data-dir", dataDir, "--chart", "loss"]);
    assertEquals(loss.code, 1);
    assert(new TextDecoder().decode(loss.stderr).includes("Chart not available for this run: loss"));
    const bad = await run(["nope", "--data-dir", dataDir]);
    assertEquals(bad.code, 1);
    assert(
      new TextDecoder().decode(bad.stderr).includes(
        "Unknown run: nope (known: p/1)",
      ),
    );
    assertEquals((await run([])).code, 2);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
