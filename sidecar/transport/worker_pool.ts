/**
 * Rounds off the event loop: a pool of Deno Workers, one round per worker at a time, so the
 * transport, heartbeats and the dashboard keep answering while estimators solve.
 *
 * The boundary is generic: a *task* is a module URL exporting
 * `runRound(oracle: CurvatureOracle, input: unknown): Promise<unknown>` and a structured-
 * cloneable `input`. In the worker the task sees a {@linkcode RemoteOracle} whose op calls are
 * posted to the main thread, which forwards them over the session's {@linkcode OpChannel} (the
 * client's `result` comes back raw and is parsed in the worker). Whatever `runRound` returns
 * (structured-cloneable) resolves {@linkcode WorkerPool.run}; a throw rejects it, a
 * `ProtocolError` keeping its code.
 *
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import { isErrorCode } from "../protocol/errors.ts";
import type { OpChannel, OpResult } from "./remote_oracle.ts";

/** A round to run in a worker: what to import and what to give it. */
export interface RoundTask {
  /** URL of a module exporting `runRound(oracle, input)`. */
  module: string;
  /** Structured-cloneable input. */
  input: unknown;
}

/** Main → worker messages. */
export type ToWorker =
  | { kind: "round"; task: RoundTask; probe: number; basis: number; outputs?: number }
  | { kind: "load"; module: string }
  | { kind: "reply"; call: number; result?: OpResult; error?: { code?: string; message: string } };

/** Worker → main messages. */
export type FromWorker =
  | { kind: "call"; call: number; op: string; args: Record<string, unknown> }
  | { kind: "loaded"; error?: string }
  | { kind: "done"; value?: unknown; error?: { code?: string; message: string } };

interface Job {
  signal?: AbortSignal;
  task: RoundTask;
  channel: OpChannel;
  probe: number;
  basis: number;
  outputs?: number;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Options of {@linkcode WorkerPool}. */
export interface WorkerPoolOptions {
  /** Workers (default: the CPU count, at least 1). */
  size?: number;
}

/**
 * A fixed pool of round workers; jobs beyond the free workers wait in arrival order.
 *
 * @example
 * ```ts ignore
 * import { WorkerPool } from "./worker_pool.ts";
 * const pool = new WorkerPool({ size: 2 });
 * const value = await pool.run(channel, 16, 0, { module: new URL("./task.ts", import.meta.url).href, input: {} });
 * pool.close();
 * ```
 */
export class WorkerPool {
  readonly size: number;
  #idle: Worker[] = [];
  #all: Worker[] = [];
  #queue: Job[] = [];
  #closed = false;
  #preloaded: string[] = [];

