/**
 * What binds a session to its client (SPEC §3 "Sessions"): a random secret returned in
 * `welcome` (the sidecar keeps only its SHA-256), the routing id of the connection, and a
 * sliding window that caps how many sessions are opened per minute.
 *
 * @module
 */

/**
 * A new session secret: 128 random bits as 32 hex characters.
 *
 * @returns the secret
 * @example
 * ```ts
 * import { newSecret } from "./ownership.ts";
 * if (!/^[0-9a-f]{32}$/.test(newSecret())) throw new Error("bad secret");
 * ```
 */
export function newSecret(): string {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * SHA-256 of a UTF-8 string, as 64 hex characters.
 *
 * @param s the text
 * @returns the hex digest
 * @example
 * ```ts
 * import { sha256Hex } from "./ownership.ts";
 * const h = await sha256Hex("abc");
 * if (!h.startsWith("ba7816bf")) throw new Error(h);
 * ```
 */
export async function sha256Hex(s: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s))));
}

/**
 * Whether two routing ids are the same bytes (`undefined` matches nothing).
 *
 * @example
 * ```ts
 * import { sameBytes } from "./ownership.ts";
 * if (!sameBytes(new Uint8Array([1]), new Uint8Array([1]))) throw new Error("differ");
 * ```
 */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Counts events in the last `ms` milliseconds.
 *
 * @example
 * ```ts
 * import { RateWindow } from "./ownership.ts";
 * const w = new RateWindow(60_000);
 * w.add();
 * if (w.count() !== 1) throw new Error("count");
 * ```
 */
export class RateWindow {
  #times: number[] = [];
  /**
   * @param ms window length
   * @param now clock (tests inject one)
   */
  constructor(readonly ms: number, readonly now: () => number = () => performance.now()) {}

  /** Records one event now. */
  add(): void {
    this.#times.push(this.now());
  }

  /** Events within the window. */
  count(): number {
    const since = this.now() - this.ms;
    while (this.#times.length && this.#times[0] <= since) this.#times.shift();
    return this.#times.length;
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
