/**
 * Run history: crash-safe append-only report store with live subscription.
 *
 * @module
 */
export * from "./history_store.ts";
export { runDirName } from "./run_dir.ts";
