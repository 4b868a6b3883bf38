"""The curvature oracle: the client-side executor of the protocol/SPEC.md §4 operations.

The sidecar decides which curvature products it needs; this class owns the model, the probe
samples and the ``d``-dimensional basis ``V`` and answers with small matrices only.

Two routes (protocol v2):

- Gauss–Newton, ``curvature="ggn"`` (default) or ``"ggn_mc"``: ``blocks`` answers the factors
  ``A_i = L_i J_i V[:, cols]`` (``m × s × count``, ``L_iᵀ L_i = Λ_i`` the loss Hessian in the
  outputs) from one batched JVP of the whole probe batch per column; ``expand`` takes output
  coefficients ``U_i`` and forms ``Σ_i J_iᵀ L_iᵀ U_i`` with one batched VJP per column. See
  :mod:`edgewise._factor_route`.
- Exact per-sample Hessians, ``curvature="hessian"``: ``blocks`` answers ``Vᵀ H_i V[:, cols]``
  (``m × k × count``) from per-sample HVPs, ``expand`` takes ``C_i`` (``m × k × r``).

Momentum and Adam (shared/docs/momentum.md): ``hessian_gram`` answers rows of
``K₂ = Vᵀ H² V`` (``H = mean_i H_i``) from mean-Hessian products of the basis columns, cached
for the round. With Adam's frozen preconditioner given to :meth:`CurvatureOracle.begin_round`,
every op answers for ``P^{-1/2} H_i P^{-1/2}`` (gradients ``P^{-1/2} g_i``): the parameter
layout applies it inside each product (:class:`edgewise._hvp.ParamLayout`).

Non-intrusiveness (what happens to the user's model):

- :meth:`CurvatureOracle.begin_round` copies the parameters and buffers (detached clones in the
  compute dtype); the ops evaluate the model through ``torch.func.functional_call`` on those
  copies, so the user's tensors are never written and ``.grad`` is never touched.
- Ops run the model in eval mode (BatchNorm uses its frozen running statistics and does not
  update them, dropout is off) and then restore every module's ``training`` flag as it was.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    >>> oracle = CurvatureOracle(model, torch.nn.functional.mse_loss, x, y)
    >>> oracle.begin_round()
    >>> oracle.execute("random", {"r": 2, "seed": 0})["kept"]
    2
    >>> oracle.execute("blocks", {"start": 0, "count": 2})["factors"].shape   # m × c × count
    (8, 1, 2)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils._pytree import tree_leaves

from ._batch import Forward, ModelCall, batch_size, move, take
from ._basis import column_dots, gaussian, inner, orthonormalize, rademacher, reorthonormalize
from ._column_cache import ColumnCache
from ._factor_route import FactorRound
from ._growing_columns import GrowingColumns
from ._hvp import LossFn, ParamLayout, chunk_for_budget, mean_hvp, per_sample_grads, per_sample_hvp
from ._output_curvature import OutputCurvature
from ._traced_jvp import JvpTracing

#: Per-sample curvature: Gauss–Newton factors (exact or Monte Carlo) or exact Hessians.
CURVATURES = ("ggn", "ggn_mc", "hessian")
LOSS_ON = ("target", "batch")

#: Default memory budget for one vmapped chunk, in bytes.
DEFAULT_MEMORY_BUDGET = 256 * 2**20

_DTYPES = {torch.float32, torch.float64, torch.float16, torch.bfloat16}


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then restore each one's own ``training`` flag."""
    flags = [(mod, mod.training) for mod in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for mod, flag in flags:
            mod.training = flag


def _to_f64(t: Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


_WIRE_DTYPES = {"f64": "<f8", "f32": "<f4", "i32": "<i4"}


def _as_array(value: Any, name: str) -> np.ndarray:
    """A numpy array from an array-like or a SPEC §2 tensor map ``{data, dtype, shape}``."""
    if isinstance(value, Mapping):
        if set(value) != {"data", "dtype", "shape"} or value["dtype"] not in _WIRE_DTYPES:
            raise TypeError(f"expected {name} as an array or a tensor map {{data, dtype: f64|f32|i32, shape}}, got {sorted(value)}")
        shape = tuple(int(n) for n in value["shape"])
        dt = np.dtype(_WIRE_DTYPES[value["dtype"]])
        if len(value["data"]) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise ValueError(f"expected {name} data of {int(np.prod(shape))} × {dt.itemsize} bytes, got {len(value['data'])}")
        return np.frombuffer(value["data"], dtype=dt).reshape(shape)
    return np.asarray(value)


def _int_arg(args: Mapping[str, Any], name: str, *, minimum: int | None = 0) -> int:
    if name not in args:
        raise ValueError(f"expected argument {name!r}, got only {sorted(args)}")
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)):
        raise TypeError(f"expected {name} to be an integer, got {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise TypeError(f"expected {name} to be an integer, got {value}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")
    return value


def _check_probe(x: Any, y: Any, curvature: str, loss_on: str) -> Any:
    """Validate the probe's structure; returns ``y`` (``None`` when the loss reads the batch)."""
    if loss_on not in LOSS_ON:
        raise ValueError(f"expected loss_on 'target' or 'batch', got {loss_on!r}")
    m = batch_size(x, "the probe inputs x")
    if m == 0:
        raise ValueError("expected a probe with m >= 1 samples, got 0")
    if loss_on == "batch":
        if curvature != "hessian":
            raise ValueError(
                "expected curvature='hessian' with loss_on='batch': a loss computed from the batch is"
                " opaque to the Gauss-Newton split; for Gauss-Newton pass forward= returning the logits,"
                " a standard loss_fn(logits, labels) and the labels as the probe targets")
        return None
    if y is None:
        raise TypeError("expected probe targets y (or loss_on='batch' for a loss that reads the batch), got None")
    if curvature != "hessian" and not isinstance(y, Tensor):
        raise TypeError(f"expected the targets y to be a tensor for curvature={curvature!r}, got {type(y).__name__}")
    if batch_size(y, "the probe targets y") != m:
        raise ValueError(f"expected x and y with the same number m of samples, got {m} and {batch_size(y)}")
    return y


class CurvatureOracle:
    """Per-sample curvature products on a frozen snapshot of a model, in a kept basis ``V``.

    Args:
        model: The user's module (read, never modified).
        loss_fn: Mean-reduced ``loss_fn(output, target)``; applied per sample on a batch of one.
            With ``loss_on="batch"``: ``loss_fn(output, batch)`` for a model that computes its
            own loss (Hugging Face style: ``lambda out, batch: out.loss``).
        x: Probe inputs, ``m`` samples along dim 0: a tensor or any pytree of tensors (tuple,
            list, dict, nested) sharing that leading dimension (see :mod:`edgewise._batch`).
            The model is called as ``model(x)`` for a tensor, ``model(*x)`` for a tuple/list,
            ``model(**x)`` for a dict, or ``forward(model, x)``.
        y: Probe targets, ``m`` along dim 0 (a tensor for the Gauss–Newton routes); ``None``
            with ``loss_on="batch"``.
        curvature: ``"ggn"`` (Gauss–Newton factors, default), ``"ggn_mc"`` (Monte Carlo
            Gauss–Newton factors with ``mc_samples`` sampled labels per sample, for large
            output counts) or ``"hessian"`` (exact per-sample Hessians, per-sample HVPs).
        mc_samples: Rows ``s`` of the Monte Carlo factor (``ggn_mc`` only).
        seed: Seed of the Monte Carlo draw (``ggn_mc``); round ``t`` draws with ``(seed, t)``.
        chunk_size: Samples per vmapped chunk of the Hessian route; overrides ``memory_budget``.
        memory_budget: Bytes for one chunk's intermediates (default 256 MiB): samples per chunk
            of per-sample products (see :func:`edgewise._hvp.chunk_for_budget`), columns per
            chunk of batched Jacobian products.
        dtype: Compute dtype; the model's parameter dtype if ``None``.
        forward: ``forward(model, batch) -> output`` replacing the call by structure (e.g.
            ``lambda m, b: m(**b).logits`` to give the Gauss–Newton routes the logits).
        loss_on: ``"target"`` (default): ``loss_fn(output, y)``. ``"batch"``: ``loss_fn(output,
            x)``; only the exact Hessian (``curvature="hessian"``) is available then, since the
            Gauss–Newton split needs to know which output is the logits and which standard loss
            applies to them: for Gauss–Newton pass ``forward=`` returning the logits, a standard
            ``loss_fn(logits, labels)`` and the labels as ``y`` instead.

    Raises:
        TypeError: ``model`` is not a module, or ``x``/``y`` are not (pytrees of) tensors.
        ValueError: Bad ``curvature``, sizes (leading dimensions that differ), chunk size or
            budget; ``loss_on="batch"`` with a Gauss–Newton curvature.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        x: Tensor,
        y: Tensor,
        *,
        curvature: str = "ggn",
        mc_samples: int = 1,
        seed: int = 0,
        chunk_size: int | None = None,
        memory_budget: int | None = None,
        dtype: torch.dtype | None = None,
        forward: Forward | None = None,
        loss_on: str = "target",
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"expected model to be a torch.nn.Module, got {type(model).__name__}")
        if curvature not in CURVATURES:
            raise ValueError(f"expected curvature 'ggn', 'ggn_mc' or 'hessian', got {curvature!r}")
        y = _check_probe(x, y, curvature, loss_on)
        if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 1:
            raise ValueError(f"expected mc_samples to be a positive int, got {mc_samples!r}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"expected chunk_size to be a positive int or None, got {chunk_size!r}")
        if memory_budget is not None and memory_budget <= 0:
            raise ValueError(f"expected a positive memory_budget in bytes, got {memory_budget}")
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError(f"expected a floating dtype, got {dtype}")
        first = next((p for p in model.parameters() if p.requires_grad), None)
        if first is None:
            raise ValueError("expected a model with trainable parameters, got none")
        self._model = model
        self._call = ModelCall(model, forward)
        self._loss_fn = loss_fn
        self._x_user, self._y_user = x, y
        self._m = batch_size(x)
        self._curvature = curvature
        self._mc_samples = mc_samples
        self._seed = int(seed)
        self._rounds = 0
        self._chunk_size = chunk_size
        self._budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        self._dtype_arg = dtype
        self._device = first.device
        self._dtype = dtype or first.dtype
        self._layout = ParamLayout.from_module(model)
        self._columns = GrowingColumns(torch.zeros(self._layout.size, 0, dtype=self._dtype, device=self._device))
        self._theta: Tensor | None = None
        self._hvp = self._mean_hvp = self._grads = None
        self._factor: FactorRound | None = None
        self._output_curvature: OutputCurvature | None = None
        self._jvp_tracing = JvpTracing()
        self._factors = ColumnCache()  # A_i of each basis column (factor route)
        self._hv = ColumnCache()  # H v_j of each basis column (hessian_gram)
        self._x = self._y = None
        self._outputs = self._count_outputs()
        self.hvps = 0.0
        """Per-sample products spent since creation (``hvps / m`` = HVP-equivalents; a batched
        JVP or VJP column counts ``m/2``)."""

    def _count_outputs(self) -> int:
        """``c``: flattened outputs of one sample (one forward of the first probe sample)."""
        first = next(p for p in self._model.parameters() if p.requires_grad)
        with eval_mode(self._model), torch.no_grad():
            out = self._call.plain(move(take(self._x_user, slice(0, 1)), first.device, first.dtype))
        if isinstance(out, Tensor):
            return int(out[0].numel())
        if self.factor_route:
            raise TypeError(
                f"expected the model to return the logits tensor for curvature={self._curvature!r}, got"
                f" {type(out).__name__}; pass forward=lambda model, batch: ...logits (or curvature='hessian')")
        # a model returning a structure (its own loss, logits, ...): every per-sample output
        leaves = [t for t in tree_leaves(out) if isinstance(t, Tensor) and t.dim() >= 1]
        return max(1, sum(int(t[0].numel()) for t in leaves))

    # ----------------------------------------------------------------- state
    @property
    def basis_size(self) -> int:
        """Current basis size ``k``."""
        return self._v.shape[1]

    @property
    def params(self) -> int:
        """Number of trainable parameters ``d`` (as of the last snapshot, else at construction)."""
        return self._layout.size

    @property
    def probe_size(self) -> int:
        """Number of probe samples ``m``."""
        return self._m

    @property
    def curvature(self) -> str:
        """``"ggn"``, ``"ggn_mc"`` or ``"hessian"``."""
        return self._curvature

    @property
    def factor_route(self) -> bool:
        """Whether blocks are Gauss–Newton factors (``ggn``/``ggn_mc``)."""
        return self._curvature != "hessian"

    @property
    def outputs(self) -> int:
        """Rows of each per-sample factor: ``c`` model outputs, or ``mc_samples`` for ``ggn_mc``
        (``hello.run.outputs``)."""
        return self._mc_samples if self._curvature == "ggn_mc" else self._outputs

    @property
    def output_curvature_kind(self) -> str | None:
        """How ``Λ_i^{1/2}`` is formed (``mse``, ``cross_entropy``, ``generic``), once known."""
        return None if self._output_curvature is None else self._output_curvature.kind

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype."""
        return self._dtype

    @property
    def basis(self) -> Tensor:
        """A copy of the basis ``V`` (``d × k``, compute dtype, model device)."""
        return self._v.clone()

    @property
    def _v(self) -> Tensor:
        """The basis itself (a view into :class:`GrowingColumns`: appending does not copy it)."""
        return self._columns.view

    @_v.setter
    def _v(self, v: Tensor) -> None:
        self._columns = GrowingColumns(v)

    def begin_round(self, preconditioner: Tensor | None = None) -> None:
        """Freeze the model's current parameters and buffers for the ops of one round.

        Only parameters with ``requires_grad`` are variables (``d`` counts them); frozen
        parameters and buffers are frozen constants. The basis is kept across rounds (moved to
        the model's device/dtype), and reset when ``d`` changed.

        Args:
            preconditioner: Adam's frozen ``s = P^{-1/2}`` (``d``, see
                :mod:`edgewise._preconditioner`): every op of the round then answers for
                ``P^{-1/2} H_i P^{-1/2}`` (gradients ``P^{-1/2} g_i``), the basis living in the
                coordinates ``φ = P^{1/2} θ``. None: plain parameters.
        """
        first = next((p for p in self._model.parameters() if p.requires_grad), None)
        if first is None:
            raise ValueError("expected a model with trainable parameters, got none")
        self._device = first.device
        self._dtype = self._dtype_arg or first.dtype
        layout = ParamLayout.from_module(self._model)
        if preconditioner is not None:
            layout = layout.with_scale(preconditioner.detach().to(device=self._device, dtype=self._dtype))
        if layout.size != self._v.shape[0]:
            self._v = torch.zeros(layout.size, 0, dtype=self._dtype, device=self._device)
        else:
            self._v = self._v.to(device=self._device, dtype=self._dtype)
        self._layout = layout
        dt, dev = self._dtype, self._device
        with torch.no_grad():
            params = {n: p.detach().to(device=dev, dtype=dt) for n, p in self._model.named_parameters()}
            self._theta = layout.coordinates(params).clone()
            trainable = set(layout.names)
            constants = [(n, p) for n, p in self._model.named_parameters() if n not in trainable]
            buffers = {
                n: b.detach().to(device=dev, dtype=dt if b.is_floating_point() else b.dtype).clone()
                for n, b in [*constants, *self._model.named_buffers()]
            }
            self._x = move(self._x_user, dev, dt)
            # the loss reads the batch itself (loss_on="batch"): the same tensors as x
            self._y = self._x if self._y_user is None else move(self._y_user, dev, dt)
        self._grads = per_sample_grads(self._call, self._loss_fn, layout, buffers)
        self._caches("clear")
        if self.factor_route:
            self._begin_factor_round(buffers)
        else:
            self._hvp = per_sample_hvp(self._call, self._loss_fn, layout, buffers)
            self._mean_hvp = mean_hvp(self._call, self._loss_fn, layout, buffers)
        self._rounds += 1

    def _begin_factor_round(self, constants: Mapping[str, Tensor]) -> None:
        mc = self._mc_samples if self._curvature == "ggn_mc" else None
        gen = torch.Generator().manual_seed((self._seed * 1_000_003 + self._rounds) % 2**63)
        with eval_mode(self._model), torch.no_grad():
            self._factor = FactorRound(
                self._call, self._loss_fn, self._layout, constants, self._theta, self._x, self._y,
                mc_rows=mc, generator=gen, memory_budget=self._budget, output_curvature=self._output_curvature,
                tracing=self._jvp_tracing,
            )
        self._output_curvature = self._factor.output_curvature
        if self._column_cap is not None:
            jac = self._factor.jacobian
            jac.columns_per_chunk = min(jac.columns_per_chunk, self._column_cap)

    def end_round(self) -> None:
        """Release the parameter snapshot (the basis is kept)."""
        self._theta = self._hvp = self._mean_hvp = self._grads = self._x = self._y = None
        self._factor = None
        self._caches("clear")

    def _need_round(self) -> Tensor:
        if self._theta is None:
            raise RuntimeError("expected an open round: call begin_round() first")
        return self._theta

    def _chunk(self, columns: int) -> int:
        if self._chunk_size is not None:
            self.last_chunk = self._chunk_size
            return self._chunk_size
        itemsize = torch.empty((), dtype=self._dtype).element_size()
        self.last_chunk = chunk_for_budget(self._budget, self.params, columns, itemsize)
        return self.last_chunk

    # chunk size, exposed for the out-of-memory retry (edgewise/_oom.py)
    last_chunk: int | None = None
    """Samples per chunk of the latest op (None before the first)."""

    @property
    def chunk_size(self) -> int | None:
        """Fixed samples per chunk, or None when the memory budget decides."""
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int | None) -> None:
        """Setting it (the out-of-memory retry halves it) also halves, on the factor route, the
        Jacobian-product columns per chunk, for this round and the later ones."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"expected chunk_size to be a positive int or None, got {value!r}")
        self._chunk_size = value
        if value is not None and self._factor is not None:
            self._column_cap = max(1, self._factor.jacobian.columns_per_chunk // 2)
            self._factor.jacobian.columns_per_chunk = self._column_cap

    _column_cap: int | None = None

    def _slices(self, columns: int) -> list[slice]:
        m, c = self.probe_size, self._chunk(columns)
        return [slice(s, min(s + c, m)) for s in range(0, m, c)]

    def _shared_products(self, z: Tensor) -> Iterator[tuple[slice, Tensor]]:
        """Yield ``(samples, H_i Z)`` chunk by chunk, ``Z`` (``d × c``) the same for all (Hessian route)."""
        theta = self._need_round()
        with eval_mode(self._model), torch.no_grad():
            for sl in self._slices(z.shape[1]):
                yield sl, self._hvp(theta, take(self._x, sl), take(self._y, sl), z)

    def _tensor(self, value: Any, name: str, shape: tuple[int, ...], what: str) -> Tensor:
        arr = _as_array(value, name)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"expected {name} to be a numeric array, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"expected {name} of shape {what} = {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"expected finite {name}, got NaN or Inf")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64)).to(device=self._device, dtype=self._dtype)

    def _batched(self, columns: int) -> None:
        """Count ``columns`` batched JVP/VJP columns: ``m/2`` per-sample products each."""
        self.hvps += 0.5 * self.probe_size * columns

    #: Distributed runs (edgewise/_distributed_oracle.py): sums ``d``-sized partial sums over
    #: the ranks' probe shards (``sum``) and knows the union size (``total_samples``); None alone.
    reducer: Any = None

    def _sum_over_shards(self, t: Tensor) -> Tensor:
        return t if self.reducer is None else self.reducer.sum(t)

    def _union_size(self) -> int:
        """Probe samples the sums of :meth:`_sum_over_shards` run over (``m``, or the union's)."""
        return self.probe_size if self.reducer is None else self.reducer.total_samples

    def _caches(self, action: str, u: Tensor | None = None) -> None:
        """Keep the per-column caches in step with ``V``: ``clear`` (empty, then sized to ``k``),
        ``resize`` (columns appended), ``rotate`` (``V ← V U``)."""
        for cache in (self._factors, self._hv):
            if action == "rotate":
                cache.rotate(u)
            else:
                if action == "clear":
                    cache.clear()
                cache.resize(self.basis_size)

    # ------------------------------------------------------------------- ops
    def reset(self) -> None:
        """``V ← []``."""
        self._v = self._v.new_zeros((self.params, 0))
        self._caches("clear")

    def random(self, r: int, seed: int) -> int:
        """Append ``r`` seeded Gaussian directions orthonormalised against ``V``; returns how many were kept."""
        self._need_round()
        z = gaussian(self.params, r, seed, dtype=self._dtype, device=self._device)
        q, _, kept = orthonormalize(self._v, z)
        self._columns.append(q)
        self._caches("resize")
        return len(kept)

    def expand(self, coeffs: Tensor, basis_coeffs: Tensor, blocks: bool = False) -> dict[str, Any]:
        """``W = Σ_i H_i V C_i + V C_V``, orthonormalised against ``V`` and appended.

        Factor route: ``coeffs`` are the output coefficients ``U_i`` (``m × s × r``) and
        ``W = Σ_i J_iᵀ L_iᵀ U_i + V C_V`` costs ``r`` batched VJPs (``Σ_i H_i V C_i`` is the case
        ``U_i = A_i C_i``). Hessian route: ``coeffs`` are ``C_i`` (``m × k × r``) and ``W`` costs
        ``m r`` per-sample HVPs (one batched mean-HVP per column when all ``C_i`` are equal).

        Args:
            coeffs: ``U_i`` or ``C_i`` (compute dtype, model device).
            basis_coeffs: ``C_V``, ``k × r``.
            blocks: Also return the blocks of the appended columns: factors ``m × s × kept``
                (factor route) or ``Vᵀ H_i V_new`` ``m × k' × kept`` (Hessian route).

        Returns:
            ``proj`` (``k × r``, ``Vᵀ W`` with the old ``V``), ``norms`` (``r``), ``kept``,
            ``kept_index``, and ``blocks`` when asked; tensors.
        """
        self._need_round()
        k = self.basis_size
        v = self._v
        with eval_mode(self._model), torch.no_grad():
            if self.factor_route:
                w = self._sum_over_shards(self._factor.expansion(coeffs))
                self._batched(coeffs.shape[2])
            else:
                w = self._sum_over_shards(self._hessian_expansion(coeffs))
            if bool(basis_coeffs.any()):  # Lanczos steps send zeros: a pass over V saved
                w = torch.addmm(w, v, basis_coeffs)
        proj = inner(v, w)
        q, norms, kept_index = orthonormalize(v, w, vw=proj)
        self._columns.append(q)
        self._caches("resize")
        out: dict[str, Any] = {"proj": proj, "norms": norms, "kept": len(kept_index), "kept_index": kept_index}
        if blocks:
            out["blocks"] = self.blocks(k, len(kept_index))
        return out

    def _hessian_expansion(self, coeffs: Tensor) -> Tensor:
        theta, v = self._need_round(), self._v
        m, r = self.probe_size, coeffs.shape[2]
        w = v.new_zeros((v.shape[0], r))
        shared = m > 1 and r > 0 and bool((coeffs == coeffs[:1]).all())
        if shared:
            # every sample gets the same C (e.g. a Lanczos step on H): Σ_i H_i V C = m H̄ V C,
            # one batched product per column instead of m per-sample ones
            z = v @ coeffs[0]
            for j in range(r):
                w[:, j] += m * self._mean_hvp(theta, self._x, self._y, z[:, j])
        for sl in self._slices(r) if r and not shared else []:
            z = torch.einsum("dk,ikr->idr", v, coeffs[sl])
            w = w + self._hvp(theta, take(self._x, sl), take(self._y, sl), z, per_sample=True, reduce=True)
        self.hvps += m * r
        return w

    def blocks(self, start: int, count: int) -> Tensor:
        """The blocks of columns ``start … start+count−1``.

        Factor route: ``A_i = L_i J_i V[:, cols]``, ``m × s × count``, one batched JVP per column
        not computed before in this round. Hessian route: ``Vᵀ H_i V[:, cols]``, ``m × k × count``,
        costs ``m × count`` per-sample HVPs.
        """
        k = self.basis_size
        if start < 0 or count < 0 or start + count > k:
            raise ValueError(f"expected 0 <= start and start + count <= k = {k}, got start={start}, count={count}")
        self._need_round()
        if self.factor_route:
            return self._factor_blocks(start, count)
        cols = self._v[:, start : start + count]
        out = self._v.new_zeros((self.probe_size, k, count))
        if count == 0:
            return out
        for sl, hz in self._shared_products(cols):
            out[sl] = torch.stack([inner(self._v, h) for h in hz])  # over d: see inner()
        self.hvps += self.probe_size * count
        return out

    def _ensure_factors(self, columns: list[int]) -> None:
        """Compute (one batched JVP each) and cache the factors of ``columns`` not cached yet."""
        missing = [j for j in columns if self._factors.missing(j, 1)]
        if missing:
            with eval_mode(self._model), torch.no_grad():
                self._factors.store(missing, self._factor.factors(self._v[:, missing]))
            self._batched(len(missing))

    def _factor_blocks(self, start: int, count: int) -> Tensor:
        self._ensure_factors(list(range(start, start + count)))
        if count == 0:
            return self._v.new_zeros((self.probe_size, self.outputs, 0))
        return self._factors.get(start, count).clone()

    def rotate(self, u: Tensor) -> None:
        """``V ← V U`` (``U``: ``k × k'``, orthonormal columns), re-orthonormalised by CGS2.

        The re-orthonormalisation only removes rounding: it never changes ``k'`` (SPEC §4), since
        the sidecar rotates its own curvature by the same ``U``. ``V U`` losing a column would mean
        ``V`` itself is not orthonormal; that raises and leaves ``V`` as it was.
        """
        k = self.basis_size
        if u.dim() != 2 or u.shape[0] != k or u.shape[1] > k:
            raise ValueError(f"expected u of shape (k, k') with k = {k} and k' <= k, got {tuple(u.shape)}")
        gram = u.T @ u
        err = (gram - torch.eye(u.shape[1], dtype=u.dtype, device=u.device)).abs().max() if u.numel() else 0.0
        if err > 1e-6:
            raise ValueError(f"expected u with orthonormal columns, got max |UᵀU − I| = {float(err):.3g}")
        w = self._v @ u
        q = reorthonormalize(w)
        if q is None:  # V was not orthonormal to rounding: column by column, with the drop rule
            q, _, kept = orthonormalize(self._v[:, :0], w)
            if len(kept) != u.shape[1]:
                raise ValueError(
                    f"expected V U to keep its {u.shape[1]} columns, got {len(kept)}: the basis V is not orthonormal"
                )
        self._v = q
        self._caches("rotate", u)

    def hessian_gram(self, start: int, count: int) -> Tensor:
        """Rows ``start … start+count−1`` of ``(HV)ᵀ(HV) = Vᵀ H² V``, ``H = mean_i H_i``: ``count × k``.

        The sidecar assembles ``K₂ = Vᵀ H² V`` from these row blocks (momentum's commutator
        term, shared/docs/momentum.md §6). ``H v_j`` is computed once per column and round and
        kept (rotated with ``V``); the first call after the basis grew computes the new columns.
        Factor route: ``H v = (1/m) Σ_i J_iᵀ L_iᵀ A_i`` from the column's factors (cached, or
        one batched JVP), one batched VJP per column (``m/2``). Hessian route: one batched
        mean-Hessian product per column (``m``).
        """
        k = self.basis_size
        if start < 0 or count < 0 or start + count > k:
            raise ValueError(f"expected 0 <= start and start + count <= k = {k}, got start={start}, count={count}")
        theta = self._need_round()
        missing = self._hv.missing(0, k)
        if missing:
            with eval_mode(self._model), torch.no_grad():
                if self.factor_route:
                    self._ensure_factors(missing)  # a JVP per column whose factors are not cached
                    a = torch.stack([self._factors.get(j, 1)[:, :, 0] for j in missing], dim=2)
                    hv_sum = self._factor.expansion(a)
                    self._batched(len(missing))
                else:
                    hv_sum = self.probe_size * torch.stack(
                        [self._mean_hvp(theta, self._x, self._y, self._v[:, j]) for j in missing], dim=1)
                    self.hvps += self.probe_size * len(missing)
            self._hv.store(missing, self._sum_over_shards(hv_sum) / self._union_size())
        hv = self._hv.get(0, k) if k else self._v
        return inner(hv[:, start : start + count], hv)

    def grads(self) -> dict[str, Any]:
        """Per-sample losses, ``‖g_i‖²``, ``Vᵀ g_i`` and ``‖mean_i g_i‖²``; costs ``m``.

        ``‖g_i‖²`` needs the per-sample gradients themselves (no Jacobian product in the basis
        gives it), so ``Vᵀ g_i`` is read off them too.
        """
        theta = self._need_round()
        m, k = self.probe_size, self.basis_size
        losses = theta.new_zeros(m)
        sq = theta.new_zeros(m)
        proj = theta.new_zeros((m, k))
        total = torch.zeros_like(theta)
        with eval_mode(self._model), torch.no_grad():
            fn = self._grads
            for sl in self._slices(1):
                l, g = fn(theta, take(self._x, sl), take(self._y, sl))
                losses[sl] = l
                sq[sl] = (g * g).sum(1)
                proj[sl] = inner(g.T, self._v)
                total += g.sum(0)
        self.hvps += m
        total = self._sum_over_shards(total)
        mean = total / (m if self.reducer is None else self.reducer.total_samples)
        mean_sq_norm = float(inner(mean[:, None], mean[:, None]))
        return {"losses": losses, "sq_norms": sq, "proj": proj, "mean_sq_norm": mean_sq_norm}

    def hutchinson(self, r: int, seed: int) -> dict[str, Tensor]:
        """Rademacher ``z_1..z_r`` (seeded, shared by all samples): ``z_jᵀ H_i z_j`` and ``‖H_i z_j‖²``."""
        self._need_round()
        z = rademacher(self.params, r, seed, dtype=self._dtype, device=self._device)
        m = self.probe_size
        quad = z.new_zeros((m, r))
        sq = z.new_zeros((m, r))
        if r and self.factor_route:
            with eval_mode(self._model), torch.no_grad():
                quad, sq = self._factor.per_sample_products(z)
            self._batched(r)
            self.hvps += m * r
        elif r:
            for sl, hz in self._shared_products(z):
                quad[sl] = torch.stack([column_dots(z, h) for h in hz]).to(quad.dtype)  # over d: see inner()
                sq[sl] = (hz * hz).sum(1)
            self.hvps += m * r
        return {"quad": quad, "sq_norms": sq}

    # -------------------------------------------------------------- dispatch
    def execute(self, op: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one SPEC §4 op with wire-style arguments; numpy float64 / python ints out.

        Args:
            op: ``reset``, ``random``, ``expand``, ``blocks``, ``rotate``, ``grads``,
                ``hutchinson`` or ``hessian_gram``.
            args: The op's ``args`` map with SPEC names (arrays as numpy arrays or nested lists).

        Returns:
            The op's SPEC result fields, plus ``basis`` (``k`` after the op) and ``hvps``
            (per-sample products this op cost; a batched JVP/VJP column counts ``m/2``). On the
            factor route ``blocks`` and ``expand`` answer ``factors`` (``m × s × count``) and
            ``expand`` takes ``out_coeffs`` (``m × s × r``) instead of ``coeffs``.

        Raises:
            ValueError: Unknown op, missing argument, wrong shape or non-finite values.
            TypeError: Wrongly typed argument.
            RuntimeError: No open round (``begin_round`` not called).
            FloatingPointError: A result is not finite (SPEC §2 requires finite curvature);
                non-finite candidate columns of ``expand``/``random`` never enter ``V``.
        """
        args = {} if args is None else args
        if not isinstance(args, Mapping):
            raise TypeError(f"expected args to be a mapping, got {type(args).__name__}")
        before = self.hvps
        m, k = self.probe_size, self.basis_size
        out: dict[str, Any]
        if op == "reset":
            self.reset()
            out = {}
        elif op == "random":
            out = {"kept": self.random(_int_arg(args, "r"), _int_arg(args, "seed", minimum=None))}
        elif op == "expand":
            out = self._execute_expand(args)
        elif op == "blocks":
            res = self.blocks(_int_arg(args, "start"), _int_arg(args, "count"))
            out = {"factors" if self.factor_route else "blocks": _to_f64(res)}
        elif op == "rotate":
            if "u" not in args:
                raise ValueError(f"expected argument 'u', got {sorted(args)}")
            u_raw = _as_array(args["u"], "u")
            if u_raw.ndim != 2:
                raise ValueError(f"expected u of shape (k, k') = ({k}, k'), got {u_raw.shape}")
            self.rotate(self._tensor(u_raw, "u", (k, u_raw.shape[1]), "(k, k')"))
            out = {}
        elif op == "grads":
            res = self.grads()
            out = {
                "losses": _to_f64(res["losses"]),
                "sq_norms": _to_f64(res["sq_norms"]),
                "proj": _to_f64(res["proj"]),
                "mean_sq_norm": res["mean_sq_norm"],
            }
        elif op == "hutchinson":
            res = self.hutchinson(_int_arg(args, "r"), _int_arg(args, "seed", minimum=None))
            out = {"quad": _to_f64(res["quad"]), "sq_norms": _to_f64(res["sq_norms"])}
        elif op == "hessian_gram":
            out = {"gram": _to_f64(self.hessian_gram(_int_arg(args, "start"), _int_arg(args, "count")))}
        else:
            raise ValueError(
                f"expected op reset, random, expand, blocks, rotate, grads, hutchinson or hessian_gram, got {op!r}"
            )
        for key, value in out.items():
            if not np.all(np.isfinite(value)):
                raise FloatingPointError(
                    f"expected finite {key} from {op}, got NaN or Inf: the loss or its curvature is not finite at these parameters"
                )
        out["basis"] = self.basis_size
        out["hvps"] = self.hvps - before
        return out

    def _execute_expand(self, args: Mapping[str, Any]) -> dict[str, Any]:
        m, k = self.probe_size, self.basis_size
        name, rows, what = ("out_coeffs", self.outputs, "(m, s, r)") if self.factor_route else ("coeffs", k, "(m, k, r)")
        if name not in args or "basis_coeffs" not in args:
            raise ValueError(f"expected arguments {name!r} and 'basis_coeffs' (curvature {self._curvature}), got {sorted(args)}")
        c_raw = _as_array(args[name], name)
        if c_raw.ndim != 3:
            raise ValueError(f"expected {name} of shape {what} = ({m}, {rows}, r), got {c_raw.shape}")
        r = c_raw.shape[2]
        coeffs = self._tensor(c_raw, name, (m, rows, r), what)
        cv = self._tensor(args["basis_coeffs"], "basis_coeffs", (k, r), "(k, r)")
        want_blocks = args.get("blocks", False)
        if not isinstance(want_blocks, (bool, np.bool_)):
            raise TypeError(f"expected blocks to be a bool, got {type(want_blocks).__name__}")
        res = self.expand(coeffs, cv, bool(want_blocks))
        out = {
            "proj": _to_f64(res["proj"]),
            "norms": _to_f64(res["norms"]),
            "kept": res["kept"],
            "kept_index": list(res["kept_index"]),
        }
        if "blocks" in res:
            out["factors" if self.factor_route else "blocks"] = _to_f64(res["blocks"])
        return out
