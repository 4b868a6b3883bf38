/**
 * Runs for the browser tests, screenshots and benchmark: synthetic reports
 * (`sidecar/store/_synthetic.ts`) with what a reader must be able to see added on known
 * rounds, so tests can compute the expected values independently of the page.
 *
 * @module
 */
import type { HistoryStore, Report } from "../../sidecar/store/history_store.ts";
import { syntheticReport } from "../../sidecar/store/_synthetic.ts";

/** Rounds that did not converge (stopped at `max_basis`). */
export const NOT_CONVERGED = [17, 41];
/** Rounds with a warning, and its text. */
export const WARNED = 29;
export const WARNING =
  "bootstrap interval wider than 50 % of λ_gen: raise probe_size for a tighter band";
/** From this round on, StabilityLR has cut the lr to 0.04. */
export const LR_CUT = 70;

/**
 * Report `round` of a run with an lr cut, non-converged rounds, a warning, negative
 * curvature early on, a training loss and a loss floor.
 */
export function richReport(run: string, round: number): Report {
  const lr = round >= LR_CUT ? 0.04 : 0.05;
  const r = syntheticReport(run, round, { lr });
  r.loss = 2.3 * Math.exp(-round / 40) + 0.05;
  r.loss_floor = 0.04 + 0.01 * Math.exp(-round / 30);
  r.min_curvature = round < 12 ? -0.8 + round * 0.05 : 0.02;
  if (NOT_CONVERGED.includes(round)) {
    r.converged = false;
    r.stopped = "max_basis";
    r.residual = 0.03;
  }
  if (round === WARNED) r.warnings = [WARNING];
  return r;
}

/** Opens a run and appends `rounds` reports made by `make`. */
export async function fillRun(
  store: HistoryStore,
  meta: { id: string; name: string } & Record<string, unknown>,
  rounds: number,
  make: (run: string, round: number) => Report = richReport,
): Promise<void> {
  await store.openRun(meta);
  for (let i = 0; i < rounds; i++) await store.append(meta.id, make(meta.id, i));
}
