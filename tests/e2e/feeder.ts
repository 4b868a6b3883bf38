/**
 * Live report source for the end-to-end test. Replaceable: anything that appends reports
 * to the store while the page is open will do (later, a real Python client stream).
 *
 * @module
 */
import type { HistoryStore } from "../../sidecar/store/history_store.ts";
import { syntheticReport } from "../../sidecar/store/_synthetic.ts";

/** A running feeder. */
export interface Feeder {
  /** Reports appended so far by this feeder. */
  readonly appended: number;
  /** Stops feeding and resolves once the last append has finished. */
  stop(): Promise<void>;
}

/** Signature a replacement feeder must have. */
export type FeedFn = (
  store: HistoryStore,
  runId: string,
  options: { intervalMs: number },
) => Feeder;

/**
 * Appends one synthetic report every `intervalMs`, continuing the run's round numbering.
 */
export const syntheticFeeder: FeedFn = (store, runId, { intervalMs }) => {
  let appended = 0;
  let running = true;
  const done = (async () => {
    let round = store.run(runId)?.nextRound ?? 0;
    while (running) {
      await store.append(runId, syntheticReport(runId, round++));
      appended++;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    get appended() {
      return appended;
    },
    async stop() {
      running = false;
      await done;
    },
  };
};