  /** @param options pool size */
  constructor(options: WorkerPoolOptions = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? navigator.hardwareConcurrency ?? 1));
    for (let i = 0; i < this.size; i++) this.#idle.push(this.#spawn());
  }

  #spawn(): Worker {
    const w = new Worker(new URL("./round_worker.ts", import.meta.url).href, { type: "module" });
    this.#all.push(w);
    return w;
  }

  /**
   * Imports `module` in every worker ahead of the first round (a worker's first import
   * compiles the estimators, seconds on a busy machine), so no round pays for it.
   *
   * @throws {Error} when a worker cannot import it
   */
  async preload(module: string): Promise<void> {
    this.#preloaded.push(module);
    await Promise.all(this.#all.map((w) => this.#load(w, module)));
  }

  #load(w: Worker, module: string): Promise<void> {
    return (
      new Promise<void>((resolve, reject) => {
        w.onmessage = (e: MessageEvent<FromWorker>) => {
          if (e.data.kind !== "loaded") return;
          w.onmessage = null;
          if (e.data.error) reject(new Error(e.data.error));
          else resolve();
        };
        post(w, { kind: "load", module });
      })
    );
  }

  /** Rounds waiting for a free worker. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Runs `task` in the next free worker, forwarding its oracle calls over `channel`.
   *
   * @param channel the session's op channel (sends `op`, resolves with the client's `result`)
   * @param probe probe size `m` of the run
   * @param basis the client's basis size `k` at the round's start
   * @param task module URL and input
   * @param signal aborts the round: a queued one leaves the queue, a running one's worker is
   *   terminated and replaced (its synchronous work cannot be interrupted otherwise)
   * @param outputs rows `c` of each factor on the Gauss–Newton factor route (hello.run.outputs),
   *   undefined on the Hessian route (protocol v2)
   * @returns what the task's `runRound` returned
   * @throws {ProtocolError} what the task threw (code kept), `bad_state` when aborted, or
   *   `internal` for other errors
   */
  run(channel: OpChannel, probe: number, basis: number, task: RoundTask, signal?: AbortSignal, outputs?: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(new ProtocolError("internal", "Cannot run a round: the worker pool is closed"));
    if (signal?.aborted) return Promise.reject(new ProtocolError("bad_state", "Round abandoned before it started"));
    return new Promise((resolve, reject) => {
      const job: Job = { task, channel, probe, basis, outputs, resolve, reject, signal };
      this.#queue.push(job);
      signal?.addEventListener("abort", () => {
        const i = this.#queue.indexOf(job); // still waiting: leave the queue at once
        if (i >= 0) {
          this.#queue.splice(i, 1);
          reject(new ProtocolError("bad_state", "Round abandoned while waiting for a worker"));
        }
      }, { once: true });
      this.#next();
    });
  }

  /** Terminates every worker; rounds still running or waiting are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#all) w.terminate();
    for (const job of this.#queue.splice(0)) job.reject(new ProtocolError("bad_state", "Round abandoned: the sidecar is shutting down"));
  }

  #next(): void {
    while (this.#idle.length && this.#queue.length) this.#start(this.#idle.pop()!, this.#queue.shift()!);
  }

  /** Ends a running job's worker (abandoned round) and puts a fresh one in its place. */
  #replace(w: Worker, job: Job): void {
    w.onmessage = null;
    w.terminate();
    this.#all = this.#all.filter((x) => x !== w);
    job.reject(new ProtocolError("bad_state", "Round abandoned: its worker was stopped"));
    if (this.#closed) return;
    const fresh = this.#spawn();
    Promise.all(this.#preloaded.map((m) => this.#load(fresh, m))).catch(() => {}).finally(() => {
      if (this.#closed) return;
      this.#idle.push(fresh);
      this.#next();
    });
  }

  #start(w: Worker, job: Job): void {
    const onAbort = () => this.#replace(w, job);
    job.signal?.addEventListener("abort", onAbort, { once: true });
    w.onmessage = (e: MessageEvent<FromWorker>) => {
      const msg = e.data;
      if (msg.kind === "call") {
        job.channel.call(msg.op, msg.args, (r) => r).then(
          (result) => post(w, { kind: "reply", call: msg.call, result }),
          (err) => post(w, { kind: "reply", call: msg.call, error: asWire(err) }),
        );
        return;
      }
      if (msg.kind !== "done") return;
      w.onmessage = null;
      job.signal?.removeEventListener("abort", onAbort);
      if (msg.error) job.reject(fromWire(msg.error));
      else job.resolve(msg.value);
      if (!this.#closed) {
        this.#idle.push(w);
        this.#next();
      }
    };
    w.onerror = (e) => {
      e.preventDefault();
      job.reject(new ProtocolError("internal", `Round worker failed: ${e.message}`));
    };
    post(w, { kind: "round", task: job.task, probe: job.probe, basis: job.basis, outputs: job.outputs });
  }
}

function post(w: Worker, msg: ToWorker): void {
  w.postMessage(msg);
}

/** An error as it crosses the worker boundary. */
export function asWire(e: unknown): { code?: string; message: string } {
  if (e instanceof ProtocolError) return { code: e.code, message: e.message };
  return { message: (e as Error)?.message ?? String(e) };
}

/** The error a wire form stands for: a ProtocolError when it has a code. */
export function fromWire(w: { code?: string; message: string }): Error {
  return isErrorCode(w.code) ? new ProtocolError(w.code, w.message) : new Error(w.message);
}
