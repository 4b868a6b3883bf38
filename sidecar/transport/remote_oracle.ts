/**
 * The curvature oracle of a remote Python client: each operation becomes an `op` message
 * (sent as the answer to the client's last message) and resolves when the matching `result`
 * arrives. Results are checked against `m`, `k`, `c` and `r` here, so estimators only ever see
 * data of the shapes they asked for. On the factor route (`outputs` = c) `blocks` answers
 * `factors` (`m × c × count`) and `expand` sends `out_coeffs` (`m × c × r`), protocol v2.
 *
 * @module
 */
import type {
  CurvatureOracle,
  ExpandResult,
  GradStats,
  HutchinsonResult,
} from "../estimate/oracle.ts";
import { describe } from "../protocol/describe.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { decodeTensor, encodeTensor } from "../protocol/tensor.ts";

/** A `result` as the channel hands it to the oracle. */
export interface OpResult {
  basis: number;
  hvps: number;
  fields: Record<string, unknown>;
}

/**
 * Where ops go. `parse` runs when the matching result arrives; if it throws a
 * {@linkcode ProtocolError}, the channel answers the client with that error and abandons the
 * round, and `call` rejects with it.
 */
export interface OpChannel {
  call<T>(op: string, args: Record<string, unknown>, parse: (result: OpResult) => T): Promise<T>;
}

const badTensor = (msg: string) => new ProtocolError("bad_tensor", msg);

function checkInt(name: string, v: number, min = 0): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`Invalid ${name}: expected an integer ≥ ${min}, got ${v}`);
}

/**
 * {@linkcode CurvatureOracle} over the protocol.
 *
 * @example
 * ```ts
 * import { RemoteOracle, type OpChannel } from "./remote_oracle.ts";
 * const channel: OpChannel = {
 *   call: (_op, _args, parse) => Promise.resolve(parse({ basis: 2, hvps: 0, fields: { kept: 2 } })),
 * };
 * const oracle = new RemoteOracle(channel, 4, 0);
 * if ((await oracle.random(2, 1)) !== 2 || oracle.basisSize !== 2) throw new Error("unexpected");
 * ```
 */
export class RemoteOracle implements CurvatureOracle {
  readonly probeSize: number;
  readonly outputs?: number;
  #k: number;
  #hvps = 0;
  #waitMs = 0;
  #channel: OpChannel;

  /**
   * @param channel where ops go
   * @param probeSize `m` from the run's hello
   * @param basisSize the client's `k` from the round request
   * @param outputs rows `c` of each factor on the factor route (hello.run.outputs); undefined on the Hessian route
   */
  constructor(channel: OpChannel, probeSize: number, basisSize: number, outputs?: number) {
    checkInt("probeSize", probeSize, 1);
    checkInt("basisSize", basisSize);
    if (outputs !== undefined) checkInt("outputs", outputs, 1);
    this.#channel = channel;
    this.probeSize = probeSize;
    this.#k = basisSize;
    this.outputs = outputs;
  }

  /** Milliseconds from sending each op to its result, summed (the client's share of a round). */
  get waitMs(): number {
    return this.#waitMs;
  }

  get basisSize(): number {
    return this.#k;
  }

  get hvps(): number {
    return this.#hvps;
  }

