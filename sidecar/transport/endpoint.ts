/**
 * Endpoint checks done before binding: the syntax the sidecar accepts, and the rule that an
 * address other machines can reach is served only with CURVE (or an explicit `--insecure`),
 * since without it anyone who can connect can drive the trainer's oracle.
 *
 * @module
 */

/** A parsed endpoint. */
export type Endpoint = { transport: "tcp"; host: string; port: string } | {
  transport: "ipc";
  path: string;
};

/**
 * Parses `tcp://host:port` (port `*` for any) or `ipc://path`.
 * @throws {TypeError} on anything else
 * @example
 * ```ts
 * import { parseEndpoint } from "./endpoint.ts";
 * const e = parseEndpoint("tcp://127.0.0.1:*");
 * if (e.transport !== "tcp" || e.port !== "*") throw new Error("unexpected");
 * ```
 */
export function parseEndpoint(endpoint: string): Endpoint {
  const tcp = /^tcp:\/\/([^:/\[\]]+|\[[^\]]+\]):(\d+|\*)$/.exec(endpoint);
  if (tcp) {
    return {
      transport: "tcp",
      host: tcp[1].replace(/^\[|\]$/g, ""),
      port: tcp[2],
    };
  }
  const ipc = /^ipc:\/\/(.+)$/.exec(endpoint);
  if (ipc) return { transport: "ipc", path: ipc[1] };
  throw new TypeError(
    `Invalid endpoint: expected tcp://host:port or ipc://path, got ${endpoint}`,
  );
}

/** Whether only this machine can reach the endpoint (ipc, 127.0.0.0/8, ::1, localhost). */
export function isLoopback(endpoint: string): boolean {
  const e = parseEndpoint(endpoint);
  if (e.transport === "ipc") return true;
  const h = e.host.toLowerCase();
  return h === "localhost" || h === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Refuses to serve a non-loopback endpoint without CURVE unless `insecure` says so.
 * @throws {TypeError} saying why and what to pass instead
 */
export function checkExposure(
  endpoint: string,
  options: { curve: boolean; insecure: boolean },
): void {
  if (options.curve || options.insecure || isLoopback(endpoint)) return;
  throw new TypeError(
    `Refusing to bind ${endpoint} without authentication: other machines could connect and drive the ` +
      "training run. Pass --curve-keys DIR (make keys with `python -m edgewise keys DIR`), bind 127.0.0.1, " +
      "or pass --insecure on a network you trust.",
  );
}
