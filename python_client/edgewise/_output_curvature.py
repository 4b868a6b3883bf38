"""Square-root factors of the loss Hessian in the model's outputs, for the Gauss–Newton route.

For a per-sample loss ``l_i(o) = loss_fn(o[None], y_i[None])`` of the ``c`` flattened outputs
``o``, the Gauss–Newton matrix is ``H_i = J_iᵀ Λ_i J_i`` with ``Λ_i = ∇²_o l_i``. The oracle
sends factors ``A_i = L_i J_i V`` with any ``L_i`` (``s × c``) such that ``L_iᵀ L_i = Λ_i``,
so that ``A_iᵀ A_i = Vᵀ H_i V``; expansions use ``J_iᵀ L_iᵀ U_i``.

- MSE (``F.mse_loss`` / ``nn.MSELoss``): ``Λ_i = a I``, ``L_i = √a I``; ``a`` is 2 for
  ``reduction="sum"`` and ``2/c`` for the mean over one sample's ``c`` outputs.
- Softmax cross-entropy on logits (``F.cross_entropy`` / ``nn.CrossEntropyLoss``, 2-D
  outputs): ``Λ_i = diag(π) − π πᵀ`` and ``L_i = diag(√π) − √π πᵀ`` (so ``L_iᵀ L_i = Λ_i``).
- Anything else: ``torch.func.hessian`` of the loss in the outputs, symmetric eigen-
  decomposition, ``L_i = diag(√max(μ, 0)) Qᵀ`` (negative output curvature, i.e. a loss that is
  not convex in the outputs, is clipped: the Gauss–Newton matrix is then its PSD part).

A closed form is used only after it matched the generic Hessian on the first probe sample (to
1e-8 relative, in float64 whatever the model's dtype); otherwise the generic path is taken, so a
user loss that merely looks like MSE (weights, label smoothing, other reductions) is still
handled exactly. The generic path too works in float64 (on the CPU) and casts its factors back.

Monte Carlo (``curvature="ggn_mc"``, ``s`` rows): cross-entropy uses ``s`` labels drawn from
the model's own ``π`` per sample, rows ``(π − e_ŷ)ᵀ/√s`` (the Fisher form, unbiased:
``E[L_iᵀL_i] = Λ_i``); other losses use ``s`` Gaussian rows ``zᵀ L_i /√s``.

Example:
    >>> import torch
    >>> out, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 2, 1])
    >>> sq = OutputCurvature(torch.nn.functional.cross_entropy, out[:1], y[:1])
    >>> sq.kind
    'cross_entropy'
    >>> l = sq.factors(out, y)
    >>> lam = torch.func.vmap(torch.func.hessian(lambda o, t: torch.nn.functional.cross_entropy(o[None], t[None])))(out, y)
    >>> bool(torch.allclose(l.transpose(1, 2) @ l, lam))
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import hessian, vmap

LossFn = Callable[[Tensor, Tensor], Tensor]

#: Relative agreement a closed form must reach against the generic Hessian on sample 0.
_CLOSED_FORM_RTOL = 1e-8


def _per_sample_loss(loss_fn: LossFn, shape: tuple[int, ...]) -> Callable[[Tensor, Tensor], Tensor]:
    """``l(o_flat, y_i)``: the user's loss on a batch of one, outputs flattened to ``c``."""

    def loss(o: Tensor, y: Tensor) -> Tensor:
        return loss_fn(o.reshape((1, *shape)), y.unsqueeze(0))

    return loss


def _on_cpu_float64(t: Tensor) -> Tensor:
    """``t`` detached on the CPU, in float64 when floating point (labels keep their dtype); the
    CPU because some devices (MPS) have no float64."""
    t = t.detach().to("cpu")
    return t.double() if t.is_floating_point() else t


def _guess_kind(loss_fn: LossFn, out_shape: tuple[int, ...]) -> str:
    mse = loss_fn is torch.nn.functional.mse_loss or type(loss_fn) is torch.nn.MSELoss
    ce = loss_fn is torch.nn.functional.cross_entropy or (
        type(loss_fn) is torch.nn.CrossEntropyLoss and loss_fn.weight is None
    )
    if mse:
        return "mse"
    if ce and len(out_shape) == 1:
        return "cross_entropy"
    return "generic"


