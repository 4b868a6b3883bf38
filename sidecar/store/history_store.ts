/**
 * Durable run history: one directory per run with `meta.json` and an append-only
 * `reports.jsonl` (one SPEC §5 report per line).
 *
 * Why this shape: the sidecar acknowledges a report to the client only after
 * {@linkcode HistoryStore.append} resolves, and `append` resolves only after the line is
 * written and `fsync`ed, so an acknowledged report survives a crash. A crash mid-write can
 * leave a torn last line; {@linkcode HistoryStore.open} detects it, warns, and truncates the
 * file back to its last complete line instead of failing.
 *
 * @module
 */
import { join } from "node:path";
import { runDirName } from "./run_dir.ts";

/** One report, as in SPEC §5 (snake_case fields). Only `run` and `round` are checked here. */
export type Report = Record<string, unknown> & { run: string; round: number };

/** Run metadata, as sent in `hello.run` (SPEC §3), plus the time the run was first opened. */
export interface RunMeta {
  /** Client-chosen run id. */
  id: string;
  /** Human-readable name; defaults to the id. */
  name?: string;
  /** Model size `d`. */
  params?: number;
  /** Probe size `m`. */
  probe?: number;
  /** Training-set size. */
  n?: number;
  /** Training batch size `B`. */
  batch_size?: number;
  /** `"hessian"` or `"ggn"`. */
  curvature?: string;
  /** Other `hello.run` fields (dtype, model, ...) are kept as given. */
  [key: string]: unknown;
}

/** Metadata as stored: `name` and `started` (unix seconds of the first open) always set. */
export interface StoredRunMeta extends RunMeta {
  name: string;
  started: number;
}

/** What {@linkcode HistoryStore.runs} lists per run. */
export interface RunSummary {
  meta: StoredRunMeta;
  /** Reports stored. */
  rounds: number;
  /** Round index the next report should carry. */
  nextRound: number;
  /** The last stored report, if any. */
  latest?: Report;
}

/** Delivered to {@linkcode HistoryStore.subscribe} listeners after a report is durable. */
export interface ReportEvent {
  run: string;
  report: Report;
}

/** Options for {@linkcode HistoryStore.open}. */
export interface HistoryStoreOptions {
  /** Directory holding `runs/`; created if absent. Default `./edgewise-data`. */
  dataDir?: string;
  /** Receives recoverable problems (torn lines, unreadable runs). Default `console.warn`. */
  onWarning?: (message: string) => void;
}

/** Options for {@linkcode HistoryStore.reports}. */
export interface ReportsOptions {
  /** Only reports whose `round` is at least this. */
  since?: number;
}

