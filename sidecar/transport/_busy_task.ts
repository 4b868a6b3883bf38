/**
 * A worker task for tests: a few oracle calls around a synchronous busy loop of `ms`
 * milliseconds (a stand-in for an estimator's solve).
 *
 * @module
 */
import type { CurvatureOracle } from "../estimate/oracle.ts";

/** Resets, adds `r` directions, spins for `ms`, reads the blocks; returns `k` and their sum. */
export async function runRound(oracle: CurvatureOracle, input: unknown): Promise<{ k: number; sum: number }> {
  const { ms, r } = input as { ms: number; r: number };
  await oracle.reset();
  await oracle.random(r, 0);
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy: the worker's event loop is blocked, not the main one */ }
  const blocks = await oracle.blocks(0, oracle.basisSize);
  return { k: oracle.basisSize, sum: blocks.reduce((a, b) => a + b, 0) };
}
