/**
 * Dense references for the momentum tests, written from docs/momentum.md §1–§2 and §5 only and
 * independent of the estimators: the `(2d)² × (2d)²` second-moment map
 * `L = M̄ ⊗ M̄ + (F ⊗ F)(D − H ⊗ H)(E ⊗ E)ᵀ` of each optimizer in its own state `(x, buf)` (Adam
 * in its original coordinates `(x, m)`, with `P⁻¹`, no change of variables), its spectral radius
 * by a dense non-symmetric eigensolve, and `η*` by bisection on `ρ(L(η)) = 1`. Test-only: this is
 * the one place besides `_linalg.ts` that calls ml-matrix, for the non-symmetric eigenvalues the
 * estimators never need. Only for small `d`.
 *
 * @module
 */
import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import { mean } from "./_testing.ts";

/** `C` (`2d × 2d`) and `F` (`2d × d`) of `M_t = C + F Ĥ_t Eᵀ`, row-major. */
export interface LinearDynamics {
  C: Float64Array;
  F: Float64Array;
}

/** An optimizer's `(C, F)` at learning rate `η` in dimension `d`. */
export type DynamicsAt = (eta: number, d: number) => LinearDynamics;

/** `torch.optim.SGD(lr=η, momentum=β, dampening=τ)`: `buf ← β buf + (1−τ) g; θ ← θ − η buf`. */
export function heavyBallDynamics(beta: number, dampening = 0): DynamicsAt {
  return (eta, d) =>
    blocks(d, {
      c11: diag(d, 1),
      c12: diag(d, -eta * beta),
      c22: diag(d, beta),
      f1: diag(d, -eta * (1 - dampening)),
      f2: diag(d, 1 - dampening),
    });
}

/** `SGD(momentum=β, nesterov=True)`: `buf ← β buf + g; θ ← θ − η (g + β buf)`. */
export function nesterovDynamics(beta: number): DynamicsAt {
  return (eta, d) =>
    blocks(d, {
      c11: diag(d, 1),
      c12: diag(d, -eta * beta * beta),
      c22: diag(d, beta),
      f1: diag(d, -eta * (1 + beta)),
      f2: diag(d, 1),
    });
}

/**
 * Adam/AdamW with frozen `P = diag(p)`, no bias correction, PyTorch's order (decay, then
 * `m ← β₁ m + (1−β₁) g`, then `θ ← θ − η P⁻¹ m`): state `(x, m)`.
 */
export function adamDynamics(
  beta1: number,
  precond: Float64Array,
  decay = 0,
): DynamicsAt {
  return (eta, d) => {
    const pinv = new Float64Array(d * d);
    for (let a = 0; a < d; a++) pinv[a * d + a] = 1 / precond[a];
    return blocks(d, {
      c11: diag(d, 1 - eta * decay),
      c12: pinv.map((x) => -eta * beta1 * x),
      c22: diag(d, beta1),
      f1: pinv.map((x) => -eta * (1 - beta1) * x),
      f2: diag(d, 1 - beta1),
    });
  };
}

