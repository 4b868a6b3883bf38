/**
 * DNS-rebinding protection: the dashboard answers only requests whose `Host` header names
 * the address it is bound to (or a name the operator allowed).
 *
 * Why: a web page on another site can make its own domain resolve to 127.0.0.1 and then read
 * the dashboard from the victim's browser; that request still carries the attacker's domain
 * in `Host`, which is what this rejects.
 *
 * @module
 */

const LOOPBACK = ["127.0.0.1", "::1", "localhost"];

/** Splits a `Host` header into a lowercase name (no brackets) and an optional port. */
export function parseHost(host: string): { name: string; port?: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d{1,5}))?$/.exec(host.trim());
  if (!m) return null;
  const name = m[1].replace(/^\[|\]$/g, "").toLowerCase().replace(/\.$/, "");
  return { name, port: m[2] === undefined ? undefined : Number(m[2]) };
}

/**
 * Builds the `Host` check for a dashboard bound to `hostname:port`.
 *
 * Allowed names: the bound address itself; for a loopback or wildcard bind also
 * `127.0.0.1`, `::1` and `localhost` (they reach this process only from this machine); and
 * every name in `allow`. A port in the header must be the bound port.
 *
 * @param hostname The address bound (`127.0.0.1`, `0.0.0.0`, ...).
 * @param port The port bound.
 * @param allow Extra host names (`--allow-host`), case-insensitive.
 * @returns `check(hostHeader)` → `null` when allowed, else the reason.
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * const check = hostCheck("127.0.0.1", 8765, ["dash.example"]);
 * strictEqual(check("127.0.0.1:8765"), null);
 * strictEqual(check("dash.example:8765"), null);
 * strictEqual(typeof check("evil.example:8765"), "string");
 * ```
 */
export function hostCheck(
  hostname: string,
  port: number,
  allow: readonly string[] = [],
): (host: string | null) => string | null {
  const bound = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const names = new Set([bound, ...allow.map((a) => a.toLowerCase().replace(/\.$/, ""))]);
  const wildcard = bound === "0.0.0.0" || bound === "::";
  if (wildcard || LOOPBACK.includes(bound) || bound.startsWith("127.")) {
    for (const l of LOOPBACK) names.add(l);
  }
  if (wildcard) names.delete(bound);
  const list = [...names].join(", ");
  return (host) => {
    const h = host === null ? null : parseHost(host);
    if (!h) return `Host header missing or malformed: ${host ?? "none"}`;
    if (h.port !== undefined && h.port !== port) {
      return `Host not allowed: ${host} (this dashboard is on port ${port})`;
    }
    if (!names.has(h.name)) {
      return `Host not allowed: ${host} (allowed: ${list}; add names with --allow-host)`;
    }
    return null;
  };
}
