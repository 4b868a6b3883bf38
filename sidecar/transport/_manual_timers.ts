import type { Timers } from "./timers.ts";

/** Timers that fire only when the test calls `tick(ms)` (a minimal FakeTime). */
export class ManualTimers implements Timers {
  now = 0;
  #next = 1;
  #due = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#next++;
    this.#due.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(id: number): void {
    this.#due.delete(id);
  }

  /** Advances time by `ms`, firing due timers in order. */
  tick(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const next = [...this.#due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.#due.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.#due.size;
  }
}