/** Spectral radius of the dense second-moment map `L(η)` (momentum.md §2). */
export function momentRadius(
  hs: Float64Array[],
  d: number,
  p: number,
  dyn: LinearDynamics,
): number {
  const n = 2 * d, H = mean(hs);
  const { C, F } = dyn;
  // M̄ = C + F H Eᵀ: F H fills the first d columns
  const Mbar = Float64Array.from(C);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let l = 0; l < d; l++) s += F[i * d + l] * H[l * d + j];
      Mbar[i * n + j] += s;
    }
  }
  // noise N = p (mean_i H_i ⊗ H_i − H ⊗ H), d² × d²
  const d2 = d * d;
  const N = kronRect(H, d, d, H, d, d).map((x) => -p * x);
  for (const h of hs) {
    const kk = kronRect(h, d, d, h, d, d);
    for (let t = 0; t < N.length; t++) N[t] += (p / hs.length) * kk[t];
  }
  const L = kronRect(Mbar, n, n, Mbar, n, n);
  const FF = kronRect(F, n, d, F, n, d); // n² × d²
  const n2 = n * n;
  // (F ⊗ F) N (E ⊗ E)ᵀ: (E ⊗ E)ᵀ picks the x-block entries (a, b) with a, b < d
  const FFN = new Float64Array(n2 * d2);
  for (let i = 0; i < n2; i++) {
    for (let l = 0; l < d2; l++) {
      const x = FF[i * d2 + l];
      if (x === 0) continue;
      for (let j = 0; j < d2; j++) FFN[i * d2 + j] += x * N[l * d2 + j];
    }
  }
  for (let i = 0; i < n2; i++) {
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) {
        L[i * n2 + (a * n + b)] += FFN[i * d2 + (a * d + b)];
      }
    }
  }
  const rows = Array.from(
    { length: n2 },
    (_, i) => Array.from(L.subarray(i * n2, (i + 1) * n2)),
  );
  const e = new EigenvalueDecomposition(new Matrix(rows));
  let rho = 0;
  e.realEigenvalues.forEach((re, j) => {
    rho = Math.max(rho, Math.hypot(re, e.imaginaryEigenvalues[j]));
  });
  return rho;
}

/**
 * `η*` where `ρ(L(η))` crosses 1: doubling from `eta0` to the first unstable `η`, then bisection
 * to relative width `rtol` (the stable set is an interval, momentum.md §3).
 */
export function denseThreshold(
  hs: Float64Array[],
  d: number,
  p: number,
  dynamics: DynamicsAt,
  eta0: number,
  rtol = 1e-12,
): number {
  const unstable = (eta: number) =>
    momentRadius(hs, d, p, dynamics(eta, d)) > 1;
  if (unstable(eta0)) throw new Error(`Expected a stable start at η = ${eta0}`);
  let lo = eta0, hi = 2 * eta0;
  while (!unstable(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > 1e12 * eta0) throw new Error("No unstable learning rate found");
  }
  while (hi - lo > rtol * hi) {
    const mid = 0.5 * (lo + hi);
    if (unstable(mid)) hi = mid;
    else lo = mid;
  }
  return 0.5 * (lo + hi);
}

/** `A ⊗ B` for rectangular `A` (`ra × ca`) and `B` (`rb × cb`). */
export function kronRect(
  a: Float64Array,
  ra: number,
  ca: number,
  b: Float64Array,
  rb: number,
  cb: number,
): Float64Array {
  const out = new Float64Array(ra * rb * ca * cb), cols = ca * cb;
  for (let i = 0; i < ra; i++) {
    for (let j = 0; j < ca; j++) {
      const x = a[i * ca + j];
      if (x === 0) continue;
      for (let k = 0; k < rb; k++) {
        for (let l = 0; l < cb; l++) {
          out[(i * rb + k) * cols + (j * cb + l)] = x * b[k * cb + l];
        }
      }
    }
  }
  return out;
}

function diag(d: number, v: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let a = 0; a < d; a++) out[a * d + a] = v;
  return out;
}

/** Assemble `C = [[c11, c12], [0, c22]]` and `F = [f1; f2]` from `d × d` blocks. */
function blocks(
  d: number,
  b: {
    c11: Float64Array;
    c12: Float64Array;
    c22: Float64Array;
    f1: Float64Array;
    f2: Float64Array;
  },
): LinearDynamics {
  const n = 2 * d, C = new Float64Array(n * n), F = new Float64Array(n * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      C[i * n + j] = b.c11[i * d + j];
      C[i * n + d + j] = b.c12[i * d + j];
      C[(d + i) * n + d + j] = b.c22[i * d + j];
      F[i * d + j] = b.f1[i * d + j];
      F[(d + i) * d + j] = b.f2[i * d + j];
    }
  }
  return { C, F };
}
