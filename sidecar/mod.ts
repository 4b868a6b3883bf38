/**
 * Edgewise sidecar: protocol v1 codec and messages, the ZeroMQ transport (libzmq via FFI) and
 * sessions. Run it with `deno task sidecar` (see main.ts).
 *
 * @module
 */
export * from "./protocol/mod.ts";
export * from "./transport/mod.ts";
