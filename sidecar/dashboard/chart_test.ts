import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import {
  batchSpec,
  marginSpec,
  renderChart,
  sharpnessSpec,
} from "./static/chart.js";
import { emptySeries, pushPoint, toPoint } from "./series.ts";
import { syntheticReport } from "../store/_synthetic.ts";

function series(n: number) {
  const s = emptySeries();
  for (let i = 0; i < n; i++) pushPoint(s, toPoint(syntheticReport("c", i)));
  return s;
}

Deno.test("renderChart() draws every usable point and breaks lines at missing ones", () => {
  const svg = renderChart({
    logY: true,
    lines: [{
      name: "y",
      x: [1, 2, 3, 4, 5],
      y: [1, null, 3, -1, 5],
      color: "#000",
    }],
  });
  assertEquals(/data-points="(\d+)"/.exec(svg)?.[1], "3");
  assertEquals((/ d="([^"]*)"/.exec(svg)?.[1].match(/M/g) ?? []).length, 3); // three pieces
});

Deno.test("renderChart() survives empty and constant data", () => {
  assert(renderChart({ lines: [] }).includes('data-points="0"'));
  assert(
    renderChart({ lines: [{ name: "c", x: [1, 1], y: [2, 2], color: "#000" }] })
      .includes('data-points="2"'),
  );
});

Deno.test("chart specs label the edge lines", () => {
  const s = series(20);
  assert(renderChart(sharpnessSpec(s)).includes(">2/lr<"));
  assert(renderChart(marginSpec(s)).includes(">edge<"));
  const batch = renderChart(batchSpec(syntheticReport("c", 19)));
  assert(batch.includes("B = 64") && batch.includes("lr = 0.05"));
  assert(renderChart(batchSpec(null)).includes('data-points="0"'));
});