  /** Sends one op; `parse` validates op fields, then basis and cost are taken over. */
  #call<T>(op: string, args: Record<string, unknown>, basisAfter: ((res: OpResult, out: T) => number) | number, parse: (f: Record<string, unknown>, k: number) => T): Promise<T> {
    const k = this.#k;
    const t0 = performance.now();
    return this.#channel.call(op, args, (res) => {
      this.#waitMs += performance.now() - t0;
      const out = parse(res.fields, k);
      const want = typeof basisAfter === "number" ? basisAfter : basisAfter(res, out);
      if (res.basis !== want) {
        throw badTensor(`Cannot accept result of ${op}: basis ${res.basis} does not match the expected ${want}`);
      }
      this.#k = res.basis;
      this.#hvps += res.hvps;
      return out;
    });
  }

  #kept(f: Record<string, unknown>, r: number, op: string): number {
    const kept = f.kept;
    if (!Number.isInteger(kept) || (kept as number) < 0 || (kept as number) > r) {
      throw new ProtocolError("malformed", `Cannot accept result of ${op}: kept must be an integer in [0, ${r}], got ${describe(kept)}`);
    }
    return kept as number;
  }

  reset(): Promise<void> {
    return this.#call("reset", {}, 0, () => undefined);
  }

  random(r: number, seed: number): Promise<number> {
    checkInt("r", r);
    checkInt("seed", seed);
    return this.#call("random", { r, seed }, (_res, kept) => this.#k + kept, (f) => this.#kept(f, r, "random"));
  }

  expand(coeffs: Float64Array, basisCoeffs: Float64Array, r: number, withBlocks: boolean): Promise<ExpandResult> {
    const m = this.probeSize, k = this.#k, c = this.outputs;
    const w = c ?? k;
    checkInt("r", r);
    if (coeffs.length !== m * w * r) {
      throw new RangeError(`Invalid coeffs: expected m×${c === undefined ? "k" : "c"}×r = ${m * w * r} values, got ${coeffs.length}`);
    }
    if (basisCoeffs.length !== k * r) throw new RangeError(`Invalid basisCoeffs: expected k×r = ${k * r} values, got ${basisCoeffs.length}`);
    const args = {
      [c === undefined ? "coeffs" : "out_coeffs"]: encodeTensor(coeffs, [m, w, r]),
      basis_coeffs: encodeTensor(basisCoeffs, [k, r]),
      blocks: withBlocks,
    };
    return this.#call("expand", args, (_res, out) => k + out.keptIndex.length, (f) => {
      const kept = this.#kept(f, r, "expand");
      const idx = f.kept_index;
      if (
        !Array.isArray(idx) || idx.length !== kept ||
        idx.some((x, i) => !Number.isInteger(x) || x < 0 || x >= r || (i > 0 && x <= idx[i - 1]))
      ) {
        throw new ProtocolError("malformed", `Cannot accept result of expand: kept_index must list ${kept} increasing indices in [0, ${r})`);
      }
      const out: ExpandResult = {
        proj: decodeTensor(f.proj, "proj", { shape: [k, r] }).data,
        norms: decodeTensor(f.norms, "norms", { shape: [r] }).data,
        keptIndex: idx as number[],
      };
      if (withBlocks) {
        out.blocks = c === undefined
          ? decodeTensor(f.blocks, "blocks", { shape: [m, k + kept, kept] }).data
          : decodeTensor(f.factors, "factors", { shape: [m, c, kept] }).data;
      }
      return out;
    });
  }

  blocks(start: number, count: number): Promise<Float64Array> {
    const m = this.probeSize, k = this.#k, c = this.outputs;
    checkInt("start", start);
    checkInt("count", count);
    if (start + count > k) throw new RangeError(`Invalid columns: ${start}+${count} exceeds the basis size ${k}`);
    return this.#call("blocks", { start, count }, k, (f) =>
      c === undefined
        ? decodeTensor(f.blocks, "blocks", { shape: [m, k, count] }).data
        : decodeTensor(f.factors, "factors", { shape: [m, c, count] }).data);
  }

  rotate(u: Float64Array, kNew: number): Promise<void> {
    const k = this.#k;
    checkInt("kNew", kNew);
    if (u.length !== k * kNew) throw new RangeError(`Invalid u: expected k×k' = ${k * kNew} values, got ${u.length}`);
    return this.#call("rotate", { u: encodeTensor(u, [k, kNew]) }, kNew, () => undefined);
  }

  grads(): Promise<GradStats> {
    const m = this.probeSize, k = this.#k;
    return this.#call("grads", {}, k, (f) => {
      const mean = f.mean_sq_norm;
      if (typeof mean !== "number" || !Number.isFinite(mean)) {
        throw new ProtocolError(typeof mean === "number" ? "non_finite" : "malformed", `Cannot accept result of grads: mean_sq_norm must be a finite number, got ${mean}`);
      }
      return {
        losses: decodeTensor(f.losses, "losses", { shape: [m] }).data,
        sqNorms: decodeTensor(f.sq_norms, "sq_norms", { shape: [m] }).data,
        proj: decodeTensor(f.proj, "proj", { shape: [m, k] }).data,
        meanSqNorm: mean,
      };
    });
  }

  hutchinson(r: number, seed: number): Promise<HutchinsonResult> {
    const m = this.probeSize;
    checkInt("r", r);
    checkInt("seed", seed);
    return this.#call("hutchinson", { r, seed }, this.#k, (f) => ({
      quad: decodeTensor(f.quad, "quad", { shape: [m, r] }).data,
      sqNorms: decodeTensor(f.sq_norms, "sq_norms", { shape: [m, r] }).data,
    }));
  }

  /** SPEC §4 `hessian_gram`: rows of `K₂ = (HV)ᵀ(HV)`, checked to be `count × k` and finite. */
  hessianGram(start: number, count: number): Promise<Float64Array> {
    const k = this.#k;
    checkInt("start", start);
    checkInt("count", count, 1);
    if (start + count > k) throw new RangeError(`Invalid rows: ${start}+${count} exceeds the basis size ${k}`);
    return this.#call("hessian_gram", { start, count }, k, (f) => decodeTensor(f.gram, "gram", { shape: [count, k] }).data);
  }
}
