import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  batchSpec,
  compareCharts,
  lossSpec,
  lrSpec,
  runCharts,
  sharpnessSpec,
  xOf,
} from "./chart_specs.js";
import { renderSvg } from "./svg.js";
import { emptySeries, pushPoint, toPoint } from "../series.ts";
import { syntheticReport } from "../../store/_synthetic.ts";
import type { Report } from "../../store/history_store.ts";

type Cols = Record<string, (number | null)[]>;

function seriesOf(reports: Report[]): Cols {
  const s = emptySeries();
  for (const r of reports) pushPoint(s, toPoint(r));
  return s as unknown as Cols;
}

Deno.test("sharpnessSpec() draws the CI no lower than λ_max and says how often it was cut", () => {
  // Hand-made: round 1's interval reaches below λ_max (3 < 4), round 0's does not.
  const s = seriesOf([
    { run: "r", round: 0, step: 0, lr: 0.5, lambda_max: 2, lambda_gen: 3, ci: { lambda_gen_lo: 2.5, lambda_gen_hi: 3.5 } },
    { run: "r", round: 1, step: 10, lr: 0.5, lambda_max: 4, lambda_gen: 5, ci: { lambda_gen_lo: 3, lambda_gen_hi: 6 } },
  ]);
  const spec = sharpnessSpec(s, xOf(s, "step", 0));
  const lo = spec.lines.find((l) => l.label === "λ_gen CI lo")!;
  assertEquals(lo.y, [2.5, 4]);
  assert(spec.caption?.includes("on 1 rounds"), spec.caption);
  assertEquals(spec.lines.find((l) => l.label === "2/lr")!.y, [4, 4]);
  assertEquals(spec.bands, [{ lo: "λ_gen CI lo", hi: "λ_gen CI hi", color: spec.bands[0].color }]);
});

Deno.test("non-converged rounds and warnings are marked on the λ_gen and margin points", () => {
  const reports = [0, 1, 2, 3].map((i) => syntheticReport("r", i));
  Object.assign(reports[1], { converged: false, stopped: "max_basis" });
  Object.assign(reports[2], { warnings: ["w"] });
  const s = seriesOf(reports);
  const [sharp, margin] = runCharts(s, reports[3]);
  const nc = sharp.lines.find((l) => l.label === "not converged")!;
  assertEquals(nc.y, [null, reports[1].lambda_gen, null, null]);
  assertEquals(sharp.lines.find((l) => l.label === "warning")!.y, [null, null, reports[2].lambda_gen, null]);
  assertEquals(margin.lines.find((l) => l.label === "not converged")!.y, [null, reports[1].margin, null, null]);
  // Nothing flagged: no marker lines at all.
  assert(!runCharts(seriesOf([syntheticReport("r", 0)]), null)[0].lines.some((l) => l.kind === "points"));
});

Deno.test("lrSpec() marks each change of the lr where it happens", () => {
  const lrs = [0.1, 0.1, 0.05, 0.05, 0.08];
  const s = seriesOf(lrs.map((lr, i) => ({ run: "r", round: i, step: 100 * i, lr, suggested_lr: 0.07 })));
  const spec = lrSpec(s, xOf(s, "step", 0));
  assertEquals(spec.vlines.map((v) => [v.x, v.label]), [[200, "lr → 0.05"], [400, "lr → 0.08"]]);
  assertEquals(spec.lines.find((l) => l.label === "lr change")!.y, [null, null, 0.05, null, 0.08]);
  assertEquals(spec.lines.find((l) => l.label === "suggested lr")!.y, [0.07, 0.07, 0.07, 0.07, 0.07]);
});

