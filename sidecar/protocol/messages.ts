/**
 * Protocol v2 messages (SPEC §3): validation of what clients send into typed objects, and
 * builders for what the sidecar answers. Validation refuses with the SPEC §6 code a client
 * can act on; it never touches tensors, whose shapes only the op knows (see tensor.ts).
 *
 * @module
 */
import { type ErrorCode, isErrorCode, ProtocolError } from "./errors.ts";
import { clip, describe, MAX_ERROR_MESSAGE } from "./describe.ts";
import { CAPS, checkRound, checkRun, refuse } from "./limits.ts";

/** Protocol versions this sidecar speaks. */
export const SUPPORTED_VERSIONS: readonly number[] = [2];

/** Run metadata from `hello` (SPEC §3). */
export interface RunMeta {
  id: string;
  name: string;
  params: number;
  probe: number;
  n: number;
  batch_size: number;
  /** `ggn_mc`: Monte-Carlo Gauss–Newton factors with `outputs` sampled labels. */
  curvature: "hessian" | "ggn" | "ggn_mc";
  /** Rows `c` of each per-sample factor (factor route; absent on the Hessian route). */
  outputs?: number;
  dtype: "f64" | "f32";
  model?: string;
}

/** A `round` request. */
export interface RoundRequest {
  step: number;
  epoch: number;
  lr: number;
  batch_size: number;
  n: number;
  momentum: number;
  basis: number;
  budget: { hvps?: number; seconds?: number };
  options: Record<string, unknown>;
}

/** Fields common to every client message. */
interface Base {
  id: number;
  session?: string;
}

/** Every message a client can send, validated. */
export type ClientMessage =
  | Base & { type: "hello"; protocol: number; client: string; run: RunMeta; capabilities: string[]; secret?: string }
  | Base & { type: "round"; round: RoundRequest }
  | Base & {
    type: "result";
    seq: number;
    op: string;
    basis: number;
    hvps: number;
    wall_ms: number;
    /** The whole decoded map; op-specific fields are read by the oracle. */
    fields: Record<string, unknown>;
  }
  | Base & { type: "heartbeat" }
  | Base & { type: "bye" }
  | Base & { type: "error"; code: ErrorCode; message: string; seq?: number; details?: Record<string, unknown> };

/** Limits announced in `welcome` (SPEC §7). */
export interface Limits {
  max_message_bytes: number;
  heartbeat_ms: number;
  idle_timeout_ms: number;
  op_timeout_ms: number;
  /**
   * Present when rounds run off the event loop, so heartbeats are answered during a round: a
   * client that hears nothing at all for this long during a round may take the sidecar as gone.
   */
  liveness_ms?: number;
}

const TYPES = ["hello", "welcome", "round", "op", "result", "report", "heartbeat", "bye", "error"];

type Obj = Record<string, unknown>;
const isMap = (v: unknown): v is Obj =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);

function field<T>(o: Obj, key: string, what: string, ok: (v: unknown) => boolean, where: string): T {
  const v = o[key];
  if (!ok(v)) {
    const got = v === undefined ? "missing" : `got ${describe(v)}`;
    throw new ProtocolError("malformed", `Cannot read ${where}.${key}: expected ${what}, ${got}`);
  }
  return v as T;
}
const isNum = (v: unknown) => typeof v === "number";
// integers must be exact in a JavaScript number (|n| <= 2^53 - 1): larger ones are refused
const isInt = (v: unknown) => Number.isSafeInteger(v);
const isNat = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isStr = (v: unknown) => typeof v === "string";
const num = (o: Obj, k: string, w: string) => field<number>(o, k, "a number", isNum, w);
const nat = (o: Obj, k: string, w: string) => field<number>(o, k, "a non-negative integer", isNat, w);
const str = (o: Obj, k: string, w: string) => field<string>(o, k, "a string", isStr, w);
const optional = <T>(o: Obj, k: string, read: () => T): T | undefined => (o[k] === undefined ? undefined : read());

/** Reads the `id` of a decoded message when it has a usable one, for addressing an error. */
export function peekId(v: unknown): number | undefined {
  return isMap(v) && isInt(v.id) ? v.id as number : undefined;
}

/**
 * Validates a decoded client message.
 *
 * @param v the decoded MessagePack value
 * @returns the typed message
 * @throws {ProtocolError} `malformed` (not a map, missing or mistyped field), `unknown_type`,
 *   `version_mismatch` (hello with a protocol not in {@linkcode SUPPORTED_VERSIONS})
 * @example
 * ```ts
 * import { parseClientMessage } from "./messages.ts";
 * const m = parseClientMessage({ type: "heartbeat", id: 3, session: "s" });
 * if (m.type !== "heartbeat" || m.id !== 3) throw new Error("unexpected");
 * ```
 */
