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

/** Longest log line written, in characters: a client's input never becomes a huge line. */
export const MAX_LOG_LINE = 4000;

/**
 * One JSON log line of at most {@linkcode MAX_LOG_LINE} characters: over it, every field is
 * cut to a short preview (and `truncated: true` is added).
 */
export function logLine(level: LogLevel, event: string, fields: Record<string, unknown>): string {
  const line = JSON.stringify({ time: new Date().toISOString(), level, event, ...fields });
  if (line.length <= MAX_LOG_LINE) return line;
  const per = Math.max(32, Math.floor(MAX_LOG_LINE / (2 * (Object.keys(fields).length + 1))));
  const short = Object.fromEntries(Object.entries(fields).slice(0, 16).map(([k, v]) => {
    const text = typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
    return [k.slice(0, 64), text.length > per ? `${text.slice(0, per)}… (${text.length} chars)` : v];
  }));
  return JSON.stringify({ time: new Date().toISOString(), level, event: event.slice(0, 64), ...short, truncated: true });
}

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
    const line = logLine(level, event, fields);
    Deno.stderr.writeSync(enc.encode(line + "\n"));
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = () => {};