class OutputCurvature:
    """Per-sample square-root factors ``L_i`` of the output-space loss Hessian ``Λ_i``.

    Args:
        loss_fn: The user's mean-reduced ``loss_fn(output, target)``.
        out0: The model's output for one probe sample, shape ``(1, ...)``.
        y0: That sample's target, shape ``(1, ...)``.

    Attributes:
        kind: ``"mse"``, ``"cross_entropy"`` or ``"generic"`` (after the check on sample 0).
        outputs: ``c``, the number of flattened outputs per sample.
    """

    def __init__(self, loss_fn: LossFn, out0: Tensor, y0: Tensor) -> None:
        self._shape = tuple(out0.shape[1:])
        self.outputs = int(out0[0].numel())
        self._loss = _per_sample_loss(loss_fn, self._shape)
        self._scale = 0.0
        self.kind = _guess_kind(loss_fn, self._shape)
        if self.kind != "generic" and not self._closed_form_matches(out0, y0):
            self.kind = "generic"

    def _closed_form_matches(self, out0: Tensor, y0: Tensor) -> bool:
        # float64: a float32 model's rounding alone (~1e-7) would fail the 1e-8 check and send
        # every float32 run down the generic path
        o, y0 = _on_cpu_float64(out0.reshape(1, -1)), _on_cpu_float64(y0)
        lam = hessian(self._loss)(o[0], y0[0])
        if self.kind == "mse":
            self._scale = float(lam[0, 0])
        sq = self.factors(o, y0)[0]
        ref = sq.T @ sq
        return bool(torch.isfinite(lam).all()) and float((ref - lam).abs().max()) <= _CLOSED_FORM_RTOL * max(float(lam.abs().max()), 1e-300)

    def factors(self, out: Tensor, y: Tensor) -> Tensor:
        """``L_i`` for every sample: ``(m, c, c)`` with ``L_iᵀ L_i = Λ_i``.

        Args:
            out: Model outputs, ``(m, ...)``; y: targets, ``(m, ...)``.
        """
        o = out.reshape(out.shape[0], -1).detach()
        m, c = o.shape
        if self.kind == "mse":
            eye = torch.eye(c, dtype=o.dtype, device=o.device)
            return (self._scale ** 0.5 * eye).expand(m, c, c).clone()
        if self.kind == "cross_entropy":
            pi = torch.softmax(o, dim=1)
            root = pi.sqrt()
            return torch.diag_embed(root) - root.unsqueeze(2) * pi.unsqueeze(1)
        lam = self._output_hessians(o, y)
        lam = 0.5 * (lam + lam.transpose(1, 2))
        mu, q = torch.linalg.eigh(lam)
        return (mu.clamp_min(0).sqrt().unsqueeze(2) * q.transpose(1, 2)).to(o.device, o.dtype)

    def _output_hessians(self, o: Tensor, y: Tensor) -> Tensor:
        """``Λ_i`` for every sample, in float64 on the CPU (a float32 eigh of a nearly singular
        ``Λ_i``, logits far apart, can return NaN), or in the outputs' own dtype and device for a
        loss that works only there."""
        try:
            return vmap(hessian(self._loss))(_on_cpu_float64(o), _on_cpu_float64(y))
        except RuntimeError:
            return vmap(hessian(self._loss))(o, y)

    def sampled_factors(self, out: Tensor, y: Tensor, rows: int, generator: torch.Generator) -> Tensor:
        """Monte Carlo ``L_i`` with ``rows`` rows (``(m, rows, c)``), ``E[L_iᵀ L_i] = Λ_i``.

        Random numbers are drawn on the CPU from ``generator`` (device-independent).
        """
        o = out.reshape(out.shape[0], -1).detach()
        m, c = o.shape
        if self.kind == "cross_entropy":
            pi = torch.softmax(o, dim=1)
            labels = torch.multinomial(pi.to("cpu", torch.float64), rows, replacement=True, generator=generator)
            onehot = torch.nn.functional.one_hot(labels, c).to(device=o.device, dtype=o.dtype)
            return (pi.unsqueeze(1) - onehot) / rows ** 0.5
        z = torch.randn(m, rows, c, generator=generator, dtype=torch.float64).to(device=o.device, dtype=o.dtype)
        return z @ self.factors(out, y) / rows ** 0.5
