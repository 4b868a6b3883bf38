"""One round of the Gauss–Newton factor route: ``A_i = L_i J_i V`` and ``Σ_i J_iᵀ L_iᵀ U_i``.

``H_i = J_iᵀ Λ_i J_i`` with ``L_iᵀ L_i = Λ_i`` (see :mod:`edgewise._output_curvature`), so the
per-sample block in the basis is ``K_i = A_iᵀ A_i`` with the factor ``A_i = L_i J_i V``
(``s × k``, ``s = c`` rows, or the number of sampled labels for ``ggn_mc``). Everything comes
from batched Jacobian products of the whole probe batch (:mod:`edgewise._jacobian_products`):
a factor column is one batched JVP, an expansion column one batched VJP. Factors of the basis
columns are cached for the round by the oracle (:mod:`edgewise._column_cache`), so blocks asked
again, or for columns an expansion already produced, cost nothing.

Example:
    >>> import torch
    >>> from edgewise._hvp import ParamLayout
    >>> model = torch.nn.Linear(3, 2).double()
    >>> layout = ParamLayout.from_module(model)
    >>> theta = layout.flatten(dict(model.named_parameters())).detach()
    >>> x, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    >>> rnd = FactorRound(model, torch.nn.functional.mse_loss, layout, {}, theta, x, y)
    >>> a = rnd.factors(torch.eye(8, dtype=torch.float64)[:, :2])
    >>> a.shape   # m × c × columns
    torch.Size([4, 2, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ._hvp import ParamLayout
from ._jacobian_products import ProbeJacobian
from ._output_curvature import OutputCurvature
from ._traced_jvp import JvpTracing


class FactorRound:
    """Gauss–Newton factor products on a frozen snapshot and a fixed probe batch.

    Args:
        model, loss_fn, layout, constants, theta: The model as a function of flat parameters.
        x, y: Probe samples (``m`` along dim 0).
        mc_rows: ``None`` for the exact factor (``c`` rows); else the number ``s`` of sampled
            rows per sample (``curvature="ggn_mc"``), drawn from ``generator``.
        generator: CPU generator of the Monte Carlo draw (ignored when ``mc_rows`` is None).
        memory_budget: Bytes for one chunk of Jacobian-product columns.
        output_curvature: Reuse an :class:`OutputCurvature` (its closed form was already checked).
        tracing: When to trace the round's JVP (see :class:`ProbeJacobian`).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 layout: ParamLayout, constants: Mapping[str, Tensor], theta: Tensor, x: Tensor, y: Tensor,
                 *, mc_rows: int | None = None, generator: torch.Generator | None = None,
                 memory_budget: int | None = None, output_curvature: OutputCurvature | None = None,
                 tracing: JvpTracing | None = None) -> None:
        self.jacobian = ProbeJacobian(model, layout, constants, theta, x, memory_budget, tracing)
        out = self.jacobian.outputs
        self.output_curvature = output_curvature or OutputCurvature(loss_fn, out[:1], y[:1])
        if mc_rows is None:
            self.sqrt_lambda = self.output_curvature.factors(out, y)
        else:
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            self.sqrt_lambda = self.output_curvature.sampled_factors(out, y, mc_rows, gen)

    @property
    def rows(self) -> int:
        """Rows ``s`` of each factor ``A_i``."""
        return self.sqrt_lambda.shape[1]

    def factors(self, v: Tensor) -> Tensor:
        """``A_i = L_i J_i v`` for the columns of ``v`` (``d × r``): ``(m, s, r)``; ``r`` batched JVPs."""
        return torch.einsum("isc,icr->isr", self.sqrt_lambda, self.jacobian.jvp(v))

    def expansion(self, out_coeffs: Tensor) -> Tensor:
        """``Σ_i J_iᵀ L_iᵀ U_i`` for ``U`` = ``out_coeffs`` (``m × s × r``): ``(d, r)``; ``r`` batched VJPs."""
        return self.jacobian.vjp(torch.einsum("isc,isr->icr", self.sqrt_lambda, out_coeffs))

    def per_sample_products(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """For each column ``z_j``: ``z_jᵀ H_i z_j`` and ``‖H_i z_j‖²`` per sample, each ``(m, r)``."""
        a = self.factors(z)
        quad = (a * a).sum(1)
        sq = torch.empty_like(quad)
        for j in range(z.shape[1]):
            u = torch.einsum("isc,is->ic", self.sqrt_lambda, a[:, :, j])
            hz = self.jacobian.per_sample_vjp(u)
            sq[:, j] = (hz * hz).sum(1)
        return quad, sq
