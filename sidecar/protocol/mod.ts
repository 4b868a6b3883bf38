/**
 * Protocol v1 (protocol/SPEC.md): canonical MessagePack codec, tensors, messages, errors.
 *
 * @module
 */
export * from "./codec.ts";
export * from "./describe.ts";
export * from "./errors.ts";
export * from "./limits.ts";
export * from "./messages.ts";
export * from "./tensor.ts";
