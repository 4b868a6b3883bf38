/**
 * Helper workers for the bootstrap's resamples (bootstrap.ts): each resample is an independent
 * reduced solve of ~10 operator applications, 40 or more per round, the largest part of the
 * sidecar's work in a live round. {@linkcode ResamplePool.solve} splits a batch over the helpers
 * and the calling thread, in draw order, so the interval is the same as solved in one thread
 * (the same code on the same numbers), only sooner on a machine with idle cores.
 *
 * A helper receives the curvature once per interval (a few hundred kB, structured-cloned) and
 * the resamples' weights per batch. A helper that fails is dropped and its share solved here:
 * the pool never loses a resample.
 *
 * @module
 */
import { blasInfo } from "./_blas.ts";
import { type ResampleJob, solveResamples } from "./bootstrap.ts";
import type { Curvature } from "./curvature.ts";

/** Main → helper: the curvature (when new to it) and one share of a batch. */
export interface ResampleRequest {
  call: number;
  /** Set when the helper has not seen this curvature yet. */
  curvature?: { id: number; kind: Curvature["kind"]; data: Float64Array; m: number; rows: number; k: number };
  /** What the resamples share; absent in a ping (no weights). */
  job?: {
    curvatureId: number;
    p: number;
    S: Float64Array;
    tol: number;
    /** Deadline as a wall-clock time (ms since the epoch): helpers have their own `performance` origin. */
    deadline?: number;
  };
  weights: Float64Array[];
  /** The CBLAS library this thread uses, loaded once by the helper. */
  blasLib: string;
}

/** Helper → main: the values solved (fewer than asked after the deadline) and their cost. */
export interface ResampleReply {
  call: number;
  values: number[];
  applications: number;
  error?: string;
}

interface Helper {
  worker: Worker;
  /** Started: it answered its first message (a helper compiles its modules first, ~1 s). */
  started: Promise<boolean>;
  isStarted: boolean;
  curvatureId: number;
  pending: Map<number, { resolve: (r: ResampleReply) => void; reject: (e: Error) => void }>;
}

/** Helpers at most: beyond a few, a batch of 10 resamples no longer splits usefully. */
const MAX_HELPERS = 3;

/**
 * A fixed set of resample helpers.
 * @example
 * ```ts ignore
 * const pool = new ResamplePool(2);
 * const ci = await bootstrapInterval(curv, p, point, { pool, tol: 0.02 });
 * pool.close();
 * ```
 */
export class ResamplePool {
  #helpers: Helper[] = [];
  #nextCall = 0;
  #ids = new WeakMap<Curvature, number>();
  #nextId = 0;
  #closed = false;

  /** @param size helpers (0 or more) */
  constructor(size: number) {
    for (let i = 0; i < size; i++) this.#helpers.push(this.#spawn());
  }

  /**
   * The pool of this thread for live rounds, created at its first bootstrap (a sidecar has a round
   * worker per core; only those that run rounds start helpers, and the round that starts them
   * does not wait for them): one helper per core beyond two (one for the training process beside
   * the sidecar, one for the round's own thread), at most {@linkcode MAX_HELPERS}; undefined on
   * one or two cores. Measured on two cores: a helper made
   * the bootstrap alone 1.74× faster but the round no faster, as it slowed the client's
   * concurrent `grads` by as much.
   */
  static shared(): ResamplePool | undefined {
    if (shared === undefined) {
      const size = Math.min(MAX_HELPERS, (navigator.hardwareConcurrency ?? 1) - 2);
      shared = size > 0 ? new ResamplePool(size) : null;
    }
    return shared ?? undefined;
  }

  /** Helpers alive. */
  get size(): number {
    return this.#helpers.length;
  }

  /**
   * `λ_gen` of each resample, in order: contiguous shares go to the started helpers, the first
   * share is solved here meanwhile. After the deadline, the values up to the first unsolved
   * resample.
   */
  async solve(job: ResampleJob, weights: Float64Array[]): Promise<number[]> {
    const helpers = this.#helpers.filter((h) => h.isStarted);
    const parts = helpers.length + 1;
    const per = Math.ceil(weights.length / parts);
    const shares = Array.from({ length: parts }, (_, i) => weights.slice(i * per, (i + 1) * per));
    const remote = helpers.map((h, i) => shares[i + 1].length ? this.#ask(h, job, shares[i + 1]) : Promise.resolve([]));
    const here = solveResamples(job, shares[0]);
    const values = [here];
    for (let i = 0; i < remote.length; i++) {
      // a failed helper's share is solved here
      values.push(await remote[i].catch(() => solveResamples(job, shares[i + 1])));
    }
    const out: number[] = [];
    for (let i = 0; i < parts; i++) {
      out.push(...values[i]);
      if (values[i].length < shares[i].length) break; // the deadline: keep draw order
    }
    return out;
  }

  /**
   * Resolves once every helper has started. Not needed before {@linkcode solve}, which uses the
   * helpers started by then (a round never waits for a helper's start).
   */
  async ready(): Promise<void> {
    await Promise.all(this.#helpers.map((h) => h.started));
  }

  /** Terminates the helpers. */
  close(): void {
    this.#closed = true;
    for (const h of this.#helpers) this.#drop(h, "the resample pool is closed");
  }

  /** Sends `weights` to helper `h` (none and no job: a ping). */
  async #ask(h: Helper, job: ResampleJob | undefined, weights: Float64Array[]): Promise<number[]> {
    if (this.#closed) throw new Error("the resample pool is closed");
    const request: ResampleRequest = { call: this.#nextCall++, weights, blasLib: blasInfo().lib };
    if (job) {
      let id = this.#ids.get(job.curv);
      if (id === undefined) this.#ids.set(job.curv, id = this.#nextId++);
      const c = job.curv;
      if (h.curvatureId !== id) request.curvature = { id, kind: c.kind, data: c.data, m: c.m, rows: c.rows, k: c.k };
      h.curvatureId = id;
      request.job = {
        curvatureId: id,
        p: job.p,
        S: job.S,
        tol: job.tol,
        deadline: job.deadline === undefined ? undefined : performance.timeOrigin + job.deadline,
      };
    }
    const reply = await new Promise<ResampleReply>((resolve, reject) => {
      h.pending.set(request.call, { resolve, reject });
      h.worker.postMessage(request);
    });
    if (reply.error) throw new Error(reply.error);
    if (job?.counter) job.counter.applications += reply.applications;
    return reply.values;
  }

  #spawn(): Helper {
    const worker = new Worker(new URL("./resample_worker.ts", import.meta.url).href, { type: "module" });
    const h: Helper = { worker, started: Promise.resolve(false), isStarted: false, curvatureId: -1, pending: new Map() };
    worker.onmessage = (e: MessageEvent<ResampleReply>) => {
      const p = h.pending.get(e.data.call);
      h.pending.delete(e.data.call);
      p?.resolve(e.data);
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#drop(h, `resample helper failed: ${e.message}`);
    };
    // a ping: its answer says the helper has started
    h.started = this.#ask(h, undefined, []).then(() => h.isStarted = true, () => false);
    return h;
  }

  #drop(h: Helper, why: string): void {
    h.worker.terminate();
    this.#helpers = this.#helpers.filter((x) => x !== h);
    for (const p of h.pending.values()) p.reject(new Error(why));
    h.pending.clear();
  }
}

let shared: ResamplePool | null | undefined;
