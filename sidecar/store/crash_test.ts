import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { HistoryStore } from "./history_store.ts";

const writer = fromFileUrl(new URL("./_crash_writer.ts", import.meta.url));

Deno.test("HistoryStore keeps every acknowledged report when the writer is SIGKILLed mid-stream", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgewise-crash-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", writer, dataDir, "crash-run"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const acked: number[] = [];
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    while (acked.length < 40) {
      const { value, done } = await lines.read();
      if (done) {
        throw new Error(
          `Writer exited early: after ${acked.length} acknowledgements`,
        );
      }
      buf += value;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const p of parts) acked.push(Number(p));
    }
    child.kill("SIGKILL"); // mid-stream: the writer is appending the next report right now
    // acknowledgements written before the kill landed are still in the pipe: read them all,
    // so "at most one beyond the last ack" does not depend on how fast the kill arrives
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      buf += value;
    }
    for (const p of buf.split("\n")) if (p !== "") acked.push(Number(p));
    const status = await child.status;
    assertEquals(status.signal, "SIGKILL");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already dead */ }
    await child.status;
  }
  try {
    const warnings: string[] = [];
    const store = await HistoryStore.open({
      dataDir,
      onWarning: (m) => warnings.push(m),
    });
    const rounds = (await store.reports("crash-run")).map((r) => r.round);
    for (const r of acked) {
      assert(rounds.includes(r), `acknowledged round ${r} was lost`);
    }
    // Stored rounds are 0..k without holes; at most the one in flight beyond the last ack.
    assertEquals(rounds, Array.from({ length: rounds.length }, (_, i) => i));
    assert(rounds.length <= acked.length + 1);
    // The store is usable again: appending continues the numbering.
    assertEquals(await store.openRun({ id: "crash-run" }), rounds.length);
    store.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
