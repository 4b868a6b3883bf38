/**
 * Transport: the ZeroMQ ROUTER server (libzmq through FFI), per-run sessions, and the remote curvature oracle.
 *
 * @module
 */
export * from "./curve.ts";
export * from "./endpoint.ts";
export * from "./log.ts";
export * from "./remote_oracle.ts";
export { AddressInUse, ROUTER_DEFAULTS, type RouterOptions } from "./router.ts";
export * from "./server.ts";
export * from "./session.ts";
export * from "./stub_runner.ts";
export * from "./timers.ts";
