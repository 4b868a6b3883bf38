/**
 * Edgewise sidecar: protocol v1 codec and messages, the ZeroMQ (ZMTP) transport and
 * sessions. Run it with `deno task sidecar` (see main.ts).
 *
 * @module
 */
export * from "./protocol/mod.ts";
export * from "./transport/mod.ts";
