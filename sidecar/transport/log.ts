/**
 * Structured logs: one JSON object per line on stderr, so stdout stays free for the
 * `listening` line a spawner waits for and logs stay machine-readable.
 *
 * @module
 */

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** What the transport logs through. */
export type Logger = (level: LogLevel, event: string, fields?: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Whether `s` names a log level. */
export function isLogLevel(s: unknown): s is LogLevel {
  return typeof s === "string" && s in RANK;
}

/**
 * A logger writing JSON lines to stderr, dropping levels below `min`.
 *
 * @param min least severe level written
 * @returns the logger
 * @example
 * ```ts
 * import { jsonLogger } from "./log.ts";
 * const log = jsonLogger("error");
 * log("info", "dropped"); // below "error": nothing written
 * ```
 */
export function jsonLogger(min: LogLevel = "info"): Logger {
  const enc = new TextEncoder();
  return (level, event, fields = {}) => {
    if (RANK[level] < RANK[min]) return;
    const line = JSON.stringify({ time: new Date().toISOString(), level, event, ...fields });
    Deno.stderr.writeSync(enc.encode(line + "\n"));
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = () => {};
