/**
 * The clock sessions use for op and idle timeouts, injectable so tests can drive time by
 * hand (jsr's FakeTime is not reachable from this workplace; `ManualTimers` in
 * `_manual_timers.ts` plays its role).
 *
 * @module
 */

/** Timer functions a session needs. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): number;
  clearTimeout(id: number): void;
}

/** The real clock. */
export const realTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms) as unknown as number,
  clearTimeout: (id) => globalThis.clearTimeout(id),
};
