/**
 * Gives memory back after a burst of traffic: once no message has arrived for a while, one
 * full V8 collection runs, which also returns the freed heap pages to the system.
 *
 * Why: V8 keeps its heap at its high-water mark while the process idles (a Deno server gets
 * no idle notifications), so after 16 clients churn for a minute a sidecar's RSS stayed at
 * twice its start with three quarters of the heap free. The collection runs only when traffic
 * stopped, at most once per quiet period, so it never pauses a busy round. On glibc,
 * `malloc_trim` then hands back what libzmq's and Deno's native allocations freed.
 *
 * @module
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** V8's `gc()`, exposed at run time (as Node allows); null where the runtime refuses. */
function exposeGc(): (() => void) | null {
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc");
    return typeof gc === "function" ? gc : null;
  } catch {
    return null;
  }
}

/** glibc's `malloc_trim(0)`; null elsewhere. */
function mallocTrim(): (() => void) | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const libc = Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
    return () => void libc.symbols.malloc_trim(0n);
  } catch {
    return null;
  }
}

/**
 * Returns `touch()`: call it on every message; `quietMs` after the last one, a full
 * collection runs. `stop()` cancels the pending one.
 *
 * @param quietMs how long traffic must have stopped
 * @returns the traffic hook and a stop function
 * @example
 * ```ts
 * import { collectWhenQuiet } from "./idle_gc.ts";
 * const quiet = collectWhenQuiet(2000);
 * quiet.touch();
 * quiet.stop();
 * ```
 */
export function collectWhenQuiet(quietMs: number): { touch(): void; stop(): void } {
  const gc = exposeGc();
  const trim = mallocTrim();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = 0;
  let pending = false;
  const check = () => {
    const left = last + quietMs - Date.now();
    if (left > 0) {
      const t = setTimeout(check, left);
      Deno.unrefTimer(t);
      timer = t;
      return;
    }
    pending = false;
    timer = undefined;
    gc?.();
    trim?.();
  };
  return {
    touch() {
      last = Date.now();
      if (pending || !gc) return;
      pending = true;
      const t = setTimeout(check, quietMs);
      Deno.unrefTimer(t);
      timer = t;
    },
    stop() {
      if (timer !== undefined) clearTimeout(timer);
      pending = false;
    },
  };
}
