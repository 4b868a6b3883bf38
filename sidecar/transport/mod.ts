/**
 * Transport: the ZeroMQ ROUTER server, per-run sessions, and the remote curvature oracle.
 *
 * @module
 */
export * from "./log.ts";
export * from "./remote_oracle.ts";
export * from "./server.ts";
export * from "./session.ts";
export * from "./stub_runner.ts";
export * from "./timers.ts";
