/**
 * The curvature oracle as the estimators see it: a handful of asynchronous operations on the
 * client's basis `V` (d × k), mirroring protocol/SPEC.md §4. The estimators never see
 * d-dimensional data, only `k × r` projections and per-sample blocks or factors.
 *
 * Two routes: the Hessian route (`outputs` undefined) returns blocks `Vᵀ H_i V[:, cols]`
 * (`m × k × count`) and takes per-sample coefficients `C_i` (`m × k × r`); the Gauss–Newton
 * factor route (`outputs` = c) returns factors `A_i = Λ_i^{1/2} J_i V[:, cols]`
 * (`m × c × count`) and takes output coefficients `U_i` (`m × c × r`).
 *
 * Layouts (all row-major Float64Array):
 * - per-sample tensors `m × w × r`: element (i, a, b) at `(i * w + a) * r + b`
 * - matrices `rows × cols`: element (a, b) at `a * cols + b`
 *
 * Two implementations: `SyntheticOracle` (in-process, from explicit per-sample Hessians, for
 * tests) and the remote one in `sidecar/transport/` that forwards to a Python client.
 *
 * @module
 */
import { Curvature } from "./curvature.ts";

/** Result of {@linkcode CurvatureOracle.expand}. */
export interface ExpandResult {
  /** `Vᵀ W` with the basis before expansion, `k × r`. */
  proj: Float64Array;
  /** Norm of each candidate column after orthogonalisation against `V`, length `r`. */
  norms: Float64Array;
  /** Indices (into `0..r-1`) of the columns that were appended, in order. */
  keptIndex: number[];
  /**
   * When requested, the new columns' curvature: blocks `Vᵀ H_i V_new` with the expanded basis
   * (`m × k' × kept`) on the Hessian route, factors `A_i` of the new columns (`m × c × kept`) on
   * the factor route.
   */
  blocks?: Float64Array;
}

/** Result of {@linkcode CurvatureOracle.grads}. */
export interface GradStats {
  /** Per-sample losses, length `m`. */
  losses: Float64Array;
  /** Per-sample `‖g_i‖²`, length `m`. */
  sqNorms: Float64Array;
  /** Per-sample `Vᵀ g_i`, `m × k`. */
  proj: Float64Array;
  /** `‖mean_i g_i‖²`. */
  meanSqNorm: number;
}

/** Result of {@linkcode CurvatureOracle.hutchinson}. */
export interface HutchinsonResult {
  /** `z_jᵀ H_i z_j`, `m × r`. */
  quad: Float64Array;
  /** `‖H_i z_j‖²`, `m × r`. */
  sqNorms: Float64Array;
}

/** The operations of protocol/SPEC.md §4, as the estimators call them. */
export interface CurvatureOracle {
  /** Number of probe samples `m`. */
  readonly probeSize: number;
  /** Current basis size `k` (changes with random / expand / rotate / reset). */
  readonly basisSize: number;
  /** Rows `c` of each per-sample factor on the Gauss–Newton factor route; undefined on the Hessian route. */
  readonly outputs?: number;
  /** Milliseconds spent waiting for the client's results so far (0 in-process). */
  readonly waitMs?: number;
  /** Per-sample HVPs spent since this oracle was created (divide by `m` for HVP-equivalents). */
  readonly hvps: number;
  /** Forget the basis. */
  reset(): Promise<void>;
  /** Append `r` seeded random orthonormal directions; returns how many were kept. */
  random(r: number, seed: number): Promise<number>;
  /**
   * `W = Σ_i H_i (V C_i) + V C_V` (Hessian route) or `W = Σ_i J_iᵀ Λ_i^{1/2} U_i + V C_V`
   * (factor route), orthonormalised against `V` and appended.
   * @param coeffs per-sample `C_i`, `m × k × r`, or `U_i`, `m × c × r`
   * @param basisCoeffs `C_V`, `k × r`
   * @param r number of columns
   * @param withBlocks also return the per-sample blocks of the new columns
   */
  expand(
    coeffs: Float64Array,
    basisCoeffs: Float64Array,
    r: number,
    withBlocks: boolean,
  ): Promise<ExpandResult>;
  /** Per-sample `Vᵀ H_i V[:, start:start+count]` (`m × k × count`) or factors (`m × c × count`). */
  blocks(start: number, count: number): Promise<Float64Array>;
  /** `V ← V U` with `U` of `k × kNew` orthonormal columns. */
  rotate(u: Float64Array, kNew: number): Promise<void>;
  /** Per-sample losses and gradient statistics. */
  grads(): Promise<GradStats>;
  /** Rademacher probes: `zᵀ H_i z` and `‖H_i z‖²`. */
  hutchinson(r: number, seed: number): Promise<HutchinsonResult>;
  /**
   * Rows `start..start+count` of `K₂ = (HV)ᵀ(HV)`, `H = mean_i H_i` (`count × k`): row `j` is
   * `(H V[:, start+j])ᵀ (H V)` (SPEC §4 `hessian_gram`; momentum.md §6). Only clients that list
   * `hessian_gram` in their capabilities execute it.
   */
  hessianGram(start: number, count: number): Promise<Float64Array>;
}

