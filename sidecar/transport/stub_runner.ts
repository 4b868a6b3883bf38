/**
 * A tiny round runner for transport tests and benchmarks (not an estimator): `reset`,
 * `random(r)`, then `blocks(0, r)` (repeated `options.stub_repeat` times), and reports the
 * largest eigenvalue of the mean `r × r` block as `lambda_max`. With `r = 2` and a client
 * whose basis is the identity on the first two coordinates, that is the top eigenvalue of
 * the leading 2×2 of the mean Hessian, which tests can check by hand.
 *
 * @module
 */
import type { CurvatureOracle } from "../estimate/oracle.ts";
import type { RoundRequest } from "../protocol/messages.ts";
import type { SessionInfo } from "./session.ts";

/**
 * Runs the stub round. Options: `stub_r` (default 2), `stub_repeat` (default 1), `seed`.
 *
 * @param oracle the client's oracle
 * @param round the round request
 * @param session the session (its `state.rounds` counts stub rounds)
 * @returns the report map
 */
export async function stubRunRound(
  oracle: CurvatureOracle,
  round: RoundRequest,
  session: SessionInfo,
): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const r = Number(round.options.stub_r ?? 2);
  const repeat = Number(round.options.stub_repeat ?? 1);
  await oracle.reset();
  const kept = await oracle.random(r, Number(round.options.seed ?? 0));
  const m = oracle.probeSize, k = oracle.basisSize;
  let blocks: Float64Array = new Float64Array(0);
  for (let i = 0; i < repeat; i++) blocks = await oracle.blocks(0, kept);
  // mean block, leading 2×2 (or 1×1)
  const mean = (a: number, b: number) => {
    let s = 0;
    for (let i = 0; i < m; i++) s += blocks[(i * k + a) * kept + b];
    return s / m;
  };
  let lambda: number | undefined;
  if (kept >= 2) {
    const a = mean(0, 0), b = (mean(0, 1) + mean(1, 0)) / 2, d = mean(1, 1);
    lambda = (a + d) / 2 + Math.sqrt(((a - d) / 2) ** 2 + b * b);
  } else if (kept === 1) lambda = mean(0, 0);
  session.state.rounds = Number(session.state.rounds ?? 0) + 1;
  return {
    step: round.step,
    epoch: round.epoch,
    lr: round.lr,
    batch_size: round.batch_size,
    n: round.n,
    m,
    lambda_max: lambda,
    // tests compare what crossed the wire with what the client computed in-process
    ...(round.options.stub_echo === true ? { blocks_echo: Array.from(blocks) } : {}),
    basis_size: oracle.basisSize,
    hvps: oracle.hvps / m,
    wall_ms: performance.now() - t0,
    stub_rounds: session.state.rounds,
  };
}
