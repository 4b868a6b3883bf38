"""Pure ``torch.func`` factories for per-sample curvature products on flat parameters.

Everything here is stateless: a factory closes over the model (used only as a function through
:func:`torch.func.functional_call`), the loss and the frozen buffers, and returns functions of a
flat parameter vector ``theta`` (length ``d``) and probe samples. Per-sample losses are the
user's mean-reduced ``loss_fn(output, target)`` on a batch of one (the sample unsqueezed).

The returned functions are ``vmap``-ed over the probe samples and, for blocks of vectors, over
columns too; they process samples in chunks so that the live intermediate tensors stay within a
memory budget (see :func:`chunk_for_budget`). No hooks, no ``.grad``, no ``d × d`` tensors.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(3, 1).double()
    >>> shapes = ParamLayout.from_module(model)
    >>> theta = shapes.flatten(dict(model.named_parameters())).detach()
    >>> hvp = per_sample_hvp(model, torch.nn.functional.mse_loss, shapes)
    >>> x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    >>> hvp(theta, x, y, torch.ones(4, dtype=torch.float64)).shape
    torch.Size([5, 4])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor
from torch.func import grad, grad_and_value, jvp, vmap

from ._batch import ModelCall, as_model_call, batch_size, split_floats, take, unsqueeze

LossFn = Callable[[Tensor, Tensor], Tensor]

#: d-sized tensors assumed live per (sample, column) in one forward-over-reverse product:
#: tangent, gradient, its tangent, the result and slack for the model's parameter-sized temporaries.
_TENSORS_PER_COLUMN = 8


@dataclass(frozen=True)
class ParamLayout:
    """How a flat parameter vector of length ``d`` maps onto a module's named parameters.

    Preconditioned coordinates (Adam, shared/docs/momentum.md §5): with a ``scale`` ``s`` (``d``,
    positive) the flat vector holds ``φ = θ / s``. :meth:`unflatten` maps flat vectors, points
    and tangents alike, to parameters ``s ⊙ φ``; :meth:`flatten` maps a derivative with respect
    to the parameters (a gradient, a VJP, an HVP) to the derivative with respect to ``φ``,
    ``s ⊙ ∂``. Every product made through the layout is therefore the curvature in ``φ``:
    ``S H_i S v``, ``J_i S v``, ``S J_iᵀ u``, ``S g_i`` with ``S = diag(s)``. This is the one
    place the oracle's products see Adam's ``P^{-1/2}``; without a scale nothing changes.

    Attributes:
        names: Parameter names, in ``named_parameters()`` order (tied parameters once).
        shapes: Shape of each parameter.
        numels: Number of elements of each parameter; ``sum(numels) == d``.
        scale: ``s`` (``d``, the compute dtype and device), or None for plain coordinates.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    numels: tuple[int, ...]
    scale: Tensor | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_module(cls, module: torch.nn.Module, *, trainable_only: bool = True) -> ParamLayout:
        """Layout of ``module``'s parameters.

        By default only parameters with ``requires_grad`` count: frozen ones do not move under
        SGD, so they are constants of the curvature (pass them with the buffers).
        """
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad or not trainable_only]
        return cls(
            names=tuple(n for n, _ in named),
            shapes=tuple(p.shape for _, p in named),
            numels=tuple(p.numel() for _, p in named),
        )

    @property
    def size(self) -> int:
        """Total number of parameters ``d``."""
        return sum(self.numels)

    def with_scale(self, scale: Tensor | None) -> ParamLayout:
        """The same layout in the coordinates ``φ = θ / scale`` (None: plain coordinates)."""
        if scale is not None and tuple(scale.shape) != (self.size,):
            raise ValueError(f"expected a scale of shape ({self.size},), got {tuple(scale.shape)}")
        return replace(self, scale=scale)

    def _concat(self, params: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([params[n].flatten(-len(s)) if len(s) else params[n].unsqueeze(-1)
                          for n, s in zip(self.names, self.shapes)], dim=-1)

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        """Concatenate ``params`` (by name, in layout order) into one vector of length ``d``.

        Leading dimensions in front of each parameter's shape are kept (``(..., d)``). With a
        ``scale`` the values are derivatives and come back as derivatives in ``φ`` (``s ⊙ ∂``);
        for a point use :meth:`coordinates`.
        """
        flat = self._concat(params)
        return flat if self.scale is None else flat * self.scale

    def coordinates(self, params: Mapping[str, Tensor]) -> Tensor:
        """The flat coordinates of a point: ``θ`` concatenated, or ``θ / s`` with a ``scale``."""
        flat = self._concat(params)
        return flat if self.scale is None else flat / self.scale

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into named views; works under ``vmap``/``jvp``/``grad``.

        With a ``scale``, of ``s ⊙ theta`` (points and tangents in ``φ`` to parameters)."""
        if theta.shape[-1] != self.size:
            raise ValueError(f"expected a flat vector of length d = {self.size}, got {tuple(theta.shape)}")
        if self.scale is not None:
            theta = theta * self.scale
        # Slicing, not torch.split: split's backward breaks under forward-over-reverse here.
        out, start = {}, 0
        for n, k, s in zip(self.names, self.numels, self.shapes):
            out[n] = theta[..., start : start + k].reshape(theta.shape[:-1] + s)
            start += k
        return out


def chunk_for_budget(budget_bytes: int, d: int, columns: int, itemsize: int) -> int:
    """Samples per chunk so that ``chunk × columns`` products fit in ``budget_bytes``.

    A heuristic: each (sample, column) product keeps about ``8`` parameter-sized tensors alive
    (activations are assumed small next to ``d``). Always at least one sample.

    Args:
        budget_bytes: Memory budget for one chunk, in bytes.
        d: Number of parameters.
        columns: Vectors per sample (``r``).
        itemsize: Bytes per element of the compute dtype.

    Returns:
        The number of samples per chunk, ``>= 1``.
    """
    if budget_bytes <= 0:
        raise ValueError(f"expected a positive memory budget in bytes, got {budget_bytes}")
    per_sample = _TENSORS_PER_COLUMN * max(d, 1) * max(columns, 1) * itemsize
    return max(1, budget_bytes // per_sample)


def _dict_output(model: torch.nn.Module | ModelCall, buffers: Mapping[str, Tensor]):
    call = as_model_call(model)

    def output(params: dict[str, Tensor], x: Any) -> Any:
        return call({**params, **buffers}, unsqueeze(x))

    return output


def _dict_loss(model: torch.nn.Module | ModelCall, loss_fn: LossFn, buffers: Mapping[str, Tensor]):
    # x and y may be pytrees of one sample each (see edgewise._batch); y is the whole batch
    # when the loss reads the batch itself (a model that computes its own loss)
    output = _dict_output(model, buffers)

    def loss(params: dict[str, Tensor], x: Any, y: Any) -> Tensor:
        return loss_fn(output(params, x), unsqueeze(y))

    return loss


def sample_loss(
    model: torch.nn.Module,
    loss_fn: LossFn,
    layout: ParamLayout,
    buffers: Mapping[str, Tensor] | None = None,
) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``l_i(theta) = loss_fn(model(x_i[None]), y_i[None])`` as a function of flat parameters.

    Args:
        model: The module, used only through ``functional_call`` (its own tensors are not read
            for the parameters in ``layout``).
        loss_fn: Mean-reduced loss ``loss_fn(output, target) -> scalar``.
        layout: Parameter layout of ``model``.
        buffers: Constants: buffers (e.g. frozen BatchNorm statistics) and frozen parameters;
            the module's own if ``None``.

    Returns:
        ``f(theta, x_i, y_i) -> scalar`` for one sample.
    """
    loss = _dict_loss(model, loss_fn, dict(buffers or {}))

    def flat_loss(theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return loss(layout.unflatten(theta), x, y)

    return flat_loss


def sample_hvp(
    model: torch.nn.Module,
    loss_fn: LossFn,
    layout: ParamLayout,
    buffers: Mapping[str, Tensor] | None = None,
) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """Single-sample, single-vector exact Hessian product ``H_i v`` (forward-over-reverse).

    Only the exact-Hessian route (``curvature="hessian"``) uses per-sample products; the
    Gauss–Newton route works with batched Jacobian products (:mod:`edgewise._factor_route`).

    Derivatives are taken with respect to the parameter dict (views of ``theta``), not the
    flat vector, so no per-parameter slice backward fills ``d``-sized zeros; the result is
    concatenated once.

    Returns:
        ``hvp(theta, x_i, y_i, v) -> H_i v`` (all vectors of length ``d``).
    """
    grad_loss = grad(_dict_loss(model, loss_fn, dict(buffers or {})))

    def hvp(theta: Tensor, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        params, tangent = layout.unflatten(theta), layout.unflatten(v)
        return layout.flatten(_jvp_with_target(lambda p, yy: grad_loss(p, x, yy), params, tangent, y))

    return hvp


def mean_hvp(
    model: torch.nn.Module,
    loss_fn: LossFn,
    layout: ParamLayout,
    buffers: Mapping[str, Tensor] | None = None,
) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """Exact Hessian of the mean per-sample loss times ``v``: ``(1/m) Σ_i H_i v`` in one pass.

    One forward-over-reverse product of ``mean_i l_i`` (per-sample losses ``vmap``-ed inside a
    single ``grad``) costs about one batched HVP, where ``m`` separate per-sample products cost
    ``m`` vectorised ones. The oracle uses it when every sample gets the same vector (Lanczos
    on ``H``).

    Returns:
        ``hvp(theta, x, y, v) -> (1/m) Σ_i H_i v`` for a batch ``x``, ``y`` and one vector ``v``.
    """
    per_sample = _dict_loss(model, loss_fn, dict(buffers or {}))

    def mean_loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return vmap(per_sample, in_dims=(None, 0, 0))(params, x, y).mean()

    grad_mean = grad(mean_loss)

    def hvp(theta: Tensor, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        params, tangent = layout.unflatten(theta), layout.unflatten(v)
        return layout.flatten(_jvp_with_target(lambda p, yy: grad_mean(p, x, yy), params, tangent, y))

    return hvp


def _jvp_with_target(fn: Callable[[Any, Any], Any], primal: Any, tangent: Any, y: Any) -> Any:
    """``jvp`` of ``fn(·, y)`` at ``primal`` along ``tangent``, with ``y`` held fixed.

    Floating target leaves get explicit (materialised) zero tangents: with no tangent, torch's
    forward-AD formula of ``mse_loss_backward`` (reduction "mean") writes in place into an
    immutable ZeroTensor and fails (pytorch/pytorch#123996, open as of torch 2.13). Integer
    leaves (labels, token ids) are closed over.
    """
    floats, rebuild = split_floats(y)

    def of(p: Any, *fl: Tensor) -> Any:
        return fn(p, rebuild(fl))

    zeros = tuple(torch.zeros_like(t) for t in floats)
    return jvp(of, (primal, *floats), (tangent, *zeros))[1]


def _slices(m: int, chunk: int | None) -> list[slice]:
    step = m if chunk is None else max(1, int(chunk))
    return [slice(s, min(s + step, m)) for s in range(0, m, max(step, 1))]


def per_sample_hvp(
    model: torch.nn.Module,
    loss_fn: LossFn,
    layout: ParamLayout,
    buffers: Mapping[str, Tensor] | None = None,
    *,
    chunk_size: int | None = None,
) -> Callable[..., Tensor]:
    """Per-sample exact Hessian products ``H_i v`` for all probe samples, vmapped and chunked.

    The returned ``f(theta, x, y, v, *, per_sample=False, reduce=False)`` takes ``x``/``y``
    with ``m`` samples along dim 0 and ``v`` of shape

    - ``(d,)`` or ``(d, r)``: the same vector(s) for every sample (``per_sample=False``);
    - ``(m, d)`` or ``(m, d, r)``: one vector / one block per sample (``per_sample=True``,
      as ``expand`` needs for ``H_i (V C_i)``).

    It returns ``(m, d)`` / ``(m, d, r)``, or the sum over samples (``(d,)`` / ``(d, r)``) when
    ``reduce=True``, which keeps memory at one chunk. ``chunk_size`` samples are processed per
    ``vmap`` call (all at once if ``None``).
    """
    single = sample_hvp(model, loss_fn, layout, buffers)
    over_cols = vmap(single, in_dims=(None, None, None, 1), out_dims=1)
    fns = {
        (False, False): vmap(single, in_dims=(None, 0, 0, None)),
        (False, True): vmap(over_cols, in_dims=(None, 0, 0, None)),
        (True, False): vmap(single, in_dims=(None, 0, 0, 0)),
        (True, True): vmap(over_cols, in_dims=(None, 0, 0, 0)),
    }
    d = layout.size

    def apply(theta: Tensor, x: Tensor, y: Tensor, v: Tensor, *, per_sample: bool = False,
              reduce: bool = False) -> Tensor:
        m = batch_size(x, "x")
        if batch_size(y, "y") != m:
            raise ValueError(f"expected y with {m} samples like x, got {batch_size(y, 'y')}")
        lead = 1 if per_sample else 0
        if per_sample and v.shape[0] != m:
            raise ValueError(f"expected per-sample vectors with {m} rows, got shape {tuple(v.shape)}")
        if v.dim() - lead not in (1, 2) or v.shape[lead] != d:
            want = "(m, d) or (m, d, r)" if per_sample else "(d,) or (d, r)"
            raise ValueError(f"expected v of shape {want} with d = {d}, got {tuple(v.shape)}")
        fn = fns[(per_sample, v.dim() - lead == 2)]
        out: Tensor | None = None
        parts = []
        for sl in _slices(m, chunk_size):
            hv = fn(theta, take(x, sl), take(y, sl), v[sl] if per_sample else v)
            if reduce:
                out = hv.sum(0) if out is None else out + hv.sum(0)
            else:
                parts.append(hv)
        if reduce:
            return out if out is not None else theta.new_zeros(v.shape[lead:])
        return torch.cat(parts) if parts else theta.new_zeros((0, *v.shape[lead:]))

    return apply


def per_sample_grads(
    model: torch.nn.Module,
    loss_fn: LossFn,
    layout: ParamLayout,
    buffers: Mapping[str, Tensor] | None = None,
    *,
    chunk_size: int | None = None,
) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Per-sample losses and gradients, vmapped and chunked.

    Returns:
        ``f(theta, x, y) -> (losses (m,), grads (m, d))``.
    """
    gv = grad_and_value(_dict_loss(model, loss_fn, dict(buffers or {})))

    def one(theta: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        g, value = gv(layout.unflatten(theta), x, y)
        return layout.flatten(g), value

    fn = vmap(one, in_dims=(None, 0, 0))

    def apply(theta: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        m = batch_size(x, "x")
        if batch_size(y, "y") != m:
            raise ValueError(f"expected y with {m} samples like x, got {batch_size(y, 'y')}")
        grads, losses = [], []
        for sl in _slices(m, chunk_size):
            g, l = fn(theta, take(x, sl), take(y, sl))
            grads.append(g)
            losses.append(l)
        if not grads:
            return theta.new_zeros(0), theta.new_zeros((0, layout.size))
        return torch.cat(losses), torch.cat(grads)

    return apply