/** Largest result a single `blocks` fetch asks for (well under SPEC §7's 64 MiB default). */
export const MAX_FETCH_BYTES = 16 * 2 ** 20;

/**
 * The curvature of basis columns `start..start+count` fetched from the oracle and appended to
 * `prev` (the curvature of columns `0..start`; empty when `start` is 0). Large fetches are split
 * into `blocks` ops of at most {@linkcode MAX_FETCH_BYTES} each.
 * @returns the curvature of the first `start + count` columns
 * @throws {RangeError} when `prev` does not describe columns `0..start`, or on the Hessian route
 *   when the client's basis holds columns beyond `start + count` (their blocks would not fit)
 */
export async function fetchCurvature(
  oracle: CurvatureOracle,
  prev: Curvature | undefined,
  start: number,
  count: number,
  maxBytes: number = MAX_FETCH_BYTES,
): Promise<Curvature> {
  const m = oracle.probeSize, c = oracle.outputs;
  const base = prev ?? Curvature.empty(c === undefined ? "dense" : "factor", m, c ?? 0);
  if (base.k !== start) {
    throw new RangeError(`Expected curvature of ${start} columns, got ${base.k}`);
  }
  if (count === 0) return base;
  const rows = c ?? oracle.basisSize;
  if (c === undefined && rows !== start + count) {
    throw new RangeError(`Expected a client basis of ${start + count} columns on the Hessian route, got ${rows}`);
  }
  const per = Math.max(1, Math.floor(maxBytes / (8 * m * rows)));
  if (count <= per) return base.extend(await oracle.blocks(start, count), count);
  // m × rows × count assembled from column chunks
  const add = new Float64Array(m * rows * count);
  for (let s = 0; s < count; s += per) {
    const n = Math.min(per, count - s);
    const part = await oracle.blocks(start + s, n);
    for (let i = 0; i < m; i++) {
      for (let a = 0; a < rows; a++) {
        add.set(part.subarray((i * rows + a) * n, (i * rows + a + 1) * n), (i * rows + a) * count + s);
      }
    }
  }
  return base.extend(add, count);
}

/**
 * `K₂ = Vᵀ H² V` for the basis columns `start..k` appended to `prev` (`K₂` of columns
 * `0..start`, `start × start`; empty when `start` is 0), by `hessian_gram` rows (each fetch at
 * most {@linkcode MAX_FETCH_BYTES}); the block of old rows against new columns is the transpose
 * of the new rows. The result is symmetrised.
 * @returns `k × k`, `k` = the oracle's basis size
 * @throws {RangeError} when `prev` is not `start × start` or `start` exceeds the basis
 */
export async function fetchK2(
  oracle: CurvatureOracle,
  prev: Float64Array | undefined,
  start: number,
  maxBytes: number = MAX_FETCH_BYTES,
): Promise<Float64Array> {
  const k = oracle.basisSize;
  if (!Number.isInteger(start) || start < 0 || start > k) throw new RangeError(`Expected start in 0..${k}, got ${start}`);
  if ((prev?.length ?? 0) !== start * start) {
    throw new RangeError(`Expected K2 of ${start}×${start}, got ${prev?.length ?? 0} entries`);
  }
  const out = new Float64Array(k * k);
  for (let a = 0; a < start; a++) out.set(prev!.subarray(a * start, (a + 1) * start), a * k);
  const per = Math.max(1, Math.floor(maxBytes / (8 * Math.max(k, 1))));
  for (let s = start; s < k; s += per) {
    const n = Math.min(per, k - s);
    const rows = await oracle.hessianGram(s, n);
    for (let j = 0; j < n; j++) {
      for (let b = 0; b < k; b++) {
        const v = rows[j * k + b];
        // a new row against an old column is also that old row's entry; both new: average
        if (b < start) out[(s + j) * k + b] = out[b * k + s + j] = v;
        else if (b < s + j) out[(s + j) * k + b] = out[b * k + s + j] = 0.5 * (v + out[b * k + s + j]);
        else out[(s + j) * k + b] = out[b * k + s + j] = v;
      }
    }
  }
  return out;
}

/** An empty curvature of the oracle's route. */
export function emptyCurvature(oracle: CurvatureOracle): Curvature {
  const c = oracle.outputs;
  return Curvature.empty(c === undefined ? "dense" : "factor", oracle.probeSize, c ?? 0);
}
