/**
 * Caps on what one client may ask for (SPEC §3 "Caps"), and the checks that refuse values
 * above them with `bad_request`: a single message must not be able to occupy the sidecar for
 * minutes or exhaust its memory. Types are checked by messages.ts (`malformed`); ranges here.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import { describe } from "./describe.ts";

/** Documented caps (SPEC §3). */
export const CAPS = {
  /** Longest `run.id`, `run.name` (characters). */
  runId: 1024,
  /** Longest `run.model` summary and `hello.client` (characters). */
  text: 4096,
  /** Longest `hello.secret` (characters). */
  secret: 128,
  /** Most `hello.capabilities` entries. */
  capabilities: 64,
  /** Largest probe size `m`. */
  probe: 65536,
  /** Most bootstrap resamples (`round.options.bootstrap`). */
  bootstrap: 1000,
  /** Longest `round.options.batch_grid`. */
  batchGrid: 64,
  /**
   * Largest `round.options.max_basis` (factors make a basis of hundreds cheap; `exact` rounds
   * set their own basis: the whole factor span up to `EXACT_SPAN_MAX` rows, else 512).
   */
  maxBasis: 1024,
  /** Largest `hello.run.outputs` (rows of each per-sample factor; use `ggn_mc` beyond). */
  outputs: 4096,
  /** Largest `round.budget.hvps` (HVP-equivalents). */
  budgetHvps: 1_000_000,
  /** Largest `round.budget.seconds`. */
  budgetSeconds: 86_400,
  /** Longest `round.options.optimizer.name` (characters). */
  optimizerName: 64,
  /** Largest `round.options.optimizer.decoupled_decay` and `.l2`. */
  decay: 1e6,
} as const;

type Obj = Record<string, unknown>;

/** Throws `bad_request` saying what `where` must be and what it was. */
export function refuse(where: string, expected: string, got: unknown): never {
  throw new ProtocolError("bad_request", `Invalid ${where}: expected ${expected}, got ${describe(got)}`);
}

const safeInt = (v: unknown): v is number => Number.isSafeInteger(v);
const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Checks one optional numeric option: `malformed` for a wrong type, `bad_request` out of range. */
function option(o: Obj, key: string, integer: boolean, ok: (x: number) => boolean, range: string): void {
  const v = o[key];
  if (v === undefined) return;
  if (!(integer ? safeInt(v) : finite(v))) {
    throw new ProtocolError("malformed", `Cannot read round.options.${key}: expected ${integer ? "an integer" : "a finite number"}, got ${describe(v)}`);
  }
  if (!ok(v as number)) refuse(`round.options.${key}`, range, v);
}

/**
 * Checks the ranges of a `round` request and its options against SPEC §3 and {@linkcode CAPS}.
 *
 * @param r the round fields (types already checked)
 * @param options `round.options`
 * @throws {ProtocolError} `bad_request` for a value out of range or over a cap; `malformed`
 *   for an option of the wrong type
 * @example
 * ```ts
 * import { checkRound } from "./limits.ts";
 * checkRound({ lr: 0.1, n: 10, batch_size: 2, budget: {} }, { bootstrap: 50 });
 * ```
 */
export function checkRound(
  r: { lr: number; n: number; batch_size: number; budget: { hvps?: number; seconds?: number } },
  options: Obj,
): void {
  if (r.lr < 0) refuse("round.lr", "lr >= 0", r.lr);
  if (r.n < 1) refuse("round.n", "n >= 1", r.n);
  if (r.batch_size > r.n) refuse("round.batch_size", `batch_size <= n = ${r.n}`, r.batch_size);
  const { hvps, seconds } = r.budget;
  if (hvps !== undefined && !(hvps > 0 && hvps <= CAPS.budgetHvps)) refuse("round.budget.hvps", `0 < hvps <= ${CAPS.budgetHvps}`, hvps);
  if (seconds !== undefined && !(seconds > 0 && seconds <= CAPS.budgetSeconds)) {
    refuse("round.budget.seconds", `0 < seconds <= ${CAPS.budgetSeconds}`, seconds);
  }
  option(options, "tol", false, (x) => x > 0 && x < 1, "tol in (0, 1)");
  option(options, "bootstrap", true, (x) => x >= 0 && x <= CAPS.bootstrap, `0 <= bootstrap <= ${CAPS.bootstrap}`);
  option(options, "max_basis", true, (x) => x >= 1 && x <= CAPS.maxBasis, `1 <= max_basis <= ${CAPS.maxBasis}`);
  option(options, "seed", true, () => true, "an integer");
  const grid = options.batch_grid;
  if (grid !== undefined) {
    if (!Array.isArray(grid) || !grid.every(safeInt)) {
      throw new ProtocolError("malformed", `Cannot read round.options.batch_grid: expected an array of integers, got ${describe(grid)}`);
    }
    if (grid.length > CAPS.batchGrid) refuse("round.options.batch_grid", `at most ${CAPS.batchGrid} entries`, grid);
    const bad = grid.find((b) => b < 1);
    if (bad !== undefined) refuse("round.options.batch_grid", "positive batch sizes (those above n are ignored)", bad);
  }
  const target = options.target;
  if (target !== undefined && target !== "lambda_gen" && target !== "lambda_max") {
    refuse("round.options.target", `"lambda_gen" or "lambda_max"`, target);
  }
  if (options.optimizer !== undefined) checkOptimizer(options.optimizer);
}

