/**
 * Bounded descriptions of untrusted values, for error replies and log lines: a client's
 * mistake is described, never echoed (a 16 MB field must not become a 16 MB reply or log line).
 *
 * @module
 */

/** Longest description {@linkcode describe} returns, in characters. */
export const MAX_DESCRIPTION = 80;

/** Longest error message the sidecar sends or logs, in characters (SPEC §6). */
export const MAX_ERROR_MESSAGE = 512;

/**
 * Describes `v` in at most {@linkcode MAX_DESCRIPTION} characters: its type and a truncated
 * preview (strings quoted, long ones with their length).
 *
 * @param v any decoded value
 * @returns a short description
 * @example
 * ```ts
 * import { describe } from "./describe.ts";
 * if (describe("x".repeat(1e6)).length > 80) throw new Error("unbounded");
 * if (describe(3) !== "3") throw new Error(describe(3));
 * ```
 */
export function describe(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "nil";
  if (typeof v === "string") {
    if (v.length <= 40) return JSON.stringify(v);
    return `a string of ${v.length} characters starting ${JSON.stringify(v.slice(0, 24))}`;
  }
  if (typeof v === "number" || typeof v === "boolean") return clip(String(v), MAX_DESCRIPTION);
  if (v instanceof Uint8Array) return `bin of ${v.byteLength} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return `a map of ${Object.keys(v as object).length} keys`;
  return typeof v;
}

/**
 * Cuts `s` to at most `max` characters, saying how long it was.
 *
 * @param s the text
 * @param max the longest result (at least 16)
 * @returns `s`, or its head and a marker
 * @example
 * ```ts
 * import { clip } from "./describe.ts";
 * if (clip("abcdef", 100) !== "abcdef") throw new Error("changed");
 * if (clip("a".repeat(1000), 64).length > 64) throw new Error("too long");
 * ```
 */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const tail = `… (${s.length} chars)`;
  return s.slice(0, Math.max(0, max - tail.length)) + tail;
}
