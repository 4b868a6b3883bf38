/**
 * The curvature oracle as the estimators see it: a handful of asynchronous operations on the
 * client's basis `V` (d × k), mirroring protocol/SPEC.md §4. The estimators never see
 * d-dimensional data, only `k × r` projections and per-sample `k × r` blocks.
 *
 * Layouts (all row-major Float64Array):
 * - per-sample blocks `m × k × c`: element (i, a, b) at `(i * k + a) * c + b`
 * - matrices `rows × cols`: element (a, b) at `a * cols + b`
 *
 * Two implementations: `SyntheticOracle` (in-process, from explicit per-sample Hessians, for
 * tests) and the remote one in `sidecar/transport/` that forwards to a Python client.
 *
 * @module
 */

/** Result of {@linkcode CurvatureOracle.expand}. */
export interface ExpandResult {
  /** `Vᵀ W` with the basis before expansion, `k × r`. */
  proj: Float64Array;
  /** Norm of each candidate column after orthogonalisation against `V`, length `r`. */
  norms: Float64Array;
  /** Indices (into `0..r-1`) of the columns that were appended, in order. */
  keptIndex: number[];
  /** When requested: `Vᵀ H_i V_new` with the expanded basis, `m × k' × kept`. */
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
  /** Per-sample HVPs spent since this oracle was created (divide by `m` for HVP-equivalents). */
  readonly hvps: number;
  /** Forget the basis. */
  reset(): Promise<void>;
  /** Append `r` seeded random orthonormal directions; returns how many were kept. */
  random(r: number, seed: number): Promise<number>;
  /**
   * `W = Σ_i H_i (V C_i) + V C_V`, orthonormalised against `V` and appended.
   * @param coeffs per-sample `C_i`, `m × k × r`
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
  /** Per-sample `Vᵀ H_i V[:, start:start+count]`, `m × k × count`. */
  blocks(start: number, count: number): Promise<Float64Array>;
  /** `V ← V U` with `U` of `k × kNew` orthonormal columns. */
  rotate(u: Float64Array, kNew: number): Promise<void>;
  /** Per-sample losses and gradient statistics. */
  grads(): Promise<GradStats>;
  /** Rademacher probes: `zᵀ H_i z` and `‖H_i z‖²`. */
  hutchinson(r: number, seed: number): Promise<HutchinsonResult>;
}
