/**
 * Tensors on the wire (SPEC §2): `{data: bin, dtype, shape}` ↔ row-major Float64Array.
 *
 * Decoding checks everything a peer can get wrong (dtype, shape, byte length, finiteness,
 * expected shape) so that estimators only ever see well-formed f64 data.
 *
 * @module
 */
import { describe } from "./describe.ts";
import { ProtocolError } from "./errors.ts";

/** A tensor as it travels inside a message. */
export interface TensorMap {
  data: Uint8Array;
  dtype: "f64" | "f32" | "i32";
  shape: number[];
}

/** A decoded tensor, widened to f64. */
export interface Tensor {
  data: Float64Array;
  shape: number[];
}

/** Options of {@linkcode decodeTensor}. */
export interface DecodeTensorOptions {
  /** The shape the caller needs; a different shape is `bad_tensor`. */
  shape?: readonly number[];
  /** Refuse NaN/±Inf with `non_finite` (default true: tensors carry curvature). */
  finite?: boolean;
}

const ITEMSIZE = { f64: 8, f32: 4, i32: 4 } as const;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("Cannot use tensors: this platform is big-endian, the wire is little-endian");
}

/**
 * Wraps row-major f64 data as a tensor map (the sidecar always answers in f64).
 *
 * @param data row-major values
 * @param shape dimensions; their product must equal `data.length`
 * @returns the tensor map, sharing no memory with `data`
 * @throws {RangeError} when the shape does not match the data
 * @example
 * ```ts
 * import { encodeTensor } from "./tensor.ts";
 * const t = encodeTensor(new Float64Array([1, 2]), [2]);
 * if (t.data.length !== 16) throw new Error("expected 16 bytes");
 * ```
 */
export function encodeTensor(data: Float64Array, shape: readonly number[]): TensorMap {
  const n = shape.reduce((a, b) => a * b, 1);
  if (shape.some((s) => !Number.isInteger(s) || s < 0) || n !== data.length) {
    throw new RangeError(`Cannot encode tensor: shape [${shape}] does not hold ${data.length} values`);
  }
  const copy = new Float64Array(data);
  return { data: new Uint8Array(copy.buffer), dtype: "f64", shape: [...shape] };
}

/**
 * Reads a tensor map from a decoded message, widening f32/i32 to f64.
 *
 * @param value the decoded field
 * @param name field name, used in error messages
 * @param options expected shape, finiteness
 * @returns row-major f64 data and its shape
 * @throws {ProtocolError} `bad_tensor` (not a tensor, unknown dtype, byte length ≠ shape ×
 *   itemsize, unexpected shape) or `non_finite`
 * @example
 * ```ts
 * import { decodeTensor, encodeTensor } from "./tensor.ts";
 * const t = decodeTensor(encodeTensor(new Float64Array([1, 2, 3, 4]), [2, 2]), "u", { shape: [2, 2] });
 * if (t.data[3] !== 4) throw new Error("round trip failed");
 * ```
 */
export function decodeTensor(value: unknown, name: string, options: DecodeTensorOptions = {}): Tensor {
  const bad = (why: string) => new ProtocolError("bad_tensor", `Cannot read tensor '${name}': ${why}`);
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
    throw bad("not a map");
  }
  const { data, dtype, shape } = value as Record<string, unknown>;
  if (dtype !== "f64" && dtype !== "f32" && dtype !== "i32") throw bad(`unknown dtype ${describe(dtype)}`);
  if (!(data instanceof Uint8Array)) throw bad("data is not a bin");
  if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 0)) {
    throw bad("shape is not an array of non-negative integers");
  }
  const n = (shape as number[]).reduce((a, b) => a * b, 1);
  const itemsize = ITEMSIZE[dtype];
  if (data.byteLength !== n * itemsize) {
    throw bad(`shape [${shape}] of ${dtype} needs ${n * itemsize} bytes, got ${data.byteLength}`);
  }
  if (options.shape && (options.shape.length !== shape.length || options.shape.some((s, i) => s !== shape[i]))) {
    throw bad(`expected shape [${options.shape}], got [${shape}]`);
  }
  const aligned = data.slice().buffer; // copy: the bin may sit at any offset in the frame
  const out = dtype === "f64"
    ? new Float64Array(aligned)
    : Float64Array.from(dtype === "f32" ? new Float32Array(aligned) : new Int32Array(aligned));
  if (options.finite !== false) {
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(out[i])) {
        throw new ProtocolError("non_finite", `Cannot use tensor '${name}': element ${i} is ${out[i]}`);
      }
    }
  }
  return { data: out, shape: shape as number[] };
}
