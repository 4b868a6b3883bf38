"""Batched Jacobian products of the model's outputs over the whole probe batch (``torch.func``).

With ``f(θ) = model(x)`` on all ``m`` probe samples (outputs flattened to ``(m, c)``) and the
model run sample-wise independently (eval mode, so BatchNorm uses frozen statistics):

- :meth:`ProbeJacobian.jvp` gives ``J_i v_j`` for every sample and column: one forward-mode
  product of the whole batch per column (``torch.func.jvp``, ``vmap``-ed over a chunk of
  columns), not ``m`` per-sample products; once the round's columns have cost what a trace is
  expected to, from a traced tangent map instead (:mod:`edgewise._traced_jvp`).
- :meth:`ProbeJacobian.vjp` gives ``Σ_i J_iᵀ u_ij`` per column: one reverse-mode product of the
  whole batch per column (the pull-back is built once and ``vmap``-ed over columns).
- :meth:`ProbeJacobian.per_sample_vjp` gives ``J_iᵀ u_i`` separately per sample (needed only by
  ``hutchinson``'s ``‖H_i z‖²``), ``vmap``-ed over samples.

Columns are processed in chunks whose size follows a memory budget: per column the chunk keeps a
tangent of ``d`` numbers and tangents of the batch's activations (measured once as the bytes the
forward pass saves for backward).

Example:
    >>> import torch
    >>> from edgewise._hvp import ParamLayout
    >>> model = torch.nn.Linear(3, 2).double()
    >>> layout = ParamLayout.from_module(model)
    >>> theta = layout.flatten(dict(model.named_parameters())).detach()
    >>> jac = ProbeJacobian(model, layout, {}, theta, torch.randn(5, 3, dtype=torch.float64))
    >>> jac.jvp(torch.eye(8, dtype=torch.float64)[:, :3]).shape
    torch.Size([5, 2, 3])
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from ._batch import ModelCall, as_model_call, batch_size, unsqueeze
from ._hvp import ParamLayout
from ._traced_jvp import JvpTracing


def _saved_bytes(fn, *args) -> int:
    """Bytes the autograd graph of ``fn(*args)`` saves for backward (an activation-size proxy)."""
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return total


class ProbeJacobian:
    """Jacobian products of ``model(x)`` at frozen parameters ``theta`` on a fixed batch ``x``.

    Args:
        model: The module, used only through ``functional_call``.
        layout: Layout of the flat parameter vector.
        constants: Buffers and frozen parameters.
        theta: Flat parameters (``d``).
        x: The probe inputs (``m`` along dim 0).
        memory_budget: Bytes for one chunk of columns (``None``: one column per chunk).
        tracing: When to trace the JVP, shared by the rounds of one oracle (``None``: never).
    """

    def __init__(self, model: torch.nn.Module | ModelCall, layout: ParamLayout, constants: Mapping[str, Tensor],
                 theta: Tensor, x: Any, memory_budget: int | None = None, tracing: JvpTracing | None = None) -> None:
        self._layout = layout
        self._params = layout.unflatten(theta)
        consts = dict(constants)
        m = batch_size(x, "x")
        model = as_model_call(model)

        def forward(params: dict[str, Tensor]) -> Tensor:
            return model({**params, **consts}, x).reshape(m, -1)

        self._forward = forward
        self.outputs: Tensor = forward(self._params).detach()
        self._per_sample = None
        self._model, self._consts, self._x = model, consts, x
        self._tracing = tracing
        self._traced = None
        self._plain_s = 0.0
        self._first_column_s: float | None = None
        d = layout.size
        per_column = 2 * d * theta.element_size()
        if memory_budget is not None:
            per_column += _saved_bytes(forward, {n: p.detach().requires_grad_() for n, p in self._params.items()})
        self.columns_per_chunk = 1 if memory_budget is None else max(1, int(memory_budget) // max(per_column, 1))

    def _chunks(self, r: int) -> list[slice]:
        step = self.columns_per_chunk
        return [slice(s, min(s + step, r)) for s in range(0, r, step)]

    def jvp(self, v: Tensor) -> Tensor:
        """``J_i v_j`` for all samples ``i`` and columns ``j`` of ``v`` (``d × r``): ``(m, c, r)``."""
        m, c = self.outputs.shape
        out = v.new_empty((m, c, v.shape[1]))
        for sl in self._chunks(v.shape[1]):
            self._trace_if_worth_it()
            tangent_map = self._traced or self._plain_tangent
            t0 = time.perf_counter()
            cols = v[:, sl]
            if cols.shape[1] == 1:
                out[:, :, sl] = tangent_map(self._layout.unflatten(cols[:, 0])).unsqueeze(2)
            else:
                out[:, :, sl] = vmap(tangent_map)(self._layout.unflatten(cols.T)).permute(1, 2, 0)
            if self._traced is None:
                self._count_plain(time.perf_counter() - t0, cols.shape[1])
        return out

    def _plain_tangent(self, tangent: dict[str, Tensor]) -> Tensor:
        return jvp(self._forward, (self._params,), (tangent,))[1]

    def _count_plain(self, seconds: float, columns: int) -> None:
        self._plain_s += seconds
        if self._first_column_s is None:
            self._first_column_s = seconds / columns

    def _trace_if_worth_it(self) -> None:
        if self._traced is None and self._tracing is not None and self._first_column_s is not None \
                and self._tracing.worth_tracing(self._plain_s, self._first_column_s):
            self._traced = self._tracing.trace(self._forward, self._params)

    def vjp(self, u: Tensor) -> Tensor:
        """``Σ_i J_iᵀ u_i[:, j]`` for each column ``j`` of ``u`` (``m × c × r``): ``(d, r)``."""
        d, r = self._layout.size, u.shape[2]
        out = u.new_empty((d, r))
        if r == 0:
            return out
        _, pull = vjp(self._forward, self._params)
        for sl in self._chunks(r):
            cot = u[:, :, sl]
            if cot.shape[2] == 1:
                out[:, sl] = self._layout.flatten(pull(cot[:, :, 0])[0]).unsqueeze(1)
            else:
                grads = vmap(lambda t: pull(t)[0])(cot.permute(2, 0, 1))
                out[:, sl] = self._layout.flatten(grads).T
        return out

    def per_sample_vjp(self, u: Tensor) -> Tensor:
        """``J_iᵀ u_i`` for every sample separately (``u``: ``m × c``): ``(m, d)``."""
        if self._per_sample is None:
            model, consts = self._model, self._consts

            def one(params: dict[str, Tensor], xi: Any, ui: Tensor) -> Tensor:
                _, pull = vjp(lambda p: model({**p, **consts}, unsqueeze(xi)).reshape(-1), params)
                return self._layout.flatten(pull(ui)[0])

            self._per_sample = vmap(one, in_dims=(None, 0, 0))
        return self._per_sample(self._params, self._x, u)