Deno.test("xOf() gives epochs from step·B/n, wall time from t0, and skips unusable points", () => {
  const s = seriesOf([
    { run: "r", round: 0, step: 0, batch_size: 50, n: 1000, time: 100 },
    { run: "r", round: 1, step: 30, batch_size: 50, n: 1000, time: 160 },
    { run: "r", round: 2, step: 60, time: 130 }, // no B, n, epoch: dropped for epochs; time goes back
  ]);
  assertEquals(xOf(s, "epoch", 0), { x: [0, 1.5], idx: [0, 1] });
  assertEquals(xOf(s, "wall", 100), { x: [0, 60], idx: [0, 1] });
  assertEquals(xOf(s, "step", 0).x, [0, 30, 60]);
});

Deno.test("batchSpec() marks the run's batch and lr, and tolerates a report without a grid", () => {
  const r = syntheticReport("r", 50);
  const spec = batchSpec(r);
  assertEquals(spec.lines.map((l) => l.label), ["η*(B)", "lr = 0.05", "run's B = 64"]);
  const mark = spec.lines[2];
  assertEquals(mark.y.filter((v) => v !== null), [
    (r.eta_star_by_batch as { B: number; eta_star: number }[]).find((e) => e.B === 64)!.eta_star,
  ]);
  assertEquals(batchSpec({ run: "r", round: 0 }).lines[0].x, []);
  assert(renderSvg(batchSpec(null)).includes('data-points="0"'));
});

Deno.test("charts tolerate reports with only the required fields, and unknown extra fields", () => {
  const bare = [0, 1].map((i) => ({
    run: "r",
    round: i,
    step: i,
    lr: 0.1,
    lambda_max: 2,
    lambda_gen: 3,
    margin: 0.15,
    tol: 1e-3,
    operator_applications: 12,
    sidecar_ms: 3.5,
    optimizer: { name: "sgd", momentum: 0.9 },
  }));
  const specs = runCharts(seriesOf(bare), bare[1]);
  assertEquals(specs.map((s) => s.id), ["sharpness", "margin", "lr", "batch"]);
  for (const spec of specs) assert(renderSvg(spec).startsWith("<svg"));
  assertEquals(lossSpec(seriesOf(bare), xOf(seriesOf(bare), "step", 0)), null);
  const floorOnly = seriesOf([{ ...bare[0], loss_floor: 0.1 }]);
  assertEquals(lossSpec(floorOnly, xOf(floorOnly, "step", 0))!.title, "loss floor (no training loss sent)");
});

Deno.test("compareCharts() overlays runs with distinct labels even when names repeat", () => {
  const a = seriesOf([0, 1, 2].map((i) => syntheticReport("a", i)));
  const b = seriesOf([0, 1].map((i) => syntheticReport("b", i, { lr: 0.1 })));
  const [margin, gen] = compareCharts([
    { id: "a", name: "same", series: a },
    { id: "b", name: "same", series: b },
  ]);
  assertEquals(gen.lines.map((l) => l.label), ["same (a)", "same (b)"]);
  assertEquals(gen.lines[1].y, b.lambda_gen);
  assertEquals(margin.lines.at(-1)!.label, "edge");
});

Deno.test("renderSvg() keeps gaps, restricts to a zoom and labels a narrow log axis", () => {
  const spec = {
    id: "t",
    title: "T",
    xLabel: "x",
    yLabel: "y",
    xMode: "step" as const,
    logY: true,
    lines: [{ label: "y", x: [1, 2, 3, 4, 5], y: [1.8, null, 3, -1, 4], color: "#000" }],
    bands: [],
    vlines: [],
  };
  const svg = renderSvg(spec);
  assertEquals(/data-series="y" data-points="(\d+)"/.exec(svg)?.[1], "3"); // null and ≤ 0 skipped
  assertEquals((/<path d="([^"]*)"/.exec(svg)?.[1].match(/M/g) ?? []).length, 3);
  for (const tick of ["2", "3", "4"]) assert(svg.includes(`text-anchor="end">${tick}</text>`), tick);
  const zoomed = renderSvg(spec, { xRange: [2.5, 5] });
  assertEquals(/data-series="y" data-points="(\d+)"/.exec(zoomed)?.[1], "2");
});
