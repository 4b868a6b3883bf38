/**
 * Subprocess for the crash test: appends synthetic reports forever and prints each round
 * number only after `append` resolved (i.e. after fsync), like the sidecar's acknowledgement.
 *
 * Usage: deno run -A _crash_writer.ts <data-dir> <run-id>
 *
 * @module
 */
import { HistoryStore } from "./history_store.ts";
import { syntheticReport } from "./_synthetic.ts";

const [dataDir, runId] = Deno.args;
const store = await HistoryStore.open({ dataDir });
let round = await store.openRun({ id: runId, name: "crash test" });
const pad = "x".repeat(8192); // large lines make a torn write likely
const out = Deno.stdout;
for (;;) {
  await store.append(runId, { ...syntheticReport(runId, round), pad });
  await out.write(new TextEncoder().encode(`${round}\n`));
  round++;
}