export function parseClientMessage(v: unknown): ClientMessage {
  if (!isMap(v)) throw new ProtocolError("malformed", `Cannot read message: expected a map, got ${Array.isArray(v) ? "array" : typeof v}`);
  const type = str(v, "type", "message");
  if (!TYPES.includes(type)) throw new ProtocolError("unknown_type", `Cannot handle message: unknown type ${describe(type)}`);
  const id = field<number>(v, "id", "an integer", isInt, type);
  const session = optional(v, "session", () => str(v, "session", type));
  const base = { id, session };
  switch (type) {
    case "hello": {
      const protocol = field<number>(v, "protocol", "an integer", isInt, "hello");
      if (!SUPPORTED_VERSIONS.includes(protocol)) {
        throw new ProtocolError(
          "version_mismatch",
          `Unsupported protocol version: got ${protocol}, supported [${SUPPORTED_VERSIONS}]: upgrade the edgewise client to one that speaks protocol ${SUPPORTED_VERSIONS.at(-1)}`,
          { supported: [...SUPPORTED_VERSIONS] },
        );
      }
      const run = field<Obj>(v, "run", "a map", isMap, "hello");
      const w = "hello.run";
      const meta: RunMeta = {
        id: str(run, "id", w),
        name: str(run, "name", w),
        params: nat(run, "params", w),
        probe: field<number>(run, "probe", "a positive integer", (x) => isNat(x) && (x as number) > 0, w),
        n: nat(run, "n", w),
        batch_size: nat(run, "batch_size", w),
        curvature: field(run, "curvature", `"hessian", "ggn" or "ggn_mc"`, (x) => x === "hessian" || x === "ggn" || x === "ggn_mc", w),
        dtype: field(run, "dtype", `"f64" or "f32"`, (x) => x === "f64" || x === "f32", w),
        model: optional(run, "model", () => str(run, "model", w)),
      };
      if (meta.curvature === "hessian") delete meta.outputs;
      else {
        meta.outputs = field<number>(run, "outputs", "a positive integer (rows of each factor, required for ggn)", (x) => isNat(x) && (x as number) > 0, w);
      }
      const capabilities = field<string[]>(
        v,
        "capabilities",
        "an array of strings",
        (x) => Array.isArray(x) && x.every(isStr),
        "hello",
      );
      checkRun(meta);
      if (capabilities.length > CAPS.capabilities || capabilities.some((c) => c.length > 64)) {
        refuse("hello.capabilities", `at most ${CAPS.capabilities} op names of at most 64 characters`, capabilities);
      }
      const client = str(v, "client", "hello");
      if (client.length > CAPS.text) refuse("hello.client", `at most ${CAPS.text} characters`, client);
      const secret = optional(v, "secret", () => str(v, "secret", "hello"));
      if (secret !== undefined && secret.length > CAPS.secret) refuse("hello.secret", `at most ${CAPS.secret} characters`, secret);
      return { ...base, type, protocol, client, run: meta, capabilities, secret };
    }
    case "round": {
      const budget = optional(v, "budget", () => field<Obj>(v, "budget", "a map", isMap, "round")) ?? {};
      const options = optional(v, "options", () => field<Obj>(v, "options", "a map", isMap, "round")) ?? {};
      const round: RoundRequest = {
        step: num(v, "step", type),
        epoch: num(v, "epoch", type),
        lr: field<number>(v, "lr", "a finite number", Number.isFinite, type),
        batch_size: field<number>(v, "batch_size", "a positive integer", (x) => isNat(x) && (x as number) > 0, type),
        n: nat(v, "n", type),
        momentum: num(v, "momentum", type),
        basis: nat(v, "basis", type),
        budget: {
          hvps: optional(budget, "hvps", () => num(budget, "hvps", "round.budget")),
          seconds: optional(budget, "seconds", () => num(budget, "seconds", "round.budget")),
        },
        options,
      };
      checkRound(round, options);
      return { ...base, type, round };
    }
    case "result":
      return {
        ...base,
        type,
        seq: nat(v, "seq", type),
        op: str(v, "op", type),
        basis: nat(v, "basis", type),
        hvps: field<number>(v, "hvps", "a non-negative number", (x) => isNum(x) && (x as number) >= 0, type),
        wall_ms: num(v, "wall_ms", type),
        fields: v,
      };
    case "heartbeat":
    case "bye":
      return { ...base, type };
    case "error":
      return {
        ...base,
        type,
        code: field<ErrorCode>(v, "code", "an error code", isErrorCode, type),
        message: clip(str(v, "message", type), MAX_ERROR_MESSAGE),
        seq: optional(v, "seq", () => nat(v, "seq", type)),
        details: optional(v, "details", () => field<Obj>(v, "details", "a map", isMap, type)),
      };
    default:
      throw new ProtocolError("unknown_type", `Cannot handle message: type ${describe(type)} is sent by the sidecar, not to it`);
  }
}

/** `welcome`. */
export function welcomeMessage(
  re: number,
  session: string,
  limits: Limits,
  sidecar: string,
  dashboard?: string,
  binding?: { run: string; secret: string },
) {
  return { type: "welcome", re, session, protocol: SUPPORTED_VERSIONS.at(-1), sidecar, limits, dashboard, ...binding };
}

/** `op`: an oracle operation, sent as the answer to message `re`. */
export function opMessage(re: number, session: string, seq: number, op: string, args: Record<string, unknown>) {
  return { type: "op", re, session, seq, op, args };
}

/** `report`. */
export function reportMessage(re: number, session: string, report: Record<string, unknown>) {
  return { type: "report", re, session, report };
}

/** `heartbeat` or `bye` echo. */
export function echoMessage(type: "heartbeat" | "bye", re: number, session: string) {
  return { type, re, session };
}

/**
 * `error`; `re` is omitted when the offending message had no readable id (the client then
 * takes it as the answer to its current request, SPEC §3).
 */
export function errorMessage(
  err: ProtocolError,
  re: number | undefined,
  session?: string,
) {
  // bounded: a message never carries more than MAX_ERROR_MESSAGE characters, and a session id
  // is echoed only when short (the one the client sent may be anything)
  const sid = session !== undefined && session.length <= 256 ? session : undefined;
  return { type: "error", re, session: sid, code: err.code, message: clip(err.message, MAX_ERROR_MESSAGE), details: err.details };
}
