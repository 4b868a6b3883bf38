/**
 * Maps client-chosen run ids to safe directory names.
 *
 * Run ids come from the wire (SPEC §3 `run.id`), so they are hostile until proven otherwise:
 * every character outside `[A-Za-z0-9_-]` is percent-encoded (so `/`, `\`, `.`, NUL and
 * `..` can never form a path), and very long ids are shortened with a hash so the name stays
 * under common file-name limits. The original id is kept in `meta.json`, which is the source
 * of truth; the directory name is only a key.
 *
 * @module
 */

/** Longest directory name produced (bytes); most file systems allow 255. */
const MAX_NAME = 160;

/**
 * Returns the directory name for a run id.
 *
 * @param runId The client-chosen run id (non-empty string).
 * @returns A name made of `[A-Za-z0-9_%~-]` only, never `.` or `..`.
 * @throws {TypeError} If `runId` is not a string.
 * @throws {RangeError} If `runId` is empty or longer than 1024 characters.
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(await runDirName("../etc/passwd"), "%2E%2E%2Fetc%2Fpasswd");
 * ```
 */
export async function runDirName(runId: string): Promise<string> {
  if (typeof runId !== "string") {
    throw new TypeError(`Run id must be a string: got ${typeof runId}`);
  }
  if (runId.length === 0 || runId.length > 1024) {
    throw new RangeError(
      `Run id must have 1 to 1024 characters: got ${runId.length}`,
    );
  }
  let out = "";
  for (const byte of new TextEncoder().encode(runId)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c)
      ? c
      : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  if (out.length <= MAX_NAME) return out;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(runId)),
  );
  const hex = [...digest.slice(0, 8)].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join("");
  return out.slice(0, MAX_NAME - 17) + "~" + hex;
}