interface RunState {
  meta: StoredRunMeta;
  dir: string;
  rounds: number;
  nextRound: number;
  latest?: Report;
  /** Bytes of complete, durable lines in reports.jsonl. */
  size: number;
  file?: Deno.FsFile;
  /** Serialises appends of this run. */
  queue: Promise<unknown>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Append-only, crash-safe history of estimation reports, with live subscription.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const dataDir = await Deno.makeTempDir();
 * const store = await HistoryStore.open({ dataDir });
 * const next = await store.openRun({ id: "demo", batch_size: 64 });
 * await store.append("demo", { run: "demo", round: next, step: 10, lambda_gen: 3 });
 * assertEquals((await store.reports("demo")).length, 1);
 * store.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export class HistoryStore {
  readonly dataDir: string;
  readonly #runs = new Map<string, RunState>();
  readonly #listeners = new Set<(event: ReportEvent) => void>();
  readonly #warn: (message: string) => void;
  #closed = false;

  private constructor(dataDir: string, warn: (message: string) => void) {
    this.dataDir = dataDir;
    this.#warn = warn;
  }

  /**
   * Opens (creating if needed) a data directory and loads every run in it, repairing torn
   * last lines.
   *
   * @param options Data directory and warning sink.
   * @returns The store.
   * @throws {Deno.errors.PermissionDenied} If the directory cannot be created or read.
   */
  static async open(options: HistoryStoreOptions = {}): Promise<HistoryStore> {
    const dataDir = options.dataDir ?? "./edgewise-data";
    const store = new HistoryStore(
      dataDir,
      options.onWarning ?? ((m) => console.warn(m)),
    );
    const runsDir = join(dataDir, "runs");
    await Deno.mkdir(runsDir, { recursive: true });
    for await (const entry of Deno.readDir(runsDir)) {
      if (!entry.isDirectory) continue;
      try {
        await store.#load(join(runsDir, entry.name));
      } catch (err) {
        store.#warn(`Skipped unreadable run directory ${entry.name}: ${err}`);
      }
    }
    return store;
  }

  async #load(dir: string): Promise<void> {
    const meta = JSON.parse(
      await Deno.readTextFile(join(dir, "meta.json")),
    ) as StoredRunMeta;
    if (typeof meta?.id !== "string") {
      throw new TypeError("Run meta.json has no string id");
    }
    const state: RunState = {
      meta,
      dir,
      rounds: 0,
      nextRound: 0,
      size: 0,
      queue: Promise.resolve(),
    };
    const path = join(dir, "reports.jsonl");
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      bytes = new Uint8Array();
    }
    const end = bytes.lastIndexOf(10) + 1; // one past the last '\n'
    if (end < bytes.length) {
      const tail = decoder.decode(bytes.subarray(end));
      let complete = false;
      try {
        complete = isReport(JSON.parse(tail));
      } catch { /* torn */ }
      if (complete) {
        // Whole JSON but no newline: the newline write was lost; keep the report.
        await Deno.writeFile(path, encoder.encode("\n"), { append: true });
        bytes = await Deno.readFile(path);
        this.#warn(
          `Run ${meta.id}: added the missing newline after the last report`,
        );
      } else {
        this.#warn(
          `Run ${meta.id}: skipped a torn last line (${
            bytes.length - end
          } bytes, crash mid-write); truncating ${path} to ${end} bytes`,
        );
        await Deno.truncate(path, end);
        bytes = bytes.subarray(0, end);
      }
    }
    state.size = bytes.length;
    forEachLine(bytes, (line, lineNo) => {
      const report = parseLine(line);
      if (!report) {
        this.#warn(
          `Run ${meta.id}: skipped unreadable line ${lineNo} of ${path}`,
        );
        return;
      }
      state.rounds++;
      state.latest = report;
      state.nextRound = Math.max(state.nextRound, report.round + 1);
    });
    this.#runs.set(meta.id, state);
  }

  /**
   * Starts a run, or resumes it if its id is already stored (round numbering continues).
   *
   * @param meta Run metadata; `id` is required, other fields update the stored ones.
   * @returns The round index the run's next report should carry.
   * @throws {TypeError} If `meta` or `meta.id` is not as described.
   * @throws {RangeError} If the id is empty or too long.
   */
  async openRun(meta: RunMeta): Promise<number> {
    this.#checkOpen();
    if (typeof meta !== "object" || meta === null) {
      throw new TypeError(`Run meta must be an object: got ${meta}`);
    }
    const dirName = await runDirName(meta.id);
    let state = this.#runs.get(meta.id);
    if (!state) {
      const dir = join(this.dataDir, "runs", dirName);
      await Deno.mkdir(dir, { recursive: true });
      state = {
        meta: {
          ...meta,
          name: meta.name ?? meta.id,
          started: Date.now() / 1000,
        },
        dir,
        rounds: 0,
        nextRound: 0,
        size: 0,
        queue: Promise.resolve(),
      };
      this.#runs.set(meta.id, state);
    } else {
      const started = state.meta.started;
      state.meta = {
        ...state.meta,
        ...meta,
        name: meta.name ?? state.meta.name,
        started,
      };
    }
    await writeAtomic(
      join(state.dir, "meta.json"),
      JSON.stringify(state.meta, null, 2) + "\n",
    );
    return state.nextRound;
  }

  /**
   * Appends a report durably: resolves only after the line is written and `fsync`ed, so
   * the caller may acknowledge it. Appends to one run are serialised.
   *
   * @param runId A run opened with {@linkcode HistoryStore.openRun}.
   * @param report A SPEC §5 report whose `run` is `runId` and whose `round` is an integer at
   *   least the run's next round index.
   * @returns The stored report.
   * @throws {RangeError} If the run is unknown or the round goes backwards.
   * @throws {TypeError} If the report is not a JSON object with `run` and integer `round`.
   */
  append(runId: string, report: Report): Promise<Report> {
    this.#checkOpen();
    const state = this.#runs.get(runId);
    if (!state) {
      return Promise.reject(
        new RangeError(`Cannot append to unknown run: ${runId}`),
      );
    }
    if (!isReport(report)) {
      return Promise.reject(
        new TypeError(
          "Report must be an object with string run and integer round >= 0",
        ),
      );
    }
    if (report.run !== runId) {
      return Promise.reject(
        new RangeError(`Report run does not match: ${report.run} != ${runId}`),
      );
    }
    const task = state.queue.then(() => this.#write(state, report));
    state.queue = task.catch(() => {});
    return task;
  }

  async #write(state: RunState, report: Report): Promise<Report> {
    if (report.round < state.nextRound) {
      throw new RangeError(
        `Report round goes backwards: got ${report.round}, next round of ${state.meta.id} is ${state.nextRound}`,
      );
    }
    const bytes = encoder.encode(JSON.stringify(report) + "\n");
    state.file ??= await Deno.open(join(state.dir, "reports.jsonl"), {
      create: true,
      append: true,
    });
    try {
      for (let off = 0; off < bytes.length;) {
        off += await state.file.write(bytes.subarray(off));
      }
      await state.file.syncData();
    } catch (err) {
      // Undo the partial line so later appends start on a line boundary.
      await state.file.truncate(state.size).catch(() => {});
      throw err;
    }
    state.size += bytes.length;
    state.rounds++;
    state.nextRound = report.round + 1;
    state.latest = report;
    for (const listener of this.#listeners) {
      try {
        listener({ run: state.meta.id, report });
      } catch (err) {
        this.#warn(`History listener failed: ${err}`);
      }
    }
    return report;
  }

  /** Lists all runs, oldest start first. */
  runs(): RunSummary[] {
    return [...this.#runs.values()]
      .map((s) => ({
        meta: s.meta,
        rounds: s.rounds,
        nextRound: s.nextRound,
        latest: s.latest,
      }))
      .sort((a, b) => a.meta.started - b.meta.started);
  }

  /** One run's summary, or `undefined` if unknown. */
  run(runId: string): RunSummary | undefined {
    const s = this.#runs.get(runId);
    return s &&
      {
        meta: s.meta,
        rounds: s.rounds,
        nextRound: s.nextRound,
        latest: s.latest,
      };
  }

  /**
   * Reads a run's durable reports from disk, in append order.
   *
   * @param runId The run.
   * @param options `since`: only rounds at least this.
   * @returns The reports (empty for an unknown run).
   */
  async reports(
    runId: string,
    options: ReportsOptions = {},
  ): Promise<Report[]> {
    const out: Report[] = [];
    for await (const r of this.iterReports(runId, options)) out.push(r);
    return out;
  }

  /** Like {@linkcode HistoryStore.reports} but yields one report at a time. */
  async *iterReports(
    runId: string,
    options: ReportsOptions = {},
  ): AsyncGenerator<Report> {
    const state = this.#runs.get(runId);
    if (!state || state.size === 0) return;
    const size = state.size; // only lines that were durable when the read began
    const file = await Deno.open(join(state.dir, "reports.jsonl"), {
      read: true,
    });
    try {
      const bytes = new Uint8Array(size);
      let off = 0;
      while (off < size) {
        const n = await file.read(bytes.subarray(off));
        if (n === null) break;
        off += n;
      }
      const since = options.since ?? -Infinity;
      const batch: Report[] = [];
      forEachLine(bytes.subarray(0, off), (line) => {
        const r = parseLine(line);
        if (r && r.round >= since) batch.push(r);
      });
      yield* batch;
    } finally {
      file.close();
    }
  }

  /**
   * Subscribes to reports as they become durable.
   *
   * @param listener Called synchronously after each append; exceptions are logged.
   * @returns A function that unsubscribes.
   */
  subscribe(listener: (event: ReportEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Closes open files. Appends after this throw. */
  close(): void {
    this.#closed = true;
    for (const s of this.#runs.values()) {
      try {
        s.file?.close();
      } catch { /* already closed */ }
      s.file = undefined;
    }
    this.#listeners.clear();
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new Error(`History store is closed: ${this.dataDir}`);
    }
  }
}

function isReport(x: unknown): x is Report {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
  const r = x as Record<string, unknown>;
  return typeof r.run === "string" && Number.isInteger(r.round) &&
    (r.round as number) >= 0;
}

function parseLine(line: string): Report | undefined {
  try {
    const r = JSON.parse(line);
    return isReport(r) ? r : undefined;
  } catch {
    return undefined;
  }
}

function forEachLine(
  bytes: Uint8Array,
  fn: (line: string, lineNo: number) => void,
): void {
  let start = 0;
  let lineNo = 1;
  while (start < bytes.length) {
    let end = bytes.indexOf(10, start);
    if (end < 0) end = bytes.length;
    if (end > start) fn(decoder.decode(bytes.subarray(start, end)), lineNo);
    start = end + 1;
    lineNo++;
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = path + ".tmp";
  const file = await Deno.open(tmp, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    await file.write(encoder.encode(text));
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}