/** The numeric keys of `round.options.optimizer` (SPEC §3.1): range, and the kinds they belong to. */
const OPTIMIZER_NUMBERS: Record<string, { unit: boolean; kinds: readonly string[] }> = {
  momentum: { unit: true, kinds: ["heavy_ball", "nesterov"] },
  dampening: { unit: true, kinds: ["heavy_ball"] },
  beta1: { unit: true, kinds: ["adam"] },
  decoupled_decay: { unit: false, kinds: ["adam"] },
  l2: { unit: false, kinds: ["sgd", "heavy_ball", "nesterov", "adam"] },
};

/** The key each kind cannot do without. */
const OPTIMIZER_REQUIRED: Record<string, string | undefined> = {
  sgd: undefined,
  heavy_ball: "momentum",
  nesterov: "momentum",
  adam: "beta1",
};

/**
 * Checks `round.options.optimizer` (SPEC §3.1): a wrong type is `malformed`; an unknown kind, a
 * value out of range, a missing required key, or a nonzero key of another kind (which would be
 * silently ignored) is `bad_request`. Unlisted keys are ignored.
 *
 * @throws {ProtocolError} as above
 * @example
 * ```ts
 * import { checkOptimizer } from "./limits.ts";
 * checkOptimizer({ kind: "heavy_ball", momentum: 0.9, name: "SGD" });
 * ```
 */
export function checkOptimizer(o: unknown): void {
  const where = "round.options.optimizer";
  const malformed = (key: string, expected: string, v: unknown): never => {
    throw new ProtocolError("malformed", `Cannot read ${where}${key}: expected ${expected}, got ${describe(v)}`);
  };
  if (typeof o !== "object" || o === null || Array.isArray(o) || o instanceof Uint8Array) malformed("", "a map", o);
  const opt = o as Obj;
  if (typeof opt.kind !== "string") malformed(".kind", "a string", opt.kind);
  const kind = opt.kind as string;
  if (!(kind in OPTIMIZER_REQUIRED)) refuse(`${where}.kind`, `"sgd", "heavy_ball", "nesterov" or "adam"`, kind);
  for (const [key, { unit, kinds }] of Object.entries(OPTIMIZER_NUMBERS)) {
    const v = opt[key];
    if (v === undefined) continue;
    if (!finite(v)) malformed(`.${key}`, "a finite number", v);
    const x = v as number;
    if (unit ? !(x >= 0 && x < 1) : !(x >= 0 && x <= CAPS.decay)) {
      refuse(`${where}.${key}`, unit ? `${key} in [0, 1)` : `0 <= ${key} <= ${CAPS.decay}`, x);
    }
    if (!kinds.includes(kind) && x !== 0) refuse(`${where}.${key}`, `absent or 0 for kind "${kind}"`, x);
  }
  const required = OPTIMIZER_REQUIRED[kind];
  if (required !== undefined && opt[required] === undefined) refuse(`${where}.${required}`, `a number for kind "${kind}"`, undefined);
  if (opt.name !== undefined) {
    if (typeof opt.name !== "string") malformed(".name", "a string", opt.name);
    if ((opt.name as string).length > CAPS.optimizerName) refuse(`${where}.name`, `at most ${CAPS.optimizerName} characters`, opt.name);
  }
  if (opt.assumed !== undefined && typeof opt.assumed !== "boolean") malformed(".assumed", "a bool", opt.assumed);
}

/**
 * Checks the ranges of `hello.run` (types already checked).
 *
 * @param run the run metadata
 * @throws {ProtocolError} `bad_request` for a value out of range
 * @example
 * ```ts
 * import { checkRun } from "./limits.ts";
 * checkRun({ id: "r", name: "r", probe: 4, n: 10, batch_size: 2 });
 * ```
 */
export function checkRun(
  run: { id: string; name: string; probe: number; n: number; batch_size: number; model?: string; outputs?: number },
): void {
  if (run.id.length < 1 || run.id.length > CAPS.runId) refuse("hello.run.id", `1 to ${CAPS.runId} characters`, run.id);
  if (run.name.length > CAPS.runId) refuse("hello.run.name", `at most ${CAPS.runId} characters`, run.name);
  if (run.model !== undefined && run.model.length > CAPS.text) refuse("hello.run.model", `at most ${CAPS.text} characters`, run.model);
  if (run.probe < 1 || run.probe > CAPS.probe) refuse("hello.run.probe", `1 <= probe <= ${CAPS.probe}`, run.probe);
  if (run.n < 1) refuse("hello.run.n", "n >= 1", run.n);
  if (run.batch_size < 1 || run.batch_size > run.n) refuse("hello.run.batch_size", `1 <= batch_size <= n = ${run.n}`, run.batch_size);
  if (run.outputs !== undefined && run.outputs > CAPS.outputs) {
    refuse("hello.run.outputs", `1 <= outputs <= ${CAPS.outputs} (ggn_mc samples fewer labels)`, run.outputs);
  }
}
