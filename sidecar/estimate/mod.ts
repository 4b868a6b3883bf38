/**
 * The sidecar's estimators: from a {@linkcode CurvatureOracle} to the report of
 * protocol/SPEC.md §5. {@linkcode estimateRound} is the single entry point; the rest is exported
 * for tests, benchmarks and tools.
 *
 * @module
 */
export type {
  CurvatureOracle,
  ExpandResult,
  GradStats,
  HutchinsonResult,
} from "./oracle.ts";
export { estimateRound } from "./round.ts";
export { EXACT_SPAN_MAX, TOL_CAP, TOL_FLOOR } from "./round.ts";
export type { BoundName, Report, RoundOptions, RoundParams, RoundState } from "./round.ts";
export { SyntheticOracle } from "./synthetic_oracle.ts";
export type { SyntheticOracleOptions } from "./synthetic_oracle.ts";
export { reducedSolve } from "./reduced_solve.ts";
export type { ApplicationCounter, ReducedSolution, ReducedSolveOptions } from "./reduced_solve.ts";
export { Curvature } from "./curvature.ts";
export type { CurvatureKind } from "./curvature.ts";
export { emptyCurvature, fetchCurvature } from "./oracle.ts";
export { blasInfo, loadBlas } from "./_blas.ts";
export type { BlasInfo } from "./_blas.ts";
export { lanczos } from "./lanczos.ts";
export type { LanczosOptions, LanczosResult } from "./lanczos.ts";
export { compactBasis, davidson, extrapolatedError } from "./davidson.ts";
export type { DavidsonOptions, DavidsonResult } from "./davidson.ts";
export { identityBound, rankOneBound, topEigvecBound } from "./bounds.ts";
export type { RankOneOptions } from "./bounds.ts";
export { batchCurve, batchNoiseWeight } from "./batch_curve.ts";
export type { BatchCurveOptions, BatchPoint } from "./batch_curve.ts";
export { bootstrapInterval } from "./bootstrap.ts";
export type { BootstrapInterval, BootstrapOptions } from "./bootstrap.ts";
export { lossFloors } from "./floors.ts";
export type { Floors } from "./floors.ts";
