/**
 * The protocol's error codes (SPEC §6) and the one error class that carries them.
 *
 * @module
 */

/** Every `error.code` of SPEC §6. */
export const ERROR_CODES = [
  "malformed",
  "unknown_type",
  "version_mismatch",
  "bad_tensor",
  "non_finite",
  "too_large",
  "unknown_session",
  "bad_state",
  "bad_request",
  "overloaded",
  "oracle_failed",
  "timeout",
  "internal",
] as const;

/** One of SPEC §6's error codes. */
export type ErrorCode = typeof ERROR_CODES[number];

/** Whether `s` is one of SPEC §6's error codes. */
export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === "string" && (ERROR_CODES as readonly string[]).includes(s);
}

/**
 * An error that becomes a protocol `error` message: `code` says which (SPEC §6), `message`
 * says what failed, `details` travels as the message's optional `details` map.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * const e = new ProtocolError("bad_tensor", "Cannot read tensor 'proj': expected 16 bytes, got 8");
 * if (e.code !== "bad_tensor") throw new Error("unexpected");
 * ```
 */
export class ProtocolError extends Error {
  /** SPEC §6 code. */
  readonly code: ErrorCode;
  /** Optional structured details (e.g. `{supported: [1]}`). */
  readonly details?: Record<string, unknown>;

  /**
   * @param code SPEC §6 code
   * @param message what failed, then the state after a colon
   * @param details optional map sent as `details`
   */
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.details = details;
  }
}
